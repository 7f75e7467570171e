"""The software lock never pairs a CUDA minor with an NCCL build made for a newer one.

libnccl2 ``<version>+cudaX.Y`` statically links the CUDA X.Y runtime: next to an older locked
toolkit and its driver it runs only through minor-version compatibility, if at all.
"""

from __future__ import annotations

import pytest

from aifactory import plan as planning
from aifactory import spec
from aifactory.catalog import load, version_key
from aifactory.plan.software import resolve
from aifactory.spec.models import Software
from tests.conftest import STACKS

CATALOG = load()
H100 = CATALOG.systems["hgx-h100"]


def build_of(nccl: str) -> str:
    """``2.25.1-1+cuda12.2`` -> ``12.2``."""
    assert "+cuda" in nccl, nccl
    return nccl.rsplit("+cuda", 1)[1]


def assert_not_newer(cuda: str, nccl: str | None) -> None:
    if nccl is None:
        return
    build = build_of(nccl)
    assert build.split(".")[0] == cuda.split(".")[0], (cuda, nccl)
    assert version_key(build) <= version_key(cuda), f"CUDA {cuda} locked with NCCL built for CUDA {build} ({nccl})"


def _driver_for(cuda: str) -> str:
    """The oldest catalogued release that runs ``cuda`` natively."""
    need = version_key(CATALOG.cuda[cuda].min_driver)
    fits = sorted((b.latest for b in CATALOG.branches.values() if b.latest and version_key(b.latest) >= need),
                  key=version_key)
    return fits[0]


def _oldest_build(major: str) -> tuple[int, ...] | None:
    rows = [version_key(r.cuda_build) for r in CATALOG.nccl if str(r.cuda_major) == major]
    return min(rows) if rows else None


def test_lab_stack_pairs_cuda_12_2_with_a_cuda_12_2_build():
    built = planning.build(spec.load(STACKS / "lab" / "factory.yaml"))
    assert built.software.cuda == "12.2"
    assert_not_newer(built.software.cuda, built.software.nccl)
    assert build_of(built.software.nccl) == "12.2"  # NVIDIA publishes one: the exact minor


@pytest.mark.parametrize("branch", sorted(b.branch for b in CATALOG.branches.values() if b.latest))
def test_every_branch_default_lock(branch):
    lock = resolve(CATALOG, Software(driver_branch=branch), [H100])
    assert lock.cuda == CATALOG.branches[branch].default_cuda
    assert_not_newer(lock.cuda, lock.nccl)


@pytest.mark.parametrize("cuda", sorted(CATALOG.cuda, key=version_key))
def test_every_catalogued_cuda_minor(cuda):
    lock = resolve(CATALOG, Software(cuda=cuda, driver=_driver_for(cuda)), [H100])
    assert lock.cuda == cuda
    assert_not_newer(cuda, lock.nccl)
    oldest = _oldest_build(cuda.split(".")[0])
    if oldest is not None and version_key(cuda) >= oldest:
        assert lock.nccl is not None, f"CUDA {cuda} has a build at or below it but no NCCL pin"


def test_the_newest_build_at_or_below_the_minor_is_taken():
    assert build_of(resolve(CATALOG, Software(cuda="12.9", driver=_driver_for("12.9")), [H100]).nccl) == "12.9"
    assert build_of(resolve(CATALOG, Software(cuda="12.8", driver=_driver_for("12.8")), [H100]).nccl) == "12.2"


def test_every_nccl_build_is_a_catalogued_cuda_release_of_its_major():
    for row in CATALOG.nccl:
        assert row.cuda_build in CATALOG.cuda, row
        assert row.cuda_build.split(".")[0] == str(row.cuda_major), row
