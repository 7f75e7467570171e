"""The main job end to end: `aifactory up` on a lab stack, for real (root, debootstrap)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from aifactory import lab, plan, spec
from aifactory.lab.cluster import LabCluster
from tests.conftest import need_root, require_tool


def test_upstream_version_drops_epoch_and_revision():
    assert lab.upstream("535.261.03-1~deb12u1") == "535.261.03"
    assert lab.upstream("1:2.3-4") == "2.3"


def test_lab_stack_refuses_cloud_pools(repo, tmp_path):
    doc = yaml.safe_load((repo / "stacks/lab/factory.yaml").read_text())
    doc["sites"].append({"name": "aws1", "provider": "aws", "region": "us-east-1"})
    doc["pools"].append({"name": "p5", "site": "aws1", "provider": "aws", "system": "p5.48xlarge", "nodes": 1,
                         "zones": ["us-east-1a"]})
    (tmp_path / "factory.yaml").write_text(yaml.safe_dump(doc))
    loaded = spec.load(tmp_path / "factory.yaml")
    with pytest.raises(lab.AifactoryError, match="lab pools only"):
        lab.lab_nodes(plan.build(loaded), tmp_path)


def test_down_of_a_stack_that_was_never_up_says_so(repo, tmp_path):
    shutil.copy(repo / "stacks/lab/factory.yaml", tmp_path / "factory.yaml")
    said = []
    assert lab.down(tmp_path, say=said.append) == 0 and "no lab" in said[0]


@pytest.mark.slow
@pytest.mark.root
def test_up_converges_matches_the_lock_and_tears_down(repo, tmp_path):
    need_root()
    require_tool("debootstrap", "debootstrap")
    stack = tmp_path / "lab"
    stack.mkdir()
    shutil.copy(repo / "stacks/lab/factory.yaml", stack / "factory.yaml")
    cli = [sys.executable, "-m", "aifactory"]

    try:
        _up_twice(cli, stack)
    finally:
        down = subprocess.run([*cli, "down", str(stack)], capture_output=True, text=True)
    assert down.returncode == 0 and "removed 2 lab node(s)" in down.stdout, down.stdout + down.stderr
    assert "stopped" in down.stdout and "lab process(es)" in down.stdout
    assert not lab.state_dir(stack).exists()
    cluster = LabCluster(lab.state_dir(stack), {})
    assert cluster.bridge_ns not in LabCluster._namespaces()  # the lab network is gone too


def _up_twice(cli, stack):
    first = subprocess.run([*cli, "up", str(stack)], capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "all nodes healthy" in first.stdout and "job 1 COMPLETED" in first.stdout, first.stdout[-3000:]
    # The job ran hostname on both nodes and saw the GPUs gres.conf declares on each.
    for host in ("gpu-0001", "gpu-0002"):
        assert f"  {host}\n" in first.stdout and f"  {host}: GPUs 0,1,2,3,4,5,6,7\n" in first.stdout
    # sacct's record, printed: the job on both nodes with their 16 GPUs, COMPLETED.
    record = re.search(r"│ 1 +│ aifactory-lab +│ gpu-\[0001-0002\] +│ (\S+) +│ (\w+) +│ 0:0", first.stdout)
    assert record and "gres/gpu=16" in record[1] and record[2] == "COMPLETED", first.stdout[-3000:]

    loaded = spec.load(stack / "factory.yaml")
    lock = plan.build(loaded).software
    nodes = lab.lab_nodes(plan.build(loaded), lab.state_dir(stack))
    assert [n.name for n in nodes] == ["gpu-0001", "gpu-0002"]
    for node in nodes:
        packages, held = lab.read_back(node)  # read inside the node, not from the spec
        for pkg in lab.DRIVER_PACKAGES:
            assert lab.upstream(packages[pkg]) == lock.driver == "535.261.03"
            assert pkg in held
        assert {"rdma-core", "opensm", "slurmd"} <= set(packages)
    assert (lab.state_dir(stack) / "deploy" / "plan.json").is_file()

    # A real cluster: a node's own network namespace on the lab bridge, its own host name, slurmd
    # configured by the controller (no local slurm.conf), the munge key private to munge.
    state = lab.state_dir(stack)
    root1, root2 = (n.root for n in nodes)
    assert not (root2 / "etc/slurm/slurm.conf").exists()
    sinfo = subprocess.run([*cli, "exec", str(stack), "gpu-0002", "--", "sinfo", "-h", "-o", "%P %D %t"],
                           capture_output=True, text=True)
    assert sinfo.returncode == 0 and sinfo.stdout.split() == ["gpu*", "2", "idle"], sinfo.stdout + sinfo.stderr
    name = subprocess.run([*cli, "exec", str(stack), "gpu-0002", "--", "hostname"], capture_output=True, text=True)
    assert name.stdout == "gpu-0002\n"
    key = subprocess.run([*cli, "exec", str(stack), "gpu-0002", "--", "stat", "-c", "%U %a", "/etc/munge/munge.key"],
                         capture_output=True, text=True)
    assert key.stdout == "munge 400\n"
    assert (root1 / "etc/munge/munge.key").read_bytes() == (root2 / "etc/munge/munge.key").read_bytes()
    assert oct((state / "secrets.yml").stat().st_mode & 0o777) == "0o600"
    # Nothing of the lab listens on this machine's own interfaces: its daemons are in the lab's
    # namespaces (slurmd's port is open on gpu-0002's eth0, not here).
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    for daemon in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"):
        assert f'"{daemon}"' not in listening, listening
    inside = subprocess.run([*cli, "exec", str(stack), "gpu-0002", "--", "cat", "/proc/net/tcp"],
                            capture_output=True, text=True)
    assert ":1AA2 " in inside.stdout  # 6818, slurmd, in the node's namespace

    second = subprocess.run([*cli, "up", str(stack)], capture_output=True, text=True)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "converged: zero changes" in second.stdout
    assert "0 config file(s) written" in second.stdout
    assert "started: nothing (all running)" in second.stdout and "job 2 COMPLETED" in second.stdout
    for node in nodes:  # nothing stays mounted inside the stack folder between runs
        assert not lab._mounted(node.root / "proc")
