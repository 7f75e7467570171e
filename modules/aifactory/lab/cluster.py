"""The lab as a running Slurm cluster: a network of namespaces, the daemons, and a job.

Every lab node gets its own network namespace with one interface on a bridge, and the bridge
sits in a namespace of its own: the whole lab network lives in namespaces the lab creates, so
nothing it starts can listen on this machine's interfaces (the host's loopback included: every
namespace has its own). Each command and daemon runs in its node's namespace, chrooted into the
node's tree, under the node's host name (a UTS namespace of its own) and with a /proc mounted
in a private mount namespace, so no mount is left inside the stack folder.

Nothing in a lab node runs systemd, so the lab starts each daemon the way its Debian unit does
(``ExecStart`` with the unit's options, in the foreground): munged on every node, MariaDB and
slurmdbd where the plan puts accounting, slurmctld on the controller, and slurmd everywhere with
the ``SLURMD_OPTIONS`` the slurm_client role wrote (configless, from the controller). They keep
running after ``aifactory up`` returns; ``aifactory down`` stops them and removes the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import AifactoryError

# Lab addresses: private to the lab's own namespaces, so they can never collide with the host's.
SUBNET = "10.231.0"
# NVIDIA's character-device major for /dev/nvidiaN (devices.txt: 195 = NVIDIA graphics devices).
NVIDIA_MAJOR = 195


@dataclass(frozen=True)
class Daemon:
    """One daemon as its Debian unit starts it, in the foreground."""

    name: str  # process name (/proc/PID/comm) and log name
    argv: tuple[str, ...]
    ready: tuple[str, ...] = ()  # a command that succeeds once the daemon serves
    prepare: tuple[tuple[str, ...], ...] = ()


MUNGED = Daemon("munged", ("chroot", "--userspec=munge:munge", "/", "/usr/sbin/munged", "--foreground"),
                ready=("sh", "-c", "munge -n | unmunge"),
                prepare=(("install", "-d", "-o", "munge", "-g", "munge", "-m", "0755", "/run/munge"),))
MARIADB = Daemon("mariadbd", ("/usr/sbin/mariadbd", "--user=mysql"), ready=("test", "-S", "/run/mysqld/mysqld.sock"),
                 prepare=(("install", "-d", "-o", "mysql", "-g", "mysql", "-m", "0755", "/run/mysqld"),))
SLURMDBD = Daemon("slurmdbd", ("/usr/sbin/slurmdbd", "-D", "-s"), ready=("sacctmgr", "-n", "list", "cluster"))
SLURMCTLD = Daemon("slurmctld", ("/usr/sbin/slurmctld", "-D", "-s"), ready=("scontrol", "ping"))


def slurmd(options: str) -> Daemon:
    """slurmd as slurmd.service runs it: ``slurmd -D -s $SLURMD_OPTIONS``."""
    return Daemon("slurmd", ("/usr/sbin/slurmd", "-D", "-s", *shlex.split(options)))


def wait_for(what: str, probe: Callable[[], object], timeout: float = 60.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AifactoryError(f"lab: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class LabCluster:
    """The network, processes and commands of a set of lab node trees (``{host: root}``)."""

    def __init__(self, state: Path, roots: dict[str, Path]) -> None:
        self.state = Path(state)
        self.roots = {h: Path(r).resolve() for h, r in roots.items()}
        # Names are per stack folder, so two labs (or a lab and a test) never share a namespace.
        tag = hashlib.sha256(str(self.state.resolve()).encode()).hexdigest()[:6]
        self.tag = tag
        self.bridge_ns = f"aif-{tag}-net"
        self.ns = {h: f"aif-{tag}-{i:03d}" for i, h in enumerate(sorted(self.roots), 1)}
        self.address = {h: f"{SUBNET}.{i}" for i, h in enumerate(sorted(self.roots), 1)}
        self.logs = self.state / "logs"

    # --- network --------------------------------------------------------------------------

    @staticmethod
    def _namespaces() -> set[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
        return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}

    def network_exists(self) -> bool:
        existing = self._namespaces()
        return all(ns in existing for ns in (self.bridge_ns, *self.ns.values()))

    def network_up(self) -> bool:
        """The bridge namespace and one namespace per node (idempotent); True when it made them."""
        wanted = [self.bridge_ns, *self.ns.values()]
        if self.network_exists():
            return False
        self.network_down()
        if len(self.ns) > 250:
            raise AifactoryError(f"a lab network holds at most 250 nodes; this lab has {len(self.ns)}")

        def ip(*argv: str, ns: Optional[str] = None) -> None:
            cmd = ["ip", "netns", "exec", ns, "ip", *argv] if ns else ["ip", *argv]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise AifactoryError(f"lab network: `{' '.join(cmd)}` failed: {done.stderr.strip()}")

        for ns in wanted:
            ip("netns", "add", ns)
            ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", "br0", "type", "bridge", ns=self.bridge_ns)
        ip("link", "set", "br0", "up", ns=self.bridge_ns)
        for i, host in enumerate(sorted(self.roots), 1):
            port = f"p{i:03d}"  # the bridge's end; the node's end is eth0
            ip("link", "add", port, "netns", self.bridge_ns, "type", "veth", "peer", "name", "eth0",
               "netns", self.ns[host])
            ip("link", "set", port, "master", "br0", ns=self.bridge_ns)
            ip("link", "set", port, "up", ns=self.bridge_ns)
            ip("addr", "add", f"{self.address[host]}/24", "dev", "eth0", ns=self.ns[host])
            ip("link", "set", "eth0", "up", ns=self.ns[host])
        return True

    def network_down(self) -> None:
        existing = self._namespaces()
        for ns in (*self.ns.values(), self.bridge_ns):
            if ns in existing:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def prepare_nodes(self, gpus: dict[str, int]) -> None:
        """What DNS and the hardware would give each node: /etc/hosts and /etc/hostname with every
        lab node, and the /dev/nvidiaN files gres.conf names (device nodes of NVIDIA's major, which
        slurmd checks exist; no driver answers them here)."""
        hosts = "127.0.0.1 localhost\n" + "".join(f"{self.address[h]} {h}\n" for h in sorted(self.roots))
        for host, root in self.roots.items():
            _write(root / "etc/hosts", hosts)
            _write(root / "etc/hostname", f"{host}\n")
            for index in range(gpus.get(host, 0)):
                device = root / "dev" / f"nvidia{index}"
                if not device.exists():
                    os.mknod(device, 0o666 | 0o020000, os.makedev(NVIDIA_MAJOR, index))  # S_IFCHR

    # --- commands and daemons ---------------------------------------------------------------

    def _argv(self, host: str, argv: tuple[str, ...] | list[str]) -> list[str]:
        """``argv`` inside ``host``: its network namespace, a private mount namespace with /proc
        mounted in the tree, its own host name, then chroot."""
        root = str(self.roots[host])
        script = ('mount -t proc proc "$1/proc" && hostname "$2" && shift 2 && exec chroot "$@"')
        return ["ip", "netns", "exec", self.ns[host], "unshare", "--mount", "--uts", "--propagation", "private",
                "sh", "-c", script, "sh", root, host, root, *argv]

    def chroot_exe(self, host: str) -> Path:
        """A ``chroot`` for Ansible's chroot connection (``ansible_chroot_exe``) that runs inside
        ``host``'s namespaces, for role steps that talk to the lab's daemons (sacctmgr to slurmdbd).
        Runs that install packages keep the plain chroot: a node's namespace has no route out."""
        script = self.state / "bin" / f"chroot-{host}"
        argv = shlex.join(self._argv(host, ())[:-1])  # everything up to the tree; chroot "$@" takes the rest
        text = ("#!/bin/sh\n# chroot into lab node " + host + " inside its network namespace (see aifactory.lab.cluster)\n"
                f'exec {argv} "$@"\n')
        script.parent.mkdir(parents=True, exist_ok=True)
        _write(script, text)
        os.chmod(script, 0o700)
        return script

    def run(self, host: str, *argv: str, input: Optional[str] = None, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._argv(host, argv), input=input, capture_output=True, text=True, timeout=timeout)

    def running(self, host: str, name: str) -> bool:
        return any(comm == name for _, comm in self._processes(host))

    def start(self, host: str, daemon: Daemon, timeout: float = 90.0) -> bool:
        """Start ``daemon`` on ``host`` unless it runs there; wait until it serves. True when started."""
        if self.running(host, daemon.name):
            return False
        for step in daemon.prepare:
            self.run(host, *step)
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{host}-{daemon.name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(self._argv(host, daemon.argv), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        if daemon.ready:
            def serving():
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise AifactoryError(f"lab: {daemon.name} on {host} exited ({proc.returncode}):\n{tail}")
                return self.run(host, *daemon.ready, timeout=30).returncode == 0
            wait_for(f"{daemon.name} on {host}", serving, timeout=timeout)
        return True

    def stop_daemon(self, host: str, name: str, timeout: float = 30.0) -> None:
        """Stop ``name`` on ``host`` as systemctl stop would (SIGTERM), and wait until it is gone."""
        for pid, comm in self._processes(host):
            if comm == name:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        wait_for(f"{name} on {host} to stop", lambda: not self.running(host, name), timeout=timeout)

    def _processes(self, host: Optional[str] = None) -> list[tuple[int, str]]:
        """(pid, name) of every process whose root is a lab tree (``host``'s only, when given)."""
        roots = [self.roots[host]] if host else list(self.roots.values())
        prefixes = tuple(str(r) for r in roots)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                root = os.readlink(entry / "root")
                if any(root == p or root.startswith(p + "/") for p in prefixes):
                    found.append((int(entry.name), (entry / "comm").read_text().strip()))
        return found

    def _ours(self) -> set[int]:
        pids = {pid for pid, _ in self._processes()}
        existing = self._namespaces()
        for ns in (*self.ns.values(), self.bridge_ns):
            if ns in existing:
                listed = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
                pids |= {int(p) for p in listed.stdout.split()}
        pids.discard(os.getpid())
        return pids

    def stop(self) -> int:
        """Stop every process in the lab's trees and namespaces (TERM, then KILL); how many there were."""
        first = self._ours()
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            for pid in self._ours():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while self._ours() and time.monotonic() < deadline:
                time.sleep(0.2)
        left = self._ours()
        if left:
            raise AifactoryError(f"lab: processes {sorted(left)} did not stop")
        return len(first)

    def save(self) -> None:
        _write(self.state / "cluster.json", json.dumps({
            "bridge_namespace": self.bridge_ns, "namespaces": self.ns, "addresses": self.address}, indent=2) + "\n")


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` unless it holds it already (atomic, never half-written)."""
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.replace(tmp, path)


def slurmd_options(root: Path) -> str:
    """``SLURMD_OPTIONS`` as the slurm_client role wrote them in /etc/default/slurmd."""
    path = root / "etc/default/slurmd"
    found = re.search(r'^SLURMD_OPTIONS="(.*)"$', path.read_text(), re.M) if path.is_file() else None
    if not found:
        raise AifactoryError(f"lab: {path} holds no SLURMD_OPTIONS (did slurm.yml run?)")
    return found.group(1)
