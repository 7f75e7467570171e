"""Dynamic Ansible inventory from GCP instance labels: the running nodes of a factory.

A managed instance group creates its instances from the pool's instance template, which carries
the aifactory keys as labels (GCP's form: ``aifactory-factory``, ``aifactory-pool``, ...; see
:func:`aifactory.components.base.labels`). One aggregated listing covers every zone of the
project; the API filters it on the factory label and ``RUNNING``, and the SDK's pager follows
the pages, so the number of calls grows with the number of pages, not with nodes or zones.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Optional

from ..components.base import TAG_FACTORY
from ..errors import AifactoryError
from ..fields import GCP_PROJECT_PATTERN
from .dynamic import (ENDPOINT_PATTERN, Node, last_segment, one_line, read_tags, require, require_factory,
                      stored_key)
from .dynamic import build as build_nodes

PROVIDER = "gcp"
# Reading instances is all the inventory does.
SCOPES = ("https://www.googleapis.com/auth/compute.readonly",)
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


def client(credentials=None, endpoint_url: Optional[str] = None):
    """An ``InstancesClient`` on the application default credentials (or ``credentials``)."""
    from google.auth.exceptions import DefaultCredentialsError

    auth, compute_v1 = _sdk()

    if credentials is None:
        try:
            credentials, _ = auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError:
            raise AifactoryError(NO_CREDENTIALS) from None
    options = {"api_endpoint": endpoint_url} if endpoint_url else None
    return compute_v1.InstancesClient(credentials=credentials, client_options=options)


def inventory(factory: str, project: str, *, credentials=None, endpoint_url: Optional[str] = None,
              instances_client=None) -> dict:
    """The inventory of ``factory`` in ``project``."""
    require_factory(factory)
    require(project, GCP_PROJECT_PATTERN, "--project", "a Google Cloud project id such as my-project-123")
    if endpoint_url is not None:
        require(endpoint_url, ENDPOINT_PATTERN, "--endpoint-url", "an http(s) URL")
    _sdk()
    from google.api_core.exceptions import GoogleAPICallError
    from google.auth.exceptions import GoogleAuthError
    from requests import RequestException

    try:
        found = list(running_instances(instances_client or client(credentials, endpoint_url), project, factory))
    except GoogleAuthError as exc:
        raise AifactoryError(f"inventory --from gcp: the credentials were refused: {one_line(exc)}") from None
    except GoogleAPICallError as exc:
        raise AifactoryError(f"inventory --from gcp: project {project}: {one_line(exc)}") from None
    except RequestException as exc:
        raise AifactoryError(f"inventory --from gcp: cannot reach the Compute Engine API: {one_line(exc)}") from None
    return build(found, factory)
