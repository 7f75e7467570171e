"""Resolve the software lock: one exact version for every pinned NVIDIA component."""

from __future__ import annotations

from ..catalog import Catalog, System, version_key
from ..spec.models import Software
from .model import SoftwareLock

DEFAULT_DCGM_MAJOR = 4
OPEN_MODULES_DEFAULT_FROM = 560  # open kernel modules are the default from R560 (NVIDIA driver README)


# The packages that must equal the driver version, by their unversioned names.
FABRIC_MANAGER = "nvidia-fabricmanager"
NSCQ = "libnvidia-nscq"
IMEX = "nvidia-imex"


def fabric_package(catalog: Catalog, branch: str, base: str) -> str:
    """``<base>-<branch>`` up to R580, plain ``<base>`` from R590 (NVIDIA's CUDA repository names
    fabric manager, NSCQ and IMEX alike; the catalog's driver branch table says which)."""
    row = catalog.branches.get(branch)
    versioned = row.fabric_manager_package_versioned if row else int(branch) < 590
    return f"{base}-{branch}" if versioned else base


def packages(lock: SoftwareLock, catalog: Catalog) -> dict[str, tuple[str, str]]:
    """Component -> (package, pinned version): the one source of the NVIDIA package names.

    Names are the apt names of NVIDIA's CUDA repository for Ubuntu/Debian. ``versions.lock.json``
    lists them and the inventory hands the fabric ones to the nvidia_fabric role, so what the
    lock records is what the role installs and holds.
    """
    out: dict[str, tuple[str, str]] = {}
    if lock.driver is None or lock.driver_branch is None:
        return out
    branch = lock.driver_branch
    flavour = "-open" if lock.open_kernel_modules else ""
    out["driver"] = (f"nvidia-driver-{branch}{flavour}", lock.driver)
    if lock.fabric_manager:
        out["fabric_manager"] = (lock.fabric_manager_package or fabric_package(catalog, branch, FABRIC_MANAGER),
                                 lock.fabric_manager)
        out["nscq"] = (fabric_package(catalog, branch, NSCQ), lock.libnvidia_nscq or lock.fabric_manager)
    if lock.imex:  # nvidia-imex has the driver's version (NVIDIA IMEX guide)
        out["imex"] = (fabric_package(catalog, branch, IMEX), lock.driver)
    if lock.cuda:
        out["cuda_toolkit"] = (f"cuda-toolkit-{lock.cuda.replace('.', '-')}", lock.cuda)
    if lock.nccl:
        out["nccl"] = ("libnccl2", lock.nccl)
    if lock.dcgm_package:
        out["dcgm"] = (lock.dcgm_package, f"{lock.dcgm_major}.*")
    return out


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


def resolve(catalog: Catalog, software: Software, systems: list[System]) -> SoftwareLock:
    """Pure resolution; inconsistencies are reported by the named checks, not here."""
    nvidia = [s for s in systems if s.gpu.vendor == "nvidia"]
    if not nvidia:
        return SoftwareLock(os=software.os)
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
    fm_package = fabric_package(catalog, branch, FABRIC_MANAGER) if needs_fm else None
    dcgm_major = software.dcgm or DEFAULT_DCGM_MAJOR
    cuda_major = int(cuda.split(".")[0]) if cuda else None
    dcgm_row = catalog.dcgm_for(dcgm_major, cuda_major) if cuda_major else None
    dcgm_package = software.dcgm_package or (dcgm_row.package if dcgm_row else None)
    nccl_row = catalog.nccl_for(cuda) if cuda else None
    nccl = software.nccl or (f"{nccl_row.version}+cuda{nccl_row.cuda_build}" if nccl_row else None)
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
        os=software.os,
    )
