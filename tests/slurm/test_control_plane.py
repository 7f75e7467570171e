"""The Slurm control plane for real: the roles run into two Debian 12 root filesystems, then the
daemons they set up are started there and jobs run.

The factory is tests/configure/two-nodes.yaml, with no ``slurm:`` section: the plan puts the
controller and accounting on the first node of its Slurm pool. So ``gpu-0001`` (controller,
slurmdbd, MariaDB, and a compute node too) and ``gpu-0002`` (compute) are two trees from the
cached debootstrap tarball, configured through community.general.chroot by playbooks/slurm.yml
from the inventory `aifactory inventory` writes: its controller and accounting groups, the
rendered configuration for the controller, and the configless server for the nodes.
The lab's own cluster (:class:`aifactory.lab.cluster.LabCluster`) then gives each tree a network
namespace on a bridge, a host name, and the /dev/nvidiaN files gres.conf names, and starts each
daemon the way its unit would; it stops every process it started, even on failure.

Every rendered file reaches the controller unchanged: the pool is a lab pool, so slurm.conf and
cgroup.conf already carry the cgroup-free plugins a chroot needs and take the modelled HGX H100
(224 CPUs, 8 GPUs) as configured.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aifactory import lab
from aifactory.configure.rootfs import default_cache_dir, ensure_rootfs
from aifactory.lab.cluster import MARIADB, MUNGED, SLURMCTLD, SLURMDBD, LabCluster, slurmd, wait_for
from tests.conftest import need_root, require_tool
from tests.configure.conftest import HERE, chroot_inventory, in_root

pytestmark = [pytest.mark.slow, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent
FACTORY = HERE / "two-nodes.yaml"
# The plan's controller (the first node of the first Slurm pool) and the other node.
CTL, NODE = "gpu-0001", "gpu-0002"
SITE = "lab"


@pytest.fixture
def cluster(tmp_path_factory):
    need_root()
    require_tool("debootstrap", "debootstrap")
    require_tool("ip", "iproute2")
    require_tool("unshare", "util-linux")
    cache = Path(os.environ.get("AIFACTORY_CACHE_DIR", default_cache_dir()))
    base = tmp_path_factory.mktemp("slurm")
    roots = {CTL: base / "ctl", NODE: base / "node"}
    for root in roots.values():
        ensure_rootfs(root, cache)
    made = LabCluster(base / "state", roots)
    try:
        with lab.proc_mounted([lab.LabNode(h, "gpu", r) for h, r in roots.items()]):
            yield made
    finally:
        made.stop()
        made.network_down()


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
    slurm_conf = rendered[f"slurm/{SITE}/slurm.conf"]
    cgroup_conf = rendered[f"slurm/{SITE}/cgroup.conf"]
    for line in ("ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SlurmdParameters=config_overrides"):
        assert f"\n{line}\n" in slurm_conf, line  # a lab pool's cluster: what a chroot needs
    topology_conf = rendered[f"slurm/{SITE}/topology.conf"]
    cluster_name = re.search(r"^ClusterName=(\S+)$", slurm_conf, re.M).group(1)

    # The plan's inventory as `aifactory inventory` writes it (the controller and accounting groups,
    # the controller's rendered files, the nodes' configless server, the Slurm release), and per
    # host the chroot connection; on the controller, the chroot's versions of two rendered files,
    # and no gres.conf (no GPUs here).
    out = chroot_inventory(tmp_path / "out", {NODE: node, CTL: ctl}, factory=FACTORY)
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
    assert cluster.network_up()
    cluster.prepare_nodes({CTL: 8, NODE: 8})  # /dev/nvidia[0-7], which gres.conf names
    for host in (CTL, NODE):
        assert cluster.start(host, MUNGED)
    credential = cluster.run(NODE, "munge", "-n")
    assert credential.returncode == 0, credential.stderr
    decoded = cluster.run(CTL, "unmunge", input=credential.stdout)
    assert decoded.returncode == 0 and "STATUS:          Success (0)" in decoded.stdout, decoded.stdout + decoded.stderr
    local = cluster.run(CTL, "sh", "-c", "munge -n | unmunge")
    assert local.returncode == 0, local.stdout + local.stderr
    assert cluster.start(CTL, MARIADB)
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
    assert cluster.start(CTL, SLURMDBD)
    # With slurmdbd answering, the role adds the cluster to the accounting database, and only that.
    # (sacctmgr runs in the controller's network namespace, where slurmdbd listens.)
    recap, text = playbook(inventory, facts, "-e", f"@{vault}", "--tags", "slurm_accounting", "--limit", CTL,
                           "-e", f"ansible_chroot_exe={cluster.chroot_exe(CTL)}")
    assert recap[CTL][1] == 1 and NODE not in recap, text
    listed = cluster.run(CTL, "sacctmgr", "-n", "-P", "list", "cluster", "format=cluster").stdout.split()
    assert listed == [cluster_name], listed
    assert cluster.start(CTL, SLURMCTLD)
    ping = cluster.run(CTL, "scontrol", "ping").stdout
    assert f"Slurmctld(primary) at {CTL} is UP" in ping, ping
    for host in (CTL, NODE):
        assert cluster.start(host, slurmd(options[host]))
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
    assert "not recommended" not in (cluster.logs / f"{CTL}-slurmdbd.log").read_text()  # the InnoDB settings reached MariaDB
    lap("accounting")

    # 8. A restarted controller keeps its queue: a held job survives slurmctld's restart from
    # StateSaveLocation, then runs once released.
    held = cluster.run(CTL, "sbatch", "-H", "-w", NODE, "-o", "/tmp/held-%j.out", "--wrap", "hostname")
    assert held.returncode == 0, held.stdout + held.stderr
    held_job = re.search(r"Submitted batch job (\d+)", held.stdout).group(1)
    cluster.stop_daemon(CTL, "slurmctld")
    assert cluster.start(CTL, SLURMCTLD)
    queue = cluster.run(CTL, "squeue", "-h", "-j", held_job, "-o", "%i %T %r").stdout.split()
    assert queue == [held_job, "PENDING", "JobHeldUser"], queue
    assert cluster.run(CTL, "scontrol", "release", held_job).returncode == 0
    wait_for("the held job to complete", lambda: (node / f"tmp/held-{held_job}.out").is_file()
             and not cluster.run(CTL, "squeue", "-h", "-j", held_job).stdout.strip(), timeout=90)
    assert (node / f"tmp/held-{held_job}.out").read_text() == f"{NODE}\n"
    lap("controller restart")

    # 9. A run against the running cluster changes nothing.
    recap, text = playbook(inventory, facts, "-e", f"@{vault}")
    assert recap[CTL][1] == 0 and recap[NODE][1] == 0, text
    lap("playbook: idempotent")
    print(f"\nslurm control plane: {seconds}, {sum(seconds.values()):.0f}s in all")
