"""Dynamic Ansible inventory from OCI freeform tags: the running nodes of a factory.

A cluster network launches its instances from the pool's instance configuration, which carries
the aifactory keys as freeform tags in the label form (``aifactory-factory``, ...; the OCI
descriptor in :mod:`aifactory.providers` says so). ``ListInstances`` cannot filter on a tag, so
the running instances of the compartment are listed and filtered here. An instance names no
address: the compartment's VNIC attachments tie instances to VNICs and subnets, and one listing
of private IPs per subnet gives each VNIC's primary address, so calls grow with pages and
subnets (one per pool), never one per node.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from ..components.base import TAG_FACTORY, TAG_NODE
from ..errors import AifactoryError
from ..fields import OCID_PATTERN
from .dynamic import ENDPOINT_PATTERN, Node, one_line, read_tags, require, require_factory, stored_key
from .dynamic import build as build_nodes

PROVIDER = "oci"
# Instances live in a compartment; the tenancy is the root compartment.
COMPARTMENT_PATTERN = rf"(?=ocid1\.(?:compartment|tenancy)\.){OCID_PATTERN}"
REGION_PATTERN = r"[a-z][a-z0-9-]{1,40}[a-z0-9]"
INSTANCE_PATTERN = rf"(?=ocid1\.instance\.){OCID_PATTERN}"
# The node-name claim: a freeform tag, which the instance metadata service (v2) shows the node in
# the instance document's freeformTags
# (https://docs.oracle.com/iaas/Content/Compute/Tasks/gettingmetadata.htm, checked 2026-12-03).
NODE_KEY = stored_key(PROVIDER, TAG_NODE)
NO_CREDENTIALS = ("inventory --from oci: no OCI configuration found; create ~/.oci/config (`oci setup config`) "
                  "or set OCI_CONFIG_FILE to one")


def _all(list_call, *args, **kwargs) -> list:
    """Every item of a paged OCI list call (the SDK follows ``opc-next-page``)."""
    from oci.pagination import list_call_get_all_results

    return list_call_get_all_results(list_call, *args, **kwargs).data


def running_instances(compute, compartment: str, factory: str) -> list:
    """``oci.core.models.Instance`` of the running instances tagged with ``factory``."""
    key = stored_key(PROVIDER, TAG_FACTORY)
    return [inst for inst in _all(compute.list_instances, compartment, lifecycle_state="RUNNING")
            if (inst.freeform_tags or {}).get(key) == factory]


def addresses(compute, network, compartment: str, instance_ids: set[str]) -> dict[str, str]:
    """Instance id -> the primary private address of its first VNIC (the primary VNIC is the one
    attached at launch; secondary VNICs are attached later)."""
    attachments = sorted((a for a in _all(compute.list_vnic_attachments, compartment)
                          if a.instance_id in instance_ids and a.lifecycle_state == "ATTACHED" and a.vnic_id),
                         key=lambda a: (a.time_created is None, a.time_created or 0, a.id or ""))
    primary_ip: dict[str, str] = {}
    for subnet in sorted({a.subnet_id for a in attachments if a.subnet_id}):
        for ip in _all(network.list_private_ips, subnet_id=subnet):
            if ip.is_primary and ip.vnic_id and ip.ip_address:
                primary_ip.setdefault(ip.vnic_id, ip.ip_address)
    out: dict[str, str] = {}
    for attachment in attachments:
        if attachment.vnic_id in primary_ip:
            out.setdefault(attachment.instance_id, primary_ip[attachment.vnic_id])
    return out


def node(inst, address: Optional[str]) -> Node:
    """One ``oci.core.models.Instance`` as a :class:`~.dynamic.Node`."""
    return Node(
        key=inst.id,
        names=tuple(n for n in (inst.display_name, inst.id) if n),
        address=address,
        tags=read_tags(PROVIDER, inst.freeform_tags),
        hostvars={
            "oci_instance_id": inst.id,
            "oci_display_name": inst.display_name,
            "oci_shape": inst.shape,
            "oci_availability_domain": inst.availability_domain,
            "oci_fault_domain": inst.fault_domain,
            "oci_region": inst.region,
        })


def candidate(inst, address: Optional[str]):
    """One instance as :class:`~.names.Candidate`: its ``aifactory-node`` freeform tag is the claim."""
    from .names import Candidate

    created = inst.time_created
    return Candidate(node(inst, address), created.timestamp() if hasattr(created, "timestamp") else None,
                     (inst.freeform_tags or {}).get(NODE_KEY))


def writer(compute, instances: Iterable):
    """``write(node, name)`` for :func:`~.names.assign`: UpdateInstance with the instance's freeform
    tags plus the claim (the call replaces the whole set; defined tags are left out, so unchanged)."""
    import oci

    by_id = {inst.id: inst for inst in instances}

    def write(found: Node, name: str) -> None:
        inst = by_id[found.key]
        if not re.fullmatch(INSTANCE_PATTERN, inst.id or ""):
            raise AifactoryError("inventory --from oci: an instance id is not an instance OCID; not named")
        tags = {**(inst.freeform_tags or {}), NODE_KEY: name}
        compute.update_instance(inst.id, oci.core.models.UpdateInstanceDetails(freeform_tags=tags))

    return write


def running_nodes(compute, network, compartment: str, factory: str) -> Iterable[Node]:
    instances = running_instances(compute, compartment, factory)
    found = addresses(compute, network, compartment, {inst.id for inst in instances}) if instances else {}
    return [node(inst, found.get(inst.id)) for inst in instances]


def clients(config: Optional[dict] = None, region: Optional[str] = None, endpoint_url: Optional[str] = None,
            **kwargs):
    """(compute, virtual network) clients on ``config`` (default: the SDK's config file)."""
    import oci

    if config is None:
        try:
            config = oci.config.from_file()
        except (oci.exceptions.ConfigFileNotFound, oci.exceptions.ProfileNotFound):
            raise AifactoryError(NO_CREDENTIALS) from None
        except (oci.exceptions.InvalidConfig, ValueError) as exc:
            raise AifactoryError("inventory --from oci: the OCI configuration is not usable: "
                                 + one_line(exc)) from None
    if region:
        config = {**config, "region": region}
    if endpoint_url:
        kwargs["service_endpoint"] = endpoint_url
    try:
        return oci.core.ComputeClient(config, **kwargs), oci.core.VirtualNetworkClient(config, **kwargs)
    except (oci.exceptions.InvalidConfig, oci.exceptions.InvalidPrivateKey, ValueError) as exc:
        raise AifactoryError(f"inventory --from oci: the OCI configuration is not usable: {one_line(exc)}") from None


def inventory(factory: str, compartment: str, region: Optional[str] = None, *, config: Optional[dict] = None,
              endpoint_url: Optional[str] = None, compute=None, network=None, plan=None, warn=None) -> dict:
    """The inventory of ``factory`` in ``compartment`` (``region``: default the configuration's);
    with ``plan``, the instances named after the plan first (:mod:`.names`), new claims written as
    the freeform tag ``aifactory-node``."""
    require_factory(factory)
    require(compartment, COMPARTMENT_PATTERN, "--compartment",
            "an OCI compartment or tenancy OCID such as ocid1.compartment.oc1..<id>")
    if region is not None:
        require(region, REGION_PATTERN, "--region", "an OCI region such as us-ashburn-1")
    if endpoint_url is not None:
        require(endpoint_url, ENDPOINT_PATTERN, "--endpoint-url", "an http(s) URL")
    import oci

    if compute is None or network is None:
        compute, network = clients(config, region, endpoint_url)
    try:
        if plan is not None:
            from .names import assign

            instances = running_instances(compute, compartment, factory)
            found = addresses(compute, network, compartment, {i.id for i in instances}) if instances else {}
            return assign(plan, PROVIDER, factory, [candidate(i, found.get(i.id)) for i in instances],
                          writer(compute, instances), warn=warn)
        found = running_nodes(compute, network, compartment, factory)
    except oci.exceptions.ServiceError as exc:
        raise AifactoryError("inventory --from oci: " + one_line(f"{exc.status} {exc.code}: {exc.message}")) from None
    except (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout) as exc:
        raise AifactoryError(f"inventory --from oci: cannot reach the OCI API: {one_line(exc)}") from None
    return build_nodes(found, factory)
