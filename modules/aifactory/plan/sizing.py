"""Node, rack, fabric and power arithmetic. Every function is O(pools + fabrics), never O(GPUs)."""

from __future__ import annotations

from ..catalog import Catalog, System
from ..providers import on_site
from ..spec.models import Factory, Pool, Site
from .fabric import size_tree
from .model import FabricPlan, HostPlan, PoolPlan, SitePower

def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def nodes_per_rack(system: System, site: Site) -> int:
    """How many nodes fit a rack position, by power and by space (0: not even one)."""
    if system.rack_scale:
        return system.nodes_per_rack
    by_power = int(site.rack_kw // system.node_kw)
    by_space = site.rack_units // system.rack_units if system.rack_units else by_power
    return min(by_power, by_space)


def rack_kw(system: System, site: Site) -> float:
    """The power one rack of this system draws."""
    if system.rack_scale:
        return system.nodes_per_rack * system.node_kw
    return max(nodes_per_rack(system, site), 1) * system.node_kw


def pool_plan(pool: Pool, nodes: int, system: System, site: Site, fabric_type: str | None, filled: bool) -> PoolPlan:
    gpus = nodes * system.gpus_per_node
    per_rack = nodes_per_rack(system, site) if on_site(pool.provider) else 0
    racks = _ceil(nodes, per_rack) if per_rack else 0
    domains = _ceil(gpus, system.nvlink_domain_gpus) if system.nvlink_domain_gpus else 0
    return PoolPlan(
        name=pool.name, site=pool.site, provider=pool.provider, region=pool.region or site.region,
        zones=list(pool.zones), capacity=pool.capacity, reservation=pool.reservation,
        hosts=[HostPlan(name=h.name, mac=h.mac, bmc=h.bmc, ip=h.ip) for h in pool.hosts],
        system=system.id, gpu=system.gpu.id, architecture=system.gpu.architecture, cpu_arch=system.cpu_arch,
        nodes=nodes, gpus_per_node=system.gpus_per_node, gpus=gpus,
        nvlink_domain_gpus=system.nvlink_domain_gpus, nvlink_domains=domains, racks=racks,
        nodes_per_rack=per_rack, node_kw=system.node_kw, it_kw=round(nodes * system.node_kw, 3),
        fabric=pool.fabric, fabric_type=fabric_type, compute_nics=system.compute_nics,
        fabric_manager=system.fabric_manager, nvlsm=system.nvlsm, imex=system.imex,
        scheduler=pool.scheduler, filled=filled,
    )


def fabric_plan(fabric, members: list[PoolPlan], catalog: Catalog) -> FabricPlan:
    nodes = sum(p.nodes for p in members)
    rails = max((p.compute_nics for p in members), default=0)
    sites = sorted({p.site for p in members})
    managed = all(on_site(p.provider) for p in members) and fabric.type in ("infiniband", "roce", "ethernet")
    switch = catalog.switches.get(fabric.switch) if fabric.switch else None
    base = dict(name=fabric.name, type=fabric.type, site=sites[0] if len(sites) == 1 else None,
                switch=fabric.switch, subnet_manager=fabric.subnet_manager, rail_optimized=fabric.rail_optimized,
                pools=[p.name for p in members], nodes=nodes, rails=rails)
    ports = sum(p.nodes * p.compute_nics for p in members)  # NIC ports: the fabric's endpoints
    if not managed or switch is None or not members:
        return FabricPlan(**base, managed_by="provider" if members and not managed else "factory",
                          nodes_per_leaf=0, scalable_units=0, endpoints=ports, tiers=0, leaf_switches=0, spine_switches=0,
                          core_switches=0, switches_by_tier=[], cables=0, cables_by_tier=[], power_kw=0.0)
    # Pools with different NIC counts on one rail-optimized fabric: the fabric has as many rails
    # (leaves per SU) as the widest system, and every node takes one slot of its SU on every
    # rail; a node with fewer NICs cables rails 0..n-1 and leaves its slot on the others empty,
    # as NVIDIA's RAs leave unbuilt node positions of an SU empty (leaves and leaf-spine cables
    # still built for the full SU; "Network Fabrics", checked 2026-12-03:
    # https://docs.nvidia.com/dgx-superpod/reference-architecture/scalable-infrastructure-b300/latest/network-fabrics.html).
    # So leaves = SUs x max rails, but only the NIC ports that exist are endpoints and
    # node-leaf cables: sum of nodes x NICs, not nodes x max rails.
    if fabric.rail_optimized:
        tree = size_tree(nodes, rails, switch, True, fabric.su_nodes, endpoints=ports)
    else:
        tree = size_tree(ports, 1, switch, False)
    tiers = tree.switches_by_tier
    half = switch.ports // 2
    per_leaf = (fabric.su_nodes or half) if fabric.rail_optimized else max(1, half // max(1, rails))
    return FabricPlan(
        **base, managed_by="factory", nodes_per_leaf=per_leaf, scalable_units=tree.scalable_units, endpoints=tree.endpoints,
        tiers=tree.tiers, leaf_switches=tiers[0] if tiers else 0, spine_switches=tiers[1] if len(tiers) > 1 else 0,
        core_switches=sum(tiers[2:]), switches_by_tier=list(tiers), cables=sum(tree.cables_by_tier),
        cables_by_tier=list(tree.cables_by_tier), power_kw=round(sum(tiers) * switch.power_w / 1000, 3),
    )


def site_power(site: Site, pools: list[PoolPlan], fabrics: list[FabricPlan]) -> SitePower:
    it = sum(p.it_kw for p in pools if p.site == site.name)
    it += sum(f.power_kw for f in fabrics if f.site == site.name)
    facility = it * site.pue
    budget = site.power_mw * 1000 if site.power_mw is not None else None
    return SitePower(
        name=site.name, provider=site.provider, region=site.region, budget_kw=budget, pue=site.pue, it_kw=round(it, 1), facility_kw=round(facility, 1),
        headroom_kw=round(budget - facility, 1) if budget is not None else None,
    )


def size(factory: Factory, catalog: Catalog) -> tuple[list[PoolPlan], list[FabricPlan], list[SitePower]]:
    """Size every pool (resolving ``nodes: fill``), every fabric and every site's power."""
    sites = {s.name: s for s in factory.sites}
    fabrics = {f.name: f for f in factory.fabrics}
    systems = {p.name: catalog.systems[p.system] for p in factory.pools}

    def build(counts: dict[str, int]):
        pools = [
            pool_plan(p, counts[p.name], systems[p.name], sites[p.site],
                      fabrics[p.fabric].type if p.fabric else None, p.nodes == "fill")
            for p in factory.pools
        ]
        fplans = [fabric_plan(f, [pp for pp in pools if pp.fabric == f.name], catalog) for f in factory.fabrics]
        return pools, fplans, [site_power(s, pools, fplans) for s in factory.sites]

    counts = {p.name: p.nodes for p in factory.pools if p.nodes != "fill"}
    fills = [p for p in factory.pools if p.nodes == "fill"]
    for p in fills:
        counts[p.name] = 0
    for p in fills:
        counts[p.name] = _fill(p, systems[p.name], sites[p.site], counts, build)
    return build(counts)


def _fill(pool: Pool, system: System, site: Site, counts: dict, build) -> int:
    """Largest node count (in whole NVLink racks for rack-scale systems) that fits the site budget.

    Binary search over the count: each probe re-sizes the site's fabrics, so switch power
    is charged to the fill as it grows. ~25 probes of O(pools) work, whatever the GPU count.
    """
    step = system.nodes_per_rack if system.rack_scale else 1
    budget = site.power_mw * 1000

    def fits(units: int) -> bool:
        trial = dict(counts, **{pool.name: units * step})
        power = next(s for s in build(trial)[2] if s.name == site.name)
        return power.facility_kw <= budget

    lo, hi = 0, int(budget / site.pue / (system.node_kw * step)) + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo * step
