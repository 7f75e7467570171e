"""MIG per pool: the catalog's profiles, the `mig-profiles` check, the layout the plan resolves
once, and plan files that carry one (or try to smuggle a bad one in)."""

from __future__ import annotations

import json

import pytest

from aifactory import catalog as cat
from aifactory.errors import AifactoryError
from aifactory.plan import build, checks, validate
from aifactory.plan.model import Plan
from aifactory.spec import load_string

SPEC = """
name: t
sites: [{name: hall, power_mw: 2, pue: 1.2, rack_kw: 60}]
pools:
  - name: infer
    site: hall
    provider: onprem
    system: SYSTEM
    nodes: 2
    mig: MIG
"""


def spec(mig: str, system: str = "dgx-h100", scheduler: str = "slurm"):
    text = SPEC.replace("SYSTEM", system).replace("MIG", mig)
    if scheduler != "slurm":
        text = text.replace("    nodes: 2\n", f"    nodes: 2\n    scheduler: {scheduler}\n")
    return load_string(text, "f.yaml")


def mig_errors(mig: str, **kw):
    result = validate(spec(mig, **kw))
    return [f for f in result.findings if f.check == "mig-profiles"]


def test_catalog_lists_mig_profiles_for_the_mig_gpus_it_can_source():
    catalog = cat.load()
    assert set(catalog.mig_profiles) == {"a100-40", "a100-80", "h100-sxm", "h100-pcie", "h200-sxm", "b200"}
    h200 = catalog.mig_profiles["h200-sxm"]
    assert list(h200) == ["1g.18gb", "1g.18gb+me", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]
    assert (h200["3g.71gb"].compute_slices, h200["3g.71gb"].memory_slices, h200["3g.71gb"].max_instances) == (3, 4, 2)
    assert catalog.mig_profiles["a100-40"]["1g.10gb"].memory_slices == 2  # 10 of 40 GB, 4 per GPU
    for rows in catalog.mig_profiles.values():
        for row in rows.values():
            assert "supported-mig-profiles.html" in row.source and "(checked 2026-12-03)" in row.source
            # Every profile alone fits a GPU as often as the guide says.
            assert row.compute_slices * row.max_instances <= 7 and row.memory_slices * row.max_instances <= 8
    assert "mig_profiles" in cat.TABLES


@pytest.mark.parametrize("row, words", [
    ({"gpu": "l40s", "profile": "1g.12gb", "compute_slices": 2}, "leading number"),
    ({"gpu": "nope", "profile": "1g.12gb"}, "unknown gpu"),
    ({"gpu": "l40s", "profile": "1g.12gb; rm"}, "MIG profile name"),
    ({"gpu": "l40s", "profile": "1g.12gb", "memory_slices": 9}, "memory_slices"),
])
def test_an_overlay_row_is_held_to_the_schema(row, words):
    cells = {"gpu": "l40s", "profile": "1g.12gb", "compute_slices": 1, "memory_slices": 2, "max_instances": 4,
             "source": "site measurement 2026-12-03", **row}
    overlay = (("mig_profiles", tuple((c, str(cells[c])) for c in cat.TABLES["mig_profiles"].columns)),)
    with pytest.raises(cat.CatalogError, match=words):
        cat.Catalog(overlay)


def test_the_layout_is_resolved_once_per_pool():
    plan = build(spec('{"2g.20gb": 3, "1g.10gb": 1}'))
    (pool,) = plan.pools
    assert [(m.profile, m.per_gpu, m.per_node) for m in pool.mig] == [("2g.20gb", 3, 24), ("1g.10gb", 1, 8)]
    data = plan.to_dict()
    assert data["pools"][0]["mig"] == [{"profile": "2g.20gb", "per_gpu": 3, "per_node": 24},
                                       {"profile": "1g.10gb", "per_gpu": 1, "per_node": 8}]
    assert Plan.from_dict(json.loads(json.dumps(data))) == plan


def test_a_pool_without_mig_says_nothing_of_it_in_plan_json():
    data = build(load_string(SPEC.replace("    mig: MIG\n", "").replace("SYSTEM", "dgx-h100"))).to_dict()
    assert "mig" not in data["pools"][0]


@pytest.mark.parametrize("mig, system, path, words", [
    ('{"3g.40gb": 2}', "dgx-b200", ("pools", 0, "mig", "3g.40gb"), "did you mean '3g.90gb'"),
    ('{"1g.20gb": 5}', "dgx-h100", ("pools", 0, "mig", "1g.20gb"), "at most 4"),
    ('{"1g.10gb+me": 2}', "dgx-h100", ("pools", 0, "mig", "1g.10gb+me"), "at most 1 1g.10gb+me instance,"),
    ('{"4g.40gb": 1, "3g.40gb": 1, "1g.10gb": 1}', "dgx-h100", ("pools", 0, "mig"), "8 compute slices"),
    ('{"1g.20gb": 4, "1g.10gb": 1}', "dgx-h100", ("pools", 0, "mig"), "9 memory slices"),
    ('{"3g.40gb": 2, "1g.10gb": 1}', "dgx-a100", ("pools", 0, "mig"), "9 memory slices"),
    ('{"1g.10gb": 2, "1g.10gb+me": 1}', "dgx-h100", ("pools", 0, "mig"), "cannot be told apart by Slurm"),
])
def test_a_layout_the_gpu_cannot_hold_is_refused_at_its_line(mig, system, path, words):
    found = mig_errors(mig, system=system)
    assert [f.path for f in found] == [path], [f.render() for f in found]
    (f,) = found
    assert words in f"{f.message} (hint: {f.hint})" and "pool infer" in f.message and f.hint
    assert f.render().startswith("f.yaml:10: ")  # the line of `mig:`


def test_a_gpu_without_mig_is_refused():
    catalog = cat.load()
    system = next(s for s in catalog.systems.values()
                  if s.provider == "onprem" and s.gpu.id not in catalog.mig_profiles and s.id in catalog.node_hardware)
    (f,) = mig_errors('{"1g.10gb": 1}', system=system.id)
    assert f.path == ("pools", 0, "mig") and "has no MIG profiles in the catalog" in f.message
    assert "h100-sxm" in f.hint


def test_plus_me_beside_other_profiles_is_fine_outside_slurm_and_full_layouts_pass():
    assert mig_errors('{"1g.10gb": 2, "1g.10gb+me": 1}', scheduler="kubernetes") == []
    for layout in ('{"7g.80gb": 1}', '{"1g.10gb": 7}', '{"3g.40gb": 2}', '{"4g.40gb": 1, "3g.40gb": 1}',
                   '{"1g.20gb": 4}', '{"2g.20gb": 3, "1g.10gb": 1}'):
        assert mig_errors(layout) == [], layout
    assert mig_errors('{"1g.23gb": 7}', system="dgx-b200") == []
    assert checks.REGISTRY["mig-profiles"].phase == "refs"


def _plan_data() -> dict:
    return json.loads(json.dumps(build(spec('{"3g.40gb": 2}')).to_dict()))


@pytest.mark.parametrize("mig, words", [
    ([{"profile": "3g.40gb", "per_gpu": 2, "per_node": 17}], "per node"),
    ([{"profile": "3g.40gb", "per_gpu": 2, "per_node": 16}, {"profile": "3g.40gb", "per_gpu": 1, "per_node": 8}],
     "pools[0]"),
    ([{"profile": "7g.80gb", "per_gpu": 2, "per_node": 16}], "compute slices"),
    ([{"profile": "3g.40gb\nForged=1", "per_gpu": 2, "per_node": 16}], "invalid value"),
    ([{"profile": "3g.40gb", "per_gpu": True, "per_node": 16}], "pools[0].mig[0].per_gpu"),
    ([{"profile": "3g.40gb", "per_gpu": 2, "per_node": 16, "cmd": "x"}], "pools[0].mig[0].cmd"),
])
def test_a_plan_file_with_a_bad_layout_is_refused(mig, words):
    data = _plan_data()
    data["pools"][0]["mig"] = mig
    with pytest.raises(AifactoryError, match=None) as info:
        Plan.from_dict(data)
    assert words in str(info.value), str(info.value)
