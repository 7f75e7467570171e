"""The ``lab`` provider: a factory's nodes as Debian 12 root filesystems on this machine.

``up(stack_dir)`` runs the whole main job without a cloud account: validate and plan the
stack's factory, provision one root filesystem per lab node (unpacked from the cached
debootstrap tarball), render the deployment directory, configure the nodes through
ansible-runner over the chroot connection, read back what was installed and compare it with
the software lock, and summarise. A second ``up`` converges with zero changes. ``down``
removes the nodes. Everything lives under ``<stack>/.aifactory/`` (git-ignored).

Lab nodes have no GPU and no NVIDIA repository: the roles install what Debian ships (driver
userspace from non-free, rdma-core, OpenSM, the Slurm client) and write the configuration of
the rest, exactly as they would on a node whose image carries those packages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..errors import AifactoryError

STATE = ".aifactory"

# What a lab node is told: reach it through chroot, install the driver userspace from Debian
# non-free, and leave what only NVIDIA's repository carries to the image (config still written).
CHROOT_VARS = {
    "ansible_connection": "community.general.chroot",
    "ansible_become": False,
    "ansible_python_interpreter": "/usr/bin/python3",
    "nvidia_driver_source": "distro",
    "nvidia_driver_kernel_modules": False,
    "cuda_toolkit_install": False,
    "nvidia_container_toolkit_install": False,
    "dcgm_install": False,
    "nccl_install": False,
    "nvidia_fabric_install": False,
}

# Packages read back from every node for the summary; the first group must carry the lock's
# driver version (Debian's 535.261.03-1~deb12u1 is driver 535.261.03).
DRIVER_PACKAGES = ("nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1")
OTHER_PACKAGES = ("rdma-core", "ibverbs-utils", "opensm", "munge", "slurmd", "slurmctld", "slurmdbd")


@dataclass
class LabNode:
    name: str
    pool: str
    root: Path


@dataclass
class NodeReport:
    name: str
    packages: dict[str, str]
    held: list[str]
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class UpResult:
    factory: str
    nodes: list[LabNode]
    rendered: int
    first_changed: int
    configure_rc: int
    failed_hosts: list[str]
    reports: list[NodeReport]
    seconds: dict[str, float]
    job: Optional["JobResult"] = None  # None where the lab has no Slurm cluster

    @property
    def ok(self) -> bool:
        return (self.configure_rc == 0 and not self.failed_hosts and all(r.ok for r in self.reports)
                and (self.job is None or self.job.ok))


def require_root() -> None:
    if os.geteuid() != 0:
        raise AifactoryError("a lab build needs root (it builds root filesystems and configures them through "
                             "chroot): run `sudo aifactory up stacks/lab` or `sudo make demo`")


def state_dir(stack_dir: Path) -> Path:
    return Path(stack_dir).resolve() / STATE


def _load(stack_dir: Path):
    """The plan of the stack's factory.yaml (the one place the lab reads the spec)."""
    from .. import plan as planning

    factory_file = Path(stack_dir) / "factory.yaml"
    if not factory_file.is_file():
        raise AifactoryError(f"{stack_dir}: no factory.yaml")
    return planning.load(factory_file)


def is_lab(stack_dir: Path) -> bool:
    """A stack whose factory declares lab pools (read without planning; cheap)."""
    from ..errors import SpecError
    from ..yamlfile import load_file

    factory_file = Path(stack_dir) / "factory.yaml"
    if not factory_file.is_file():
        return False
    try:  # the bounded loader: a hostile file is refused here as anywhere else
        doc = load_file(factory_file).data
    except SpecError:
        return False
    pools = doc.get("pools") if isinstance(doc, dict) else None
    return isinstance(pools, list) and any(isinstance(p, dict) and p.get("provider") == "lab" for p in pools)


def lab_nodes(plan, state: Path) -> list[LabNode]:
    other = sorted({p.provider for p in plan.pools if p.provider != "lab"})
    if other:
        raise AifactoryError(f"a lab stack holds lab pools only; this one also has {', '.join(other)} pools "
                             "(deploy those with `pulumi up` in their own stack)")
    return [LabNode(name, pool.name, state / "nodes" / name)
            for pool in plan.pools for name in pool.host_names()]


def _mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as fh:
        return any(line.split()[1] == target for line in fh)


def provision(nodes: list[LabNode], cache_dir: Path, say=print) -> None:
    """One root filesystem per node, from the cached debootstrap tarball."""
    from ..configure.rootfs import ensure_rootfs

    for node in nodes:
        fresh = not (node.root / "etc" / "debian_version").is_file()
        ensure_rootfs(node.root, cache_dir)
        say(f"  node {node.name}: {'created' if fresh else 'present'} ({node.root})")


@contextlib.contextmanager
def proc_mounted(nodes: list[LabNode]):
    """/proc inside every node while maintainer scripts and Ansible run there, and only then:
    a mount left behind would sit inside the stack folder for every find, grep or clean."""
    mounted = []
    try:
        for node in nodes:
            proc = node.root / "proc"
            if not _mounted(proc):
                subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True, capture_output=True)
                mounted.append(proc)
        yield
    finally:
        for proc in mounted:
            subprocess.run(["umount", "-l", str(proc)], check=False, capture_output=True)


def lab_inventory(deploy: Path, state: Path, nodes: list[LabNode]) -> Path:
    """The rendered inventory plus host_vars that aim each host at its root filesystem.

    Kept beside the deployment directory, not in it: ``render --check`` stays clean and the
    deployment directory is the same for a lab and for the real hosts.
    """
    target = state / "inventory"
    staging = state / ".inventory.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(deploy / "inventory", staging)
    (staging / "host_vars").mkdir()
    for node in nodes:
        values = dict(CHROOT_VARS, ansible_host=str(node.root))
        (staging / "host_vars" / f"{node.name}.yml").write_text(yaml.safe_dump(values, sort_keys=True))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def read_back(node: LabNode) -> tuple[dict[str, str], list[str]]:
    """Installed versions and apt holds, read inside the node (not taken from the spec)."""
    env = dict(os.environ, SYSTEMD_OFFLINE="1")
    query = subprocess.run(["chroot", str(node.root), "dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n",
                            *DRIVER_PACKAGES, *OTHER_PACKAGES], capture_output=True, text=True, env=env)
    packages = {}
    for line in query.stdout.splitlines():
        name, version, status = (line.split("\t") + ["", ""])[:3]
        if len(status) > 1 and status[1] == "i":  # installed, whether held ("hi") or not ("ii")
            packages[name] = version
    holds = subprocess.run(["chroot", str(node.root), "apt-mark", "showhold"], capture_output=True, text=True, env=env)
    return packages, sorted(name.split(":")[0] for name in holds.stdout.split())  # drop ":amd64"


def upstream(version: str) -> str:
    """``535.261.03-1~deb12u1`` -> ``535.261.03`` (Debian epoch and revision dropped)."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def check_node(node: LabNode, lock, pool_vars: dict) -> NodeReport:
    packages, held = read_back(node)
    report = NodeReport(node.name, packages, held)
    for pkg in DRIVER_PACKAGES:
        if pkg not in packages:
            report.failures.append(f"{pkg} is not installed")
        elif lock.driver and upstream(packages[pkg]) != lock.driver:
            report.failures.append(f"{pkg} {packages[pkg]} is not the locked driver {lock.driver}")
        elif pkg not in held:
            report.failures.append(f"{pkg} is not held (apt-mark hold): an upgrade could move it off the lock")
    if pool_vars.get("rdma_fabric") in ("infiniband", "roce") and "rdma-core" not in packages:
        report.failures.append("rdma-core is not installed on an RDMA fabric node")
    if pool_vars.get("rdma_opensm") and "opensm" not in packages:
        report.failures.append("opensm is not installed although the fabric asks for a host subnet manager")
    return report


def secrets_file(state: Path) -> Path:
    """The lab's secret store: the accounting database password, made once, readable by root only.
    (The munge key is made by the munge role on the first controller and never leaves the nodes.)"""
    import secrets

    path = state / "secrets.yml"
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump({"slurm_accounting_storage_pass": secrets.token_hex(24)})
        tmp = state / ".secrets.yml.new"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path


def _cluster(state: Path, nodes: list[LabNode]):
    from .cluster import LabCluster

    return LabCluster(state, {n.name: n.root for n in nodes})


def start_cluster(plan, nodes: list[LabNode], state: Path, inventory: Path, say=print, console=None):
    """Network, munged, MariaDB, slurmdbd, slurmctld and slurmd, in the order they need each
    other; what already runs is left running. Returns the cluster and the accounting runs made on
    the way (the slurm_accounting role needs MariaDB, then slurmdbd, running for its last steps)."""
    from .. import configure
    from .cluster import MARIADB, MUNGED, SLURMCTLD, SLURMDBD, slurmd, slurmd_options, wait_for

    cluster = _cluster(state, nodes)
    if cluster.network_up():
        say(f"  network: {len(nodes)} namespaces on a bridge in {cluster.bridge_ns} "
            f"({', '.join(f'{h} {a}' for h, a in sorted(cluster.address.items()))})")
    cluster.save()
    pools = {p.name: p for p in plan.pools}
    cluster.prepare_nodes({n.name: pools[n.pool].gpus_per_node for n in nodes})
    names = {n.name for n in nodes}
    slurm_nodes = [n.name for n in nodes if pools[n.pool].scheduler == "slurm"]
    started = []
    for host in sorted({h for h in slurm_nodes} | {h for c in plan.slurm for h in (*c.controllers, c.accounting_host, *c.login)
                                                   if h in names}):
        if cluster.start(host, MUNGED):
            started.append(f"munged@{host}")
    reran = []

    def accounting_run(host: str) -> None:
        """The slurm_accounting role again, on ``host`` only, now that what it waited for runs."""
        # Inside the node's network namespace, where MariaDB and slurmdbd listen.
        done = configure.run(inventory, "slurm.yml", vars_files=[secrets_file(state)], console=console,
                             artifacts_dir=state / "runner", limit=host, tags="slurm_accounting",
                             extravars={"ansible_chroot_exe": str(cluster.chroot_exe(host))})
        if not done.ok:
            raise AifactoryError(f"lab: slurm.yml (slurm_accounting) failed on {host} (see {state / 'runner'})")
        reran.append(done)

    for c in plan.slurm:
        if c.accounting == "local" and c.accounting_host in names:
            if cluster.start(c.accounting_host, MARIADB):
                started.append(f"mariadbd@{c.accounting_host}")
                accounting_run(c.accounting_host)  # the database and slurmdbd's account, once MariaDB answers
            if cluster.start(c.accounting_host, SLURMDBD):
                started.append(f"slurmdbd@{c.accounting_host}")
                accounting_run(c.accounting_host)  # the cluster (and any QoS) in slurmdbd, once it answers
        for host in c.controllers:
            if host in names and cluster.start(host, SLURMCTLD):
                started.append(f"slurmctld@{host}")
    roots = {n.name: n.root for n in nodes}
    for host in slurm_nodes:
        if cluster.start(host, slurmd(slurmd_options(roots[host]))):
            started.append(f"slurmd@{host}")
    seen: dict[str, str] = {}
    for c in plan.slurm:
        members = [n.name for n in nodes if n.name in slurm_nodes and pools[n.pool].site in c.sites]
        if not members:
            continue

        def idle(ctl=c.controllers[0], members=members):
            state_of = cluster.run(ctl, "sinfo", "-h", "-N", "-o", "%N %t").stdout.split()
            listed = dict(zip(state_of[::2], state_of[1::2]))
            return all(listed.get(h) in ("idle", "mix", "alloc") for h in members) and listed
        seen.update(wait_for(f"every lab node of {c.name} to be idle in Slurm", idle, timeout=120))
    say(f"  started: {', '.join(started) if started else 'nothing (all running)'}; "
        f"sinfo: {', '.join(f'{h} {s}' for h, s in sorted(seen.items()))}")
    return cluster, reran


# The lab's acceptance job: a batch job on two nodes that runs hostname on each, and reads the GPUs
# Slurm gave each node from gres.conf (CUDA_VISIBLE_DEVICES, set by the GRES plugin per step).
JOB_SCRIPT = """#!/bin/sh
srun hostname
srun sh -c 'echo "$(hostname): GPUs $CUDA_VISIBLE_DEVICES"'
"""


@dataclass
class JobResult:
    job_id: str
    output: str
    accounting: list[dict]

    @property
    def ok(self) -> bool:
        return bool(self.accounting) and all(r["State"] == "COMPLETED" for r in self.accounting)


def run_job(plan, cluster, nodes: list[LabNode], state: Path) -> JobResult:
    """Submit the two-node job from the controller, wait for it, read its output and sacct."""
    import re

    from .cluster import wait_for

    pools = {p.name: p for p in plan.pools}
    # Two nodes of one Slurm pool: a partition is a pool, and the job runs in one partition.
    by_pool: dict[str, list[LabNode]] = {}
    for n in nodes:
        if pools[n.pool].scheduler == "slurm":
            by_pool.setdefault(n.pool, []).append(n)
    slurm_nodes = next((members for members in by_pool.values() if len(members) >= 2), None)
    if not slurm_nodes:
        raise AifactoryError("lab: the job needs a Slurm pool of two nodes or more")
    first = slurm_nodes[0]
    gpus = pools[first.pool].gpus_per_node
    c = plan.slurm_cluster(pools[first.pool].site)
    ctl = c.controllers[0]
    script = first.root / "tmp" / "aifactory-job.sh"
    script.write_text(JOB_SCRIPT)
    argv = ["sbatch", "--wait", "-N2", "-p", first.pool, "-J", "aifactory-lab", "-o", "/tmp/aifactory-job-%j.out"]
    if gpus:
        argv.append(f"--gpus-per-node={gpus}")
    # The batch script lands on the first allocated node: the pool's first node, where it is written.
    batch = cluster.run(ctl, *argv, "-w", ",".join(n.name for n in slurm_nodes[:2]), "/tmp/aifactory-job.sh",
                        timeout=300)
    found = re.search(r"Submitted batch job (\d+)", batch.stdout)
    if batch.returncode or not found:
        raise AifactoryError(f"lab: the job failed: {(batch.stdout + batch.stderr).strip()[-2000:]}")
    job = found.group(1)
    out = first.root / "tmp" / f"aifactory-job-{job}.out"
    output = out.read_text(errors="replace") if out.is_file() else ""
    fields = ("JobID", "JobName", "NodeList", "AllocTRES", "State", "ExitCode")
    name = c.cluster_name(plan.name)

    def recorded():
        sacct = cluster.run(ctl, "sacct", "-j", job, "-n", "-P", "-M", name, "-o", ",".join(fields)).stdout
        rows = [dict(zip(fields, line.split("|"))) for line in sacct.splitlines() if line.strip()]
        return rows if rows and rows[0]["State"] not in ("PENDING", "RUNNING") else None
    rows = wait_for(f"sacct to record job {job}", recorded, timeout=60)
    return JobResult(job, output, rows)


def up(stack_dir: Path | str, *, console=None, cache_dir: Optional[Path] = None) -> UpResult:
    from rich.console import Console

    from .. import configure
    from ..configure.rootfs import default_cache_dir
    from ..inventory.plan import pool_vars
    from ..render import render

    console = console or Console(soft_wrap=True)
    say = console.print
    stack_dir = Path(stack_dir)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    say(f"[bold]1/7 validate and plan[/] {stack_dir / 'factory.yaml'}")
    plan = _load(stack_dir)
    for warning in plan.warnings:
        say(f"  [yellow]{warning}[/]")
    state = state_dir(stack_dir)
    nodes = lab_nodes(plan, state)
    require_root()
    t = plan.totals
    say(f"  {t['nodes']} lab nodes, {t['gpus']} GPUs modelled, driver {plan.software.driver}, CUDA {plan.software.cuda}, "
        f"Slurm {plan.software.slurm}")
    lap("plan")

    cache = Path(cache_dir or os.environ.get("AIFACTORY_CACHE_DIR") or default_cache_dir())
    say(f"[bold]2/7 provision[/] Debian 12 root filesystems (cache: {cache})")
    provision(nodes, cache, say=say)
    lap("provision")

    say(f"[bold]3/7 render[/] {state / 'deploy'}")
    rendered = render(plan, state / "deploy")
    say(f"  {len(rendered.written)} files written, {rendered.unchanged} unchanged")
    inventory = lab_inventory(state / "deploy", state, nodes)
    lap("render")

    say("[bold]4/7 configure[/] site.yml, then slurm.yml (the control plane), through ansible-runner")
    with proc_mounted(nodes):
        result = configure.run(inventory, "site.yml", console=console, artifacts_dir=state / "runner")
        lap("configure")
        if result.ok and plan.slurm:
            control = configure.run(inventory, "slurm.yml", vars_files=[secrets_file(state)], console=console,
                                    artifacts_dir=state / "runner")
            result = result.merged(control)
            lap("control plane")
    console.print(configure.summary_table(result))
    changed = sum(h.changed for h in result.hosts.values())

    job = None
    if result.ok and plan.slurm:
        say("[bold]5/7 cluster[/] a network namespace per node on a lab bridge; munged, MariaDB, slurmdbd, "
            "slurmctld and slurmd")
        cluster, _ = start_cluster(plan, nodes, state, inventory, say=say, console=console)
        lap("cluster")
        say("[bold]6/7 job[/] a two-node batch job: srun hostname, and the GPUs gres.conf declares")
        job = run_job(plan, cluster, nodes, state)
        for line in job.output.splitlines():
            say(f"  {line}")
        lap("job")

    say("[bold]7/7 health[/] versions read back from each node vs the lock "
        "(GPU checks skipped: lab nodes have no GPU)")
    from ..catalog import using

    with using(plan.catalog_overlay) as catalog:
        variables = {p.name: pool_vars(p, plan, catalog) for p in plan.pools}
    reports = [check_node(n, plan.software, variables[n.pool]) for n in nodes]
    lap("health")
    return UpResult(plan.name, nodes, len(rendered.written), changed, result.rc, result.failed_hosts, reports, seconds,
                    job)


def summary(result: UpResult, console) -> None:
    from rich.table import Table

    table = Table(title=f"lab {result.factory}: installed on each node (read back with dpkg-query)")
    table.add_column("node")
    for pkg in (*DRIVER_PACKAGES[:1], *OTHER_PACKAGES):
        table.add_column(pkg)
    table.add_column("held")
    table.add_column("health")
    for r in result.reports:
        table.add_row(r.name, *[r.packages.get(p, "-") for p in (*DRIVER_PACKAGES[:1], *OTHER_PACKAGES)],
                      str(len(r.held)), "ok" if r.ok else "; ".join(r.failures))
    console.print(table)
    if result.job:
        jobs = Table(title=f"job {result.job.job_id} as slurmdbd recorded it (sacct)")
        for column in ("JobID", "JobName", "NodeList", "AllocTRES", "State", "ExitCode"):
            jobs.add_column(column)
        for row in result.job.accounting:
            jobs.add_row(*(row[c] for c in ("JobID", "JobName", "NodeList", "AllocTRES", "State", "ExitCode")))
        console.print(jobs)
    total = sum(result.seconds.values())
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    converge = ("converged: zero changes" if result.first_changed == 0
                else f"{result.first_changed} change(s) applied")
    failed = result.failed_hosts or [r.name for r in result.reports if not r.ok]
    if result.job and not result.job.ok:
        failed = [*failed, f"job {result.job.job_id}"]
    console.print(f"[bold]done[/] in {total:.1f}s ({steps}); {converge}; "
                  f"{result.rendered} config file(s) written; "
                  f"{'all nodes healthy' if result.ok else 'FAILED: ' + ', '.join(failed)}"
                  + (f"; job {result.job.job_id} COMPLETED" if result.job and result.job.ok else ""))
    if result.job:
        console.print("  the cluster keeps running: `aifactory exec STACK NODE -- sinfo`; "
                      "`aifactory down STACK` stops it and removes the nodes")


def exec_on(stack_dir: Path | str, node: str, command: list[str]) -> subprocess.CompletedProcess:
    """``command`` on the running lab node ``node`` (see :mod:`.cluster`)."""
    from .cluster import LabCluster

    require_root()
    state = state_dir(Path(stack_dir))
    nodes = {p.name: p for p in sorted((state / "nodes").glob("*"))} if (state / "nodes").is_dir() else {}
    if node not in nodes:
        raise AifactoryError(f"{stack_dir}: no lab node {node!r}"
                             + (f" (the nodes: {', '.join(nodes)})" if nodes else " (run `aifactory up` first)"))
    cluster = LabCluster(state, nodes)
    if not cluster.network_exists():
        raise AifactoryError(f"{stack_dir}: the lab cluster is not running (run `aifactory up {stack_dir}`)")
    return cluster.run(node, *command, timeout=3600)


def down(stack_dir: Path | str, say=print) -> int:
    """Unmount and remove every lab node and the lab state; returns the number of nodes removed."""
    state = state_dir(Path(stack_dir))
    if not state.exists():
        say(f"{stack_dir}: no lab to remove")
        return 0
    require_root()
    nodes = sorted((state / "nodes").glob("*")) if (state / "nodes").is_dir() else []
    from .cluster import LabCluster

    cluster = LabCluster(state, {root.name: root for root in nodes})
    stopped = cluster.stop()
    cluster.network_down()
    if stopped:
        say(f"{stack_dir}: stopped {stopped} lab process(es)")
    for root in nodes:  # a run that was killed mid-configure may have left /proc mounted
        if _mounted(root / "proc"):
            subprocess.run(["umount", "-l", str(root / "proc")], check=False)
            if _mounted(root / "proc"):
                raise AifactoryError(f"{root / 'proc'} is still mounted; unmount it, then run down again")
    shutil.rmtree(state)
    say(f"{stack_dir}: removed {len(nodes)} lab node(s) and {state}")
    return len(nodes)
