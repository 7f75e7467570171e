"""Target 2: the deployment directory of a 100,000-node factory renders in under 10 s and
under 1 GiB peak memory; rendering takes no longer than `ansible-inventory --list` takes to
load the result (ratio <= 1.0); a rerun with no change writes zero files and is >= 5x faster."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from .harness import Result, run_measured

NODES = 100_000

# One child process per render, so wall time and peak memory are the render's own.
_RENDER = """
import json, sys, time
from aifactory import plan, spec
from aifactory.render.deployment import render
t = time.perf_counter()
loaded = spec.load(sys.argv[1])
result = render(plan.build(loaded), sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "written": len(result.written),
                  "unchanged": result.unchanged}))
"""


def factory(nodes: int) -> dict:
    """100,000 DGX H100 in two halls on a rail-optimized InfiniBand fabric each."""
    half = nodes // 2
    return {
        "name": "bench-100k",
        "software": {"driver_branch": "580", "cuda": "13.0"},
        "sites": [{"name": f"hall{i}", "power_mw": 1000, "pue": 1.2, "rack_kw": 45} for i in (1, 2)],
        "fabrics": [{"name": f"ib{i}", "type": "infiniband", "switch": "qm9700"} for i in (1, 2)],
        "pools": [{"name": f"gpu{i}", "site": f"hall{i}", "provider": "onprem", "system": "dgx-h100",
                   "nodes": half, "fabric": f"ib{i}"} for i in (1, 2)],
    }


def run() -> list[Result]:
    import subprocess
    import time

    work = Path(tempfile.mkdtemp(prefix="aifactory-bench-render-"))
    try:
        spec = work / "factory.yaml"
        spec.write_text(yaml.safe_dump(factory(NODES), sort_keys=False))
        out = work / "out"

        def child(extra_env=None):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", _RENDER, str(spec), str(out)], check=True,
                                  capture_output=True, text=True)
            return time.perf_counter() - start, json.loads(proc.stdout)

        _, peak = run_measured([sys.executable, "-c", _RENDER, str(spec), str(out)])
        shutil.rmtree(out)
        wall_first, report_first = child()  # timed again with its own report of files written
        wall_second, report_second = child()
        # The rendering itself (load, plan, render), measured inside the process: the rerun
        # ratio compares work, not the ~0.3 s interpreter start both processes pay.
        first, second = report_first["seconds"], report_second["seconds"]
        inventory = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent)) or "ansible-inventory"
        start = time.perf_counter()
        subprocess.run([inventory, "-i", str(out / "inventory"), "--list"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load = time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return [
        Result(f"render: {NODES:,} nodes, first run (process wall time)", wall_first, "s", "< 10 s",
               wall_first < 10),
        Result(f"render: {NODES:,} nodes, first run (in process)", first, "s", "-", None),
        Result("render: peak memory (RSS)", peak / 2**20, "MiB", "< 1024 MiB", peak < 2**30),
        Result("render: files written, first run", report_first["written"], "files", "-", None),
        Result("ansible-inventory --list of the result", load, "s", "-", None),
        Result("render (wall) / ansible-inventory load", wall_first / load, "x", "<= 1.0", wall_first / load <= 1.0),
        Result("render: rerun with no change (process wall time)", wall_second, "s", "-", None),
        Result("render: rerun with no change (in process)", second, "s", "-", None),
        Result("render: files written by the rerun", report_second["written"], "files", "0", report_second["written"] == 0),
        Result("render: first / rerun (in process)", first / second, "x", ">= 5", first / second >= 5),
    ]
