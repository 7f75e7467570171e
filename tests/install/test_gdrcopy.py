"""GDRCopy from a stand-in of NVIDIA's redist folder, through the gdrcopy role, for real.

The spec pins software.gdrcopy; the plan's inventory names the build's files, and the role fetches
them from plain files served on loopback in NVIDIA's folder layout (``CUDA 13.0/<os>/x64/``, built
by tests/install/repository.py with names spelled out apart from the inventory), installs them into
an Ubuntu 24.04 and a RHEL 9 tree through the chroot connection and holds or version-locks them.
A second run changes nothing, and a new pin in the lock upgrades every package together.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aifactory import plan as planning
from aifactory import spec
from aifactory.inventory import build_files, write_files
from aifactory.plan import software

from . import repository
from .test_install import HOST, _run, held, installed

pytestmark = [pytest.mark.slow, pytest.mark.root]

HERE = Path(__file__).resolve().parent
# The packages the role installs per OS family (Debian and Ubuntu with gdrcopy_tests on).
PACKAGES = {"debian": ("gdrdrv-dkms", "libgdrapi", "gdrcopy-tests", "gdrcopy"),
            "redhat": ("gdrcopy-kmod", "gdrcopy", "gdrcopy-devel")}


@pytest.fixture(scope="session")
def redist(served, stand_in_catalog):
    """The stand-in redist folder under the served root: ``<url>/gdrcopy``."""
    url, top = served
    for os_id in ("ubuntu-24.04", "rhel-9"):
        repository.build_redist(repository.gdrcopy_redist(stand_in_catalog, os_id), top / "gdrcopy",
                                repository.family(os_id))
    return f"{url}/gdrcopy"


def _inventory(tmp_path: Path, os_id: str, pin: str, root: Path, base_url: str) -> Path:
    data = yaml.safe_load((HERE / "factory.yaml").read_text())
    data["software"].update(os=os_id, gdrcopy=pin)
    plan = planning.build(spec.load_string(yaml.safe_dump(data, sort_keys=False), "factory.yaml"))
    assert plan.software.gdrcopy is not None and plan.software.gdrcopy.version == pin
    out = tmp_path / f"deploy-{pin}"
    write_files(build_files(plan), out)
    host_vars = out / "inventory" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{HOST}.yml").write_text(yaml.safe_dump({
        "ansible_connection": "community.general.chroot", "ansible_host": str(root), "ansible_become": False,
        "ansible_python_interpreter": "/usr/bin/python3", "gdrcopy_base_url": base_url, "gdrcopy_tests": True,
    }, sort_keys=True))
    return out


def _assert_installed(root: Path, family: str, version: str) -> None:
    have, locked = installed(root, family), held(root, family)
    for name in PACKAGES[family]:
        assert name in have, f"{name} is not installed; have {sorted(have)}"
        # 2.6-1 (apt), 2.6-1 or 2.6-1dkms (rpm: the DKMS package's release)
        assert have[name].startswith(f"{version}-1"), (name, have[name], version)
        assert name in locked, f"{name} is not held/locked; held {sorted(locked)}"


@pytest.mark.parametrize("os_id", ["ubuntu-24.04", "rhel-9"])
def test_gdrcopy_installs_pinned_and_held_and_follows_the_lock(tmp_path, node, redist, os_id, fact_cache):
    root = node(os_id)
    family = software.os_family(os_id)

    old = _inventory(tmp_path, os_id, "2.5.1", root, redist)
    first, text = _run(old, tags="gdrcopy")
    assert first.ok, text
    _assert_installed(root, family, "2.5.1")

    again, text = _run(old, tags="gdrcopy")
    assert again.ok, text
    assert again.hosts[HOST].changed == 0, text

    # A new pin in the lock: every package moves to it together, and stays held there.
    new = _inventory(tmp_path, os_id, "2.6", root, redist)
    upgraded, text = _run(new, tags="gdrcopy")
    assert upgraded.ok, text
    _assert_installed(root, family, "2.6")
    if family == "redhat":  # the lock of the old version is gone, not kept beside the new one
        locks = root / "etc/dnf/plugins/versionlock.list"
        assert "2.5.1" not in locks.read_text(), locks.read_text()
