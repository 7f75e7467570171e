"""aifactory diff OLD NEW on real plan JSON from the CLI."""

from __future__ import annotations

import subprocess
import sys

from tests.render.helpers import REPO, STACKS


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "aifactory", *args], capture_output=True, text=True, cwd=REPO)


def _plan(tmp_path, name: str, text: str):
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(text)
    r = _cli("plan", str(spec), "--format", "json")
    assert r.returncode == 0, r.stderr
    out = tmp_path / f"{name}.json"
    out.write_text(r.stdout)
    return out


def test_diff_explains_nodes_gpus_power_and_versions(tmp_path):
    base = (STACKS / "multicloud" / "factory.yaml").read_text()
    old = _plan(tmp_path, "old", base)
    changed = base.replace('software: {driver_branch: "580", cuda: "13.0"}',
                           'software: {driver_branch: "580", cuda: "12.8"}')
    changed = changed.replace("system: p5.48xlarge, nodes: 16", "system: p5.48xlarge, nodes: 24")
    changed = changed.replace("  - {name: oci, site: oci-iad", "  # - {name: oci, site: oci-iad")
    changed = changed.replace(", oci-iad]", "]")  # a Slurm cluster names only sites with Slurm pools
    new = _plan(tmp_path, "new", changed)
    r = _cli("diff", str(old), str(new))
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "pool aws: nodes 16 -> 24 (+8)" in text
    assert "pool aws: gpus 128 -> 192 (+64)" in text
    assert "pool oci removed: 8 x BM.GPU.H100.8 (64 GPUs), 81.6 kW" in text
    assert "software cuda: 13.0 -> 12.8" in text
    assert "gpus: 640 -> 640 (+0)" not in text  # +64 and -64 cancel: totals line omitted
    assert "pool aws: power 163.2 -> 244.8 (+81.6) kW" in text
    assert "software dcgm_package: datacenter-gpu-manager-4-cuda13 -> datacenter-gpu-manager-4-cuda12" in text
    md = _cli("diff", str(old), str(new), "--format", "markdown").stdout
    assert md.startswith("### aifactory diff") and "| total | before | after | change |" in md
    assert "- pool aws: nodes 16 -> 24 (+8)" in md


def test_diff_of_identical_plans_says_so(tmp_path):
    p = _plan(tmp_path, "same", (STACKS / "lab" / "factory.yaml").read_text())
    r = _cli("diff", str(p), str(p))
    assert r.returncode == 0 and r.stdout == "no changes between lab and lab\n"


def test_diff_refuses_a_file_that_is_not_a_plan(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"name": "x"}')
    r = _cli("diff", str(bad), str(bad))
    assert r.returncode == 1 and "not a plan JSON file" in r.stderr and "Traceback" not in r.stderr


def test_diff_takes_specs_of_any_name_prints_json_and_gates_on_changes(tmp_path):
    import json

    base = (STACKS / "superpod-h100" / "factory.yaml").read_text()
    assert "switch: qm9700" in base
    old = tmp_path / "main-branch.yml"
    old.write_text(base)
    new = tmp_path / "proposal"
    new.write_text(base.replace("switch: qm9700", "switch: q3400"))
    r = _cli("diff", str(old), str(new), "-f", "json", "--exit-code")
    assert r.returncode == 3, r.stderr
    data = json.loads(r.stdout)
    assert data["changed"] is True and "fabric compute: switch qm9700 -> q3400" in data["changes"]
    same = _cli("diff", str(old), str(old), "--exit-code", "-f", "json")
    assert same.returncode == 0 and json.loads(same.stdout) == {
        "old": "superpod-h100", "new": "superpod-h100", "changed": False, "totals": [], "changes": []}
    # a plan JSON against the spec it came from: no change
    plan = _plan(tmp_path, "plan", base)
    assert _cli("diff", str(plan), str(old), "--exit-code").returncode == 0


def test_diff_of_a_broken_spec_is_located():
    r = _cli("diff", str(STACKS / "lab" / "factory.yaml"), str(REPO / "README.md"))
    assert r.returncode == 1 and "Traceback" not in r.stderr and "README.md:" in r.stderr


def test_a_site_without_facility_power_is_a_change_not_a_crash(tmp_path):
    import json

    plan = _plan(tmp_path, "p", (STACKS / "multicloud" / "factory.yaml").read_text())
    data = json.loads(plan.read_text())
    del data["sites"][1]["facility_kw"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(data))
    r = _cli("diff", str(plan), str(bare))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"site {data['sites'][1]['name']}: facility power" in r.stdout


def test_diff_shows_the_slurm_control_plane(tmp_path):
    """Who runs slurmctld and slurmdbd, the login nodes, QoS and fair-share are changes a reviewer
    must see: a pull request that moves the controller to another provider says so."""
    base = (STACKS / "multicloud" / "factory.yaml").read_text()
    assert "      controller: {pool: onprem}\n" in base
    old = _plan(tmp_path, "old", base)
    changed = base.replace("      controller: {pool: onprem}\n", "      controller: {pool: aws}\n"
                           "      login: [{pool: gcp}]\n"
                           "      qos: [{name: high, priority: 100, max_wall: 12h}]\n"
                           "      fairshare: {decay_half_life_days: 7}\n")
    changed = changed.replace("      default_partition: onprem\n", "      default_partition: aws\n")
    new = _plan(tmp_path, "new", changed)
    r = _cli("diff", str(old), str(new), "--exit-code")
    assert r.returncode == 3, r.stderr
    assert "slurm cluster global: controllers onprem-0001 -> aws-0001" in r.stdout
    assert "slurm cluster global: login none -> gcp-0001" in r.stdout
    assert "slurm cluster global: accounting local on onprem-0001:6819 -> local on aws-0001:6819" in r.stdout
    assert "slurm cluster global: default partition onprem -> aws" in r.stdout
    assert "slurm cluster global: QoS high added" in r.stdout
    assert "slurm cluster global: fair-share off -> on" in r.stdout
    tweaked = _plan(tmp_path, "tweaked", changed.replace("max_wall: 12h", "max_wall: 1d"))
    again = _cli("diff", str(new), str(tweaked))
    assert again.stdout == "slurm cluster global: QoS high: max_wall 720 -> 1440\n", again.stdout
    # A layout change: one cluster per site instead of one across them.
    per_site = _plan(tmp_path, "per-site", base[:base.index("slurm:")])
    split = _cli("diff", str(old), str(per_site)).stdout
    assert "slurm cluster global removed" in split
    assert "slurm cluster dc1 added: sites dc1; controllers onprem-0001; accounting local on onprem-0001" in split
