"""`aifactory status` on a running lab: the controller's `sinfo --json`, each node's lock file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import need_root, require_tool


@pytest.mark.slow
@pytest.mark.root
def test_status_of_a_running_lab(repo, tmp_path):
    need_root()
    require_tool("debootstrap", "debootstrap")
    stack = tmp_path / "lab"
    stack.mkdir()
    shutil.copy(repo / "stacks/lab/factory.yaml", stack / "factory.yaml")
    cli = [sys.executable, "-m", "aifactory"]
    try:
        up = subprocess.run([*cli, "up", str(stack)], capture_output=True, text=True)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        done = subprocess.run([*cli, "status", str(stack), "-f", "json"], capture_output=True, text=True)
        data = json.loads(done.stdout)
        assert done.returncode == 0, json.dumps(data["nodes"], indent=1) + done.stderr
        assert [(n["node"], n["slurm_state"], n["lock"], n["provisioned"]) for n in data["nodes"]] == [
            ("gpu-0001", "IDLE", "match", True), ("gpu-0002", "IDLE", "match", True)]
        drain = subprocess.run([*cli, "exec", str(stack), "gpu-0001", "--", "scontrol", "update", "nodename=gpu-0002",
                                "state=drain", "reason=xid 79 on GPU 3"], capture_output=True, text=True)
        assert drain.returncode == 0, drain.stderr
        done = subprocess.run([*cli, "status", str(stack), "-f", "json"], capture_output=True, text=True)
        assert done.returncode == 3, done.stdout + done.stderr
        second = json.loads(done.stdout)["nodes"][1]
        assert second["slurm_state"].startswith("IDLE+DRAIN") and second["drain_reason"] == "xid 79 on GPU 3"
    finally:
        subprocess.run([*cli, "down", str(stack)], capture_output=True, text=True)
