"""Dynamic Ansible inventory from GCP instance labels: the running nodes of a factory.

A managed instance group creates its instances from the pool's instance template, which carries
the aifactory keys as labels (GCP's form: ``aifactory-factory``, ``aifactory-pool``, ...; see
:func:`aifactory.components.base.labels`). One aggregated listing covers every zone of the
project; the API filters it on the factory label and ``RUNNING``, and the SDK's pager follows
the pages, so the number of calls grows with the number of pages, not with nodes or zones.
"""

from __future__ import annotations

import re
import warnings
from typing import Iterable, Optional

from ..components.base import TAG_FACTORY, TAG_NODE
from ..errors import AifactoryError
from ..fields import GCP_PROJECT_PATTERN
from .dynamic import (ENDPOINT_PATTERN, Node, last_segment, one_line, read_tags, require, require_factory,
                      stored_key)
from .dynamic import build as build_nodes

PROVIDER = "gcp"
# Reading instances is all the inventory does, unless it assigns node names (labels and metadata).
SCOPES = ("https://www.googleapis.com/auth/compute.readonly",)
WRITE_SCOPES = ("https://www.googleapis.com/auth/compute",)
# The claim is kept twice, under one key: as a label (what the listing filters and reads) and as
# custom instance metadata, because the metadata server shows a VM its custom metadata under
# instance/attributes/ but not its labels
# (https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys, checked 2026-12-03).
# Metadata keys take [a-zA-Z0-9-_], and a write must carry the current fingerprint
# (https://cloud.google.com/compute/docs/reference/rest/v1/Metadata, checked 2026-12-03).
# Both live on the instance, not in the group's template: an instance the managed instance group
# recreates comes back without them and is named afresh (its node waits at boot as any new one).
NODE_KEY = stored_key(PROVIDER, TAG_NODE)
# Where an instance is named in an API path: the zone and the instance name, as GCE shapes them.
ZONE_PATTERN = r"[a-z]+-[a-z]+[0-9]+-[a-z]"
INSTANCE_NAME_PATTERN = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
NO_CREDENTIALS = ("inventory --from gcp: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS "
                  "to a credentials file or run `gcloud auth application-default login`")


def list_filter(factory: str) -> str:
    """The API's filter for the running instances of ``factory`` (expressions in parentheses are
    joined by AND; ``factory`` is a spec name, so it needs no escaping inside the quotes)."""
    return f'(labels.{stored_key(PROVIDER, TAG_FACTORY)} = "{factory}") (status = "RUNNING")'


def running_instances(client, project: str, factory: str) -> Iterable:
    """``compute_v1.Instance`` messages of the running instances labelled with ``factory``."""
    _, compute_v1 = _sdk()

    request = compute_v1.AggregatedListInstancesRequest(project=project, filter=list_filter(factory))
    for _scope, scoped in client.aggregated_list(request=request):
        yield from scoped.instances


def node(inst) -> Node:
    """One ``compute_v1.Instance`` as a :class:`~.dynamic.Node`."""
    nics = list(inst.network_interfaces)
    # nic0 is the host network (the GPU NICs follow it); its address is the node's private one.
    address = nics[0].network_i_p if nics else None
    instance_id = str(inst.id) if inst.id else inst.name
    return Node(
        key=instance_id,
        names=(inst.name, instance_id),
        address=address or None,
        tags=read_tags(PROVIDER, inst.labels),
        hostvars={
            "gce_name": inst.name,
            "gce_id": instance_id,
            "gce_machine_type": last_segment(inst.machine_type),
            "gce_zone": last_segment(inst.zone),
        })


def _metadata(inst) -> dict:
    return {item.key: item.value for item in (inst.metadata.items if inst.metadata else [])}


def candidate(inst):
    """One ``compute_v1.Instance`` as :class:`~.names.Candidate`: the claim is the label, or the
    metadata value alone when a run stopped between the two writes; different values conflict."""
    from datetime import datetime

    from .names import Candidate

    label = (inst.labels or {}).get(NODE_KEY)
    value = _metadata(inst).get(NODE_KEY)
    try:
        stamp = inst.creation_timestamp  # RFC 3339, such as 2026-01-05T10:00:00.000-08:00
        launched = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None
    except ValueError:
        launched = None
    conflict = ("its node-name label and metadata disagree" if label is not None and value is not None
                and label != value else None)
    return Candidate(node(inst), launched, label if label is not None else value,
                     complete=label is not None and value is not None, conflict=conflict)


def writer(client, project: str, instances: Iterable):
    """``write(node, name)`` for :func:`~.names.assign`: the label (with the label fingerprint: a
    change made since the listing is refused, not overwritten), then the metadata the node reads
    (with the metadata fingerprint), each only where it is missing."""
    _, compute_v1 = _sdk()
    by_key = {node(inst).key: inst for inst in instances}

    def write(found: Node, name: str) -> None:
        inst = by_key[found.key]
        zone = last_segment(inst.zone)
        if not (isinstance(zone, str) and re.fullmatch(ZONE_PATTERN, zone)
                and re.fullmatch(INSTANCE_NAME_PATTERN, inst.name or "")):
            raise AifactoryError(f"inventory --from gcp: instance {found.key} has no zone and name shaped as GCE "
                                 "makes them; not named")
        labels = dict(inst.labels or {})
        if labels.get(NODE_KEY) != name:
            client.set_labels_unary(project=project, zone=zone, instance=inst.name,
                                    instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                                        label_fingerprint=inst.label_fingerprint,
                                        labels={**labels, NODE_KEY: name}))
        items = _metadata(inst)
        if items.get(NODE_KEY) != name:
            items[NODE_KEY] = name
            client.set_metadata_unary(project=project, zone=zone, instance=inst.name,
                                      metadata_resource=compute_v1.Metadata(
                                          fingerprint=inst.metadata.fingerprint if inst.metadata else None,
                                          items=[compute_v1.Items(key=k, value=v) for k, v in items.items()]))

    return write


def build(instances: Iterable, factory: str) -> dict:
    """Ansible dynamic-inventory JSON for ``instances`` (``compute_v1.Instance`` messages)."""
    return build_nodes((node(inst) for inst in instances), factory)


def _sdk():
    """Import the SDK without its notice about future Python support (noise on every run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import google.api_core.exceptions  # noqa: F401
        import google.auth
        from google.cloud import compute_v1
    return google.auth, compute_v1


def client(credentials=None, endpoint_url: Optional[str] = None, *, write: bool = False):
    """An ``InstancesClient`` on the application default credentials (or ``credentials``); scoped
    to reading Compute Engine unless ``write`` (node names are assigned)."""
    from google.auth.exceptions import DefaultCredentialsError

    auth, compute_v1 = _sdk()

    if credentials is None:
        try:
            credentials, _ = auth.default(scopes=list(WRITE_SCOPES if write else SCOPES))
        except DefaultCredentialsError:
            raise AifactoryError(NO_CREDENTIALS) from None
    options = {"api_endpoint": endpoint_url} if endpoint_url else None
    return compute_v1.InstancesClient(credentials=credentials, client_options=options)


def inventory(factory: str, project: str, *, credentials=None, endpoint_url: Optional[str] = None,
              instances_client=None, plan=None, warn=None) -> dict:
    """The inventory of ``factory`` in ``project``; with ``plan``, the instances named after the
    plan first (:mod:`.names`), new claims written as label and metadata ``aifactory-node``."""
    require_factory(factory)
    require(project, GCP_PROJECT_PATTERN, "--project", "a Google Cloud project id such as my-project-123")
    if endpoint_url is not None:
        require(endpoint_url, ENDPOINT_PATTERN, "--endpoint-url", "an http(s) URL")
    _sdk()
    from google.api_core.exceptions import GoogleAPICallError
    from google.auth.exceptions import GoogleAuthError
    from requests import RequestException

    try:
        api = instances_client or client(credentials, endpoint_url, write=plan is not None)
        found = list(running_instances(api, project, factory))
        if plan is not None:
            from .names import assign

            return assign(plan, PROVIDER, factory, [candidate(inst) for inst in found], writer(api, project, found),
                          warn=warn)
    except GoogleAuthError as exc:
        raise AifactoryError(f"inventory --from gcp: the credentials were refused: {one_line(exc)}") from None
    except GoogleAPICallError as exc:
        raise AifactoryError(f"inventory --from gcp: project {project}: {one_line(exc)}") from None
    except RequestException as exc:
        raise AifactoryError(f"inventory --from gcp: cannot reach the Compute Engine API: {one_line(exc)}") from None
    return build(found, factory)
