"""Resolve the software lock: one exact version for every pinned NVIDIA component."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..catalog import Catalog, CatalogError, PackageName, System, version_key
from ..spec.models import Software
from .model import PACKAGE_NAME, GdrcopyBuild, SoftwareLock

DEFAULT_DCGM_MAJOR = 4
# Slurm in each OS's own repository (DOMAIN facts: Debian 12 22.05, Ubuntu 22.04 21.08, Ubuntu
# 24.04 23.11, Debian 13 24.11: slurmctld 24.11.5-2 in trixie,
# https://packages.debian.org/trixie/slurmctld, checked 2026-12-03), the release the lock records
# and everything Slurm is written for. RHEL has no Slurm of its own (EPEL's, or a site build,
# varies): its release is not known, and Slurm configs for it keep to what every release loads.
SLURM_BY_OS = {"debian-12": "22.05", "debian-13": "24.11", "ubuntu-22.04": "21.08", "ubuntu-24.04": "23.11"}
OPEN_MODULES_DEFAULT_FROM = 560  # open kernel modules are the default from R560 (NVIDIA driver README)

# The package naming family of each OS the lock can name (the prefix of SoftwareLock.os): NVIDIA's
# CUDA repository names its packages one way for apt and another for dnf (catalog table packages).
OS_FAMILIES = {"ubuntu": "debian", "debian": "debian", "rhel": "redhat"}
# The shape every filled-in name must have: the plan's package name, or a dnf module stream
# (name:stream, each part a package name).
_PACKAGE = re.compile(PACKAGE_NAME)
_STREAM = re.compile(PACKAGE_NAME.rstrip("$") + ":" + PACKAGE_NAME.lstrip("^"))


def slurm_release(os_id: str) -> Optional[str]:
    """``major.minor`` of the Slurm ``os_id`` ships; None where the OS has none of its own."""
    return SLURM_BY_OS.get(os_id)


def os_family(os_id: str) -> str:
    """``ubuntu-24.04``, ``debian-12`` and ``debian-13`` -> ``debian``; ``rhel-9`` -> ``redhat``."""
    return OS_FAMILIES[os_id.split("-", 1)[0]]


@dataclass(frozen=True)
class Package:
    """One NVIDIA package (or dnf module stream) of the lock, named for the lock's OS family."""

    component: str
    name: str
    version: Optional[str]  # None: not pinned (NVLSM's date-based versions, a module stream)
    pin: str  # "=" apt, "-" dnf, "module" a dnf module stream

    @property
    def stream(self) -> bool:
        return self.pin == "module"

    def spec(self) -> str:
        """How the package manager is asked for it: ``name=<version>*`` (apt), ``name-<version>``
        (dnf), the bare name when nothing is pinned."""
        if self.version is None or self.stream:
            return self.name
        if self.pin != "=":
            return f"{self.name}-{self.version}"
        # apt matches the pinned upstream version with any Debian revision (580.95.05-0ubuntu1).
        return f"{self.name}={self.version}" + ("" if self.version.endswith("*") else "*")


def package_keys(os_or_family: str) -> tuple[str, ...]:
    """The packages table's family values for a node OS (or a family), most specific first:
    ``ubuntu-24.04`` -> (ubuntu, debian); ``debian-13`` -> (debian,); ``rhel-9`` -> (redhat,)."""
    head = os_or_family.split("-", 1)[0]
    if head == "ubuntu":
        return ("ubuntu", "debian")
    return (OS_FAMILIES.get(head, head),)


def package_row(catalog: Catalog, component: str, os_or_family: str, branch: str) -> PackageName | None:
    """The packages table's row for ``component`` on a node OS (or family) and driver ``branch``:
    the most specific family with a row wins (ubuntu over debian). The catalog refuses overlapping
    ranges within a family, so there is at most one."""
    for key in package_keys(os_or_family):
        found = [r for r in catalog.rows["packages"]
                 if r.component == component and r.family == key and r.covers(int(branch))]
        if found:
            return found[0]
    return None


def package_name(catalog: Catalog, component: str, family: str, branch: str, cuda: str | None = None) -> str | None:
    """The name of ``component`` for a node OS or ``family`` and ``branch`` (its placeholders filled
    from the branch and the CUDA ``major.minor``), or None where the table has no row for it."""
    row = package_row(catalog, component, family, branch)
    if row is None:
        return None
    values = {"branch": branch}
    if cuda:
        values["cuda_major"], values["cuda_minor"] = cuda.split(".")[:2]
    try:
        name = row.name.format(**values)
    except KeyError as exc:
        raise CatalogError(f"packages {component}/{family}: {row.name} needs {exc.args[0]}, which the lock "
                           "does not have") from None
    if not (_STREAM if row.version_pin == "module" else _PACKAGE).fullmatch(name):
        raise CatalogError(f"packages {component}/{family}: {name!r} is not a valid package name")
    return name


def packages(lock: SoftwareLock, catalog: Catalog) -> dict[str, Package]:
    """Component -> :class:`Package`: the one source of the NVIDIA package names, for the lock's
    OS family, from the catalog table ``packages`` only.

    ``versions.lock.json`` lists them (render.deployment.lock) and the inventory hands them to
    the roles (inventory.plan), so what the lock records is what the roles install and hold. The
    driver entry is the branch's driver metapackage; the nvidia_driver role installs the headless
    part of it, the driver_* entries. DCGM's name is the lock's (catalog table dcgm: the same on
    both families).
    """
    out: dict[str, Package] = {}
    if lock.driver is None or lock.driver_branch is None:
        return out
    family = os_family(lock.os)
    os_id = lock.os
    branch = lock.driver_branch
    apt_or_dnf = "=" if family == "debian" else "-"

    def add(key: str, component: str, version: str | None, required: bool = True) -> None:
        row = package_row(catalog, component, os_id, branch)
        if row is None:
            if required:
                raise CatalogError(f"the packages table has no {component} row for {family} and R{branch}")
            return
        name = package_name(catalog, component, os_id, branch, lock.cuda)
        out[key] = Package(key, name, None if row.version_pin == "module" else version, row.version_pin)

    flavour = "driver_open" if lock.open_kernel_modules else "driver"
    add("driver_stream", f"{flavour}_stream", None, required=False)  # dnf module streams: RHEL only
    add("driver", flavour, lock.driver)
    # The headless driver the nvidia_driver role installs, pins and holds (the metapackage above
    # would also pull X11 and display pieces): nvidia-smi, the persistence daemon, libcuda, and the
    # kernel modules of the lock's flavour.
    for component in ("driver_utils", "driver_persistenced", "driver_libs"):
        add(component, component, lock.driver)
    add("driver_kernel", "driver_kernel_open" if lock.open_kernel_modules else "driver_kernel", lock.driver)
    if lock.fabric_manager:  # fabric manager and NSCQ must equal the driver version exactly
        add("fabric_manager", "fabric_manager", lock.fabric_manager)
        add("nscq", "nscq", lock.libnvidia_nscq or lock.fabric_manager)
    if lock.imex:  # nvidia-imex has the driver's version (NVIDIA IMEX guide)
        add("imex", "imex", lock.driver)
    if lock.nvlsm:  # date-based versions that do not follow the driver
        add("nvlsm", "nvlsm", None)
    if lock.cuda:
        add("cuda_toolkit", "cuda_toolkit", lock.cuda)
    if lock.nccl:
        add("nccl", "nccl", lock.nccl)
        add("nccl_dev", "nccl_dev", lock.nccl)
    if lock.dcgm_package:
        out["dcgm"] = Package("dcgm", lock.dcgm_package, f"{lock.dcgm_major}.*", apt_or_dnf)
    return out


# The components whose names a branch upgrade can change (Ubuntu's driver drops the branch from
# R590, fabric manager, NSCQ and IMEX from R580), by the role that holds them.
REPLACEABLE = {
    "driver": ("driver_utils", "driver_persistenced", "driver_libs", "driver_kernel", "driver_kernel_open"),
    "fabric": ("fabric_manager", "nscq", "imex"),
}


def replaced(lock: SoftwareLock, catalog: Catalog, role: str) -> list[str]:
    """The names ``role``'s packages have on every other catalogued branch but not on the lock's:
    held or version-locked on a node, they would block the upgrade to the lock's, which replace
    them (a new name conflicts with the old). Sorted; empty without a driver."""
    if lock.driver_branch is None:
        return []
    components = REPLACEABLE[role]
    ours = {package_name(catalog, c, lock.os, lock.driver_branch) for c in components}
    others = {package_name(catalog, c, lock.os, branch) for c in components for branch in catalog.branches}
    return sorted(n for n in others - ours if n)


def default_branch(catalog: Catalog, software: Software) -> str:
    """The newest long-term-support branch with a catalogued release, unless CUDA needs newer."""
    released = sorted((b for b in catalog.branches.values() if b.latest), key=lambda b: int(b.branch))
    ltsb = [b for b in released if b.kind == "LTSB"]
    choice = ltsb[-1] if ltsb else released[-1]
    cuda = catalog.cuda_release(software.cuda) if software.cuda else None
    if cuda and version_key(choice.latest) < version_key(cuda.min_driver):
        newer = [b for b in released if version_key(b.latest) >= version_key(cuda.min_driver)]
        if newer:
            choice = newer[0]
    return choice.branch


def gdrcopy_build(catalog: Catalog, version: str, cuda: str) -> GdrcopyBuild | None:
    """The build of GDRCopy ``version`` in NVIDIA's redist folder for the CUDA major of ``cuda``
    (catalog table gdrcopy); None where the catalog has none (the ``gdrcopy`` check says so)."""
    major = int(cuda.split(".")[0])
    row = next((r for r in catalog.rows["gdrcopy"] if r.version == version and r.cuda_major == major), None)
    return GdrcopyBuild(version=row.version, revision=row.revision, cuda_major=row.cuda_major) if row else None


def resolve(catalog: Catalog, software: Software, systems: list[System]) -> SoftwareLock:
    """Pure resolution; inconsistencies are reported by the named checks, not here."""
    nvidia = [s for s in systems if s.gpu.vendor == "nvidia"]
    if not nvidia:
        return SoftwareLock(os=software.os, slurm=slurm_release(software.os))
    if software.driver:
        branch = software.driver.split(".")[0]
    else:
        branch = software.driver_branch or default_branch(catalog, software)
    row = catalog.branches.get(branch)
    driver = software.driver or (row.latest if row else None)
    cuda = software.cuda or (row.default_cuda if row else None)
    if cuda is None and driver:
        fits = [c for c in catalog.cuda.values() if version_key(c.min_driver) <= version_key(driver)]
        cuda = max(fits, key=lambda c: version_key(c.cuda)).cuda if fits else None
    if software.open_kernel_modules is not None:
        open_modules = software.open_kernel_modules
    else:
        open_modules = int(branch) >= OPEN_MODULES_DEFAULT_FROM or any(s.gpu.open_modules_required for s in nvidia)
    needs_fm = any(s.fabric_manager for s in nvidia)
    fm = (software.fabric_manager or driver) if needs_fm else None
    fm_package = package_name(catalog, "fabric_manager", software.os, branch) if needs_fm else None
    dcgm_major = software.dcgm or DEFAULT_DCGM_MAJOR
    cuda_major = int(cuda.split(".")[0]) if cuda else None
    dcgm_row = catalog.dcgm_for(dcgm_major, cuda_major) if cuda_major else None
    dcgm_package = software.dcgm_package or (dcgm_row.package if dcgm_row else None)
    nccl_row = catalog.nccl_for(cuda) if cuda else None
    nccl = software.nccl or (f"{nccl_row.version}+cuda{nccl_row.cuda_build}" if nccl_row else None)
    gdrcopy = gdrcopy_build(catalog, software.gdrcopy, cuda) if software.gdrcopy and cuda else None
    return SoftwareLock(
        driver=driver,
        driver_branch=branch,
        cuda=cuda,
        open_kernel_modules=open_modules,
        fabric_manager=fm,
        fabric_manager_package=fm_package,
        libnvidia_nscq=fm,
        nvlsm=any(s.nvlsm for s in nvidia) if software.nvlsm is None else software.nvlsm,
        imex=any(s.imex for s in nvidia) if software.imex is None else software.imex,
        dcgm_package=dcgm_package,
        dcgm_major=dcgm_major,
        nccl=nccl,
        gdrcopy=gdrcopy,
        os=software.os,
        slurm=slurm_release(software.os),
    )
