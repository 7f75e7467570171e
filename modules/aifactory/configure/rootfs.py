"""A Debian 12 root filesystem for rehearsing node configuration without a node.

``ensure_rootfs(path, cache_dir)`` gives a bookworm tree at ``path`` that Ansible can target
through the ``community.general.chroot`` connection (the configure tests do) and that a lab
provider can boot into a container or VM image. debootstrap runs once per package set; its
result is kept as a tarball under ``cache_dir`` so later calls only unpack (seconds, not minutes).

The tree is what a freshly installed minimal node looks like (``main`` only, systemd present
but not running) plus the two things every chroot needs and Debian's own images also add:
a ``policy-rc.d`` that stops maintainer scripts from starting daemons, and the host's
resolver so apt reaches the mirror.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

SUITE = "bookworm"
# Debian release number per suite: the tree's name and its cache key.
RELEASES = {"bookworm": "12", "trixie": "13"}
VARIANT = "minbase"
# python3 and python3-apt: what Ansible's modules need on the target (the apt module would
# otherwise install python3-apt itself and report a change). systemd: units can be enabled
# offline with systemctl, as on a real image. gnupg/ca-certificates: signed HTTPS repositories.
INCLUDE = ("python3", "python3-apt", "systemd", "ca-certificates", "gnupg", "kmod")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_STAMP = ".aifactory-rootfs"

# Exit 101 = "action forbidden" (Debian policy 9.3.3.1): invoke-rc.d then never starts a daemon.
_POLICY_RC_D = "#!/bin/sh\n# A chroot, not a booted system: maintainer scripts must not start daemons.\nexit 101\n"


class RootfsError(RuntimeError):
    """debootstrap or unpacking failed; the message carries the tool's output."""


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this machine's apt uses (deb822 ``URIs:`` or one-line ``deb`` form)."""
    override = os.environ.get("AIFACTORY_DEBIAN_MIRROR")
    if override:
        return override
    files = sorted(sources.glob("sources.list.d/*.sources")) + [sources / "sources.list"]
    files += sorted(sources.glob("sources.list.d/*.list"))
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            # A mirror serves every suite; the one this machine uses for its own is the best guess.
            if uris and suites and suites.group(1).split()[0].split("-")[0] in RELEASES \
                    and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(?:" + "|".join(RELEASES) + r")\s", line)
            if m and "security" not in m.group(1):
                return m.group(1).rstrip("/")
    return DEFAULT_MIRROR


def cache_key(include: tuple[str, ...] = INCLUDE, suite: str = SUITE) -> str:
    digest = hashlib.sha256("\0".join((suite, VARIANT, *sorted(include))).encode()).hexdigest()[:12]
    return f"debian-{RELEASES[suite]}-{VARIANT}-{digest}"


@contextlib.contextmanager
def _locked(lock_file: Path):
    """Serialise builders (pytest-xdist workers, parallel CI jobs) on one cache."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RootfsError(f"{' '.join(argv[:3])} ... failed (exit {proc.returncode}):\n{proc.stdout[-4000:]}")


def _finish(root: Path) -> None:
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text(_POLICY_RC_D)
    policy.chmod(0o755)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    if Path("/etc/resolv.conf").exists():
        shutil.copyfile("/etc/resolv.conf", resolv)
    # Hostname-dependent tools (sudo, slurmd) expect a name; the chroot has none of its own.
    (root / "etc/hostname").write_text("aifactory-rootfs\n")


def _build(tarball: Path, mirror: str, include: tuple[str, ...], suite: str) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise RootfsError("debootstrap not found: apt-get install debootstrap")
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    try:
        tree = work / "tree"
        _run([debootstrap, f"--variant={VARIANT}", f"--include={','.join(include)}",
              "--components=main", suite, str(tree), mirror])
        _finish(tree)
        # debootstrap's package cache is half the tree and apt refetches lists anyway.
        for leftover in (tree / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        partial = work / "rootfs.tar.gz"
        with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
            tar.add(tree, arcname=".")
        os.replace(partial, tarball)  # atomic: a reader sees the whole tarball or none
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_rootfs(path: Path | str, cache_dir: Path | str, *, include: tuple[str, ...] = INCLUDE,
                  mirror: str | None = None, suite: str = SUITE) -> Path:
    """A Debian tree (12 unless ``suite`` says trixie) at ``path``, unpacked from the cached
    debootstrap tarball (built if absent).

    An existing tree at ``path`` made by this function is returned as it is; anything else there
    is replaced. Needs root (device nodes, ownership) and debootstrap for the first build.
    """
    path, cache_dir = Path(path), Path(cache_dir)
    if suite not in RELEASES:
        raise RootfsError(f"unknown Debian suite {suite!r}: one of {', '.join(RELEASES)}")
    key = cache_key(include, suite)
    stamp = path / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == key:
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"{key}.tar.gz"
    with _locked(cache_dir / f"{key}.lock"):
        if not tarball.is_file():
            _build(tarball, mirror or debian_mirror(), include, suite)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        # Our own tarball, made as root: keep device nodes, owners and modes exactly.
        tar.extractall(path, filter="fully_trusted")
    stamp.write_text(key + "\n")
    return path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aifactory"
