"""The rendered Slurm configuration, read by the real slurmctld (Debian 12: Slurm 22.05).

slurmctld runs in the foreground on loopback with auth/none and a temporary state directory.
Only settings that tie the file to real hosts are replaced (the primary controller becomes
localhost and a backup keeps its name on a loopback address, user, auth, state paths, ports,
the slurmdbd host becomes localhost on a port where nothing listens); node, partition, gres,
topology, accounting and plugin lines are used verbatim, except that each node gets a loopback
NodeAddr: slurmctld resolves every node name at start, and the planned names are not in this
machine's DNS. A fresh slurmctld stops when slurmdbd is unreachable (it fetches its TRES from
the database), so the accounting settings are left as rendered only where a test proves that
slurmctld loads them and contacts slurmdbd; elsewhere accounting is off (``NEEDS_SLURMDBD``;
tests/slurm/test_control_plane.py runs a real slurmdbd). No slurmd runs, so nodes stay UNKNOWN;
what is asserted is what slurmctld understood: names, CPUs, memory, GRES and the switch tree.
gres.conf is read by slurmd, which checks the local CPUs and /dev/nvidia* against it, so it
cannot run here; gres.conf lines are checked against the plan in test_render.py.

Debian 12's Slurm (22.05) has no topology/block (23.11+): there NVL72 pools get a switch tree,
which this slurmctld loads. topology/block is read by Debian 13's slurmctld (24.11), run in a
Debian 13 root filesystem (debootstrap, cached as a tarball like the Debian 12 one; needs root):
the renderer is asked for the release that slurmctld reports, so the file under test is the one
a Debian 13 factory gets.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional

import pytest

from aifactory.configure.rootfs import debian_mirror, default_cache_dir
from aifactory.render import slurm
from tests.conftest import need_root, require_tool
from tests.render.helpers import (EXTERNAL_ACCOUNTING, LOGIN_QOS_FAIRSHARE, STACKS, expand, nvl72_spec, planned,
                                 rendered)

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
    out = subprocess.run([*ctld.scontrol, "show", "hostnames", hostlist], env=ctld.env, check=True,
                         capture_output=True, text=True)
    return out.stdout.split()


# The settings that need a running slurmdbd (tests/slurm/test_control_plane.py runs one): a fresh
# slurmctld fetches its TRES from the database and stops without it, and gres/gpu accounting
# needs the slurmdbd plugin. Left as rendered only where a test asks for it (accounting=True).
NEEDS_SLURMDBD = {"AccountingStorageType": "accounting_storage/none", "AccountingStorageTRES": None,
                  "AccountingStorageEnforce": None}


def _local_conf(src: dict[str, str], cluster: str, tmp: Path, root: Path = Path("/"), accounting: bool = False) -> Path:
    """slurm.conf and its companions of ``cluster`` (``slurm/<cluster>/``: a cluster per site is
    named after its site) in ``tmp``, with paths as a slurmctld chrooted to ``root`` sees them;
    returns slurm.conf's path as that slurmctld sees it."""
    for name in ("slurm.conf", "gres.conf", "topology.conf", "cgroup.conf"):
        key = f"slurm/{cluster}/{name}"
        if key in src:
            (tmp / name).write_text(src[key])
    state = tmp / "state"
    state.mkdir()
    inside = Path("/") / tmp.relative_to(root)
    local = dict(LOCAL, StateSaveLocation=str(inside / "state"), SlurmdSpoolDir=str(inside / "spool"),
                 SlurmctldPidFile=str(inside / "slurmctld.pid"), SlurmctldPort=str(_free_port()),
                 SlurmctldLogFile=str(inside / "slurmctld.log"), AccountingStorageHost="localhost",
                 AccountingStoragePort=str(_free_port()))
    lines, seen, next_addr = [], set(), 1
    for line in (tmp / "slurm.conf").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key == "SlurmctldHost" and key in seen:  # a backup: its own name, on an address never contacted
            line = f"{line}(127.0.0.2)"
        elif key in NEEDS_SLURMDBD and not accounting:
            if NEEDS_SLURMDBD[key] is None:
                continue
            line = f"{key}={NEEDS_SLURMDBD[key]}"
        elif key in local:
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
    return inside / "slurm.conf"


class Slurmctld:
    """slurmctld in the foreground, on this machine or chrooted to a root filesystem ``root``."""

    def __init__(self, conf: Path, root: Optional[Path] = None, log: Optional[Path] = None):
        self.conf = conf
        self.log = log
        self.env = dict(os.environ, SLURM_CONF=str(conf))
        chroot = ["chroot", str(root)] if root else []
        daemon = "slurmctld" if root else require_tool("slurmctld", "slurmctld")
        self.proc = subprocess.Popen([*chroot, daemon, "-D", "-f", str(conf)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.scontrol = [*chroot, "scontrol" if root else require_tool("scontrol", "slurm-client")]

    def exited(self, timeout: float = 30) -> tuple[int, str]:
        """Exit status and log of a slurmctld expected to stop on its own (a config it refuses)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError("slurmctld kept running")
        out = self.proc.stdout.read()
        return code, out + (self.log.read_text() if self.log and self.log.exists() else "")

    def show(self, *args: str) -> str:
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([*self.scontrol, "show", *args], env=self.env, capture_output=True, text=True)
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


def _start(files: dict[str, str], cluster: str, tmp_path: Path, root: Optional[Path] = None,
           accounting: bool = False) -> Slurmctld:
    if root:
        tmp_path = Path(tempfile.mkdtemp(prefix="slurm-", dir=root / "tmp"))
        return Slurmctld(_local_conf(files, cluster, tmp_path, root, accounting), root, tmp_path / "slurmctld.log")
    require_tool("slurmctld", "slurmctld")
    require_tool("scontrol", "slurm-client")
    return Slurmctld(_local_conf(files, cluster, tmp_path, accounting=accounting), log=tmp_path / "slurmctld.log")


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


def _config(ctld: Slurmctld) -> dict[str, str]:
    """``scontrol show config``: what slurmctld runs with, key -> value."""
    return dict(re.findall(r"^(\S+)\s+= (.*)$", ctld.show("config"), re.M))


def test_the_planned_control_plane_is_what_slurmctld_runs(tmp_path):
    """onprem-dgx: a primary and a backup controller, configless nodes, accounting through
    slurmdbd on the primary with GPU use recorded, the planned default partition."""
    plan, _ = planned(STACKS / "onprem-dgx" / "factory.yaml")
    (cluster,) = plan.slurm
    files = rendered(STACKS / "onprem-dgx" / "factory.yaml")
    # As rendered, slurmctld loads the slurmdbd plugin and registers with it before anything else;
    # with no slurmdbd there (tests/slurm/test_control_plane.py runs one) a fresh controller stops.
    (tmp_path / "dbd").mkdir()
    code, log = _start(files, "hall1", tmp_path / "dbd", accounting=True).exited()
    assert code != 0 and "Registering slurmctld at port" in log, log[-3000:]
    assert re.search(r"failed to open persistent connection to host:localhost:\d+", log), log[-3000:]
    assert "we have no TRES from it" in log
    (tmp_path / "run").mkdir()
    ctld = _start(files, "hall1", tmp_path / "run")
    try:
        config = _config(ctld)
        backup = cluster.controllers[1]
        # The primary, where this slurmctld runs (shown as `<hostname>(localhost)`), then the backup.
        assert re.fullmatch(r"(\S+\()?localhost\)?", config["SlurmctldHost[0]"]), config["SlurmctldHost[0]"]
        assert config["SlurmctldHost[1]"] == f"{backup}(127.0.0.2)"
        assert "enable_configless" in config["SlurmctldParameters"].split(",")
        assert config["ClusterName"] == "onprem-dgx-hall1"
        # Jobs keep slurmd's unlimited memlock (RDMA registers memory), not the shell's limit.
        assert config["PropagateResourceLimitsExcept"] == "MEMLOCK"
        part = _fields(ctld.show("partition", cluster.default_partition))
        assert part["Default"] == "YES" and part["Nodes"] == "dgx-[001-004]"
    finally:
        ctld.stop()


def test_external_accounting_and_another_default_partition_are_what_slurmctld_runs(tmp_path):
    spec = nvl72_spec(18, "debian-12", hgx=8) + EXTERNAL_ACCOUNTING
    plan, _ = planned(spec)
    files = slurm.files(plan, plan.catalog())
    conf = files["slurm/hall/slurm.conf"]
    assert "AccountingStorageHost=slurmdbd.example.com\nAccountingStoragePort=7031\n" in conf
    ctld = _start(files, "hall", tmp_path)
    try:
        defaults = {name: _fields(ctld.show("partition", name))["Default"] for name in ("hgx", "rack")}
        assert defaults == {"hgx": "YES", "rack": "NO"}
    finally:
        ctld.stop()


def test_multicloud_one_cluster_over_every_provider_is_accepted(tmp_path):
    """The example's one cluster: every pool's nodes and partition, and each site a switch tree of
    its own that slurmctld takes as it is (it warns that no switch reaches every node)."""
    plan, _ = planned(STACKS / "multicloud" / "factory.yaml")
    files = rendered(STACKS / "multicloud" / "factory.yaml")
    ctld = _start(files, "global", tmp_path)
    try:
        out = ctld.show("node", "-o")
        records = {r["NodeName"]: r for r in (_fields(line) for line in out.splitlines()
                                               if line.startswith("NodeName="))}
        assert sorted(records) == sorted(n for p in plan.pools for n in p.host_names())
        for pool in plan.pools:
            part = _fields(ctld.show("partition", pool.name))
            assert part["TotalNodes"] == str(pool.nodes), pool.name
            assert part["Default"] == ("YES" if pool.name == "onprem" else "NO")
            assert {records[n]["Partitions"] for n in pool.host_names()} == {pool.name}
        assert _config(ctld)["ClusterName"] == "multicloud-global"
        # One pool per site here: each site's tree is one switch, and no switch is above another.
        switches = _switches(ctld)
        assert {s["Level"] for s in switches.values()} == {"0"}
        under = {n: set(_expand(ctld, s["Nodes"])) for n, s in switches.items()}
        assert sorted(map(len, under.values())) == sorted(p.nodes for p in plan.pools)
        assert set().union(*under.values()) == set(records)
        assert "no switch can reach all nodes through its descendants" in ctld.log.read_text()
    finally:
        ctld.stop()


def test_multicloud_per_site_every_site_is_accepted(tmp_path):
    """Without its slurm: section each site is its own cluster; slurmctld takes every one of them."""
    text = (STACKS / "multicloud" / "factory.yaml").read_text()
    plan, _ = planned(text[:text.index("\nslurm:")] + "\n")
    files = slurm.files(plan, plan.catalog())
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


def test_login_qos_and_fairshare_are_what_slurmctld_runs(tmp_path):
    """A cluster with login nodes, QoS and fair-share: slurmctld runs multifactor priority with the
    planned weights and half-life. As rendered, with AccountingStorageEnforce, it will not start
    before slurmdbd is up (slurm.yml sets up slurmdbd first)."""
    spec = nvl72_spec(18, "debian-12", hgx=8) + LOGIN_QOS_FAIRSHARE
    plan, _ = planned(spec)
    files = slurm.files(plan, plan.catalog())
    conf = files["slurm/hall/slurm.conf"]
    assert "AccountingStorageEnforce=associations,limits,qos\n" in conf
    (tmp_path / "dbd").mkdir()
    code, log = _start(files, "hall", tmp_path / "dbd", accounting=True).exited()
    assert code != 0 and "Registering slurmctld at port" in log, log[-3000:]
    assert "slurmdbd and/or database must be up at slurmctld start time" in log, log[-3000:]
    (tmp_path / "run").mkdir()
    ctld = _start(files, "hall", tmp_path / "run")
    try:
        config = _config(ctld)
        assert config["PriorityType"] == "priority/multifactor"
        assert config["PriorityDecayHalfLife"] == "14-00:00:00"
        assert (config["PriorityWeightFairShare"], config["PriorityWeightAge"], config["PriorityWeightQOS"],
                config["PriorityWeightJobSize"]) == ("10000", "1000", "5000", "100")
        nodes = [_fields(line) for line in ctld.show("node", "-o").splitlines() if line.startswith("NodeName=")]
        assert len(nodes) == 18 + 8
    finally:
        ctld.stop()


def _switches(ctld: Slurmctld) -> dict[str, dict[str, str]]:
    topo = ctld.show("topology")
    return {m["SwitchName"]: m for m in (_fields(line) for line in topo.splitlines() if line.strip())}


def test_nvl72_beside_an_hgx_pool_is_one_switch_tree_slurm_22_05_loads(tmp_path):
    """Debian 12 (Slurm 22.05, no topology/block): the NVL72 pool's NVLink domains, the partly
    filled one too, are leaf switches; the HGX pool on the same fabric keeps its scalable-unit
    leaves; one root joins both."""
    spec = nvl72_spec(45, "debian-12", hgx=40)
    plan, _ = planned(spec)
    files = slurm.files(plan, plan.catalog())
    assert "TopologyPlugin=topology/tree" in files["slurm/hall/slurm.conf"]
    ctld = _start(files, "hall", tmp_path)
    try:
        switches = _switches(ctld)
        leaves = {n: _expand(ctld, s["Nodes"]) for n, s in switches.items() if s["Level"] == "0"}
        assert {n: len(m) for n, m in leaves.items()} == {
            "rack-nvl0001": 18, "rack-nvl0002": 18, "rack-nvl0003": 9, "ib-t1-0001": 32, "ib-t1-0002": 8}
        assert sorted(sum(leaves.values(), [])) == sorted(n for p in plan.pools for n in p.host_names())
        assert _expand(ctld, switches["rack-nvl"]["Switches"]) == ["rack-nvl0001", "rack-nvl0002", "rack-nvl0003"]
        assert sorted(_expand(ctld, switches["hall-root"]["Switches"])) == ["ib-top", "rack-nvl"]
        assert max(int(s["Level"]) for s in switches.values()) == int(switches["hall-root"]["Level"])
    finally:
        ctld.stop()


# Debian 13's Slurm (24.11), in a root filesystem of its own: the distribution release that loads
# topology/block with BlockSizes.
DEBIAN_13 = ("trixie", ("slurmctld", "slurm-client"))


def _debian_13_tarball(cache: Path) -> Path:
    tarball = cache / "debian-13-slurmctld.tar.gz"
    if tarball.is_file():
        return tarball
    debootstrap = require_tool("debootstrap", "debootstrap")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debian-13-", dir=cache))
    try:
        suite, include = DEBIAN_13
        r = subprocess.run([debootstrap, "--variant=minbase", f"--include={','.join(include)}", suite,
                            str(work / "tree"), debian_mirror()], capture_output=True, text=True)
        assert r.returncode == 0, f"debootstrap {suite} failed:\n{(r.stdout + r.stderr)[-4000:]}"
        for deb in (work / "tree/var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        with tarfile.open(work / "tree.tar.gz", "w:gz", compresslevel=1) as tar:
            tar.add(work / "tree", arcname=".")
        os.replace(work / "tree.tar.gz", tarball)  # atomic: a reader sees the whole tarball or none
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


@pytest.fixture(scope="module")
def debian_13(tmp_path_factory):
    """A Debian 13 tree with slurmctld and scontrol, and the (major, minor) Slurm release it has."""
    need_root()
    cache = Path(os.environ.get("AIFACTORY_CACHE_DIR", default_cache_dir()))
    root = tmp_path_factory.mktemp("debian-13")
    with tarfile.open(_debian_13_tarball(cache), "r:gz") as tar:
        tar.extractall(root, filter="fully_trusted")  # our own tarball, made as root
    # slurmctld resolves the controller's name and reads /proc/self; the tree has neither.
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        version = subprocess.run(["chroot", str(root), "slurmctld", "-V"], capture_output=True, text=True,
                                 check=True).stdout
        major, minor = re.search(r"(\d+)\.(\d+)\.\d+", version).groups()
        yield root, (int(major), int(minor))
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def test_debian_13_slurmctld_loads_whole_nvl72_blocks(debian_13):
    """Slurm 24.11 takes BlockSizes=18 and one block per whole NVL72 rack; the partly filled rack
    and a pool without a switch tree stay out of the blocks, which slurmctld accepts."""
    root, release = debian_13
    assert release == (24, 11), "Debian 13 ships Slurm 24.11"
    plan, _ = planned(nvl72_spec(63, "ubuntu-24.04", hgx=8, hgx_fabric="eth"))
    files = slurm.files(plan, plan.catalog(), release)
    assert "TopologyPlugin=topology/block" in files["slurm/hall/slurm.conf"]
    ctld = _start(files, "hall", Path(), root)
    try:
        blocks = [_fields(line) for line in ctld.show("topology").splitlines() if line.startswith("BlockName=")]
        assert [b["BlockName"] for b in blocks] == ["rack-nvl0001", "rack-nvl0002", "rack-nvl0003"]
        assert {b["BlockSize"] for b in blocks} == {"18"}
        assert sum((_expand(ctld, b["Nodes"]) for b in blocks), []) == [f"rack-{i:04d}" for i in range(1, 55)]
        nodes = [_fields(line) for line in ctld.show("node", "-o").splitlines() if line.startswith("NodeName=")]
        assert len(nodes) == 63 + 8  # every node is configured, in a block or not
        assert _fields(ctld.show("partition", "rack"))["Nodes"] == "rack-[0001-0063]"
        log = ctld.log.read_text()
        assert re.search(r"blocks lack access to 17 nodes: .*rack-\[0055-0063\]", log), log[-2000:]
    finally:
        ctld.stop()


def test_debian_13_slurmctld_refuses_the_short_block_only_25_05_takes(debian_13):
    """Why the short block is left out before 25.05: the file 25.05+ gets stops Slurm 24.11."""
    root, release = debian_13
    plan, _ = planned(nvl72_spec(63, "ubuntu-24.04"))
    code, log = _start(slurm.files(plan, plan.catalog(), (25, 5)), "hall", Path(), root).exited()
    assert code != 0 and "Block configuration (rack-nvl0004) children count lower than bblock_node_cnt" in log


def test_debian_13_slurmctld_loads_the_tree_of_a_mixed_factory(debian_13):
    """An NVL72 pool beside an HGX pool on one fabric keeps the switch tree on 24.11 too."""
    root, release = debian_13
    plan, _ = planned(nvl72_spec(36, "ubuntu-24.04", hgx=40))
    files = slurm.files(plan, plan.catalog(), release)
    ctld = _start(files, "hall", Path(), root)
    try:
        switches = _switches(ctld)
        leaves = {n: len(_expand(ctld, s["Nodes"])) for n, s in switches.items() if s["Level"] == "0"}
        assert leaves == {"rack-nvl0001": 18, "rack-nvl0002": 18, "ib-t1-0001": 32, "ib-t1-0002": 8}
        assert sorted(_expand(ctld, switches["hall-root"]["Switches"])) == ["ib-top", "rack-nvl"]
    finally:
        ctld.stop()
