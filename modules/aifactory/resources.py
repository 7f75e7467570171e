"""Where templates/ and playbooks/ live: the repository when run from source, the
package's ``_data`` folder when installed from a wheel (copied there by setup.py)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent.parent  # modules/aifactory -> repo root


@lru_cache(maxsize=None)
def data_dir(name: str) -> Path:
    """``data_dir("templates")`` / ``data_dir("playbooks")``: the first that exists."""
    for candidate in (_REPO / name, _PACKAGE / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"aifactory {name}/ not found next to the package or in the repository")


def templates_dir() -> Path:
    return data_dir("templates")


def playbooks_dir() -> Path:
    return data_dir("playbooks")
