"""Fabric sizing against the switch and cable counts NVIDIA publishes for DGX SuperPOD.

Source: DGX SuperPOD B200 reference architecture, "Larger DGX SuperPOD component counts"
(QM9700, 8 rails, 32 nodes per SU):
https://docs.nvidia.com/dgx-superpod/reference-architecture-scalable-infrastructure-b200/latest/dgx-superpod-architecture.html
"""

from __future__ import annotations

import pytest

from aifactory.catalog import load
from aifactory.plan.fabric import size_tree

QM9700 = load().switches["qm9700"]

# SU count, nodes, leaf, spine, core, node-leaf cables, leaf-spine cables, spine-core cables
SUPERPOD_B200 = [
    (2, 64, 16, 8, 0, 512, 512, 0),
    (4, 128, 32, 16, 0, 1024, 1024, 0),
    (8, 256, 64, 32, 0, 2048, 2048, 0),
    (16, 512, 128, 128, 64, 4096, 4096, 4096),
    (32, 1024, 256, 256, 128, 8192, 8192, 8192),
    (64, 2048, 512, 512, 256, 16384, 16384, 16384),
]


@pytest.mark.parametrize("su,nodes,leaf,spine,core,c1,c2,c3", SUPERPOD_B200)
def test_matches_published_superpod_counts(su, nodes, leaf, spine, core, c1, c2, c3):
    tree = size_tree(nodes, 8, QM9700)
    assert tree.scalable_units == su
    assert tree.switches_by_tier == ([leaf, spine, core] if core else [leaf, spine])
    assert tree.cables_by_tier == ([c1, c2, c3] if core else [c1, c2])
    assert tree.tiers == (3 if core else 2)


def test_h100_superpod_127_nodes():
    # DGX SuperPOD H100 RA: 4 SU, 127 DGX (one slot for UFM), 32 leaf + 16 spine QM9700.
    tree = size_tree(127, 8, QM9700)
    assert (tree.scalable_units, tree.switches_by_tier) == (4, [32, 16])
    assert tree.cables_by_tier == [127 * 8, 32 * 32]


def test_two_tier_limit_is_radix_squared_over_two_endpoints():
    assert size_tree(256, 8, QM9700).tiers == 2  # 2048 endpoints = 64^2 / 2
    assert size_tree(257, 8, QM9700).tiers == 3


def test_three_tier_limit_is_radix_cubed_over_four_endpoints():
    assert size_tree(8192, 8, QM9700).tiers == 3  # 65,536 endpoints = 64^3 / 4
    assert size_tree(8193, 8, QM9700).tiers == 4


def test_flat_fabric_for_a_lab_is_one_switch():
    tree = size_tree(16, 1, QM9700, rail_optimized=False)
    assert (tree.tiers, tree.switches_by_tier, tree.cables_by_tier) == (1, [1], [16])


def test_smaller_scalable_units_add_leaves():
    tree = size_tree(64, 8, QM9700, su_nodes=16)
    assert tree.scalable_units == 4 and tree.switches_by_tier[0] == 32
    assert tree.switches_by_tier[1] == 8  # 32 leaves x 16 uplinks / 64 ports
