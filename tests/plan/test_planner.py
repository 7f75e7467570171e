"""Planner figures on the example stacks, checked against numbers with a public source."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml

from aifactory import plan as planning
from aifactory.catalog import load as load_catalog
from aifactory.spec import load, load_string


def plan_of(stacks, name):
    return planning.build(load(stacks / name / "factory.yaml"))


def test_plan_json_has_the_contract_keys(stacks):
    data = plan_of(stacks, "multicloud").to_dict()
    assert {"gpus", "nodes", "racks"} <= set(data["totals"])
    assert {"it_kw", "facility_kw"} <= set(data["power"])
    assert {"budget_kw", "headroom_kw"} <= set(data["sites"][0])
    for f in data["fabrics"]:
        assert {"name", "type", "tiers", "leaf_switches", "spine_switches", "core_switches", "cables"} <= set(f)
    for p in data["pools"]:
        assert {"name", "provider", "system", "nodes", "gpus", "nvlink_domains"} <= set(p)
    assert {"driver", "cuda", "fabric_manager", "nvlsm", "imex", "dcgm_package"} <= set(data["software"])
    json.dumps(data)


@pytest.mark.parametrize("name", ["aws-p5", "campus-10gw", "lab", "multicloud", "onprem-dgx", "superpod-h100"])
def test_plan_json_round_trips(stacks, name):
    from aifactory.plan.model import Plan

    plan = plan_of(stacks, name)
    data = json.loads(json.dumps(plan.to_dict()))
    again = Plan.from_dict(data)
    assert again == plan and again.to_dict() == plan.to_dict()


def test_superpod_h100_matches_reference_architecture(stacks):
    plan = plan_of(stacks, "superpod-h100")
    (fabric,) = plan.fabrics
    assert (fabric.leaf_switches, fabric.spine_switches, fabric.core_switches, fabric.tiers) == (32, 16, 0, 2)
    assert plan.totals["gpus"] == 1016
    # DGX H100 10.2 kW max (user guide): 127 x 10.2 kW + 48 switches
    assert plan.pools[0].it_kw == pytest.approx(127 * 10.2)
    assert plan.sites[0].it_kw == pytest.approx(127 * 10.2 + 48 * 1.72, abs=0.1)
    # 4 DGX H100 (40.8 kW) per 42 kW rack position
    assert (plan.pools[0].nodes_per_rack, plan.pools[0].racks) == (4, 32)


def test_ten_gigawatts_is_four_to_five_million_gpus(stacks):
    plan = plan_of(stacks, "campus-10gw")
    gpus = plan.totals["gpus"]
    assert 4_000_000 <= gpus <= 5_000_000  # "roughly 4 to 5 million GPUs" for 10 GW (NVIDIA CEO, CNBC)
    site = plan.sites[0]
    assert site.facility_kw <= site.budget_kw
    # whole NVL72 racks, and the fill is maximal: one more rack would not fit
    pool = plan.pools[0]
    assert pool.nodes % 18 == 0 and pool.nvlink_domains == pool.nodes // 18
    rack_facility = 18 * 6.667 * 1.15
    assert site.headroom_kw < rack_facility + 2 * 1.72 * 1.15 * 10


def test_fill_respects_budget_and_counts_fabric_power():
    text = yaml.safe_dump({
        "name": "f", "sites": [{"name": "dc", "power_mw": 10, "pue": 1.25, "rack_kw": 45}],
        "fabrics": [{"name": "ib", "type": "infiniband", "switch": "qm9700"}],
        "pools": [{"name": "fixed", "site": "dc", "provider": "onprem", "system": "dgx-h100", "nodes": 100,
                   "fabric": "ib"},
                  {"name": "more", "site": "dc", "provider": "onprem", "system": "dgx-h100", "nodes": "fill",
                   "fabric": "ib"}]})
    plan = planning.build(load_string(text))
    site = plan.sites[0]
    assert site.facility_kw <= 10_000
    more = plan.pool("more")
    assert more.filled and more.nodes > 0
    # adding one more node would break the budget (node + its share of switches)
    assert site.headroom_kw < (10.2 + 3 * 1.72) * 1.25
    naive = math.floor(10_000 / 1.25 / 10.2) - 100
    assert more.nodes < naive  # the fabric's switches take their share


def test_nvl72_domains_and_racks():
    text = yaml.safe_dump({
        "name": "g", "sites": [{"name": "dc", "power_mw": 50, "rack_kw": 130}],
        "pools": [{"name": "nvl", "site": "dc", "provider": "onprem", "system": "gb200-nvl72", "nodes": 36}]})
    pool = planning.build(load_string(text)).pools[0]
    assert (pool.gpus, pool.nvlink_domains, pool.racks) == (144, 2, 2)


def test_software_lock_resolution():
    catalog = load_catalog()
    text = yaml.safe_dump({
        "name": "b", "sites": [{"name": "dc", "power_mw": 5, "rack_kw": 60}],
        "pools": [{"name": "b", "site": "dc", "provider": "onprem", "system": "dgx-b200", "nodes": 4}]})
    lock = planning.build(load_string(text)).software
    # No branch pinned: the newest LTSB with a catalogued release (R620 since 2026-11), its default CUDA.
    assert lock.driver_branch == "620" and lock.driver == catalog.branches["620"].latest
    assert lock.cuda == catalog.branches["620"].default_cuda and lock.open_kernel_modules is True
    assert lock.fabric_manager == lock.driver == lock.libnvidia_nscq
    assert lock.fabric_manager_package == "nvidia-fabricmanager"  # unversioned from R580 in NVIDIA's repository
    assert lock.nvlsm is True and lock.imex is False
    assert lock.dcgm_package == "datacenter-gpu-manager-4-cuda13"


def test_cuda_131_picks_a_branch_that_supports_it():
    spec = {"name": "c", "software": {"cuda": "13.1"}, "sites": [{"name": "dc", "power_mw": 5}],
            "pools": [{"name": "h", "site": "dc", "provider": "onprem", "system": "dgx-h100", "nodes": 2}]}
    lock = planning.build(load_string(yaml.safe_dump(spec))).software
    # R620, the current LTSB, already runs CUDA 13.1 natively (620.70.06 >= 590.44.01).
    assert lock.driver_branch == "620" and lock.fabric_manager_package == "nvidia-fabricmanager"
    # A CUDA newer than the LTSB's release moves the lock to the first released branch that runs it.
    spec["software"]["cuda"] = "13.9"
    spec["catalog"] = {
        "cuda": [{"cuda": "13.9", "min_driver": "625.10.01", "compat_min_driver": "580.65.06", "source": "test"}],
        "driver_branches": [{"branch": "625", "kind": "NFB", "status": "supported", "eol": None,
                             "latest": "625.10.01", "default_cuda": "13.9", "source": "test"}]}
    lock = planning.build(load_string(yaml.safe_dump(spec))).software
    assert lock.driver_branch == "625" and lock.driver == "625.10.01"


def test_cloud_fabrics_report_no_switches(stacks):
    plan = plan_of(stacks, "aws-p5")
    (fabric,) = plan.fabrics
    assert fabric.managed_by == "provider" and fabric.tiers == 0 and fabric.cables == 0
    assert plan.pools[0].compute_nics == 32 and plan.totals["racks"] == 0


def test_planning_work_does_not_grow_with_gpus(stacks, monkeypatch):
    """O(pools): count the pool sizings for the lab and for 10 GW (fill probes included)."""
    from aifactory.plan import sizing

    calls = []
    real = sizing.pool_plan
    monkeypatch.setattr(sizing, "pool_plan", lambda *a, **k: calls.append(1) or real(*a, **k))
    plan_of(stacks, "lab")
    lab = len(calls)
    calls.clear()
    plan_of(stacks, "campus-10gw")
    assert len(calls) <= 40 * max(lab, 1)  # a binary search of ~25 probes, not millions of nodes


def test_every_example_stack_plans(stacks):
    for factory in sorted(stacks.glob("*/factory.yaml")):
        result = planning.validate(load(factory))
        assert not result.errors, [f.render() for f in result.errors]


def test_cli_plan_json_for_ten_gigawatts(stacks):
    out = subprocess.run([sys.executable, "-m", "aifactory", "plan", str(stacks / "campus-10gw" / "factory.yaml"),
                          "--format", "json"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert 4_000_000 <= data["totals"]["gpus"] <= 5_000_000
