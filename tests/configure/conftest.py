"""A real Debian 12 root filesystem, targeted through community.general.chroot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from aifactory import lab
from aifactory import plan as planning
from aifactory import spec
from aifactory.configure.rootfs import default_cache_dir, ensure_rootfs
from aifactory.inventory import build_files, write_files
from tests.conftest import need_root, require_tool

HERE = Path(__file__).resolve().parent
FACTORY = HERE / "factory.yaml"

# The lab provider's connection and install settings: what Debian ships is installed, what only
# NVIDIA's repository carries is configured (see aifactory.lab).
CHROOT_VARS = lab.CHROOT_VARS


@pytest.fixture(scope="session")
def rootfs_tarball_ready() -> Path:
    """The cached debootstrap tarball's folder (built once, reused across runs)."""
    need_root()
    require_tool("debootstrap", "debootstrap")
    return Path(os.environ.get("AIFACTORY_CACHE_DIR", default_cache_dir()))


@pytest.fixture
def rootfs(tmp_path_factory, rootfs_tarball_ready) -> Path:
    """A fresh tree unpacked from the cache, with /proc mounted for maintainer scripts."""
    root = ensure_rootfs(tmp_path_factory.mktemp("rootfs") / "debian-12", rootfs_tarball_ready)
    mounted = subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], capture_output=True).returncode == 0
    yield root
    if mounted:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


def chroot_inventory(out: Path, roots: dict[str, Path], extra: dict[str, dict] | None = None,
                     factory: Path = FACTORY) -> Path:
    """The plan's inventory of ``factory`` plus host_vars that aim each host at a root filesystem."""
    loaded = spec.load(factory)
    plan = planning.build(loaded)
    write_files(build_files(plan), out)
    host_vars = out / "inventory" / "host_vars"
    host_vars.mkdir()
    for host, root in roots.items():
        values = dict(CHROOT_VARS, ansible_host=str(root), **(extra or {}).get(host, {}))
        (host_vars / f"{host}.yml").write_text(yaml.safe_dump(values, sort_keys=True))
    return out


def in_root(root: Path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYSTEMD_OFFLINE="1")
    return subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, env=env)


@pytest.fixture
def fact_cache(tmp_path, monkeypatch) -> Path:
    """Facts of one test never leak into another (the hosts share names)."""
    path = tmp_path / "facts"
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(path))
    return path
