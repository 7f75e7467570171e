"""Dynamic Ansible inventory from a cloud's instance listing: the part every provider shares.

Node groups (Auto Scaling groups, managed instance groups, scale sets, cluster networks) create
and replace instances on their own, so the running nodes of a cloud pool are read back from the
tags or labels the components wrote (the keys in :mod:`aifactory.components.base`) rather than
from stack outputs. Each provider module (:mod:`.aws`, :mod:`.gcp`, :mod:`.azure`, :mod:`.oci`)
lists the instances through its SDK and turns each into a :class:`Node`; :func:`build` makes
Ansible's dynamic-inventory JSON of them (``--list`` form, ``_meta.hostvars`` included so
Ansible never calls back per host): one group per pool, site and role, the private address as
``ansible_host``. :func:`from_cloud` is what ``aifactory inventory --from`` calls: it checks the
scoping options and picks the provider module, whose SDK is imported only then.

Everything read back from a cloud is untrusted: whoever may tag or rename an instance must not
run a template on the controller or invent a group. So every string value is marked unsafe, a
group is made only from a tag value the spec could hold as a name, a host name is used only when
it is shaped like one, and an address only when it parses as one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from ..components.base import TAG_FACTORY, TAG_KEYS, TAG_POOL, TAG_ROLE, TAG_SITE, group_name, label_key, uses_labels
from ..errors import AifactoryError
from ..fields import HOSTNAME_PATTERN, NAME_PATTERN

GROUP_KINDS = (("pool", TAG_POOL), ("site", TAG_SITE), ("role", TAG_ROLE))
_NAME = re.compile(NAME_PATTERN)
_HOSTNAME = re.compile(HOSTNAME_PATTERN)
_HOSTNAME_MAX = 253


@dataclass(frozen=True)
class Node:
    """One running instance, as every provider reports it.

    ``names``: candidate inventory host names in order of preference (the first that is shaped
    like a host name and not taken by an earlier node wins; a node with none is left out).
    ``tags``: the aifactory keys (:data:`~aifactory.components.base.TAG_KEYS`, in their
    ``aifactory:`` form whatever the cloud stores) to the values read back.
    ``hostvars``: the provider's own variables (instance id, type, zone), written after
    ``ansible_host`` and before the aifactory ones.
    """

    key: str
    names: tuple[str, ...]
    address: Optional[str]
    tags: Mapping[str, Any]
    hostvars: Mapping[str, Any] = field(default_factory=dict)


def unsafe(value):
    """Tags and names read back from the cloud are untrusted: whoever may tag an instance must not
    run a template on the controller. Ansible's inventory-script JSON marks a string as data with
    ``{"__ansible_unsafe": ...}`` (what ``ansible-inventory --list`` itself prints)."""
    return {"__ansible_unsafe": value} if isinstance(value, str) else value


def is_name(value) -> bool:
    """Whether ``value`` is a name the spec could hold (and so may become part of a group name)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _host_name(value) -> bool:
    return isinstance(value, str) and len(value) <= _HOSTNAME_MAX and _HOSTNAME.fullmatch(value) is not None


def _address(value) -> Optional[str]:
    """``value`` as an IP address, or None when it is not one (a missing or mangled address)."""
    if not isinstance(value, str):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def build(nodes: Iterable[Node], factory: str, *, match: Optional[str] = None) -> dict:
    """Ansible dynamic-inventory JSON for the ``nodes`` whose factory tag is ``match`` (the
    factory name in the form the cloud stores it; ``factory`` itself by default)."""
    match = factory if match is None else match
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict] = {}
    for node in sorted(nodes, key=lambda n: n.key):
        tags = node.tags
        if tags.get(TAG_FACTORY) != match:
            continue
        host = next((n for n in node.names if _host_name(n) and n not in hostvars), None)
        if host is None:
            continue
        values: dict[str, Any] = {}
        address = _address(node.address)
        if address is not None:  # else Ansible reaches the node by its name
            # Nodes have no public address: Ansible reaches them over the private network.
            values["ansible_host"] = address
        values.update(node.hostvars)
        values.update({
            "aifactory_factory": factory,
            "aifactory_pool": tags.get(TAG_POOL),
            "aifactory_site": tags.get(TAG_SITE),
            "aifactory_role": tags.get(TAG_ROLE),
        })
        hostvars[host] = {key: unsafe(value) for key, value in values.items()}
        for kind, key in GROUP_KINDS:
            # A group name is made from the tag only when it is a name the spec could hold.
            if is_name(tags.get(key)):
                groups.setdefault(group_name(kind, tags[key]), []).append(host)
    out: dict = {name: {"hosts": hosts} for name, hosts in sorted(groups.items())}
    grouped = {h for hosts in groups.values() for h in hosts}
    ungrouped = [h for h in hostvars if h not in grouped]
    if ungrouped:  # Ansible lists a host only through a group
        out["ungrouped"] = {"hosts": ungrouped}
    out["all"] = {"children": sorted(groups) + ["ungrouped"]}
    out["_meta"] = {"hostvars": hostvars}
    return out


def stored_key(provider: str, key: str) -> str:
    """The form in which ``provider``'s components write the aifactory tag ``key``: the label form
    (``aifactory-pool``) where its descriptor says labels (GCP, OCI), the key itself otherwise."""
    return label_key(key) if uses_labels(provider) else key


def read_tags(provider: str, stored) -> dict:
    """The aifactory keys of ``stored`` (an instance's tags or labels as the cloud returns them),
    by their ``aifactory:`` names."""
    stored = dict(stored or {})
    return {key: stored.get(stored_key(provider, key)) for key in TAG_KEYS}


def last_segment(value) -> Optional[str]:
    """The last ``/``-separated part of a resource URL or id (``.../zones/us-central1-a``)."""
    return value.rsplit("/", 1)[-1] if isinstance(value, str) and value else None


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An SDK's error message on one short line (service messages can span many)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# An API endpoint override (a private endpoint, a local test server): scheme, host, port, path;
# nothing that could carry credentials (user@) or a query.
ENDPOINT_PATTERN = r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~-]*)*"


def require(value, pattern: str, option: str, what: str) -> str:
    """``value`` when all of it matches ``pattern``; otherwise a one-line error naming ``option``
    and what it must be. The value is never echoed: it may be anything a caller passed."""
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise AifactoryError(f"inventory: {option} must be {what}")
    return value


def require_factory(factory) -> str:
    """The factory name as the spec holds it; the components wrote exactly this into every tag or
    label (GCP labels and OCI freeform tags keep such a name unchanged)."""
    return require(factory, NAME_PATTERN, "--factory",
                   "a factory name as the spec holds it (lowercase letters, digits and '-')")


# Which cloud each scoping option belongs to (``--region`` and ``--endpoint-url`` are checked per cloud).
SCOPES = {"--project": "gcp", "--subscription": "azure", "--resource-group": "azure", "--compartment": "oci"}


# Azure pools are one scale set in Uniform orchestration, whose VMs carry no tags of their own and
# are reached through the scale set's VM API rather than the one of standalone VMs
# (https://learn.microsoft.com/azure/virtual-machine-scale-sets/orchestration-modes-api-comparison,
# checked 2026-12-03): there is nowhere per VM to keep a claimed name.
NO_NAME_CLAIMS = {"azure": "Azure pools are Uniform scale sets, whose VMs hold no tags of their own; their "
                           "nodes keep the scale set's computer names"}


def from_cloud(source: str, factory: Optional[str], *, regions: Iterable[str] = (), project: Optional[str] = None,
               subscription: Optional[str] = None, resource_group: Optional[str] = None,
               compartment: Optional[str] = None, endpoint_url: Optional[str] = None, plan=None,
               warn=None) -> dict:
    """The dynamic inventory of ``factory`` read from ``source`` (aws, gcp, azure, oci) within the
    scope its options give; an option of another cloud, or a missing one, is a one-line error.
    With ``plan`` (``--assign-names``), every running instance is first given a planned name
    (:mod:`.names`) and hosts are listed by those names; ``factory`` defaults to the plan's."""
    regions = list(regions)
    what = f"inventory --from {source}"
    if plan is not None:
        if source in NO_NAME_CLAIMS:
            raise AifactoryError(f"{what}: --assign-names is not available: {NO_NAME_CLAIMS[source]}")
        factory = plan.name if factory is None else factory
    named = {"plan": plan, "warn": warn} if plan is not None else {}
    if factory is None:
        raise AifactoryError(f"{what}: give --factory NAME")
    given = {"--project": project, "--subscription": subscription, "--resource-group": resource_group,
             "--compartment": compartment}
    for option, value in given.items():
        if value is not None and SCOPES[option] != source:
            raise AifactoryError(f"{what}: {option} applies to --from {SCOPES[option]}")
    if source == "aws":
        from .aws import inventory

        return inventory(factory, regions or None, endpoint_url=endpoint_url, **named)
    if source == "gcp":
        if project is None:
            raise AifactoryError(f"{what}: give --project ID (or set GOOGLE_CLOUD_PROJECT)")
        if regions:
            raise AifactoryError(f"{what}: --region does not apply (every zone of the project is read)")
        from .gcp import inventory

        return inventory(factory, project, endpoint_url=endpoint_url, **named)
    if source == "azure":
        if subscription is None:
            raise AifactoryError(f"{what}: give --subscription ID (or set AZURE_SUBSCRIPTION_ID)")
        if regions or endpoint_url:
            raise AifactoryError(f"{what}: --region and --endpoint-url do not apply")
        from .azure import inventory

        return inventory(factory, subscription, resource_group)
    if source == "oci":
        if compartment is None:
            raise AifactoryError(f"{what}: give --compartment OCID")
        if len(regions) > 1:
            raise AifactoryError(f"{what}: give one --region")
        from .oci import inventory

        return inventory(factory, compartment, regions[0] if regions else None, endpoint_url=endpoint_url, **named)
    raise AifactoryError("inventory: --from must be one of aws, gcp, azure, oci")
