"""A catalog overlay (``catalog:`` in a spec, or AIFACTORY_CATALOG) is planned, rendered and
deployed with its rows; the plan carries them, so a reviewed plan file renders the same bytes
anywhere, and a hostile overlay in a plan file is refused like one in a spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from aifactory import catalog
from aifactory.plan import build
from aifactory.render.deployment import build_files
from aifactory.spec import load_string

from .helpers import REPO, STACKS

SYSTEM = {"id": "acme-h200", "name": "Acme 8-GPU H200 server", "gpu": "h200-sxm", "gpus_per_node": 8,
          "nvlink_domain_gpus": 8, "node_kw": 11.0, "rack_units": 8, "nodes_per_rack": None, "nvswitch": True,
          "fabric_manager": True, "nvlsm": False, "imex": False, "cpu_arch": "x86_64", "compute_nics": 8,
          "nic_gbps": 400, "source": "Acme quote 2026-11"}
HARDWARE = {"system": "acme-h200", "sockets": 2, "cores_per_socket": 32, "threads_per_core": 2, "memory_gib": 1024,
            "source": "Acme quote 2026-11"}
NCCL = {"scope": "system", "key": "acme-h200", "variable": "NCCL_IB_HCA", "value": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5",
        "source": "Acme quote 2026-11"}


def spec_text() -> str:
    spec = yaml.safe_load((STACKS / "onprem-dgx" / "factory.yaml").read_text())
    for pool in spec["pools"]:
        pool["system"] = "acme-h200"
        pool.pop("hosts", None)
    spec.pop("slurm")  # it names two of the declared hosts as controllers; the defaults need none
    spec["catalog"] = {"systems": [SYSTEM], "node_hardware": [HARDWARE], "nccl_env": [NCCL]}
    return yaml.safe_dump(spec, sort_keys=False)


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "aifactory", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120)


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_overlay_rows_reach_the_rendered_files():
    files = build_files(build(load_string(spec_text(), "f.yaml")))
    pool = next(p for p in files if p.startswith("nccl/") and p.endswith("nccl.conf"))
    assert "NCCL_IB_HCA==mlx5_0,mlx5_3,mlx5_4,mlx5_5" in files[pool]
    slurm = next(text for path, text in files.items() if path.endswith("slurm.conf"))
    assert "CPUs=128 Sockets=2 CoresPerSocket=32 ThreadsPerCore=2" in slurm
    assert "acme-h200" not in catalog.load().systems  # nothing leaks into the packaged catalog


def test_render_from_the_plan_file_equals_render_from_the_spec(tmp_path):
    spec_file = tmp_path / "factory.yaml"
    spec_file.write_text(spec_text())
    r = _cli("plan", str(spec_file), "--format", "json")
    assert r.returncode == 0, r.stderr
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(r.stdout)
    assert json.loads(r.stdout)["catalog_overlay"][0][0] == "systems"
    a, b = tmp_path / "from-spec", tmp_path / "from-plan"
    assert _cli("render", str(spec_file), "--out", str(a)).returncode == 0
    r = _cli("render", str(plan_file), "--out", str(b))
    assert r.returncode == 0, r.stderr
    assert _tree(a) == _tree(b)


def test_the_environment_overlay_is_recorded_in_the_plan(tmp_path):
    """Rows from AIFACTORY_CATALOG are planned with and carried by the plan: the plan file then
    renders without the folder."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    for name, row in (("systems", SYSTEM), ("node_hardware", HARDWARE)):
        cols = catalog.TABLES[name].columns
        (folder / f"{name}.csv").write_text(",".join(cols) + "\n" + ",".join(catalog.cell_text(row[c]) for c in cols) + "\n")
    spec = yaml.safe_load(spec_text())
    spec.pop("catalog")
    spec_file = tmp_path / "factory.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    assert _cli("validate", str(spec_file)).returncode == 1  # acme-h200 is unknown without the folder
    env = dict(os.environ, AIFACTORY_CATALOG=str(folder))
    r = _cli("plan", str(spec_file), "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(r.stdout)
    r = _cli("render", str(plan_file), "--out", str(tmp_path / "out"))  # no AIFACTORY_CATALOG here
    assert r.returncode == 0, r.stderr
    assert "CoresPerSocket=32" in next((tmp_path / "out" / "slurm").rglob("slurm.conf")).read_text()


def test_a_hostile_overlay_in_a_plan_file_is_refused(tmp_path):
    r = _cli("plan", str(STACKS / "onprem-dgx" / "factory.yaml"), "--format", "json")
    data = json.loads(r.stdout)
    row = [[k, v] for k, v in NCCL.items()]
    for column, payload in (("value", "$(touch /tmp/aifactory-pwned)"), ("source", "x {{ lookup('pipe','id') }}"),
                            ("variable", "LD_PRELOAD=/tmp/x.so NCCL_X")):
        data["catalog_overlay"] = [["nccl_env", [[k, payload if k == column else v] for k, v in row]]]
        plan_file = tmp_path / "plan.json"
        plan_file.write_text(json.dumps(data))
        r = _cli("render", str(plan_file), "--out", str(tmp_path / "out"))
        assert r.returncode == 1 and f"catalog_overlay: catalog overlay: catalog overlay row 1 (nccl_env): {column}" \
            in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    data["catalog_overlay"] = [["no_such_table", []]]
    (tmp_path / "plan.json").write_text(json.dumps(data))
    r = _cli("render", str(tmp_path / "plan.json"), "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and "unknown catalog table" in r.stderr
