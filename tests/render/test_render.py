"""aifactory render: determinism, the drift gate, naming shared with the inventory, and the
Slurm/NCCL content checked against the plan."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aifactory.inventory import host_names, host_range
from aifactory.render import hostlist as hl
from aifactory.render.deployment import MANIFEST, render
from aifactory.render.nccl import settings
from tests.render.helpers import EXTERNAL_ACCOUNTING, REPO, STACKS, expand, nvl72_spec, planned, rendered

NVL72 = """
name: nvl
software: {driver_branch: "580", cuda: "13.0"}
sites: [{name: hall, power_mw: 5, pue: 1.15, rack_kw: 140}]
fabrics: [{name: ib, type: infiniband, switch: qm9700}]
pools: [{name: rack, site: hall, provider: onprem, system: gb200-nvl72, nodes: 54, fabric: ib}]
"""

BIG = """
name: big
software: {driver_branch: "580", cuda: "13.0"}
sites: [{name: dc, power_mw: 1500, pue: 1.2, rack_kw: 42}]
fabrics: [{name: ib, type: infiniband, switch: qm9700}]
pools: [{name: gpu, site: dc, provider: onprem, system: dgx-h100, nodes: 100000, fabric: ib}]
"""


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "aifactory", *args], capture_output=True, text=True, cwd=cwd)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_renders_are_byte_identical(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        r = _cli("render", "stacks/multicloud/factory.yaml", "--out", str(out))
        assert r.returncode == 0, r.stderr
    ta, tb = _tree(a), _tree(b)
    assert ta == tb and len(ta) > 40
    # Nothing machine- or run-specific leaks in: no absolute paths, no timestamps.
    for rel, data in ta.items():
        text = data.decode()
        assert str(tmp_path) not in text and str(REPO) not in text, rel
        assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d", text), rel


def test_rerun_writes_nothing_and_check_reports_drift(tmp_path):
    out = tmp_path / "deploy"
    assert _cli("render", "stacks/multicloud/factory.yaml", "--out", str(out)).returncode == 0
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    r = _cli("render", "stacks/multicloud/factory.yaml", "--out", str(out))
    assert r.returncode == 0 and "0 written, 0 removed" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == mtimes

    assert _cli("render", "stacks/multicloud/factory.yaml", "--out", str(out), "--check").returncode == 0
    (out / "nccl" / "aws" / "nccl.conf").write_text("NCCL_DEBUG=INFO\n")
    (out / "slurm" / "global" / "gres.conf").unlink()
    (out / "stray.txt").write_text("x")
    before = _tree(out)
    r = _cli("render", "stacks/multicloud/factory.yaml", "--out", str(out), "--check")
    assert r.returncode == 3, "drift has its own exit code, apart from errors (1) and usage (2)"
    assert f"changed: {out}/nccl/aws/nccl.conf" in r.stdout
    assert f"missing: {out}/slurm/global/gres.conf" in r.stdout
    assert "stray.txt" not in r.stdout, "files no render wrote are not the drift gate's to judge"
    assert _tree(out) == before, "--check must write nothing"
    # Files a render wrote that another spec no longer has are extra.
    r = _cli("render", "stacks/lab/factory.yaml", "--out", str(out), "--check")
    assert r.returncode == 3 and f"extra: {out}/inventory/group_vars/pool_aws.yml" in r.stdout
    # An error is not drift: a spec that does not load exits 1, a usage error 2.
    (tmp_path / "broken.yaml").write_text("name: [\n")
    assert _cli("render", str(tmp_path / "broken.yaml"), "--out", str(out), "--check").returncode == 1
    assert _cli("render", "stacks/lab/factory.yaml", "--check").returncode == 2  # --out is required
    assert _tree(out) == before
    r = _cli("render", "stacks/multicloud/factory.yaml", "--out", str(out))
    assert "2 written" in r.stdout
    assert (out / "stray.txt").exists(), "files the renderer did not write are left alone"


def test_removed_pool_files_are_removed(tmp_path):
    spec = (STACKS / "multicloud" / "factory.yaml").read_text()
    first = tmp_path / "factory.yaml"
    first.write_text(spec)
    out = tmp_path / "deploy"
    assert _cli("render", str(first), "--out", str(out)).returncode == 0
    assert (out / "nccl" / "oci" / "nccl.conf").exists()
    first.write_text(spec.replace("  - {name: oci, site: oci-iad", "  # - {name: oci, site: oci-iad")
                     .replace(", oci-iad]", "]"))  # a Slurm cluster names only sites with Slurm pools
    r = _cli("render", str(first), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert not (out / "nccl" / "oci").exists() and not (out / "slurm" / "oci-iad").exists()
    assert _cli("render", str(first), "--out", str(out), "--check").returncode == 0


def test_bad_spec_is_a_located_error_not_a_traceback(tmp_path):
    bad = tmp_path / "factory.yaml"
    bad.write_text(NVL72.replace("system: gb200-nvl72", "system: gb200-nvl73"))
    r = _cli("render", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 1
    assert "pools[0].system" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_node_names_agree_with_the_ansible_inventory():
    for case in ("superpod-h100", "multicloud", "lab"):
        plan, _ = planned(STACKS / case / "factory.yaml")
        for pool in plan.pools:
            nodes = hl.PoolNodes.of(pool)
            names = host_names(pool)
            assert expand(nodes.hostlist()) == names
            # Ansible's range pattern covers the same names (":" where Slurm writes "-").
            assert host_range(pool).replace(":", "-") == nodes.hostlist()


def test_hostlist_compresses_declared_hosts():
    assert hl.compress(["n01", "n02", "n03", "n05", "login", "n006"]) == "n[01-03],n05,login,n006"
    assert expand(hl.compress(["a-1", "a-2", "b-10", "b-11"])) == ["a-1", "a-2", "b-10", "b-11"]


def _parse(text: str) -> list[dict[str, str]]:
    """slurm.conf-style lines as dicts (the tests' own reader, independent of the renderer)."""
    return [dict(tok.split("=", 1) for tok in line.split()) for line in text.splitlines()
            if line and not line.startswith("#")]


def test_block_topology_has_one_block_per_nvlink_domain():
    """topology/block needs Slurm 23.11 (Debian 12 has 22.05), so check it against the plan."""
    plan, _ = planned(NVL72)
    pool = plan.pools[0]
    files = rendered(NVL72)
    assert "TopologyPlugin=topology/block" in files["slurm/hall/slurm.conf"]
    blocks = _parse(files["slurm/hall/topology.conf"])
    assert len(blocks) == pool.nvlink_domains == 3
    members = [expand(b["Nodes"]) for b in blocks]
    assert all(len(m) == 72 // pool.gpus_per_node == 18 for m in members)
    assert sum(members, []) == [f"rack-{i:04d}" for i in range(1, 55)]
    assert {b["BlockName"] for b in blocks} == {"rack-nvl0001", "rack-nvl0002", "rack-nvl0003"}


def _slurm(spec: str, release=None) -> tuple[dict, list[dict], str]:
    """(plan pools by name, topology.conf lines, the TopologyPlugin) for the lock's Slurm, or
    for ``release`` (the renderer's override, for releases no supported OS ships)."""
    from aifactory.render import slurm

    plan, _ = planned(spec)
    files = slurm.files(plan, plan.catalog()) if release is None else slurm.files(plan, plan.catalog(), release)
    plugin = re.search(r"^TopologyPlugin=(\S+)$", files["slurm/hall/slurm.conf"], re.M).group(1)
    return {p.name: p for p in plan.pools}, _parse(files["slurm/hall/topology.conf"]), plugin


def _switch_tree(topo: list[dict]) -> tuple[dict[str, list[str]], str]:
    """Every node's leaf switch, checking that the switches form one tree: each node under one
    leaf, each switch under one parent, one root."""
    assert all("SwitchName" in t and "BlockName" not in t for t in topo)
    assert not any(k.startswith("Block") for t in topo for k in t)
    leaves: dict[str, list[str]] = {}
    parent: dict[str, str] = {}
    for t in topo:
        if "Nodes" in t:
            leaves[t["SwitchName"]] = expand(t["Nodes"])
        for child in expand(t.get("Switches", "")):
            assert child not in parent, f"{child} has two parents"
            parent[child] = t["SwitchName"]
    names = [t["SwitchName"] for t in topo]
    assert len(set(names)) == len(names) and set(parent) <= set(names)
    roots = [n for n in names if n not in parent]
    assert len(roots) == 1, roots
    nodes = [n for members in leaves.values() for n in members]
    assert len(set(nodes)) == len(nodes), "a node under two leaves"
    return leaves, roots[0]


@pytest.mark.parametrize("os_name,release", [("debian-12", "22.05"), ("ubuntu-22.04", "21.08")])
def test_slurm_before_23_11_gets_a_tree_with_one_leaf_per_nvlink_domain(os_name, release):
    """No topology/block before 23.11: the NVL72 pool's NVLink domains are leaf switches, so a
    job still fits in one domain first, and slurmctld loads the file (test_slurmctld.py)."""
    pools, topo, plugin = _slurm(nvl72_spec(45, os_name))
    assert plugin == "topology/tree"
    leaves, root = _switch_tree(topo)
    assert [len(m) for m in leaves.values()] == [18, 18, 9]  # a short domain is a smaller switch
    assert sum(leaves.values(), []) == [f"rack-{i:04d}" for i in range(1, 46)]
    assert root == "rack-nvl" and list(leaves) == ["rack-nvl0001", "rack-nvl0002", "rack-nvl0003"]


def test_slurm_23_11_gets_equal_blocks_and_no_block_sizes():
    """23.11 has BlockLevels (its default 0-4 is wanted) but no BlockSizes, and stops on blocks of
    different node counts: the partly filled last rack is left out of the blocks."""
    pools, topo, plugin = _slurm(nvl72_spec(63, "ubuntu-24.04"))
    assert plugin == "topology/block"
    assert all(set(t) == {"BlockName", "Nodes"} for t in topo), "no BlockSizes or BlockLevels for 23.11"
    members = [expand(t["Nodes"]) for t in topo]
    assert [len(m) for m in members] == [18, 18, 18]
    assert sum(members, []) == [f"rack-{i:04d}" for i in range(1, 55)]  # rack-0055..0063 in no block


def test_slurm_24_11_block_sizes_start_at_one_nvl72_domain_and_leave_out_a_short_block():
    pools, topo, plugin = _slurm(nvl72_spec(63, "ubuntu-24.04"), (24, 11))
    pool = pools["rack"]
    assert plugin == "topology/block"
    *blocks, sizes = topo
    assert list(sizes) == ["BlockSizes"] and all(set(b) == {"BlockName", "Nodes"} for b in blocks)
    base = pool.nvlink_domain_gpus // pool.gpus_per_node
    assert base == 18 and sizes["BlockSizes"].split(",")[0] == "18"  # GB200 NVL72: 72 GPUs, 4 per tray
    # Higher sizes are doublings of the base, none larger than all blocks together.
    assert [int(v) for v in sizes["BlockSizes"].split(",")] == [18, 36]
    assert [len(expand(b["Nodes"])) for b in blocks] == [18, 18, 18]
    whole = _slurm(nvl72_spec(54 * 6, "ubuntu-24.04"), (24, 11))[1]
    assert whole[-1] == {"BlockSizes": "18,36,72,144,288"} and len(whole) == 18 + 1  # Slurm's levels 0-4


def test_debian_13_gets_the_blocks_of_its_own_slurm_24_11():
    """The lock of a Debian 13 factory holds Slurm 24.11, so its topology is 24.11's without an
    override: blocks with BlockSizes, the short block left out."""
    pools, topo, plugin = _slurm(nvl72_spec(63, "debian-13"))
    assert pools["rack"].nodes == 63 and plugin == "topology/block"
    assert (topo, plugin) == _slurm(nvl72_spec(63, "ubuntu-24.04"), (24, 11))[1:]
    assert topo[-1] == {"BlockSizes": "18,36"}


def test_slurm_25_05_takes_the_short_block():
    pools, topo, plugin = _slurm(nvl72_spec(63, "ubuntu-24.04"), (25, 5))
    *blocks, sizes = topo
    assert [len(expand(b["Nodes"])) for b in blocks] == [18, 18, 18, 9]
    assert sizes == {"BlockSizes": "18,36,72"}


def test_an_os_without_its_own_slurm_gets_the_tree_every_release_loads():
    pools, topo, plugin = _slurm(nvl72_spec(36, "rhel-9"))
    assert plugin == "topology/tree" and list(_switch_tree(topo)[0]) == ["rack-nvl0001", "rack-nvl0002"]


@pytest.mark.parametrize("release", [None, (24, 11), (25, 5)])
def test_a_mixed_factory_keeps_its_switch_tree(release):
    """An NVL72 pool and an HGX pool on one fabric at one site: the HGX pool keeps the same
    switch tree it has on its own, and the NVL72 domains join it as leaf switches."""
    pools, topo, plugin = _slurm(nvl72_spec(36, "ubuntu-24.04", hgx=40), release)
    assert plugin == "topology/tree"
    leaves, root = _switch_tree(topo)
    alone = _parse(rendered(nvl72_spec(0, "ubuntu-24.04", hgx=40))["slurm/hall/topology.conf"])
    assert alone and all(t in topo for t in alone), "the HGX pool's tree is the one it has alone"
    assert {n: len(m) for n, m in leaves.items()} == {"rack-nvl0001": 18, "rack-nvl0002": 18,
                                                       "ib-t1-0001": 32, "ib-t1-0002": 8}
    assert root == "hall-root"


def test_a_pool_without_a_switch_tree_leaves_the_nvl72_blocks_alone():
    """A pool with no fabric tree to lose shares the site's topology/block without a block of its
    own; its partition holds no block node, so slurmctld places its jobs without topology."""
    pools, topo, plugin = _slurm(nvl72_spec(36, "ubuntu-24.04", hgx=8, hgx_fabric="eth"))
    assert plugin == "topology/block"
    assert [t["BlockName"] for t in topo] == ["rack-nvl0001", "rack-nvl0002"]


def _settings(text: str) -> list[tuple[str, str]]:
    """(key, value) of every setting line of slurm.conf, in order (node and partition lines too)."""
    return [tuple(line.split("=", 1)) for line in text.splitlines() if line and not line.startswith("#")]


def test_the_control_plane_lines_come_from_the_plan():
    """onprem-dgx names a primary and a backup controller and local accounting: SlurmctldHost
    lines in that order, configless nodes, slurmdbd on the primary on its default port."""
    plan, _ = planned(STACKS / "onprem-dgx" / "factory.yaml")
    (cluster,) = plan.slurm
    conf = rendered(STACKS / "onprem-dgx" / "factory.yaml")["slurm/hall1/slurm.conf"]
    settings = _settings(conf)
    assert [v for k, v in settings if k == "SlurmctldHost"] == cluster.controllers == ["dgx-001", "dgx-002"]
    assert dict(settings)["SlurmctldParameters"] == "enable_configless"
    assert dict(settings)["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert dict(settings)["AccountingStorageHost"] == cluster.accounting_host == "dgx-001"
    assert "AccountingStoragePort" not in dict(settings)  # slurmdbd's own port: slurmctld's default
    assert dict(settings)["AccountingStorageTRES"] == "gres/gpu"
    assert "storage both must mount" in conf  # a backup needs a shared StateSaveLocation, and the file says so
    assert [k for k, _ in settings].index("SlurmctldHost") < [k for k, _ in settings].index("NodeName")


def test_external_accounting_and_the_default_partition_as_the_spec_names_them():
    spec = nvl72_spec(36, "ubuntu-24.04", hgx=8) + EXTERNAL_ACCOUNTING
    settings = _settings(rendered(spec)["slurm/hall/slurm.conf"])
    assert [v for k, v in settings if k == "SlurmctldHost"] == ["hgx-0001"]
    assert ("AccountingStorageHost", "slurmdbd.example.com") in settings
    assert ("AccountingStoragePort", "7031") in settings
    partitions = {line.split()[0]: line for k, line in ((k, f"{k}={v}") for k, v in settings)
                  if k == "PartitionName"}
    assert "Default=YES" in partitions["PartitionName=hgx"] and "Default=NO" in partitions["PartitionName=rack"]
    # Without the section: the first Slurm pool is the default partition and hosts the controller.
    default = _settings(rendered(nvl72_spec(36, "ubuntu-24.04", hgx=8))["slurm/hall/slurm.conf"])
    assert [v for k, v in default if k == "SlurmctldHost"] == ["rack-0001"]
    assert [v.split()[0] for k, v in default if k == "PartitionName" and "Default=YES" in v] == ["rack"]


def test_gres_conf_matches_the_plan():
    plan, _ = planned(STACKS / "superpod-h100" / "factory.yaml")
    pool = plan.pools[0]
    lines = _parse(rendered(STACKS / "superpod-h100" / "factory.yaml")["slurm/dc1/gres.conf"])
    devices = [d for ln in lines for d in expand(ln["File"])]
    assert devices == [f"/dev/nvidia{i}" for i in range(pool.gpus_per_node)]
    assert [ln["Cores"] for ln in lines] == ["0-55", "56-111"]
    assert {ln["NodeName"] for ln in lines} == {"dgx-[0001-0127]"}
    assert {ln["Type"] for ln in lines} == {"h100_sxm"}


def test_three_tier_tree_groups_leaves_into_pods():
    plan, _ = planned(BIG)
    fabric = plan.fabrics[0]
    topo = _parse(rendered(BIG)["slurm/dc/topology.conf"])
    leaves = [t for t in topo if "Nodes" in t]
    assert len(leaves) == fabric.scalable_units == 3125
    assert sum(len(expand(t["Nodes"])) for t in leaves) == 100_000
    tops = [t for t in topo if t["SwitchName"].endswith("-top")]
    assert len(tops) == 1
    # Every switch but the top is listed under exactly one parent.
    children = [c for t in topo if "Switches" in t for c in expand(t["Switches"])]
    assert sorted(children) == sorted(t["SwitchName"] for t in topo if t not in tops)


def test_nccl_settings_follow_the_table_precedence():
    plan, _ = planned(STACKS / "multicloud" / "factory.yaml")
    by_pool = {p.name: {s["variable"]: s["value"] for s in settings(p)} for p in plan.pools}
    assert by_pool["aws"]["FI_EFA_USE_HUGE_PAGE"] == "0"
    assert by_pool["azure"]["NCCL_TOPO_FILE"] == "/opt/microsoft/ndv5/topo.xml"
    assert by_pool["azure"]["NCCL_IB_PCI_RELAXED_ORDERING"] == "1"
    assert by_pool["azure"]["NCCL_IB_HCA"] == "mlx5_ib"  # provider row replaces the fabric row
    assert by_pool["oci"]["NCCL_IB_GID_INDEX"] == "3" and by_pool["oci"]["NCCL_IB_HCA"].startswith("=mlx5_0,")
    assert by_pool["gcp"]["NCCL_NET"] == "FasTrak"
    assert by_pool["onprem"]["NCCL_IB_HCA"].startswith("=mlx5_0,mlx5_3")  # dgx-h100 system row
    assert not any(k.startswith("NCCL_IB") for k in by_pool["aws"])


def test_nccl_profile_is_shell_safe(tmp_path):
    files = rendered(STACKS / "multicloud" / "factory.yaml")
    profile = tmp_path / "nccl.sh"
    profile.write_text(files["nccl/aws/nccl.sh"])
    r = subprocess.run(["bash", "-c", f". {profile} && printf %s \"$NCCL_SOCKET_IFNAME\""], capture_output=True,
                       text=True, env={"PATH": os.environ["PATH"]})
    assert r.stdout == "^docker,lo,veth"


def test_manifest_lists_every_file(tmp_path):
    plan, factory = planned(STACKS / "lab" / "factory.yaml")
    result = render(plan, tmp_path)
    import json

    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(result.written)
    again = render(plan, tmp_path)
    assert again.cached and not again.written


def test_100k_node_factory_renders_within_budget(tmp_path):
    """Scale target: 100,000 nodes in under 10 s; a no-change rerun writes nothing, >= 5x faster."""
    import time

    plan, factory = planned(BIG)
    t = time.perf_counter()
    first = render(plan, tmp_path)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    again = render(plan, tmp_path)
    t_again = time.perf_counter() - t
    assert t_first < 10, f"first render took {t_first:.1f}s"
    assert again.written == [] and again.removed == []
    assert t_first >= 5 * t_again, f"rerun {t_again:.3f}s vs first {t_first:.3f}s"
    slurm = (tmp_path / "slurm" / "dc" / "slurm.conf").read_text()
    assert "NodeName=gpu-[000001-100000] " in slurm and len(first.written) < 30


@pytest.mark.parametrize("case", ["aws-p5", "lab", "multicloud", "onprem-dgx", "superpod-h100", "campus-10gw"])
def test_render_from_plan_json_is_byte_identical_to_render_from_the_spec(tmp_path, case):
    """The plan reviewed in a pull request is the plan deployed: render and inventory take it as is."""
    spec_file = STACKS / case / "factory.yaml"
    plan_file = tmp_path / "reviewed-plan.json"
    r = _cli("plan", str(spec_file), "--format", "json")
    assert r.returncode == 0, r.stderr
    plan_file.write_text(r.stdout)
    for command in ("render", "inventory"):
        a, b = tmp_path / f"{command}-spec", tmp_path / f"{command}-plan"
        assert _cli(command, str(spec_file), "--out", str(a)).returncode == 0
        r = _cli(command, str(plan_file), "--out", str(b))
        assert r.returncode == 0, r.stderr
        assert _tree(a) == _tree(b) and _tree(a)
    # the deployment's own plan.json is a plan too
    again = tmp_path / "again"
    assert _cli("render", str(tmp_path / "render-spec" / "plan.json"), "--out", str(again)).returncode == 0
    assert _tree(again) == _tree(tmp_path / "render-spec")


def test_a_hostile_plan_json_is_refused_like_a_hostile_spec(tmp_path):
    import json

    r = _cli("plan", str(STACKS / "onprem-dgx" / "factory.yaml"), "--format", "json")
    data = json.loads(r.stdout)
    cases = {
        "ip": lambda d: d["pools"][0]["hosts"][0].update(ip="fe80::1%{{lookup('pipe','id')}}"),
        "name": lambda d: d["pools"][0].update(name="../../etc"),
        "ssh_user": lambda d: d["access"].update(ssh_user="root\nx"),
        "extra": lambda d: d.update(extra_field=1),
        "duplicate": lambda d: d["pools"][0]["hosts"][1].update(mac=d["pools"][0]["hosts"][0]["mac"]),
        "version": lambda d: d.update(schema_version=99),
        "nodes": lambda d: d["pools"][0].update(nodes=-1),
        "controller": lambda d: d["slurm"][0].update(controllers=["dgx-001\nSlurmctldHost=evil"]),
        "slurm_release": lambda d: d["software"].update(slurm="{{ 7*7 }}"),
    }
    for what, mutate in cases.items():
        bad = json.loads(json.dumps(data))
        mutate(bad)
        path = tmp_path / f"{what}.json"
        path.write_text(json.dumps(bad))
        r = _cli("render", str(path), "--out", str(tmp_path / f"out-{what}"))
        assert r.returncode == 1 and "Traceback" not in r.stderr, (what, r.stderr)
        assert str(path) in r.stderr and len(r.stderr.strip().splitlines()) == 1, (what, r.stderr)
        assert not (tmp_path / f"out-{what}").exists()
