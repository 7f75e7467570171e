"""The rendered Slurm configuration, read by the real slurmctld (Debian 12: Slurm 22.05).

slurmctld runs in the foreground on loopback with auth/none and a temporary state directory.
Only settings that tie the file to a real controller host are replaced (controller name, user,
auth, state paths, port); node, partition, gres, topology and plugin lines are used verbatim,
except that each node gets a loopback NodeAddr: slurmctld resolves every node name at start,
and the planned names are not in this machine's DNS. No slurmd runs, so nodes stay UNKNOWN;
what is asserted is what slurmctld understood: names, CPUs, memory, GRES and the switch tree.
gres.conf is read by slurmd, which checks the local CPUs and /dev/nvidia* against it, so it
cannot run here; gres.conf lines are checked against the plan in test_render.py.

Debian 12's Slurm has no topology/block (23.11+); the block topology of NVL72 pools is
checked against the plan by the parser test in test_render.py and by the golden files.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.render.helpers import STACKS, expand, planned, rendered

pytestmark = pytest.mark.slow

LOCAL = {
    "SlurmctldHost": "localhost",
    "SlurmUser": "root",
    "AuthType": "auth/none",
    "CredType": "cred/none",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expand(ctld: "Slurmctld", hostlist: str) -> list[str]:
    """Slurm's own expansion of a hostlist (scontrol needs a slurm.conf to run at all)."""
    out = subprocess.run([ctld.scontrol, "show", "hostnames", hostlist], env=ctld.env, check=True,
                         capture_output=True, text=True)
    return out.stdout.split()


def _local_conf(src: dict[str, str], site: str, tmp: Path) -> Path:
    for name in ("slurm.conf", "gres.conf", "topology.conf", "cgroup.conf"):
        key = f"slurm/{site}/{name}"
        if key in src:
            (tmp / name).write_text(src[key])
    state = tmp / "state"
    state.mkdir()
    local = dict(LOCAL, StateSaveLocation=str(state), SlurmdSpoolDir=str(tmp / "spool"),
                 SlurmctldPidFile=str(tmp / "slurmctld.pid"), SlurmctldPort=str(_free_port()),
                 SlurmctldLogFile=str(tmp / "slurmctld.log"))
    lines, seen, next_addr = [], set(), 1
    for line in (tmp / "slurm.conf").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in local:
            line = f"{key}={local[key]}"
            seen.add(key)
        elif key == "NodeName":
            names = expand(line.split()[0].split("=", 1)[1])
            addrs = [f"127.0.{(next_addr + i) // 250}.{(next_addr + i) % 250 + 1}" for i in range(len(names))]
            next_addr += len(names)
            line = f"{line} NodeAddr={','.join(addrs)}"
        lines.append(line)
    lines += [f"{k}={v}" for k, v in local.items() if k not in seen]
    (tmp / "slurm.conf").write_text("\n".join(lines) + "\n")
    return tmp / "slurm.conf"


class Slurmctld:
    def __init__(self, conf: Path):
        self.conf = conf
        self.env = dict(os.environ, SLURM_CONF=str(conf))
        self.proc = subprocess.Popen([require_tool("slurmctld", "slurmctld"), "-D", "-f", str(conf)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.scontrol = require_tool("scontrol", "slurm-client")

    def show(self, *args: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([self.scontrol, "show", *args], env=self.env, capture_output=True, text=True)
            if r.returncode == 0:
                return r.stdout
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.proc.stdout.read() if self.proc.poll() is not None else ""
                raise AssertionError(f"scontrol show {' '.join(args)} failed: {r.stderr}\n{log[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(files: dict[str, str], site: str, tmp_path: Path) -> Slurmctld:
    require_tool("slurmctld", "slurmctld")
    require_tool("scontrol", "slurm-client")
    return Slurmctld(_local_conf(files, site, tmp_path))


def _fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", text))


def test_superpod_tree_and_nodes_as_planned(tmp_path):
    plan, _ = planned(STACKS / "superpod-h100" / "factory.yaml")
    fabric = plan.fabrics[0]
    pool = plan.pools[0]
    files = rendered(STACKS / "superpod-h100" / "factory.yaml")
    ctld = _start(files, "dc1", tmp_path)
    try:
        topo = ctld.show("topology")
        switches = {m["SwitchName"]: m for m in (_fields(line) for line in topo.splitlines() if line.strip())}
        leaves = {n: s for n, s in switches.items() if s["Level"] == "0"}
        tops = {n: s for n, s in switches.items() if s["Level"] == "1"}
        # One leaf per scalable unit (4 SU of 32 slots), one top over them, as the plan sized it.
        assert len(leaves) == fabric.scalable_units == 4
        assert list(tops) == ["compute-top"]
        assert _expand(ctld, tops["compute-top"]["Switches"]) == sorted(leaves)
        under = [n for s in sorted(leaves) for n in _expand(ctld, leaves[s]["Nodes"])]
        assert under == [f"dgx-{i:04d}" for i in range(1, pool.nodes + 1)]

        nodes = ctld.show("node", "-o")
        records = [_fields(line) for line in nodes.splitlines() if line.startswith("NodeName=")]
        assert len(records) == pool.nodes == 127
        first = next(r for r in records if r["NodeName"] == "dgx-0001")
        assert first["Gres"] == f"gpu:h100_sxm:{pool.gpus_per_node}"
        assert first["CPUTot"] == "224" and first["Sockets"] == "2" and first["ThreadsPerCore"] == "2"
        assert first["Partitions"] == "dgx"
        assert "h100_sxm" in first["AvailableFeatures"]
        part = _fields(ctld.show("partition", "dgx"))
        assert part["TotalNodes"] == "127" and part["Nodes"] == "dgx-[0001-0127]"
    finally:
        ctld.stop()


def test_multicloud_every_site_is_accepted(tmp_path):
    """Each cloud site is its own cluster; slurmctld takes every one of them."""
    plan, _ = planned(STACKS / "multicloud" / "factory.yaml")
    files = rendered(STACKS / "multicloud" / "factory.yaml")
    for pool in plan.pools:
        d = tmp_path / pool.site
        d.mkdir()
        ctld = _start(files, pool.site, d)
        try:
            out = ctld.show("node", "-o")
            records = [_fields(line) for line in out.splitlines() if line.startswith("NodeName=")]
            assert len(records) == pool.nodes, pool.name
            assert {r["Gres"] for r in records} == {f"gpu:h100_sxm:{pool.gpus_per_node}"}
        finally:
            ctld.stop()

