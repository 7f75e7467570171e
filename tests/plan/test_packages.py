"""NVIDIA package names per OS and driver branch, all from the catalog table ``packages``.

Each expectation names the public source it was checked against (checked 2026-12-03):

- GDC-UBUNTU: NVIDIA/gpu-driver-container ``ubuntu24.04/precompiled/local-repo.sh`` (fabric
  manager, NSCQ and IMEX are ``<name>-<branch>`` before R580, unversioned from R580; ``nvlsm``
  from R570) and ``ubuntu24.04/install.sh`` (``nvidia-fabricmanager=<version>*``).
- GDC-RHEL: NVIDIA/gpu-driver-container ``rhel9/install.sh`` at commit 78fa4ac
  (``nvidia-fabric-manager-<version>``, ``libnvidia-nscq-<branch>-<version>`` and
  ``nvidia-imex-<branch>-<version>`` before R580; ``nvidia-fabricmanager-<version>``,
  ``libnvidia-nscq-<version>``, ``nvidia-imex-<version>`` from R580; ``nvlsm``).
- AZHPC: Azure/azhpc-images ``components/install_nvidiagpudriver.sh`` (``nvidia-driver-580-open``
  from NVIDIA's Ubuntu repository, ``cuda-toolkit-<major>-<minor>`` with apt and dnf),
  ``components/install_nvidia_fabric_manager.sh`` (RHEL: hyphen dropped from R580) and
  ``components/install_nccl.sh`` (``libnccl2``/``libnccl-dev``; ``libnccl``/``libnccl-devel``).
- GUIDE-620: https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/620/kernel-modules.html
  (RHEL 8/9: ``dnf module enable nvidia-driver:<branch>-open``, ``dnf install nvidia-open``).
- GUIDE-595: https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/595/advanced-options.html
  (Ubuntu 22.04/24.04: ``nvidia-open nvidia-driver-open``, unversioned).
- RECENT-UPDATES: https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/recent-updates.html
  ("Ubuntu 590 and later packages": the branch designation is removed, ``libnvidia-compute-580`` ->
  ``libnvidia-compute``, ``nvidia-dkms-580-open`` -> ``nvidia-dkms-open``).
- UBUNTU-MAN: manpages.ubuntu.com "Provided by" for nvidia-smi(1) (``nvidia-utils-<branch>``) and
  nvidia-persistenced(1) (``nvidia-compute-utils-<branch>``).
- GENMODULES: NVIDIA/cuda-repo-management ``genmodules.py`` at 2944b7a4 (``nvidia-driver-cuda``,
  ``nvidia-driver-libs``, ``nvidia-persistenced``, ``kmod-nvidia-open-dkms``).
"""

from __future__ import annotations

import pytest
import yaml

from aifactory import plan as planning
from aifactory.catalog import load as load_catalog
from aifactory.plan import software
from aifactory.spec import load_string


def _lock(os_id: str, branch: str, system: str, **software_fields):
    nodes = 18 if system.endswith("nvl72") else 2
    text = yaml.safe_dump({
        "name": "p", "software": {"driver_branch": branch, "os": os_id, **software_fields},
        "sites": [{"name": "dc", "power_mw": 5, "rack_kw": 140}],
        "pools": [{"name": "g", "site": "dc", "provider": "onprem", "system": system, "nodes": nodes}]})
    return planning.build(load_string(text)).software


CASES = [
    # Ubuntu 24.04, R570, HGX H100 with IMEX asked for: every name carries the branch.
    ("ubuntu-24.04", "570", "dgx-h100", {"imex": True}, {
        "driver": "nvidia-driver-570-open",  # NVIDIA's Ubuntu naming up to R580 (AZHPC for 580)
        # The headless driver up to R580 (UBUNTU-MAN; RECENT-UPDATES for the dkms row).
        "driver_utils": "nvidia-utils-570", "driver_persistenced": "nvidia-compute-utils-570",
        "driver_libs": "libnvidia-compute-570", "driver_kernel": "nvidia-dkms-570-open",
        "fabric_manager": "nvidia-fabricmanager-570",  # GDC-UBUNTU
        "nscq": "libnvidia-nscq-570",  # GDC-UBUNTU
        "imex": "nvidia-imex-570",  # GDC-UBUNTU (R550 to R575)
        "cuda_toolkit": "cuda-toolkit-12-8",  # AZHPC
        "nccl": "libnccl2", "nccl_dev": "libnccl-dev",  # AZHPC
    }),
    # Ubuntu 24.04, R580, DGX B200: NVIDIA's repository drops the branch from R580 (GDC-UBUNTU).
    ("ubuntu-24.04", "580", "dgx-b200", {}, {
        "driver": "nvidia-driver-580-open",  # AZHPC
        "driver_utils": "nvidia-utils-580", "driver_persistenced": "nvidia-compute-utils-580",
        "driver_libs": "libnvidia-compute-580", "driver_kernel": "nvidia-dkms-580-open",
        "fabric_manager": "nvidia-fabricmanager",  # GDC-UBUNTU
        "nscq": "libnvidia-nscq",  # GDC-UBUNTU
        "nvlsm": "nvlsm",  # GDC-UBUNTU, from R570
        "cuda_toolkit": "cuda-toolkit-13-0",  # AZHPC
        "nccl": "libnccl2", "nccl_dev": "libnccl-dev",  # AZHPC
    }),
    # Ubuntu 24.04, R595, GB200 NVL72 compute trays: IMEX, no fabric manager.
    ("ubuntu-24.04", "595", "gb200-nvl72", {}, {
        "driver": "nvidia-driver-open",  # GUIDE-595
        # From R590 the branch is gone from every Ubuntu driver name (RECENT-UPDATES).
        "driver_utils": "nvidia-utils", "driver_persistenced": "nvidia-compute-utils",
        "driver_libs": "libnvidia-compute", "driver_kernel": "nvidia-dkms-open",
        "imex": "nvidia-imex",  # GDC-UBUNTU ubuntu24.04/install.sh, built for 595.91.07
        "cuda_toolkit": "cuda-toolkit-13-2",  # AZHPC
        "nccl": "libnccl2", "nccl_dev": "libnccl-dev",  # AZHPC
    }),
    # RHEL 9, R570, HGX H100 with IMEX: the dnf names before R580.
    ("rhel-9", "570", "dgx-h100", {"imex": True}, {
        "driver_stream": "nvidia-driver:570-open",  # GUIDE-620
        "driver": "nvidia-open",  # GUIDE-620
        # The nvidia-driver module's branch packages (GENMODULES).
        "driver_utils": "nvidia-driver-cuda", "driver_persistenced": "nvidia-persistenced",
        "driver_libs": "nvidia-driver-libs", "driver_kernel": "kmod-nvidia-open-dkms",
        "fabric_manager": "nvidia-fabric-manager",  # GDC-RHEL, AZHPC
        "nscq": "libnvidia-nscq-570",  # GDC-RHEL
        "imex": "nvidia-imex-570",  # GDC-RHEL
        "cuda_toolkit": "cuda-toolkit-12-8",  # AZHPC
        "nccl": "libnccl", "nccl_dev": "libnccl-devel",  # AZHPC
    }),
    # RHEL 9, R580, DGX B200: the hyphen and the branch are gone from R580.
    ("rhel-9", "580", "dgx-b200", {}, {
        "driver_stream": "nvidia-driver:580-open",  # GUIDE-620
        "driver": "nvidia-open",  # GUIDE-620
        "driver_utils": "nvidia-driver-cuda", "driver_persistenced": "nvidia-persistenced",
        "driver_libs": "nvidia-driver-libs", "driver_kernel": "kmod-nvidia-open-dkms",
        "fabric_manager": "nvidia-fabricmanager",  # GDC-RHEL, AZHPC
        "nscq": "libnvidia-nscq",  # GDC-RHEL
        "nvlsm": "nvlsm",  # GDC-RHEL
        "cuda_toolkit": "cuda-toolkit-13-0",  # AZHPC
        "nccl": "libnccl", "nccl_dev": "libnccl-devel",  # AZHPC
    }),
]


@pytest.mark.parametrize("os_id, branch, system, extra, expected", CASES,
                         ids=[f"{c[0]}-R{c[1]}" for c in CASES])
def test_package_names_per_os_and_branch(os_id, branch, system, extra, expected):
    lock = _lock(os_id, branch, system, **extra)
    assert lock.driver_branch == branch
    named = software.packages(lock, load_catalog())
    got = {k: p.name for k, p in named.items() if k != "dcgm"}
    assert got == expected
    # DCGM 4 is named per CUDA major, the same with apt and dnf (AZHPC components/install_dcgm.sh).
    assert named["dcgm"].name == lock.dcgm_package
    if "fabric_manager" in expected:
        assert lock.fabric_manager_package == expected["fabric_manager"]  # plan.json agrees with the lock


def test_pins_are_spelled_for_the_package_manager():
    catalog = load_catalog()
    rhel = software.packages(_lock("rhel-9", "570", "dgx-h100"), catalog)
    version = catalog.branches["570"].latest
    # GDC-RHEL at 78fa4ac: dnf install libnvidia-nscq-<branch>-<version>, nvidia-fabric-manager-<version>.
    assert rhel["nscq"].spec() == f"libnvidia-nscq-570-{version}"
    assert rhel["fabric_manager"].spec() == f"nvidia-fabric-manager-{version}"
    assert rhel["driver_stream"].stream and rhel["driver_stream"].spec() == "nvidia-driver:570-open"
    ubuntu = software.packages(_lock("ubuntu-24.04", "580", "dgx-b200"), catalog)
    version = catalog.branches["580"].latest
    # GDC-UBUNTU ubuntu24.04/install.sh: apt-get install nvidia-fabricmanager=<version>*.
    assert ubuntu["fabric_manager"].spec() == f"nvidia-fabricmanager={version}*"
    assert ubuntu["nvlsm"].version is None and ubuntu["nvlsm"].spec() == "nvlsm"  # date-based, not the driver's
    # DCGM is pinned to its major (4.*), which apt matches as it is.
    assert ubuntu["dcgm"].spec() == f"{ubuntu['dcgm'].name}=4.*"


def test_proprietary_modules_take_the_dkms_stream_on_rhel():
    named = software.packages(_lock("rhel-9", "580", "dgx-h100", open_kernel_modules=False), load_catalog())
    # NVIDIA/gpu-driver-container rhel9/install.sh enables nvidia-driver:<branch>-dkms; GUIDE-595
    # switches to the proprietary flavour with cuda-drivers.
    assert named["driver_stream"].name == "nvidia-driver:580-dkms" and named["driver"].name == "cuda-drivers"


def test_debian_and_ubuntu_share_the_apt_names_but_the_drivers():
    """Fabric manager, NSCQ, CUDA and NCCL are named alike in NVIDIA's Debian and Ubuntu
    repositories; the driver is not: Ubuntu's names carry the branch up to R580, Debian's follow
    Debian's own split (nvidia-driver-cuda, libcuda1, nvidia-kernel-open-dkms)."""
    catalog = load_catalog()
    debian = software.packages(_lock("debian-12", "535", "hgx-h100"), catalog)
    ubuntu = software.packages(_lock("ubuntu-22.04", "535", "hgx-h100"), catalog)
    driver = {"driver", "driver_utils", "driver_persistenced", "driver_libs", "driver_kernel"}
    assert {k: p.name for k, p in debian.items() if k not in driver} == \
        {k: p.name for k, p in ubuntu.items() if k not in driver}
    assert debian["fabric_manager"].name == "nvidia-fabricmanager-535"
    assert {k: debian[k].name for k in sorted(driver)} == {
        "driver": "cuda-drivers", "driver_kernel": "nvidia-kernel-dkms", "driver_libs": "libcuda1",
        "driver_persistenced": "nvidia-persistenced", "driver_utils": "nvidia-driver-cuda"}
    assert {k: ubuntu[k].name for k in sorted(driver)} == {  # proprietary modules: R535 on Hopper
        "driver": "nvidia-driver-535", "driver_kernel": "nvidia-dkms-535",
        "driver_libs": "libnvidia-compute-535", "driver_persistenced": "nvidia-compute-utils-535",
        "driver_utils": "nvidia-utils-535"}
    assert software.os_family("debian-12") == software.os_family("ubuntu-24.04") == "debian"
    assert software.os_family("rhel-9") == "redhat"


def test_a_branch_upgrade_releases_the_names_it_replaces():
    """Held packages block the upgrade that renames them (R580 -> R620 on Ubuntu): the inventory
    lists the other branches' names, which the roles release before installing."""
    catalog = load_catalog()
    lock = _lock("ubuntu-24.04", "620", "dgx-b200")
    driver = software.replaced(lock, catalog, "driver")
    assert {"nvidia-utils-580", "nvidia-compute-utils-580", "libnvidia-compute-580", "nvidia-dkms-580-open"} <= set(driver)
    assert not {"nvidia-utils", "libnvidia-compute", "nvidia-dkms-open"} & set(driver)
    assert "nvidia-fabricmanager-570" in software.replaced(lock, catalog, "fabric")
    assert software.replaced(_lock("debian-12", "620", "dgx-b200"), catalog, "driver") == []


def test_debian_13_locks_slurm_24_11_and_the_names_of_the_debian_family():
    """Debian 13 is a Debian-family OS: NVIDIA's debian13 repository names its packages as the
    debian12 one does, and the lock carries the Slurm trixie ships (24.11)."""
    catalog = load_catalog()
    lock = _lock("debian-13", "580", "dgx-b200")
    assert lock.os == "debian-13" and lock.slurm == "24.11" and lock.slurm_release == (24, 11)
    assert software.os_family("debian-13") == "debian"
    trixie = software.packages(lock, catalog)
    bookworm = software.packages(_lock("debian-12", "580", "dgx-b200"), catalog)
    assert {k: p.spec() for k, p in trixie.items()} == {k: p.spec() for k, p in bookworm.items()}
    # Every name is the debian family's row of the table, pinned with apt's =<version>*.
    version = catalog.branches["580"].latest
    assert {"driver", "fabric_manager", "nscq", "nvlsm", "cuda_toolkit", "nccl"} <= set(trixie)
    for key in ("driver", "fabric_manager", "nscq", "cuda_toolkit", "nccl"):
        component = "driver_open" if key == "driver" else key
        assert trixie[key].name == software.package_name(catalog, component, "debian", "580", "13.0"), key
        assert trixie[key].pin == "="
    assert trixie["driver"].spec() == f"{trixie['driver'].name}={version}*"
    assert trixie["fabric_manager"].spec() == f"{trixie['fabric_manager'].name}={version}*"


def test_every_node_os_has_a_package_family():
    from typing import get_args

    from aifactory.fields import NodeOs

    assert {software.os_family(o) for o in get_args(NodeOs)} == {"debian", "redhat"}
    # Every Debian-family OS ships Slurm of its own; RHEL alone has no release to lock.
    assert {o for o in get_args(NodeOs) if software.slurm_release(o) is None} == {"rhel-9"}


def test_every_catalogued_branch_has_every_required_name_on_both_families():
    """No lock the catalog can produce meets a gap in the table (IMEX and NVLSM start later)."""
    catalog = load_catalog()
    for branch in catalog.branches:
        for family in ("debian", "redhat"):
            for component in ("driver", "driver_open", "fabric_manager", "nscq", "cuda_toolkit", "nccl", "nccl_dev"):
                assert software.package_name(catalog, component, family, branch, "13.0"), (component, family, branch)
            if int(branch) >= 570:
                for component in ("imex", "nvlsm"):
                    assert software.package_name(catalog, component, family, branch), (component, family, branch)
        assert software.package_name(catalog, "driver_open_stream", "redhat", branch) == f"nvidia-driver:{branch}-open"
        assert software.package_name(catalog, "driver_open_stream", "debian", branch) is None


def test_the_table_is_the_only_source_of_the_names():
    """An overlay row replaces a name everywhere the lock is read: no name is built in code."""
    catalog = load_catalog((("packages", (
        ("component", "fabric_manager"), ("family", "debian"), ("first_branch", "580"), ("last_branch", ""),
        ("name", "acme-fabricmanager-{branch}"), ("version_pin", "="), ("source", "test"))),))
    lock = _lock("ubuntu-24.04", "580", "dgx-h100")
    assert software.packages(lock, catalog)["fabric_manager"].name == "acme-fabricmanager-580"
