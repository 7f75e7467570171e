"""The Pulumi program of every stack: ``stacks/<name>/__main__.py`` is two lines that call :func:`run`.

It loads ``factory.yaml`` next to the program, plans it, instantiates one ``GpuPool`` per pool
from the provider's module, and exports what the Ansible inventory needs. Provider SDK modules
are imported only for the providers a factory uses (pulumi-azure-native alone is large).

Stack config read here (``Pulumi.<stack>.yaml``), all optional:

* ``aifactory:factory``: path of the factory file relative to the program (default ``factory.yaml``);
* ``aifactory:reservations``: ``{pool: reservation-id}``; capacity blocks and reservations are
  bought per deployment window, so their ids belong to the stack rather than to the durable spec.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

import pulumi

from ..errors import AifactoryError, SpecError
from . import base

# provider -> module under aifactory.components holding its GpuPool.
MODULES = {
    "aws": "aws",
    "gcp": "gcp",
    "azure": "azure",
    "oci": "oci",
    "onprem": "onprem",
    "lab": "lab",
}


class InventoryPool(pulumi.ComponentResource):
    """A pool that creates no resources, only its inventory entry in the stack outputs.

    Used for ``lab`` pools (chroot nodes on the local machine) and for on-prem pools without
    declared hosts when no on-prem component module is installed: such a pool is racked and
    booted outside Pulumi, and a per-node resource would be absurd at campus scale.
    """

    def __init__(self, name: str, pool, factory, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        self.TYPE = base.type_token(pool.provider)
        super().__init__(self.TYPE, name, None, opts)
        extra = {"connection": "chroot"} if pool.provider == "lab" else {"managed": "inventory-only"}
        self.node_group_ids = pulumi.Output.from_input([])
        self.network_ids = pulumi.Output.from_input([])
        self.inventory = pulumi.Output.from_input(base.inventory(factory, pool, extra))
        self.register_outputs({"node_group_ids": self.node_group_ids, "network_ids": self.network_ids,
                               "inventory": self.inventory})


def component_class(provider: str, declared_hosts: int = 0) -> type:
    """The ``GpuPool`` class for ``provider``, importing only that provider's module.

    Without a module for ``lab`` or ``onprem`` the pool falls back to :class:`InventoryPool`,
    except for on-prem pools that declare hosts: those need the Redfish-driven component.
    """
    if provider not in MODULES:
        raise AifactoryError(f"pools[].provider: no component for provider {provider!r}; "
                             f"known: {', '.join(MODULES)}")
    try:
        module = importlib.import_module(f"{__package__}.{MODULES[provider]}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{MODULES[provider]}":
            raise
        if provider == "lab" or (provider == "onprem" and not declared_hosts):
            return InventoryPool
        raise AifactoryError(
            f"pools[].provider: {provider} pools have no Pulumi component in this version of aifactory "
            f"(module aifactory.components.{MODULES[provider]} is missing)") from None
    return module.GpuPool


def load(factory_file: Path, reservations: Optional[dict] = None):
    """(factory, plan) for ``factory_file``, with stack-level reservation ids applied."""
    from .. import plan as planning
    from .. import spec

    loaded = spec.load(factory_file)
    factory = loaded.factory
    if reservations:
        names = {p.name for p in factory.pools}
        unknown = sorted(set(reservations) - names)
        if unknown:
            raise AifactoryError(f"config aifactory:reservations: no pool named {', '.join(unknown)} "
                                 f"(pools: {', '.join(sorted(names))})")
        pools = [p.model_copy(update={"reservation": str(reservations[p.name])}) if p.name in reservations else p
                 for p in factory.pools]
        factory = factory.model_copy(update={"pools": pools})
        loaded = loaded._replace(factory=factory)
    return factory, planning.build(loaded)


def build(factory, plan) -> dict[str, Any]:
    """Instantiate one component per pool (in spec order); returns ``{pool name: component}``."""
    components = {}
    for pool in plan.pools:
        cls = component_class(pool.provider, len(base.pool_spec(factory, pool).hosts))
        components[pool.name] = cls(pool.name, pool, factory)
    return components


def run(program_file: str | Path, factory_file: Optional[str] = None) -> dict[str, Any]:
    """Entry point of a stack's ``__main__.py``: ``run(__file__)``."""
    config = pulumi.Config("aifactory")
    here = Path(program_file).resolve().parent
    path = here / (factory_file or config.get("factory") or "factory.yaml")
    try:
        factory, plan = load(path, config.get_object("reservations"))
    except SpecError as exc:
        # RunError prints the message without a Python traceback.
        raise pulumi.RunError(f"{path} is not a valid factory:\n{exc}") from None
    except AifactoryError as exc:
        raise pulumi.RunError(str(exc)) from None
    try:
        components = build(factory, plan)
    except AifactoryError as exc:
        raise pulumi.RunError(str(exc)) from None
    pulumi.export("factory", factory.name)
    pulumi.export("software", plan.to_dict()["software"])
    pulumi.export("pools", {name: {"provider": plan.pool(name).provider, "node_group_ids": c.node_group_ids,
                                   "network_ids": c.network_ids} for name, c in components.items()})
    pulumi.export("inventory", {name: c.inventory for name, c in components.items()})
    return components
