"""What every provider's ``GpuPool`` shares: the public shape, tag keys, names and small helpers.

This module stays light (no Pulumi provider SDK, no pulumi import at run time) because the
dynamic inventory and the AWS preflight import the tag keys and the AMI parameters from here.
What differs between providers (labels or tags, zones, images, inventory-only pools) is not
here but in each provider's descriptor in :mod:`aifactory.providers`; the helpers below read it.

The shape every provider's component follows (built in: ``aws``, ``gcp``, ``azure``, ``oci``,
``onprem``; ``lab`` pools and on-prem pools without hosts are ``pool.InventoryPool``):

* a ``pulumi.ComponentResource`` subclass named ``GpuPool`` with type token
  ``aifactory:<provider>:GpuPool`` (class attribute ``TYPE``);
* constructor ``GpuPool(name, pool: PoolPlan, plan: Plan, opts=None)``: the planned pool and the
  resolved plan it belongs to (tags, admin CIDRs and the software lock live there); components
  never read the spec;
* children named ``f"{name}-<role>"`` with ``parent=self``; no provider configuration inside;
* the outputs in :data:`OUTPUTS`, registered with ``register_outputs``.

Resource count must not grow with node count for cloud pools: a node group (Auto Scaling
group, managed instance group, scale set, cluster network) carries the count. On-prem pools
follow the same rule: a pool without declared ``hosts`` is one component with no per-node
children (inventory-only; a 1.1-million-node campus must not become 1.1 million resources);
only hosts declared in the spec (name, MAC, BMC) get one Redfish-driven child each.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, Optional, Protocol, runtime_checkable

from .. import providers

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pulumi

    from ..plan import Plan, PoolPlan

# Tag keys every resource carries. Components write them, `aifactory inventory --from aws`
# reads them; one definition keeps both sides in agreement.
TAG_FACTORY = "aifactory:factory"
TAG_SITE = "aifactory:site"
TAG_POOL = "aifactory:pool"
TAG_ROLE = "aifactory:role"
TAG_KEYS = (TAG_FACTORY, TAG_SITE, TAG_POOL, TAG_ROLE)
# The planned node name an instance of a node group has claimed (``aifactory-node`` where the
# provider takes labels). No component writes it: `aifactory inventory --assign-names` does, once
# per instance, and the node reads it back from its metadata service at boot.
TAG_NODE = "aifactory:node"

# The role of GPU nodes (other roles: network, security, placement, template, node-group, ...).
ROLE_NODE = "node"

# Output names every GpuPool registers, whatever the provider.
OUTPUTS = ("node_group_ids", "network_ids", "inventory")


def aws_ami_parameter(os_name: str, cpu_arch: str) -> str:
    """The SSM parameter naming the AMI for ``os_name`` on ``cpu_arch``; a clear error otherwise."""
    return providers.AWS.require_image(os_name, cpu_arch)


@runtime_checkable
class GpuPool(Protocol):
    """The public shape of every provider's component (checked by tests for each module)."""

    TYPE: str
    node_group_ids: "pulumi.Output[list[str]]"
    network_ids: "pulumi.Output[list[str]]"
    inventory: "pulumi.Output[dict[str, Any]]"

    def __init__(self, name: str, pool: "PoolPlan", plan: "Plan",
                 opts: "Optional[pulumi.ResourceOptions]" = None) -> None: ...


def type_token(provider: str) -> str:
    """``aifactory:<provider>:GpuPool`` (also :attr:`aifactory.providers.Provider.type_token`)."""
    return f"aifactory:{provider}:GpuPool"


def child(name: str, role: str) -> str:
    """Name of a component's child: ``f"{name}-{role}"``."""
    return f"{name}-{role}"


def tags(plan: "Plan", pool: "PoolPlan", role: str) -> dict[str, str]:
    """User tags plus the four aifactory keys; the aifactory keys win over user tags."""
    out = dict(plan.tags)
    out.update({TAG_FACTORY: plan.name, TAG_SITE: pool.site, TAG_POOL: pool.name, TAG_ROLE: role})
    return out


def labels(plan: "Plan", pool: "PoolPlan", role: str) -> dict[str, str]:
    """:func:`tags` as GCP labels / OCI freeform tags: lowercase keys and values, no ':'.

    GCP label keys and values allow only ``[a-z0-9_-]`` (max 63), so ``aifactory:pool`` becomes
    ``aifactory-pool`` (https://cloud.google.com/compute/docs/labeling-resources#requirements).
    """
    out = {}
    for key, value in tags(plan, pool, role).items():
        out[_label(key)] = _label(value)
    return out


def _label(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "-" for c in text.lower())
    return cleaned[:63]


def uses_labels(provider: str) -> bool:
    """Whether ``provider`` writes :func:`labels` rather than :func:`tags` (its registry entry says)."""
    found = providers.find(provider)
    return bool(found and found.labels)


def label_key(tag_key: str) -> str:
    """The GCP/OCI form of one of :data:`TAG_KEYS`."""
    return _label(tag_key)


def network_cidr(plan: "Plan", pool: "PoolPlan") -> str:
    """A /16 for the pool's network, stable per (factory, pool).

    Each pool gets its own VPC/VNet/VCN; distinct ranges keep the door open to peering pools
    or sites later without renumbering. Taken from 10.64.0.0/10 so it stays clear of the
    10.0.0.0/16 defaults most accounts already use.
    """
    second = 64 + zlib.crc32(f"{plan.name}/{pool.name}".encode()) % 64
    return f"10.{second}.0.0/16"


def subnet_cidr(network: str, index: int, prefix: int = 20) -> str:
    """The ``index``-th ``/prefix`` inside ``network``."""
    import ipaddress

    return str(list(ipaddress.ip_network(network).subnets(new_prefix=prefix))[index])


def inventory(plan: "Plan", pool: "PoolPlan", provider_fields: Optional[dict] = None) -> dict[str, Any]:
    """What the Ansible inventory needs of a pool, in the same shape for every provider.

    Cloud node groups create their instances at run time, so the inventory names how to find
    them (the tag selector) rather than addresses; ``hosts`` lists declared hosts only.
    """
    data: dict[str, Any] = {
        "pool": pool.name,
        "site": pool.site,
        "provider": pool.provider,
        "region": pool.region,
        "system": pool.system,
        "nodes": pool.nodes,
        "gpus_per_node": pool.gpus_per_node,
        "scheduler": pool.scheduler,
        "ssh_user": plan.access.ssh_user,
        "selector": _selector(plan, pool),
        "groups": [f"pool_{_group(pool.name)}", f"site_{_group(pool.site)}", f"role_{ROLE_NODE}"],
        "hosts": [{"name": h.name, "ip": h.ip, "mac": h.mac, "bmc": h.bmc} for h in pool.hosts],
    }
    data.update(provider_fields or {})
    return data


def _selector(plan: "Plan", pool: "PoolPlan") -> dict[str, str]:
    """The tags (labels on GCP/OCI) that select the pool's GPU nodes."""
    selector = {TAG_FACTORY: plan.name, TAG_POOL: pool.name, TAG_ROLE: ROLE_NODE}
    if uses_labels(pool.provider):
        return {_label(k): _label(v) for k, v in selector.items()}
    return selector


def _group(name: str) -> str:
    # Ansible group names must be valid identifiers ('-' warns and is rewritten).
    return name.replace("-", "_")


def group_name(kind: str, value: str) -> str:
    """Ansible group for a tag value: ``group_name("pool", "train-a")`` -> ``pool_train_a``."""
    return f"{kind}_{_group(value)}"
