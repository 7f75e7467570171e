"""Compute-fabric sizing the way NVIDIA's DGX SuperPOD reference architectures do it.

Rail-optimized, non-blocking fat trees: a scalable unit (SU) has ``radix/2`` node slots
(32 for 64-port Quantum-2 QM9700, 72 for 144-port Quantum-X800 Q3400) and one leaf switch
per rail per SU; each leaf uses half its ports down and half up. Two tiers reach ``radix``
leaves (radix^2/2 endpoints), three tiers ``radix^2/2`` leaves (radix^3/4 endpoints), and so
on; every tier below the top has as many switches as the leaf tier, the top tier half as many
(its switches face only down).

In a two-tier tree every leaf reaches every spine, and NVIDIA spreads each leaf's uplinks
evenly over the spines, so the spine count divides the uplinks per leaf. With 32 uplinks
(QM9700) that never shows; with 72 (Q3400) it does: 4 SU = 32 leaves need 32 x 72 / 144 = 16
spines by port count, but 72 links do not split 16 ways, so the XDR RA builds 18 (4 links from
every leaf to every spine); 8 SU likewise 36, not 32.

Reference figures (checked 2026-12-03):
- B200 RA, QM9700, 32-node SU: 4 SU = 32 leaf + 16 spine; 16 SU = 128 + 128 + 64 core.
  https://docs.nvidia.com/dgx-superpod/reference-architecture-scalable-infrastructure-b200/latest/dgx-superpod-architecture.html
- B300 XDR RA, Q3400, 72-node SU, Table 3: 1 SU = 8 + 4; 2 SU = 16 + 8; 4 SU = 32 + 18;
  8 SU = 64 + 36; 18 SU = 144 + 72.
  https://docs.nvidia.com/dgx-superpod/reference-architecture/scalable-infrastructure-b300-xdr/latest/dgx-superpod-architecture.html
  (The 64-node SU table, 1 SU = 16 + 8 ... 16 SU = 256 + 128, is the *Spectrum-X* B300 RA:
  SN5600 in two planes of 2 x 400 GbE per GPU, not Q3400. .../scalable-infrastructure-b300/latest/)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog import Switch


@dataclass(frozen=True)
class Tree:
    tiers: int
    scalable_units: int
    endpoints: int
    switches_by_tier: list[int]
    cables_by_tier: list[int]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _spines(leaves: int, down: int, k: int) -> tuple[int, int]:
    """(spines, uplinks per leaf) of a two-tier tree whose leaves spread their uplinks evenly.

    Non-blocking needs at least ``down`` uplinks per leaf; a leaf may use spare ports for more
    when that lets fewer spines divide them evenly (31 node slots: 32 uplinks, not 31 spines).
    Fewest spines first, then fewest uplinks (cables). Needs ``leaves <= k``.
    """
    lo = min(down, k // 2)
    best: tuple[int, int] | None = None
    for up in range(lo, max(lo, k - down) + 1):
        need = _ceil(leaves * up, k)  # spine ports the uplinks fill
        spines = next(s for s in range(need, up + 1) if up % s == 0)
        if best is None or spines < best[0]:
            best = (spines, up)
    return best


def size_tree(nodes: int, rails: int, switch: Switch, rail_optimized: bool = True, su_nodes: int | None = None,
              endpoints: int | None = None) -> Tree:
    """Switch and cable counts of a non-blocking fat tree for ``nodes`` with ``rails`` NICs each.

    ``endpoints`` is the number of NIC ports actually cabled when it is less than
    ``nodes * rails`` (pools with fewer NICs than the fabric has rails; see sizing.fabric_plan).
    """
    k = switch.ports
    half = k // 2
    if nodes <= 0 or rails <= 0:
        return Tree(0, 0, 0, [], [])
    endpoints = nodes * rails if endpoints is None else endpoints
    if rail_optimized:
        su = su_nodes or half
        units = _ceil(nodes, su)
        leaves = units * rails
        down = su  # leaf ports facing nodes
    else:
        units = 0
        leaves = _ceil(endpoints, half)
        down = half
    if leaves == 1 and endpoints <= k:
        return Tree(1, units, endpoints, [1], [endpoints])
    if leaves <= k:  # two tiers: every leaf meets every spine
        spines, up = _spines(leaves, down, k)
        return Tree(2, units, endpoints, [leaves, spines], [endpoints, leaves * up])
    up = min(down, half)  # non-blocking: as many uplinks as downlinks
    tiers = 3
    while leaves > 2 * half ** (tiers - 1):
        tiers += 1
    switches = [leaves]
    cables = [endpoints]
    links = leaves * up  # links leaving the tier below
    for _ in range(tiers - 2):  # middle tiers: half their ports down, half up
        count = _ceil(links, half)
        switches.append(count)
        cables.append(links)
        links = count * half
    switches.append(_ceil(links, k))  # top tier: every port faces down
    cables.append(links)
    return Tree(tiers, units, endpoints, switches, cables)
