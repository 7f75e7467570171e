"""The Slurm control plane for real: the roles run into two Debian 12 root filesystems, then the
daemons they set up are started there and a job runs.

The factory is tests/configure/two-nodes.yaml, with no ``slurm:`` section: the plan puts the
controller and accounting on the first node of its Slurm pool. So ``gpu-0001`` (controller,
slurmdbd, MariaDB, and a compute node too) and ``gpu-0002`` (compute) are two trees from the
cached debootstrap tarball, configured through community.general.chroot by playbooks/slurm.yml
from the inventory `aifactory inventory` writes: its controller and accounting groups, the
rendered configuration for the controller, and the configless server for the nodes.
Each then gets its own network namespace, joined by a veth pair (10.231.0.1 and .2), and its own
hostname; every daemon runs in its tree, in its namespace, and all Slurm traffic stays there.
Nothing here runs systemd, so the test starts each daemon the way its unit would (slurmd with
the SLURMD_OPTIONS the role wrote) and stops every process it started, even on failure.

slurm.conf is the one `aifactory render` writes, SlurmctldHost, configless and accounting lines
included, with only the edits a chroot without cgroups or GPUs forces (listed below); they reach
the controller as host variables over the inventory's group variables.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aifactory import lab
from aifactory.configure.rootfs import default_cache_dir, ensure_rootfs
from tests.conftest import need_root, require_tool
from tests.configure.conftest import HERE, chroot_inventory, in_root

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent
FACTORY = HERE / "two-nodes.yaml"
# The plan's controller (the first node of the first Slurm pool) and the other node.
CTL, NODE = "gpu-0001", "gpu-0002"
ADDRESSES = {CTL: "10.231.0.1", NODE: "10.231.0.2"}
SITE = "lab"

# Only what the chroot forces, nothing a controller needs: a chroot has no cgroup hierarchy of its
# own (and no systemd to delegate one), no GPUs and no PMIx library, so Slurm's cgroup-free plugins
# instead. slurmd 22.05 loads a cgroup plugin even then; naming cgroup/v1 skips the autodetection,
# which fails without /sys/fs/cgroup, and v1's init touches no hierarchy.
CHROOT_SETTINGS = {
    "ProctrackType": "proctrack/linuxproc",
    "TaskPlugin": "task/none",
    "JobAcctGatherType": "jobacct_gather/linux",
    "MpiDefault": "none",
    "PrologFlags": None,  # Contain needs proctrack/cgroup
}
CHROOT_CGROUP = "CgroupPlugin=cgroup/v1\n"


def set_setting(text: str, key: str, value: str | None) -> str:
    """``key=value`` in place of the rendered line (dropped for None)."""
    line = re.compile(rf"^{key}=.*\n", re.M)
    assert line.search(text), f"{key} is not in the rendered slurm.conf"
    return line.sub("" if value is None else f"{key}={value}\n", text, count=1)


def lab_slurm_conf(rendered: str) -> str:
    """The rendered slurm.conf with the chroot's settings."""
    text = rendered
    for key, value in CHROOT_SETTINGS.items():
        text = set_setting(text, key, value)
    # The catalog's HGX H100 (224 CPUs, 8 GPUs) is not this machine: one CPU and 1000 MiB is
    # less than any runner has, and slurmd accepts a node larger than configured. No GPUs: no Gres
    # on the node line, and no gres.conf (it names /dev/nvidia*, which slurmd checks).
    node = re.search(r"^NodeName=gpu-\[0001-0002\] .*$", text, re.M)
    assert node, text
    fields = dict(f.split("=", 1) for f in node.group(0).split())
    kept = {k: fields[k] for k in ("NodeName", "Features", "State")}
    line = " ".join(f"{k}={v}" for k, v in {**kept, "CPUs": 1, "RealMemory": 1000}.items())
    return text.replace(node.group(0), line)


class Cluster:
    """Two trees, two network namespaces, and every process started in them."""

    def __init__(self, base: Path, cache: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.roots = {CTL: base / "ctl", NODE: base / "node"}
        self.ns = {CTL: f"aifactory-slurm-{tag}-ctl", NODE: f"aifactory-slurm-{tag}-node"}
        self.logs = base / "logs"
        self.logs.mkdir()
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.stack = contextlib.ExitStack()
        for root in self.roots.values():
            ensure_rootfs(root, cache)
        self.stack.enter_context(lab.proc_mounted([lab.LabNode(h, "slurm", r) for h, r in self.roots.items()]))

    def network(self) -> None:
        for host, ns in self.ns.items():
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        tag = self.ns[CTL].split("-")[2]
        ends = {CTL: f"aif{tag}c", NODE: f"aif{tag}n"}
        subprocess.run(["ip", "link", "add", ends[CTL], "netns", self.ns[CTL], "type", "veth",
                        "peer", "name", ends[NODE], "netns", self.ns[NODE]], check=True)
        for host, ns in self.ns.items():
            subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ADDRESSES[host]}/24",
                            "dev", ends[host]], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", ends[host], "up"], check=True)
        # What DNS would say on a real cluster (the rendered slurm.conf asks for it).
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {h}\n" for h, a in ADDRESSES.items())
        for root in self.roots.values():
            (root / "etc/hosts").write_text(hosts)

    def run(self, host: str, *argv: str, input: str | None = None, timeout: int = 60) -> subprocess.CompletedProcess:
        """A command in ``host``'s tree and network namespace (never on this machine's network)."""
        return subprocess.run(["ip", "netns", "exec", self.ns[host], "chroot", str(self.roots[host]), *argv],
                              input=input, capture_output=True, text=True, timeout=timeout)

    def start(self, host: str, name: str, script: str) -> subprocess.Popen:
        """``script`` (sh, in the tree) under ``host``'s hostname, in its own session."""
        log = open(self.logs / f"{name}.log", "w")
        argv = ["ip", "netns", "exec", self.ns[host], "unshare", "--uts", "chroot", str(self.roots[host]),
                "/bin/sh", "-c", f"hostname {host} && exec {script}"]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def _ours(self) -> set[int]:
        """Every process in our namespaces or trees (slurmstepd included), by its id."""
        pids = {p.pid for _, p in self.procs if p.poll() is None}
        for ns in self.ns.values():
            listed = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            pids |= {int(p) for p in listed.stdout.split()}
        roots = tuple(str(r.resolve()) for r in self.roots.values())
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root").startswith(roots):
                        pids.add(int(entry.name))
        pids.discard(os.getpid())
        return pids

    def close(self) -> None:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for pid in self._ours():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self._ours() and time.monotonic() < deadline:
                for _, proc in self.procs:
                    proc.poll()
                time.sleep(0.2)
        for _, proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.stack.close()
        # Two trees are 1.5 GB: gone once nothing is mounted in them (the daemon logs stay).
        with open("/proc/mounts", encoding="utf-8") as fh:
            mounts = [line.split()[1] for line in fh]
        for root in self.roots.values():
            if not any(m == str(root.resolve()) or m.startswith(f"{root.resolve()}/") for m in mounts):
                shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def cluster(tmp_path_factory):
    need_root()
    require_tool("debootstrap", "debootstrap")
    require_tool("ip", "iproute2")
    require_tool("unshare", "util-linux")
    cache = Path(os.environ.get("AIFACTORY_CACHE_DIR", default_cache_dir()))
    made = Cluster(tmp_path_factory.mktemp("slurm"), cache)
    try:
        yield made
    finally:
        made.close()


def wait_for(what: str, probe, timeout: float = 60.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def playbook(inventory: Path, facts: Path, *args: str) -> tuple[dict[str, tuple[int, int, int]], str]:
    """ansible-playbook slurm.yml; per host (ok, changed, failed + unreachable), and its output."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(facts), ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "slurm.yml", *args],
                          cwd=PLAYBOOKS, capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    recap = {m[1]: (int(m[2]), int(m[3]), int(m[4]) + int(m[5])) for m in RECAP.finditer(proc.stdout)}
    assert proc.returncode == 0 and recap and all(v[2] == 0 for v in recap.values()), out[-6000:]
    return recap, out


def stat(root: Path, path: str) -> str:
    """``owner group mode size`` as the tree's own users see it."""
    return in_root(root, "stat", "-c", "%U %G %a %s", path).stdout.strip()


def test_roles_set_up_a_cluster_that_runs_a_job(cluster, tmp_path):
    from aifactory import plan as planning
    from aifactory import spec
    from aifactory.render.deployment import build_files

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 1)
        clock = now

    ctl, node = cluster.roots[CTL], cluster.roots[NODE]
    plan = planning.build(spec.load(FACTORY))
    assert [(c.controllers, c.accounting_host) for c in plan.slurm] == [([CTL], CTL)]
    rendered = build_files(plan)
    # What the controller needs is in the rendered file already; the role checks it again.
    for line in (f"SlurmctldHost={CTL}", "SlurmctldParameters=enable_configless",
                 "AccountingStorageType=accounting_storage/slurmdbd", f"AccountingStorageHost={CTL}"):
        assert f"\n{line}\n" in rendered[f"slurm/{SITE}/slurm.conf"], line
    slurm_conf = lab_slurm_conf(rendered[f"slurm/{SITE}/slurm.conf"])
    cgroup_conf = rendered[f"slurm/{SITE}/cgroup.conf"] + CHROOT_CGROUP
    topology_conf = rendered[f"slurm/{SITE}/topology.conf"]
    cluster_name = re.search(r"^ClusterName=(\S+)$", slurm_conf, re.M).group(1)

    # The plan's inventory as `aifactory inventory` writes it (the controller and accounting groups,
    # the controller's rendered files, the nodes' configless server, the Slurm release), and per
    # host the chroot connection; on the controller, the chroot's versions of two rendered files,
    # and no gres.conf (no GPUs here).
    out = chroot_inventory(tmp_path / "out", {NODE: node, CTL: ctl}, factory=FACTORY, extra={CTL: {
        "slurm_controller_conf_content": slurm_conf,
        "slurm_controller_cgroup_conf_content": cgroup_conf,
        "slurm_controller_gres_conf_content": "",
    }})
    inventory = out / "inventory"
    assert (inventory / "group_vars/slurm_controller_lab.yml").is_file()
    # Secrets as a secret store hands them over: a file only root reads, never in the inventory.
    password = secrets.token_hex(16)
    vault = tmp_path / "secrets.yml"
    vault.touch(mode=0o600)
    vault.write_text(yaml.safe_dump({"slurm_accounting_storage_pass": password}))
    facts = tmp_path / "facts"
    lap("trees and inventory")

    # 0. A dry run on fresh trees predicts work and does none.
    recap, text = playbook(inventory, facts, "-e", f"@{vault}", "--check")
    assert recap[CTL][1] > 0 and recap[NODE][1] > 0, text
    assert in_root(ctl, "dpkg-query", "-W", "slurmctld").returncode != 0, "check mode installed slurmctld"
    assert not (ctl / "etc/slurm/slurm.conf").exists()
    lap("playbook: check")

    # 1. Everything installed and configured; the munge key created once on the controller.
    recap, text = playbook(inventory, facts, "-e", f"@{vault}")
    assert recap[CTL][1] >= 8 and recap[NODE][1] >= 5, text
    assert password not in text
    created = (ctl / "etc/munge/munge.key").read_bytes()
    assert len(created) == 1024
    assert (node / "etc/munge/munge.key").read_bytes() == created  # not the node's own install-time key
    assert base64.b64encode(created).decode() not in text
    for root in (ctl, node):
        assert stat(root, "/etc/munge/munge.key") == "munge munge 400 1024"
        assert in_root(root, "systemctl", "is-enabled", "munge").stdout.strip() == "enabled"
    assert (ctl / "etc/slurm/slurm.conf").read_text() == slurm_conf
    assert (ctl / "etc/slurm/topology.conf").read_text() == topology_conf
    assert stat(ctl, "/var/spool/slurmctld").startswith("slurm slurm 700 ")
    assert stat(ctl, "/etc/slurm/slurmdbd.conf").startswith("slurm slurm 600 ")
    assert f"StoragePass={password}\n" in (ctl / "etc/slurm/slurmdbd.conf").read_text()
    assert not (node / "etc/slurm/slurm.conf").exists()  # configless: the controller's copy only
    # Both nodes are configless from the controller (the controller is a compute node too).
    options = {}
    for host, root in cluster.roots.items():
        found = re.search(r'^SLURMD_OPTIONS="(.*)"$', (root / "etc/default/slurmd").read_text(), re.M)
        assert found and found.group(1) == f"--conf-server {CTL}", host
        options[host] = found.group(1)
        dropin = (root / "etc/systemd/system/slurmd.service.d/configless.conf").read_text()
        assert "[Unit]\nConditionPathExists=\n" in dropin
    for root, units in ((ctl, ("slurmctld", "slurmdbd", "mariadb", "slurmd")), (node, ("slurmd",))):
        for unit in units:
            assert in_root(root, "systemctl", "is-enabled", unit).stdout.strip() == "enabled", unit
    held = set(in_root(ctl, "apt-mark", "showhold").stdout.split())
    assert {"slurmctld", "slurmdbd", "slurm-client", "slurmd"} <= held, held
    # Every Slurm daemon from the lock's release, on both hosts.
    for root, package in ((ctl, "slurmctld"), (ctl, "slurmdbd"), (ctl, "slurmd"), (node, "slurmd")):
        version = in_root(root, "dpkg-query", "-W", "-f=${Version}", package).stdout
        assert version.startswith(plan.software.slurm + "."), (package, version)
    lap("playbook: install")

    # 2. The operator's key from a secret store replaces the created one on every host.
    key = secrets.token_bytes(1024)
    vault.write_text(yaml.safe_dump({"slurm_accounting_storage_pass": password,
                                     "munge_key": base64.encodebytes(key).decode()}))  # wrapped, as base64(1) writes it
    recap, text = playbook(inventory, facts, "-e", f"@{vault}", "--tags", "munge")
    assert recap[CTL][1] == 1 and recap[NODE][1] == 1, text
    assert (ctl / "etc/munge/munge.key").read_bytes() == key == (node / "etc/munge/munge.key").read_bytes()
    assert base64.b64encode(key).decode()[:40] not in text
    lap("playbook: supplied key")

    # 3. munged on both hosts, MariaDB on the controller; a credential made on the node is
    # accepted on the controller: one key.
    cluster.network()
    for host, root in cluster.roots.items():
        in_root(root, "install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge")
        cluster.start(host, f"munged-{host}", "chroot --userspec=munge:munge / /usr/sbin/munged -F")
        wait_for(f"munged on {host}", lambda r=root: (r / "run/munge/munge.socket.2").exists())
    credential = cluster.run(NODE, "munge", "-n")
    assert credential.returncode == 0, credential.stderr
    decoded = cluster.run(CTL, "unmunge", input=credential.stdout)
    assert decoded.returncode == 0 and "STATUS:          Success (0)" in decoded.stdout, decoded.stdout + decoded.stderr
    local = cluster.run(CTL, "sh", "-c", "munge -n | unmunge")
    assert local.returncode == 0, local.stdout + local.stderr
    cluster.start(CTL, "mariadb", "/usr/sbin/mariadbd --user=mysql")
    wait_for("MariaDB", lambda: (ctl / "run/mysqld/mysqld.sock").exists(), timeout=90)
    lap("munged and MariaDB")

    # 4. With MariaDB running, the role creates the database and slurmdbd's account; nothing else changes.
    recap, text = playbook(inventory, facts, "-e", f"@{vault}")
    assert recap[CTL][1] == 2 and recap[NODE][1] == 0, text
    assert password not in text
    grants = cluster.run(CTL, "mysql", "-N", "-e", "SHOW GRANTS FOR 'slurm'@'localhost'").stdout
    assert "ON `slurm_acct_db`.*" in grants, grants
    timeout = cluster.run(CTL, "mysql", "-N", "-e", "SELECT @@innodb_lock_wait_timeout, @@bind_address").stdout.split()
    assert timeout == ["900", "127.0.0.1"], timeout
    lap("playbook: database")

    # 5. slurmdbd, the cluster in the accounting database, slurmctld, then slurmd on both nodes
    # exactly as its unit starts it: `slurmd -D -s $SLURMD_OPTIONS`, with the options the role wrote.
    cluster.start(CTL, "slurmdbd", "/usr/sbin/slurmdbd -D -s")
    wait_for("slurmdbd", lambda: cluster.run(CTL, "sacctmgr", "-n", "list", "cluster").returncode == 0, timeout=60)
    added = cluster.run(CTL, "sacctmgr", "-i", "add", "cluster", cluster_name)
    assert added.returncode == 0 and "Adding Cluster(s)" in added.stdout, added.stdout + added.stderr
    cluster.start(CTL, "slurmctld", "/usr/sbin/slurmctld -D -s")
    ping = wait_for("slurmctld", lambda: (p := cluster.run(CTL, "scontrol", "ping")).returncode == 0 and p.stdout)
    assert f"Slurmctld(primary) at {CTL} is UP" in ping, ping
    for host in (CTL, NODE):
        cluster.start(host, f"slurmd-{host}",
                      "/usr/sbin/slurmd -D -s " + " ".join(map(shlex.quote, shlex.split(options[host]))))
    state = wait_for("both nodes idle", lambda: (s := cluster.run(CTL, "sinfo", "-h", "-N", "-o", "%N %t").stdout)
                     and s.split() == [CTL, "idle", NODE, "idle"] and s, timeout=90)
    assert state.split() == [CTL, "idle", NODE, "idle"], state
    lap("slurmdbd, slurmctld, slurmd")

    # The node got its configuration from the controller, byte for byte, and its own commands use it.
    # (/run/slurm/conf links to slurmd's cache in SlurmdSpoolDir.)
    cache = in_root(node, "ls", "-L", "/run/slurm/conf").stdout.split()
    for name, content in (("slurm.conf", slurm_conf), ("topology.conf", topology_conf), ("cgroup.conf", cgroup_conf)):
        assert in_root(node, "cat", f"/run/slurm/conf/{name}").stdout == content, (name, cache)
    seen = cluster.run(NODE, "sinfo", "-h", "-o", "%P %a %D %t")
    assert seen.returncode == 0 and seen.stdout.split() == ["gpu*", "up", "2", "idle"], seen.stdout + seen.stderr
    assert any((ctl / "var/spool/slurmctld").iterdir())  # StateSaveLocation in use

    # 6. Jobs: srun on the other node, srun on both (the controller is a compute node too), and a
    # batch job whose output lands on the node.
    srun = cluster.run(CTL, "srun", "-N1", "-w", NODE, "hostname", timeout=120)
    assert srun.returncode == 0 and srun.stdout.strip() == NODE, srun.stdout + srun.stderr
    both = cluster.run(NODE, "srun", "-N2", "hostname", timeout=120)
    assert both.returncode == 0 and sorted(both.stdout.split()) == [CTL, NODE], both.stdout + both.stderr
    batch = cluster.run(CTL, "sbatch", "--wait", "-w", NODE, "-o", "/tmp/job-%j.out", "--wrap", "hostname",
                        timeout=120)
    assert batch.returncode == 0, batch.stdout + batch.stderr
    job = re.search(r"Submitted batch job (\d+)", batch.stdout).group(1)
    assert (node / f"tmp/job-{job}.out").read_text() == f"{NODE}\n"
    lap("jobs")

    # 7. Accounting: the three jobs, completed where they ran, as slurmdbd recorded them.
    def listed():
        sacct = cluster.run(CTL, "sacct", "-a", "-X", "-n", "-P", "-M", cluster_name,
                            "-o", "JobID,JobName,NodeList,State,ExitCode").stdout
        rows = [line.split("|") for line in sacct.splitlines()]
        return rows if len(rows) >= 3 and all(r[3] == "COMPLETED" for r in rows) else None

    rows = wait_for("sacct to list the three jobs", listed, timeout=60)
    assert [(r[1], r[2], r[4]) for r in rows] == [("hostname", NODE, "0:0"), ("hostname", "gpu-[0001-0002]", "0:0"),
                                                   ("wrap", NODE, "0:0")], rows
    assert rows[2][0] == job
    assert cluster_name in cluster.run(CTL, "sacctmgr", "-n", "-P", "list", "cluster", "format=cluster").stdout
    assert "not recommended" not in cluster.log("slurmdbd")  # the InnoDB settings reached MariaDB
    lap("accounting")

    # 8. A run against the running cluster changes nothing.
    recap, text = playbook(inventory, facts, "-e", f"@{vault}")
    assert recap[CTL][1] == 0 and recap[NODE][1] == 0, text
    lap("playbook: idempotent")
    print(f"\nslurm control plane: {seconds}, {sum(seconds.values()):.0f}s in all")
