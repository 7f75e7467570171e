"""The Ubuntu, Debian 13 and RHEL install and upgrade paths, for real.

One DGX B200 pool's lock is planned for each node OS; the plan's inventory drives the roles
(driver, CUDA, fabric, DCGM, NCCL) through the chroot connection into a tree with that OS's
identity. apt and dnf resolve and install from stand-ins of NVIDIA's repositories built from the
catalog (tests/install/repository.py), signed and served on loopback, and the test reads back
what the package database holds: the lock's names at the lock's versions, held or version-locked.
A name the repository does not carry fails the run, and ``upgrade.yml`` rolls a node from R580
to R620 in the same harness.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
import yaml

from aifactory import catalog as catalogs
from aifactory import configure
from aifactory import plan as planning
from aifactory import spec
from aifactory.inventory import build_files, write_files
from aifactory.plan import software

from .conftest import in_root

pytestmark = [pytest.mark.slow, pytest.mark.root]

HOST = "gpu-0001"
HERE = Path(__file__).resolve().parent
# The roles of the NVIDIA stack; the container toolkit has a repository of its own (not modelled),
# Slurm and node_exporter come from the OS archive.
TAGS = "driver,cuda,fabric,dcgm,nccl"
# The components of software.packages the roles install (the metapackage and the module stream are
# recorded in the lock, not installed as such).
INSTALLED = ("driver_utils", "driver_persistenced", "driver_libs", "driver_kernel", "fabric_manager", "nscq",
             "nvlsm", "cuda_toolkit", "nccl", "nccl_dev", "dcgm")


def _factory(tmp_path: Path, os_id: str, branch: str | None = None) -> Path:
    data = yaml.safe_load((HERE / "factory.yaml").read_text())
    data["software"]["os"] = os_id
    if branch:
        data["software"]["driver_branch"] = branch
    path = tmp_path / f"factory-{os_id}-{branch or 'default'}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _inventory(tmp_path: Path, factory: Path, root: Path, url: str, name: str) -> tuple[Path, dict]:
    """The plan's inventory, aimed at ``root``; returns it and the lock's packages."""
    plan = planning.build(spec.load(factory))
    out = tmp_path / name
    write_files(build_files(plan), out)
    host_vars = out / "inventory" / "host_vars"
    host_vars.mkdir(exist_ok=True)
    (host_vars / f"{HOST}.yml").write_text(yaml.safe_dump({
        "ansible_connection": "community.general.chroot", "ansible_host": str(root), "ansible_become": False,
        "ansible_python_interpreter": "/usr/bin/python3",
        "nvidia_repository_base_url": f"{url}/nvidia",
        # nccl-tests is built from GitHub, which these machines cannot reach.
        "nccl_tests": False,
    }, sort_keys=True))
    return out, software.packages(plan.software, catalogs.load())


def _run(inventory: Path, playbook: str = "site.yml", **kw) -> tuple[configure.RunResult, str]:
    from rich.console import Console

    console = Console(record=True, width=200, force_terminal=False)
    result = configure.run(inventory, playbook, console=console, **kw)
    return result, console.export_text() + "\n".join(result.failures)


def installed(root: Path, family: str) -> dict[str, str]:
    """Package -> version without epoch, read from the tree's package database."""
    if family == "debian":
        proc = in_root(root, "dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n")
        rows = [line.split("\t") for line in proc.stdout.splitlines()]
        # Status "ii" installed, "hi" installed and held.
        return {r[0]: r[1].split(":", 1)[-1] for r in rows if len(r) == 3 and r[2][1:2] == "i"}
    proc = in_root(root, "rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n")
    return dict(line.split("\t", 1) for line in proc.stdout.splitlines() if "\t" in line)


def held(root: Path, family: str) -> set[str]:
    if family == "debian":
        return {n.split(":")[0] for n in in_root(root, "apt-mark", "showhold").stdout.split()}
    out = in_root(root, "dnf", "-q", "versionlock", "list").stdout
    names = set()
    for line in out.splitlines():
        nevra = line.strip()
        if not nevra or nevra.startswith("#"):
            continue
        # name-epoch:version-release.* -> name
        names.add(nevra.rsplit("-", 2)[0])
    return names


def assert_lock_installed(root: Path, family: str, packages: dict[str, software.Package]) -> dict[str, str]:
    have = installed(root, family)
    locked = held(root, family)
    got = {}
    for component in INSTALLED:
        package = packages[component]
        assert package.name in have, f"{component}: {package.name} is not installed; have {sorted(have)}"
        version = have[package.name]
        if package.version:
            pattern = package.version if package.version.endswith("*") else package.version + "*"
            assert fnmatch.fnmatch(version, pattern), (component, package.name, version, package.version)
        assert package.name in locked, f"{component}: {package.name} is not held/locked; held {sorted(locked)}"
        got[package.name] = version
    return got


@pytest.mark.parametrize("os_id", ["ubuntu-24.04", "debian-13", "rhel-9"])
def test_a_b200_pool_lock_installs_pinned_and_held(tmp_path, node, served, os_id, fact_cache):
    url, _ = served
    root = node(os_id)
    inventory, packages = _inventory(tmp_path, _factory(tmp_path, os_id), root, url, "deploy")
    family = software.os_family(os_id)

    first, text = _run(inventory, tags=TAGS)
    assert first.ok, text
    got = assert_lock_installed(root, family, packages)
    # The driver's userspace is the lock's exact version, the R620 names of this OS.
    assert packages["driver_utils"].version == packages["fabric_manager"].version
    if family == "redhat":
        enabled = in_root(root, "dnf", "-q", "module", "list", "--enabled", "nvidia-driver").stdout
        assert packages["driver_stream"].name.split(":")[1] in enabled, enabled
    # The exact names, for the closing note and for review.
    (tmp_path / "installed.json").write_text(json.dumps(got, indent=2, sort_keys=True))

    second, text = _run(inventory, tags=TAGS)
    assert second.ok, text
    assert second.hosts[HOST].changed == 0, text


@pytest.mark.parametrize("os_id,wrong", [
    ("ubuntu-24.04", {"nvidia_fabric_manager_package": "nvidia-fabric-manager"}),  # RHEL's name before R580
    ("ubuntu-24.04", {"nvidia_driver_packages": ["nvidia-utils-620", "nvidia-compute-utils-620",
                                                 "libnvidia-compute-620"]}),  # R580 naming on R620
    ("rhel-9", {"nvidia_fabric_nscq_package": "libnvidia-nscq-620"}),  # the pre-R580 NSCQ name
])
def test_a_name_the_repository_does_not_carry_fails(tmp_path, node, served, os_id, wrong, fact_cache):
    url, _ = served
    root = node(os_id)
    inventory, _ = _inventory(tmp_path, _factory(tmp_path, os_id), root, url, "deploy")
    result, text = _run(inventory, tags="driver,fabric", extravars=wrong)
    assert not result.ok, text
    value = next(iter(wrong.values()))
    names = value if isinstance(value, list) else [value]
    # The failure names the package the repository does not have.
    assert any(n in failure for n in names for failure in result.failures), result.failures


@pytest.mark.parametrize("os_id", ["ubuntu-24.04", "debian-13", "rhel-9"])
def test_upgrade_rolls_a_node_from_r580_to_r620(tmp_path, node, served, os_id, fact_cache):
    url, _ = served
    root = node(os_id)
    family = software.os_family(os_id)
    old_inv, old = _inventory(tmp_path, _factory(tmp_path, os_id, "580"), root, url, "r580")
    first, text = _run(old_inv, tags=TAGS)
    assert first.ok, text
    assert_lock_installed(root, family, old)

    new_inv, new = _inventory(tmp_path, _factory(tmp_path, os_id, "620"), root, url, "r620")
    # The health gate needs a GPU; draining needs Slurm. Both are exercised elsewhere.
    result, text = _run(new_inv, "upgrade.yml", skip_tags="health,drain")
    assert result.ok, text
    assert_lock_installed(root, family, new)
    have = installed(root, family)
    # Nothing of R580 is left behind: a name that carried the branch was replaced, not kept beside.
    for component in ("driver_utils", "driver_persistenced", "driver_libs", "driver_kernel"):
        if old[component].name != new[component].name:
            assert old[component].name not in have, (component, old[component].name)
        assert have[new[component].name].startswith(new[component].version), (component, have[new[component].name])
