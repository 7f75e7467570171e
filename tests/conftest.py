"""Shared fixtures. Tests mirror modules/aifactory; golden cases live under tests/golden/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "stacks"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(message: str) -> None:
    """Something CI installs is missing: fail in CI, skip elsewhere (naming what to install)."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(tool: str, package: str) -> str:
    """Path of ``tool``; in CI a missing tool fails the test, elsewhere it skips naming the package."""
    path = shutil.which(tool)
    if path:
        return path
    missing(f"{tool} not found: apt-get install {package} (tests/system-deps.sh does this as root)")
    raise AssertionError("unreachable")


def need_root() -> None:
    """Tests that chroot or debootstrap: fail in CI when not root, skip elsewhere."""
    if os.geteuid() != 0:
        message = "needs root (chroot, debootstrap): run the slow tests as root"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


# `make test-fast` runs each per-stack case on these stacks only (every module is still
# exercised: between them they hold all six providers); the full run takes every stack. A test
# module that sets EVERY_STACK_IN_FAST = True (the golden files) keeps all its stacks fast.
FAST_STACKS = ("lab", "multicloud")


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config, items):
    heavy = {p.name for p in STACKS.iterdir() if p.is_dir()} - set(FAST_STACKS)
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or getattr(item.module, "EVERY_STACK_IN_FAST", False):
            continue
        if any(isinstance(v, str) and v in heavy for v in callspec.params.values()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def stacks() -> Path:
    return STACKS


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/<case>/expected/ from the current renderer (review the diff)")
