"""Slurm configuration per cluster: slurm.conf, gres.conf, topology.conf, cgroup.conf under
``slurm/<cluster>/`` (a cluster per site is named after its site, so keeps ``slurm/<site>/``).

Which sites form a cluster is the plan's (:mod:`aifactory.plan.slurm` says what each layout
trades): by default a cluster per site, or one cluster over several sites and providers. Every
node line, gres line and topology line is a hostlist range (``gpu-[0001-1000]``), so the files
grow with the number of pools, scalable units and NVLink domains, never with one line per node.

The control plane is the plan's (``Plan.slurm``, one :class:`~aifactory.plan.model.SlurmClusterPlan`
per cluster): ``SlurmctldHost`` lines for the primary controller and an optional backup, configless
nodes (``SlurmctldParameters=enable_configless``: slurmd fetches these files from slurmctld),
accounting through slurmdbd on the primary controller or at an external host, a partition per
pool with ``Default=YES`` on the planned default partition, ``AccountingStorageEnforce`` where
the cluster has QoS and the multifactor ``Priority*`` settings where it has fair-share. The
``slurm_controller`` role installs these files unchanged and checks those lines against the
hosts the inventory gives it.

Topology (https://slurm.schedmd.com/topology.conf.html), per the Slurm release of the lock
(``SoftwareLock.slurm``); ``plan.checks.slurm_topology_of`` picks the plugin, and the
``slurm-topology`` check tells the user whenever NVL72 pools do not get one block per domain:
- ``topology/tree`` from the planned fabric for factory-built InfiniBand/RoCE fabrics: one
  logical leaf switch per scalable unit (the nodes that share a set of rail leaves), one
  switch per group of leaves a middle tier joins, one top switch. This is the tree Slurm needs
  to keep a job under as few spine hops as possible; the rails themselves are invisible to it.
  In a tree, each NVLink domain of an NVL72 pool is a leaf switch of its own (short ones too)
  under one switch per pool, so a job fits in one domain first. NVL72 pools get this tree
  where the release has no topology/block (before 23.11, or unknown), and where the cluster
  also holds pools on a switch fabric: one topology plugin per cluster, and the tree keeps
  theirs.
- ``topology/block`` otherwise for clusters with NVL72 pools: one ``BlockName`` per whole
  NVLink domain. 23.11 needs every block to have the same node count and knows no
  ``BlockSizes``; its default ``BlockLevels`` (0-4) is what is wanted, so none is written.
  24.05+ gets ``BlockSizes``: the base (nodes per domain) and its doublings up to 16 blocks,
  the levels 0-4 Slurm enforces when none are given, but no larger than all blocks. Before 25.05 a block smaller
  than the base stops slurmctld, so a short (partly filled) domain is left out of the blocks:
  slurmctld logs that blocks lack access to those nodes, and jobs of a partition that
  holds blocks are placed on block nodes only. 25.05+ takes the short block (counted whole).
  Pools without NVLink domains or a switch tree stay out of the blocks; their partitions
  hold no block node, so slurmctld schedules them without topology.
Cloud fabrics managed by the provider publish no switch tree in the plan, so their clusters
get no topology plugin unless they hold NVL72 pools or span several sites. In a tree every node
must be under a switch (topology.conf(5)), so a pool the tree does not otherwise hold is one
switch of its own (``<pool>-nodes``). A cluster of several sites always gets topology/tree (or
topology/block, where its NVL72 pools take it): each site's switches are joined under a root of
that site's own (``<site>-root``), and no switch joins two sites. Slurm places a job only on
nodes under one switch ("Jobs can only span nodes connected by the same switch fabric"), so never
across sites and providers; slurmctld logs that no switch reaches every node, as intended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .. import providers
from ..catalog import Catalog
from ..plan.checks import (BLOCK_SIZES_FROM, SHORT_BLOCK_FROM, SlurmTopology, has_switch_tree, is_nvl72,
                           slurm_name, slurm_topology_of)
from ..plan.model import FabricPlan, Plan, PoolPlan, SlurmClusterPlan
from . import hostlist as hl
from .environment import render

# Kernel, firmware and the NVIDIA driver keep part of the installed memory; slurmd reports
# what the OS sees, and a node reporting less than RealMemory is drained as "Low RealMemory".
USABLE_MEMORY_PERCENT = 94


def gres_type(gpu: str) -> str:
    """Catalog GPU id as a Slurm GRES type (``h100-sxm`` -> ``h100_sxm``): letters, digits, ``_``."""
    return gpu.replace("-", "_")


@dataclass
class NodeGroup:
    pool: PoolPlan
    nodes: hl.PoolNodes

    @property
    def hostlist(self) -> str:
        return self.nodes.hostlist()


def _cores_per_gpu_block(gpus: int, sockets: int, cores_per_socket: int) -> list[tuple[int, int, int, int]]:
    """(first GPU, last GPU, first core, last core) per socket: GPUs split evenly over sockets,
    the way HGX boards and cloud instances attach half the GPUs to each CPU."""
    if gpus == 0:
        return []
    if gpus < sockets:
        return [(0, gpus - 1, 0, sockets * cores_per_socket - 1)]
    per = gpus // sockets
    blocks = []
    for s in range(sockets):
        last_gpu = gpus - 1 if s == sockets - 1 else (s + 1) * per - 1
        blocks.append((s * per, last_gpu, s * cores_per_socket, (s + 1) * cores_per_socket - 1))
    return blocks


def _device_range(first: int, last: int) -> str:
    return f"/dev/nvidia{first}" if first == last else f"/dev/nvidia[{first}-{last}]"


def _node_line(group: NodeGroup, catalog: Catalog) -> dict:
    pool = group.pool
    hw = catalog.hardware_for(pool.system)
    system = catalog.systems[pool.system]
    features = [gres_type(pool.gpu), pool.architecture, pool.cpu_arch]
    if is_nvl72(pool):
        features.append("nvl72")
    if pool.mig:
        features.append("mig")
    return {
        "NodeName": group.hostlist,
        "CPUs": hw.cpus,
        "Sockets": hw.sockets,
        "CoresPerSocket": hw.cores_per_socket,
        "ThreadsPerCore": hw.threads_per_core,
        "RealMemory": hw.memory_gib * 1024 * USABLE_MEMORY_PERCENT // 100,
        "Gres": _gres(pool) if system.gpus_per_node else None,
        "Features": ",".join(features),
        "State": "UNKNOWN",
    }


def _gres(pool: PoolPlan) -> str:
    """The node's GPUs as Slurm GRES: whole GPUs typed by the catalog GPU, or a MIG pool's
    instances typed by their profile (``gpu:3g.40gb:16``), one entry per profile of the plan's
    layout. Slurm matches a MIG type to the "MIG Profile" string slurmd reads from NVML, of which
    it must be a substring (https://slurm.schedmd.com/gres.html#MIG_Management, checked 2026-12-03)."""
    if pool.mig:
        return ",".join(f"gpu:{m.profile}:{m.per_node}" for m in pool.mig)
    return f"gpu:{gres_type(pool.gpu)}:{pool.gpus_per_node}"


def _gres_lines(group: NodeGroup, catalog: Catalog) -> list[dict]:
    pool = group.pool
    if pool.mig:
        # MIG instances are found through NVML, Slurm's documented way for MIG: their device files
        # are not /dev/nvidiaN, and the role creates them at boot (gres.html#MIG_Management).
        return [{"NodeName": group.hostlist, "AutoDetect": "nvml"}]
    hw = catalog.hardware_for(pool.system)
    vendor = catalog.systems[pool.system].gpu.vendor
    if vendor != "nvidia":
        # AMD GPUs are found through ROCm SMI; their /dev/dri render nodes are not numbered by GPU.
        return [{"NodeName": group.hostlist, "AutoDetect": "rsmi"}]
    lines = []
    for first, last, c0, c1 in _cores_per_gpu_block(pool.gpus_per_node, hw.sockets, hw.cores_per_socket):
        lines.append({"NodeName": group.hostlist, "Name": "gpu", "Type": gres_type(pool.gpu),
                      "File": _device_range(first, last), "Cores": f"{c0}-{c1}"})
    return lines


def _tree(fabric: FabricPlan, groups: list[NodeGroup], catalog: Catalog) -> list[dict]:
    """SwitchName lines for a factory-built fabric, leaves first, top last."""
    nodes = [g.nodes for g in groups]
    total = sum(n.count for n in nodes)
    if total == 0:
        return []
    if fabric.tiers <= 1:
        return [{"SwitchName": f"{fabric.name}-leaf", "Nodes": hl.join([hl.Segment(n, 0, n.count) for n in nodes])}]
    half = catalog.switches[fabric.switch].ports // 2
    rails = max(1, fabric.rails)
    leaf_nodes = fabric.nodes_per_leaf
    leaves_per_l1 = rails if fabric.rail_optimized else 1
    lines: list[dict] = []
    level = [f"{fabric.name}-t1-{i:0{_w(total, leaf_nodes)}d}" for i in range(1, -(-total // leaf_nodes) + 1)]
    for name, segs in zip(level, hl.slices(nodes, leaf_nodes)):
        lines.append({"SwitchName": name, "Nodes": hl.join(segs)})
    span = 1  # level-1 switches under one switch of the current level
    for tier in range(2, fabric.tiers):
        # A tier-t switch group joins half^(t-1) leaves (fat-tree pods); in level-1 switches:
        new_span = max(span, half ** (tier - 1) // leaves_per_l1)
        per = max(1, new_span // span)
        if len(level) <= per:
            break
        count = -(-len(level) // per)
        width = max(4, len(str(count)))
        upper = []
        for j in range(count):
            name = f"{fabric.name}-t{tier}-{j + 1:0{width}d}"
            lines.append({"SwitchName": name, "Switches": hl.compress(level[j * per:(j + 1) * per])})
            upper.append(name)
        level, span = upper, new_span
    if len(level) > 1:
        lines.append({"SwitchName": f"{fabric.name}-top", "Switches": hl.compress(level)})
    return lines


def _w(total: int, per: int) -> int:
    return max(4, len(str(-(-total // per))))


def _domains(g: NodeGroup) -> list[list[hl.Segment]]:
    """The nodes of each NVLink domain of a pool, in order; the last may be short."""
    return hl.slices([g.nodes], g.pool.nodes_per_domain)


def _domain_names(g: NodeGroup, count: int) -> list[str]:
    width = max(4, len(str(count)))
    return [f"{g.pool.name}-nvl{i:0{width}d}" for i in range(1, count + 1)]


def _size(segs: list[hl.Segment]) -> int:
    return sum(s.end - s.start for s in segs)


def _nvlink_tree(g: NodeGroup) -> list[dict]:
    """One leaf switch per NVLink domain, under one switch for the pool when it has several."""
    parts = _domains(g)
    names = _domain_names(g, len(parts))
    lines = [{"SwitchName": name, "Nodes": hl.join(segs)} for name, segs in zip(names, parts)]
    if len(names) > 1:
        lines.append({"SwitchName": f"{g.pool.name}-nvl", "Switches": hl.compress(names)})
    return lines


def _blocks(groups: list[NodeGroup], release: tuple[int, int]) -> list[dict]:
    """One BlockName per NVLink domain of the NVL72 pools (whole ones only before 25.05), then
    BlockSizes from 24.05 on. slurm_topology_of guarantees one domain size and a block."""
    lines: list[dict] = []
    base = 0
    for g in groups:
        if not is_nvl72(g.pool):
            continue
        base = g.pool.nodes_per_domain
        whole_only = release < SHORT_BLOCK_FROM
        if not g.nodes.declared:
            # A generated pool's domains are plain ranges: one line each, at a constant cost per
            # domain (a 10 GW campus has tens of thousands of them).
            count = g.nodes.count
            starts = range(0, count, base)
            lines += [{"BlockName": name, "Nodes": g.nodes.hostlist(start, min(start + base, count))}
                      for name, start in zip(_domain_names(g, len(starts)), starts)
                      if not (whole_only and count - start < base)]
            continue
        parts = _domains(g)
        for name, segs in zip(_domain_names(g, len(parts)), parts):
            if _size(segs) < base and whole_only:
                continue
            lines.append({"BlockName": name, "Nodes": hl.join(segs)})
    if release >= BLOCK_SIZES_FROM:
        levels = min(4, len(lines).bit_length() - 1)  # Slurm's default levels 0-4, up to the blocks there are
        lines.append({"BlockSizes": ",".join(str(base << k) for k in range(levels + 1))})
    return lines


@dataclass
class Cluster:
    site: str  # the primary controller's site
    name: str  # ClusterName
    plan: SlurmClusterPlan  # sites, controllers, accounting, default partition, login, QoS, fair-share
    groups: list[NodeGroup]
    topology: Optional[str]  # "tree" | "block" | None
    topology_lines: list[dict]
    release: Optional[tuple[int, int]] = None  # the Slurm release rendered for; None: not known
    choice: SlurmTopology = SlurmTopology(False)
    fabric_tree: bool = False  # pools on a factory-built switch fabric are in the tree
    pool_switches: bool = False  # pools with no switch tree of their own are a switch each


LOCK = object()  # the Slurm release of the lock's OS


def _site_tree(groups: list[NodeGroup], fabrics: list[FabricPlan], catalog: Catalog) -> tuple[list, bool]:
    """The switch lines of one site's pools: each NVL72 pool's NVLink domains, then each
    factory-built fabric's tree; and whether a fabric tree is among them."""
    lines, fabric_tree = [], False
    for g in groups:
        if is_nvl72(g.pool):
            lines += _nvlink_tree(g)
    for fabric in fabrics:
        if not has_switch_tree(fabric):
            continue
        members = [g for g in groups if g.pool.fabric == fabric.name and not is_nvl72(g.pool)]
        if members:
            lines += _tree(fabric, members, catalog)
            fabric_tree = True
    return lines, fabric_tree


def _in_tree(g: NodeGroup, fabrics: list[FabricPlan]) -> bool:
    return is_nvl72(g.pool) or any(f.name == g.pool.fabric and has_switch_tree(f) for f in fabrics)


def clusters(plan: Plan, catalog: Catalog, slurm: object = LOCK) -> list[Cluster]:
    """The plan's Slurm clusters. ``slurm`` is the (major, minor) release to render for, None for
    an unknown one; by default the lock's."""
    release = plan.software.slurm_release if slurm is LOCK else slurm
    out = []
    for cluster in plan.slurm:
        sites = set(cluster.sites)
        pools = [p for p in plan.pools if p.site in sites and p.scheduler == "slurm" and p.nodes > 0]
        groups = [NodeGroup(p, hl.PoolNodes.of(p)) for p in pools]
        choice = slurm_topology_of(pools, plan.fabrics, release)
        topology, lines, fabric_tree, pool_switches = None, [], False, False
        if choice.block:
            topology, lines = "block", _blocks(groups, release)
        else:
            by_site: dict[str, list[NodeGroup]] = {}
            for g in groups:
                by_site.setdefault(g.pool.site, []).append(g)
            trees = {}
            for site in cluster.sites:
                trees[site], treed = _site_tree(by_site.get(site, []), plan.fabrics, catalog)
                fabric_tree = fabric_tree or treed
            # A cluster of several sites always gets a tree, one per site with nothing above them:
            # Slurm places a job only on nodes under one switch, so never across providers.
            if len(cluster.sites) > 1 or any(trees.values()):
                topology = "tree"
                for site in cluster.sites:
                    site_lines = trees[site]
                    # Every node must be under a switch (topology.conf(5)): a pool the tree does
                    # not hold otherwise is a switch of its own.
                    for g in by_site.get(site, []):
                        if not _in_tree(g, plan.fabrics):
                            site_lines.append({"SwitchName": f"{g.pool.name}-nodes", "Nodes": g.hostlist})
                            pool_switches = True
                    # Several fabrics (or NVL72 pools) at one site: join their tops so every node
                    # of the site has one root.
                    roots = _roots(site_lines)
                    if len(roots) > 1:
                        site_lines.append({"SwitchName": f"{site}-root", "Switches": ",".join(roots)})
                    lines += site_lines
        out.append(Cluster(cluster.site, cluster.cluster_name(plan.name), cluster, groups, topology, lines, release,
                           choice, fabric_tree, pool_switches))
    return out


def _roots(lines: list[dict]) -> list[str]:
    children = set()
    for ln in lines:
        if "Switches" in ln:
            for part in ln["Switches"].split(","):
                children.add(part)
    named = [ln["SwitchName"] for ln in lines]
    result = []  # switches no other switch lists: the top of each fabric
    for name in named:
        if not any(_in_hostlist(name, entry) for entry in children):
            result.append(name)
    return result


def _in_hostlist(name: str, entry: str) -> bool:
    if "[" not in entry:
        return name == entry
    prefix, rest = entry.split("[", 1)
    lo, hi = rest.rstrip("]").split("-")
    if not name.startswith(prefix):
        return False
    tail = name[len(prefix):]
    return tail.isdigit() and len(tail) == len(lo) and int(lo) <= int(tail) <= int(hi)


# ``CgroupPlugin=disabled`` is in cgroup.conf(5) from Slurm 24.05 (Ubuntu oracular's 24.05.2 page,
# checked 2026-12-03); before it, naming cgroup/v1 skips the autodetection (which fails without
# /sys/fs/cgroup), and v1's init touches no hierarchy.
CGROUP_DISABLED_FROM = (24, 5)


def _chroot(c: Cluster) -> bool:
    """Every node of the cluster is a root filesystem run under chroot (the lab's provider)."""
    return bool(c.groups) and all(providers.get(g.pool.provider).chroot_nodes for g in c.groups)


def _line(fields: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


_WHY_TREE = {
    "unknown": "the Slurm release of this OS is not known, and every release loads topology/tree",
    "release": "Slurm {release} has no topology/block (23.11+)",
    "mixed": "pools on a switch fabric share this cluster, and it loads one topology plugin",
    "sizes": "NVLink domains of different node counts cannot share one topology/block",
    "short": "Slurm {release} has no block smaller than one whole NVLink domain",
}


def _notes(c: Cluster) -> list[str]:
    """Comment lines that say which rule of this Slurm release shaped topology.conf."""
    release = slurm_name(c.release) if c.release else "unknown"
    fabric_tree = "one leaf per scalable unit, the fabric's middle tiers, one top switch."
    if c.topology == "block":
        short = ("A partly filled domain is no block before 25.05: its nodes stay out of topology/block."
                 if c.release < SHORT_BLOCK_FROM else "A partly filled domain is a block Slurm counts as a whole one.")
        return [f"topology/block (Slurm {release}): one block per NVLink domain.", short]
    nvl = [g for g in c.groups if is_nvl72(g.pool)]
    if c.topology == "tree" and nvl:
        notes = ["topology/tree: each NVLink domain is a leaf switch, under one switch per NVL72 pool,",
                 f"because {_WHY_TREE[c.choice.reason].format(release=release)}."]
        if c.fabric_tree:
            notes.append(f"Pools on a switch fabric: {fabric_tree}")
    elif c.fabric_tree:
        notes = [f"topology/tree: {fabric_tree}"]
    else:
        notes = ["topology/tree: no pool of this cluster is on a switch fabric the factory builds."]
    if c.pool_switches:
        notes.append("Each other pool is one switch: every node must be under a switch (topology.conf(5)).")
    if len(c.plan.sites) > 1:
        notes += ["Each site is a tree of its own and no switch joins them: Slurm places a job on nodes",
                  "under one switch, so never across sites (slurmctld warns that no switch reaches all nodes)."]
    return notes


def files(plan: Plan, catalog: Catalog, slurm: object = LOCK) -> dict[str, str]:
    """slurm.conf, gres.conf, cgroup.conf and topology.conf per cluster, under ``slurm/<cluster>/``
    (a cluster per site is named after its site), for the Slurm release ``slurm`` (see :func:`clusters`)."""
    out: dict[str, str] = {}
    for c in clusters(plan, catalog, slurm):
        base = f"slurm/{c.plan.name}"
        partitions = []
        for g in c.groups:
            partitions.append(_line({"PartitionName": g.pool.name, "Nodes": g.hostlist,
                                     "Default": "YES" if g.pool.name == c.plan.default_partition else "NO",
                                     "MaxTime": "INFINITE", "OverSubscribe": "EXCLUSIVE", "State": "UP"}))
        ctx = {
            "factory": plan.name,
            "cluster": c.name,
            "controllers": c.plan.controllers,
            "accounting": c.plan.accounting,
            "accounting_host": c.plan.accounting_host,
            "accounting_port": c.plan.accounting_port,
            "topology": c.topology,
            "nodes": [_line(_node_line(g, catalog)) for g in c.groups],
            "partitions": partitions,
            "gres": [_line(ln) for g in c.groups for ln in _gres_lines(g, catalog)],
            "mig": any(g.pool.mig for g in c.groups),
            "topology_lines": [_line(ln) for ln in c.topology_lines],
            "topology_notes": _notes(c),
            "sites": c.plan.sites,
            "qos": bool(c.plan.qos),
            "fairshare": c.plan.fairshare,
            "chroot": _chroot(c),
            "cgroup_plugin": "disabled" if c.release and c.release >= CGROUP_DISABLED_FROM else "cgroup/v1",
        }
        out[f"{base}/slurm.conf"] = render("slurm/slurm.conf.j2", **ctx)
        out[f"{base}/gres.conf"] = render("slurm/gres.conf.j2", **ctx)
        out[f"{base}/cgroup.conf"] = render("slurm/cgroup.conf.j2", **ctx)
        if c.topology:
            out[f"{base}/topology.conf"] = render("slurm/topology.conf.j2", **ctx)
    return out
