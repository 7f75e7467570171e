"""Root filesystems with a node OS's identity, and the stand-in repositories they install from.

A node is a Debian-built tree that says it is Ubuntu 24.04, Debian 13 or RHEL 9 (``/etc/os-release``
and friends, which is what Ansible's facts read), reached through the chroot connection. Its
package manager sees only the repositories served here: NVIDIA's (built from the catalog) and the
few packages of its own archive the roles reach for. The RHEL tree carries Debian's build of dnf
and rpm, so the roles' dnf tasks, module streams and version locks run the real dnf.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aifactory import catalog as catalogs
from aifactory.configure.rootfs import INCLUDE, default_cache_dir, ensure_rootfs
from tests.conftest import need_root, require_tool
# The chroot helper and the per-test fact cache of the configure tests serve these trees too.
from tests.configure.conftest import fact_cache, in_root  # noqa: F401

from . import repository

# What each node OS's tree is built from: the Debian suite and the packages beyond the standard
# set (python3-debian is what the nvidia_repository role installs before adding a deb822 source;
# the tree has no archive to fetch it from).
TREES = {
    "ubuntu-24.04": ("bookworm", ("python3-debian",)),
    "ubuntu-22.04": ("bookworm", ("python3-debian",)),
    "debian-13": ("trixie", ("python3-debian",)),
    "rhel-9": ("bookworm", ("dnf", "python3-dnf", "dnf-plugins-core", "rpm")),
}

IDENTITY = {
    "ubuntu-24.04": {
        "etc/os-release": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
                          'VERSION="24.04.1 LTS (Noble Numbat)"\nVERSION_CODENAME=noble\nID=ubuntu\n'
                          'ID_LIKE=debian\nUBUNTU_CODENAME=noble\n',
        "etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\nDISTRIB_CODENAME=noble\n"
                           'DISTRIB_DESCRIPTION="Ubuntu 24.04.1 LTS"\n',
    },
    "ubuntu-22.04": {
        "etc/os-release": 'PRETTY_NAME="Ubuntu 22.04.5 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
                          'VERSION="22.04.5 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\n'
                          'ID_LIKE=debian\nUBUNTU_CODENAME=jammy\n',
        "etc/lsb-release": "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\n"
                           'DISTRIB_DESCRIPTION="Ubuntu 22.04.5 LTS"\n',
    },
    "debian-13": {},  # a trixie tree is Debian 13 already
    "rhel-9": {
        "etc/os-release": 'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\nID_LIKE="fedora"\n'
                          'VERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\n'
                          'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n',
        "etc/redhat-release": "Red Hat Enterprise Linux release 9.4 (Plow)\n",
        "etc/dnf/vars/releasever": "9\n",
    },
}
# Files that would make a RHEL tree look like Debian to Ansible's distribution facts.
NOT_RHEL = ("etc/debian_version", "etc/lsb-release")


@pytest.fixture(scope="session")
def stand_in_catalog():
    return catalogs.load()


@pytest.fixture(scope="session")
def served(tmp_path_factory, stand_in_catalog):
    """Every stand-in repository, built once and served on loopback: ``(url, root folder)``.

    ``<url>/nvidia/<folder>/x86_64/`` is NVIDIA's repository for a node OS, laid out as
    nvidia_repository_base_url expects; ``<url>/os/<os>/`` the node archive's few packages."""
    need_root()
    for tool, package in (("dpkg-deb", "dpkg"), ("apt-ftparchive", "apt-utils"), ("gpg", "gnupg"),
                          ("rpmbuild", "rpm"), ("rpmsign", "rpm"), ("createrepo_c", "createrepo-c"),
                          ("modifyrepo_c", "createrepo-c"), ("debootstrap", "debootstrap")):
        require_tool(tool, package)
    top = tmp_path_factory.mktemp("repositories")
    gpg = top.parent / f"{top.name}-gpg"
    repository.signing_key(gpg)
    kernel = os.uname().release
    for os_id in TREES:
        nvidia = repository.nvidia_stubs(stand_in_catalog, os_id)
        archive = repository.os_stubs(os_id, kernel)
        folder = repository.REPO_FOLDERS[os_id]
        build = repository.build_apt if nvidia.family == "debian" else repository.build_dnf
        build(nvidia, top / "nvidia" / folder / "x86_64", gpg, f"{repository.KEYS[folder]}.pub")
        build(archive, top / "os" / os_id, gpg, repository.ARCHIVE_KEY)
    try:
        with repository.serve(top) as url:
            yield url, top
    finally:
        # gpg started an agent for the signing key's home; it would outlive the tests.
        subprocess.run(["gpgconf", "--homedir", str(gpg), "--kill", "gpg-agent"], capture_output=True)


def _archive_source(os_id: str, url: str, root: Path) -> None:
    """Point the tree's package manager at the stand-in archive only."""
    if repository.family(os_id) == "debian":
        for old in [root / "etc/apt/sources.list", *root.glob("etc/apt/sources.list.d/*")]:
            old.unlink(missing_ok=True)
        key = root / "etc/apt/keyrings/stand-in-archive.asc"
        key.parent.mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list.d/archive.sources").write_text(
            f"Types: deb\nURIs: {url}/os/{os_id}/\nSuites: /\nSigned-By: /etc/apt/keyrings/stand-in-archive.asc\n")
        return key
    repos = root / "etc/yum.repos.d"
    repos.mkdir(parents=True, exist_ok=True)
    (repos / "archive.repo").write_text(
        f"[archive]\nname=node archive\nbaseurl={url}/os/{os_id}/\nenabled=1\ngpgcheck=1\n"
        f"gpgkey={url}/os/{os_id}/{repository.ARCHIVE_KEY}\n")
    return None


@pytest.fixture
def node(tmp_path_factory, served):
    """A factory of node trees: ``node(os_id)`` -> the root of a fresh tree with that identity."""
    url, top = served
    mounted: list[Path] = []

    def make(os_id: str) -> Path:
        suite, extra = TREES[os_id]
        cache = Path(os.environ.get("AIFACTORY_CACHE_DIR", default_cache_dir()))
        root = ensure_rootfs(tmp_path_factory.mktemp(os_id) / "root", cache, include=INCLUDE + extra, suite=suite)
        if os_id == "rhel-9":
            for name in NOT_RHEL:
                (root / name).unlink(missing_ok=True)
        for name, text in IDENTITY[os_id].items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()
            path.write_text(text)
        key = _archive_source(os_id, url, root)
        if key is not None:
            key.write_bytes((top / "os" / os_id / repository.ARCHIVE_KEY).read_bytes())
        if subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], capture_output=True).returncode == 0:
            mounted.append(root / "proc")
        return root

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)
