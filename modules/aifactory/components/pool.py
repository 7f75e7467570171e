"""The one base class of every provider's ``GpuPool``: what they all share, written once.

Each provider module keeps only its differences (its resources); this class holds the type
token, the three outputs of :data:`aifactory.components.base.OUTPUTS`, the options children are
created with (``parent=self``), the tags or labels of a role, and the inventory output in the
shape every provider shares. It satisfies :class:`aifactory.components.base.GpuPool` by
construction. What differs between providers without their SDK (labels or tags, zones, images)
comes from the pool's descriptor in :mod:`aifactory.providers` (``self.descriptor``).
"""

from __future__ import annotations

import base64
from typing import Any, Optional

import pulumi

from .. import providers
from . import base


class PoolComponent(pulumi.ComponentResource):
    TYPE = "aifactory:provider:GpuPool"  # each provider sets base.type_token(<provider>)

    node_group_ids: pulumi.Output[list]
    network_ids: pulumi.Output[list]
    inventory: pulumi.Output[dict]

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        self.pool = pool
        self.plan = plan
        self.descriptor = providers.get(pool.provider, f"pools.{pool.name}.provider")
        self.child = pulumi.ResourceOptions(parent=self)

    def require_zones(self) -> None:
        """The named check ``provider-zones`` refuses such a spec first; a hand-edited plan file
        reaches here, and gets the same message."""
        why = self.descriptor.zone_required
        if why and not self.pool.zones:
            from ..errors import AifactoryError

            raise AifactoryError(f"pools.{self.pool.name}.zones: {self.pool.provider} pools need a zone: {why}")

    def image(self) -> Any:
        """The image this pool's nodes boot the locked OS from, per the provider's image table; the
        named check ``provider-images`` refuses a spec without one first, a hand-edited plan file
        gets the same error here."""
        return self.descriptor.require_image(self.plan.software.os, self.pool.cpu_arch)

    def user_data(self, encoded: bool = False) -> str:
        """The pool's cloud-init user data (admin user, NCCL and DCGM files), the same bytes
        ``aifactory render`` writes to ``cloud-init/<pool>/user-data.yaml``; base64 where the
        provider's API takes it so."""
        from ..render.cloudinit import user_data_for

        text = user_data_for(self.plan, self.pool)
        return base64.b64encode(text.encode("utf-8")).decode("ascii") if encoded else text

    def tags(self, role: str) -> dict[str, str]:
        """The plan's tags plus the aifactory keys, as labels where the provider needs them."""
        shape = base.labels if self.descriptor.labels else base.tags
        return shape(self.plan, self.pool, role)

    def publish(self, node_group_ids: Any, network_ids: Any, inventory_fields: Any = None,
                **more_outputs: Any) -> None:
        """Set and register the outputs; ``inventory_fields`` (a dict, or an Output of one) are the
        provider's own inventory entries, added to the shape :func:`base.inventory` gives all."""
        self.node_group_ids = pulumi.Output.from_input(node_group_ids)
        self.network_ids = pulumi.Output.from_input(network_ids)
        self.inventory = pulumi.Output.from_input(inventory_fields or {}).apply(
            lambda fields: base.inventory(self.plan, self.pool, fields))
        self.register_outputs({"node_group_ids": self.node_group_ids, "network_ids": self.network_ids,
                               "inventory": self.inventory, **more_outputs})


class InventoryPool(PoolComponent):
    """A pool that creates no resources, only its inventory entry in the stack outputs.

    The registry picks it for providers without a component (``lab``: chroot nodes on the local
    machine) and for pools their provider marks inventory-only (on-prem pools without declared
    hosts): such a pool is racked and booted outside Pulumi, and a per-node resource would be absurd
    at campus scale. The provider's ``inventory_fields`` say how the inventory reaches its nodes.
    """

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        self.TYPE = base.type_token(pool.provider)
        super().__init__(name, pool, plan, opts)
        self.publish([], [], dict(self.descriptor.inventory_fields))
