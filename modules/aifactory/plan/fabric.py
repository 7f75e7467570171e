"""Compute-fabric sizing the way NVIDIA's DGX SuperPOD reference architectures do it.

Rail-optimized, non-blocking fat trees: a scalable unit (SU) has ``radix/2`` node slots
(32 for 64-port Quantum-2 QM9700) and one leaf switch per rail per SU; each leaf uses half
its ports down and half up. Two tiers reach ``radix`` leaves (radix^2/2 endpoints), three
tiers ``radix^2/2`` leaves (radix^3/4 endpoints), and so on; every tier below the top has
as many switches as the leaf tier, the top tier half as many (its switches face only down).
Reference figures (B200 RA, QM9700): 4 SU = 32 leaf + 16 spine; 16 SU = 128 + 128 + 64 core.
https://docs.nvidia.com/dgx-superpod/reference-architecture-scalable-infrastructure-b200/latest/dgx-superpod-architecture.html
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


def size_tree(nodes: int, rails: int, switch: Switch, rail_optimized: bool = True, su_nodes: int | None = None) -> Tree:
    """Switch and cable counts of a non-blocking fat tree for ``nodes`` with ``rails`` NICs each."""
    k = switch.ports
    half = k // 2
    endpoints = nodes * rails
    if nodes <= 0 or rails <= 0:
        return Tree(0, 0, 0, [], [])
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
    up = min(down, half)  # non-blocking: as many uplinks as downlinks
    tiers = 2
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
