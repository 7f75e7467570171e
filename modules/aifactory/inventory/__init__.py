"""Ansible inventories: from a factory plan (:mod:`.plan`); other sources sit beside it.

``build_files(plan, factory)`` returns ``{relative path: content}``; ``write_files`` puts
them under an output folder through the one writer (:func:`aifactory.files.sync`): atomic
per file, locked, confined to the folder, and it removes only files an earlier
``aifactory inventory`` recorded (a pool that was removed), never hand-written ones.
"""

from __future__ import annotations

from pathlib import Path

from .. import files as _files
from .plan import build_files, group_name, host_names, host_range

__all__ = ["MANIFEST", "build_files", "group_name", "host_names", "host_range", "write_files"]

MANIFEST = ".aifactory-inventory.json"


def write_files(files: dict[str, str], out: Path | str, *, force: bool = False) -> list[Path]:
    """Write ``files`` under ``out``; returns the paths of all of them (written or unchanged)."""
    _files.sync(out, {rel: text.encode("utf-8") for rel, text in files.items()}, MANIFEST, force=force)
    return [Path(out) / rel for rel in files]
