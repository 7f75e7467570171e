"""The Slurm clusters of a factory: which sites each schedules, and its control plane.

A Slurm cluster is one slurmctld (and an optional backup) and the Slurm pools of one or more
sites, a partition per pool. Which sites form a cluster is the spec's choice (``slurm.layout``,
and ``slurm.clusters`` entries that name their ``sites``), because each choice trades something:

- ``per-site`` (the default): a cluster per site. The controller is close to its nodes, a site
  that loses its link to the others keeps scheduling, and nothing crosses a provider's network
  but the user's own jobs; but each cluster has its own queue, accounts and limits, and users
  pick the cluster (``-M``).
- ``single``: one cluster of every site no entry lists. One queue, one set of accounts, QoS and
  fair-share over every GPU, one login; but slurmctld reaches every slurmd (6818) and every
  slurmd reaches slurmctld (6817) across providers, so the sites need a private interconnect
  (VPN or cloud interconnect), and nodes of a site cut off from the controller go DOWN after
  SlurmdTimeout and their jobs with them. Each site stays a topology tree of its own with no
  switch above them (render/slurm.py), so Slurm never places one job across providers.
- ``federation``: a cluster per site, joined in a Slurm federation through one shared slurmdbd
  (https://slurm.schedmd.com/federation.html). Each site keeps its own controller; a job
  submitted anywhere is offered to every cluster and runs on the first that can start it, with
  job ids unique across the federation; QoS, accounts and fair-share live in the one slurmdbd.
  The slurmdbd (the first cluster's accounting) must be reachable from every controller, and
  the controllers from one another. The accounting role creates the federation
  (``sacctmgr add federation <name> clusters=...``) from ``slurm_accounting_federation`` where
  that slurmdbd is local; the operator of an external one runs that command.

Entries in ``slurm.clusters`` override the layout for their sites: each names its ``sites`` (or
one ``site``, the form of a cluster per site), and may name its controller, backup, accounting,
default partition, login nodes, QoS and fair-share. Anything an entry leaves out, and every
cluster the layout makes, gets the defaults:

- the controller is the first node of the cluster's first Slurm pool (its first declared host,
  or ``<pool>-0001`` for a pool whose nodes are named when planned, a cloud pool for example);
- accounting is local: slurmdbd and its MariaDB on the primary controller, on slurmdbd's port;
  in a federation every cluster sends its records to the first cluster's slurmdbd;
- the default partition is the cluster's first Slurm pool;
- no login node, no QoS, and no fair-share (jobs in submission order, with backfill).

A cluster is named after its site when it has one (so a cluster per site keeps the names,
groups and folders it always had), ``main`` when ``layout: single`` makes it, and as its entry
says otherwise; its ClusterName is ``<factory>-<name>`` (``SlurmClusterPlan.cluster_name``).

The named checks (``slurm-clusters``, ``slurm-naming``, ``slurm-controller``,
``slurm-login``, ``slurm-accounting``, ``slurm-partition``, ``slurm-qos``, ``slurm-fairshare``,
``slurm-federation`` in :mod:`.checks`) refuse every reference this module could not resolve,
before it runs; :class:`~.model.Plan` checks the result again when a plan file is read back.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..spec.models import SLURMDBD_PORT, Factory, SlurmAccounting, SlurmCluster, SlurmHost, wall_minutes
from .model import FairsharePlan, PoolPlan, SlurmClusterPlan, SlurmQosPlan


# The name of the cluster ``layout: single`` makes of the sites no entry lists.
SINGLE_CLUSTER = "main"


class Membership(NamedTuple):
    """The sites one cluster schedules, before sizing: from an entry of ``slurm.clusters``
    (``index``), or made by the layout (``entry`` None)."""

    name: str
    sites: tuple[str, ...]
    entry: Optional[SlurmCluster] = None
    index: Optional[int] = None


def slurm_sites(factory: Factory) -> list[str]:
    """The declared sites with a Slurm pool, in the order of ``factory.sites``."""
    have = {p.site for p in factory.pools if p.scheduler == "slurm"}
    return [s.name for s in factory.sites if s.name in have]


def entry_name(entry: SlurmCluster) -> Optional[str]:
    """An entry's cluster name: its own, else its one site's; None for several sites and no name."""
    sites = entry.site_names
    return entry.name or (sites[0] if len(set(sites)) == 1 else None)


def memberships(factory: Factory) -> list[Membership]:
    """Which sites with Slurm pools form which cluster, in the order of each cluster's first site.

    Each entry of ``slurm.clusters`` takes the sites it names that have Slurm pools and that no
    earlier entry took (the checks refuse the others); the layout groups the rest."""
    sites = slurm_sites(factory)
    taken: set[str] = set()
    out = []
    for i, entry in enumerate(factory.slurm.clusters):
        named = set(entry.site_names)
        mine = tuple(s for s in sites if s in named and s not in taken)
        name = entry_name(entry)
        if mine and name:
            taken.update(mine)
            out.append(Membership(name, mine, entry, i))
    rest = tuple(s for s in sites if s not in taken)
    if factory.slurm.layout == "single":
        out += [Membership(SINGLE_CLUSTER, rest)] if rest else []
    else:
        out += [Membership(s, (s,)) for s in rest]
    order = {s: k for k, s in enumerate(sites)}
    return sorted(out, key=lambda m: order[m.sites[0]])


def federation_name(factory: Factory) -> Optional[str]:
    """The federation every cluster joins (``layout: federation``), else None."""
    if factory.slurm.layout != "federation":
        return None
    return factory.slurm.federation or factory.name


def _pool_of(ref: SlurmHost, pools: dict[str, PoolPlan]) -> PoolPlan:
    if ref.pool:
        return pools[ref.pool]
    return next(p for p in pools.values() if any(h.name == ref.host for h in p.hosts))


def _host(ref: SlurmHost, pools: dict[str, PoolPlan]) -> str:
    """The node a controller or login reference names: a pool's first node, or the declared host."""
    return pools[ref.pool].first_host() if ref.pool else ref.host


def _qos(entry: Optional[SlurmCluster]) -> list[SlurmQosPlan]:
    return [SlurmQosPlan(name=q.name, priority=q.priority,
                         max_wall=wall_minutes(q.max_wall) if q.max_wall else None,
                         max_jobs_per_user=q.max_jobs_per_user, max_gpus_per_user=q.max_gpus_per_user)
            for q in (entry.qos if entry else [])]


def _fairshare(entry: Optional[SlurmCluster]) -> Optional[FairsharePlan]:
    share = entry.fairshare if entry else None
    if share is None or not share.enabled:
        return None
    return FairsharePlan(decay_half_life_days=share.decay_half_life_days, weights=share.weights)


def clusters(factory: Factory, pools: list[PoolPlan]) -> list[SlurmClusterPlan]:
    """One :class:`SlurmClusterPlan` per cluster with Slurm nodes, in the order of :func:`memberships`."""
    by_name = {p.name: p for p in pools}
    federation = federation_name(factory)
    shared: Optional[tuple[str, str, int]] = None  # a federation's slurmdbd: the first cluster's
    out = []
    for m in memberships(factory):
        sites = set(m.sites)
        here = [p for p in pools if p.site in sites and p.scheduler == "slurm" and p.nodes > 0]
        if not here:
            continue
        with_nodes = {p.site for p in here}
        entry = m.entry
        controller: Optional[SlurmHost] = entry.controller if entry else None
        if controller:
            primary, home = _host(controller, by_name), _pool_of(controller, by_name).site
        else:
            primary, home = here[0].first_host(), here[0].site
        controllers = [primary]
        if entry and entry.backup:
            controllers.append(_host(entry.backup, by_name))
        accounting = entry.accounting if entry else SlurmAccounting()
        if accounting.database == "external":
            kind, host, port = "external", accounting.host, accounting.port or SLURMDBD_PORT
        else:
            kind, host, port = "local", primary, SLURMDBD_PORT
        if federation and shared is None:
            shared = ("external", host, port)
        elif federation:  # every other cluster of the federation sends its records to that slurmdbd
            kind, host, port = shared
        out.append(SlurmClusterPlan(
            site=home, name=m.name, sites=[s for s in m.sites if s in with_nodes],
            controllers=controllers, accounting=kind, accounting_host=host, accounting_port=port,
            default_partition=(entry.default_partition if entry and entry.default_partition else here[0].name),
            login=[_host(ref, by_name) for ref in (entry.login if entry else [])],
            qos=_qos(entry), fairshare=_fairshare(entry), federation=federation))
    return out
