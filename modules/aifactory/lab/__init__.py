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
OTHER_PACKAGES = ("rdma-core", "ibverbs-utils", "opensm", "slurmd", "munge")


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

    @property
    def ok(self) -> bool:
        return self.configure_rc == 0 and not self.failed_hosts and all(r.ok for r in self.reports)


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

    say(f"[bold]1/6 validate and plan[/] {stack_dir / 'factory.yaml'}")
    plan = _load(stack_dir)
    for warning in plan.warnings:
        say(f"  [yellow]{warning}[/]")
    state = state_dir(stack_dir)
    nodes = lab_nodes(plan, state)
    require_root()
    t = plan.totals
    say(f"  {t['nodes']} lab nodes, {t['gpus']} GPUs modelled, driver {plan.software.driver}, CUDA {plan.software.cuda}")
    lap("plan")

    cache = Path(cache_dir or os.environ.get("AIFACTORY_CACHE_DIR") or default_cache_dir())
    say(f"[bold]2/6 provision[/] Debian 12 root filesystems (cache: {cache})")
    provision(nodes, cache, say=say)
    lap("provision")

    say(f"[bold]3/6 render[/] {state / 'deploy'}")
    rendered = render(plan, state / "deploy")
    say(f"  {len(rendered.written)} files written, {rendered.unchanged} unchanged")
    inventory = lab_inventory(state / "deploy", state, nodes)
    lap("render")

    say("[bold]4/6 configure[/] site.yml through ansible-runner")
    with proc_mounted(nodes):
        result = configure.run(inventory, "site.yml", console=console, artifacts_dir=state / "runner")
    console.print(configure.summary_table(result))
    changed = sum(h.changed for h in result.hosts.values())
    lap("configure")

    say("[bold]5/6 health[/] versions read back from each node vs the lock "
        "(GPU checks skipped: lab nodes have no GPU)")
    from ..catalog import using

    with using(plan.catalog_overlay) as catalog:
        variables = {p.name: pool_vars(p, plan, catalog) for p in plan.pools}
    reports = [check_node(n, plan.software, variables[n.pool]) for n in nodes]
    lap("health")
    return UpResult(plan.name, nodes, len(rendered.written), changed, result.rc, result.failed_hosts, reports, seconds)


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
    total = sum(result.seconds.values())
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    converge = ("converged: zero changes" if result.first_changed == 0
                else f"{result.first_changed} change(s) applied")
    console.print(f"[bold]6/6 done[/] in {total:.1f}s ({steps}); {converge}; "
                  f"{result.rendered} config file(s) written; "
                  f"{'all nodes healthy' if result.ok else 'FAILED: ' + ', '.join(result.failed_hosts or [r.name for r in result.reports if not r.ok])}")


def down(stack_dir: Path | str, say=print) -> int:
    """Unmount and remove every lab node and the lab state; returns the number of nodes removed."""
    state = state_dir(Path(stack_dir))
    if not state.exists():
        say(f"{stack_dir}: no lab to remove")
        return 0
    require_root()
    nodes = sorted((state / "nodes").glob("*")) if (state / "nodes").is_dir() else []
    for root in nodes:  # a run that was killed mid-configure may have left /proc mounted
        if _mounted(root / "proc"):
            subprocess.run(["umount", "-l", str(root / "proc")], check=False)
            if _mounted(root / "proc"):
                raise AifactoryError(f"{root / 'proc'} is still mounted; unmount it, then run down again")
    shutil.rmtree(state)
    say(f"{stack_dir}: removed {len(nodes)} lab node(s) and {state}")
    return len(nodes)
