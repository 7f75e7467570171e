"""Ansible inventories: from a factory plan (:mod:`.plan`); other sources sit beside it.

``build_files(plan, factory)`` returns ``{relative path: content}``; ``write_files`` puts
them under an output folder atomically, so a reader (a running ``ansible-playbook``, a GitOps
diff) never sees half an inventory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .plan import build_files, group_name, host_names, host_range

__all__ = ["build_files", "group_name", "host_names", "host_range", "write_files"]


def write_files(files: dict[str, str], out: Path | str) -> list[Path]:
    """Write ``files`` under ``out``, replacing each top-level folder they name as a whole.

    Everything is written to a temporary folder beside ``out`` first; each top-level folder
    (``inventory/``) is then swapped in with renames, so stale files from an earlier plan
    (a pool that was removed) disappear and nothing half-written is ever visible.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tops = sorted({Path(rel).parts[0] for rel in files})
    staging = Path(tempfile.mkdtemp(prefix=".aifactory-", dir=out))
    try:
        for rel, text in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        for top in tops:
            final = out / top
            old = None
            if final.exists() or final.is_symlink():
                old = staging / f".old-{top}"
                os.replace(final, old)
            os.replace(staging / top, final)
            if old is not None:
                shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / rel for rel in files]
