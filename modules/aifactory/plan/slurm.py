"""The Slurm control plane of each site: one cluster per site with Slurm nodes.

A site is one Slurm cluster (a controller must be close to its nodes; a factory that spans
clouds is several clusters with the same settings). The spec's ``slurm.clusters`` entry for a
site names its controller, an optional backup, where accounting goes and the default partition;
anything it leaves out, and every site it does not list, gets the defaults:

- the controller is the first node of the site's first Slurm pool (its first declared host, or
  ``<pool>-0001`` for a pool whose nodes are named when planned, a cloud pool for example);
- accounting is local: slurmdbd and its MariaDB on the primary controller, on slurmdbd's port;
- the default partition is the site's first Slurm pool.

The named checks (``slurm-clusters``, ``slurm-controller``, ``slurm-accounting``,
``slurm-partition`` in :mod:`.checks`) refuse every reference this module could not resolve,
before it runs; :class:`~.model.Plan` checks the result again when a plan file is read back.
"""

from __future__ import annotations

from typing import Optional

from ..spec.models import SLURMDBD_PORT, Factory, SlurmAccounting, SlurmHost
from .model import PoolPlan, SlurmClusterPlan


def _host(ref: SlurmHost, pools: dict[str, PoolPlan]) -> str:
    """The node a controller reference names: a pool's first node, or the declared host."""
    return pools[ref.pool].first_host() if ref.pool else ref.host


def clusters(factory: Factory, pools: list[PoolPlan]) -> list[SlurmClusterPlan]:
    """One :class:`SlurmClusterPlan` per site with Slurm nodes, in the order of ``factory.sites``."""
    entries = {c.site: c for c in factory.slurm.clusters}
    by_name = {p.name: p for p in pools}
    out = []
    for site in factory.sites:
        here = [p for p in pools if p.site == site.name and p.scheduler == "slurm" and p.nodes > 0]
        if not here:
            continue
        entry = entries.get(site.name)
        controller: Optional[SlurmHost] = entry.controller if entry else None
        primary = _host(controller, by_name) if controller else here[0].first_host()
        controllers = [primary]
        if entry and entry.backup:
            controllers.append(_host(entry.backup, by_name))
        accounting = entry.accounting if entry else SlurmAccounting()
        if accounting.database == "external":
            host, port = accounting.host, accounting.port or SLURMDBD_PORT
        else:
            host, port = primary, SLURMDBD_PORT
        out.append(SlurmClusterPlan(
            site=site.name, controllers=controllers, accounting=accounting.database, accounting_host=host,
            accounting_port=port,
            default_partition=(entry.default_partition if entry and entry.default_partition else here[0].name)))
    return out
