"""``aifactory render``: the whole deployment directory from a plan, written only where it changed.

Output is a pure function of the plan, the factory spec, the templates and this code: sorted
keys, no timestamps, no absolute paths, integer or fixed-format numbers. Writes are atomic
(a temporary file in the same folder, then ``os.replace``) and happen only when the bytes
differ, so a GitOps checkout sees exactly the files the plan changed.

A manifest (``.aifactory-render.json``) records a digest of every input and of every file
written. When the inputs are unchanged and the files on disk still hash to the manifest,
a rerun renders nothing at all: that is what makes a no-change run of a 100,000-node factory
cost milliseconds. ``--check`` compares the same way and writes nothing.

What an interrupted render (a full disk, a kill, a power cut) leaves behind: every file is wholly
the previous version or wholly the new one, never a mix, and a failed write removes its temporary
file. The directory as a whole may hold some new files and some old ones, so before the first
change the manifest is replaced by one that matches no input and lists every file either render
owns; the final manifest is written last. Until then ``--check`` compares every file (and reports
the drift) and a rerun of the new spec, or of the previous one, finishes or undoes the change,
removing files that only the interrupted render wrote. An ``OSError`` becomes one-line error.
"""

from __future__ import annotations

import hashlib
import json

from pathlib import Path

from .. import files
from ..files import safe_relpath
from ..catalog import Catalog
from ..catalog import load as load_catalog
from ..catalog import with_plan_catalog
from ..errors import AifactoryError
from ..plan import software
from ..plan.model import Plan
from ..resources import templates_dir

MANIFEST = ".aifactory-render.json"
_PACKAGE = Path(__file__).resolve().parent.parent  # modules/aifactory


RenderResult = files.SyncResult


def lock(plan: Plan, catalog: Catalog) -> dict:
    """Every pinned version, and the package each pin applies to, named for the lock's OS family
    by :func:`aifactory.plan.software.packages`, the function the inventory hands the roles their
    names from. A package whose version is not pinned (NVLSM) is listed with ``*``; dnf module
    streams (RHEL) are listed apart, under ``module_streams``, only where there are any. GDRCopy,
    where the lock has it, is listed with its packages at ``<version>-<revision>``."""
    sw = plan.software
    named = software.packages(sw, catalog).values()
    out = {
        "factory": plan.name,
        "os": sw.os,
        "software": sw.model_dump(),
        "packages": dict(sorted((p.name, p.version or "*") for p in named if not p.stream)),
        "catalog_schema": "v1",
        "systems": sorted({p.system for p in plan.pools}),
    }
    streams = sorted(p.name for p in named if p.stream)
    if streams:
        out["module_streams"] = streams
    if sw.gdrcopy is None:  # a lock without GDRCopy says nothing of it: such lock files stay as they were
        del out["software"]["gdrcopy"]
    else:  # GDRCopy's packages, named as the inventory names the gdrcopy role's files
        from ..inventory.plan import gdrcopy_files

        listed = gdrcopy_files(sw, "x86_64")
        for entry in listed["packages"] + listed["tests"]:
            out["packages"][entry["name"]] = f"{sw.gdrcopy.version}-{sw.gdrcopy.revision}"
        out["packages"] = dict(sorted(out["packages"].items()))
    return out


def _plan_data(plan: Plan) -> dict:
    """The plan as rendered: without its warnings, which depend on the day the render runs
    (a driver branch passing end of life) and not on the spec; `aifactory plan` prints them."""
    data = plan.to_dict()
    data.pop("warnings", None)
    return data


@with_plan_catalog
def build_files(plan: Plan, catalog: Catalog | None = None) -> dict[str, str]:
    """Relative path -> content of the whole deployment directory."""
    from .. import inventory
    from . import cloudinit, dcgm, kubernetes, monitoring, nccl, slurm, svg

    catalog = catalog or load_catalog()
    files: dict[str, str] = {}
    files["plan.json"] = json.dumps(_plan_data(plan), indent=2, sort_keys=True) + "\n"
    files["versions.lock.json"] = json.dumps(lock(plan, catalog), indent=2, sort_keys=True) + "\n"
    slurm_files = slurm.files(plan, catalog)  # also the controller's inventory variables
    for rel, text in inventory.build_files(plan, catalog, slurm_files=slurm_files).items():
        files[rel if rel.startswith("inventory/") else f"inventory/{rel}"] = text
    files.update(slurm_files)
    files.update(nccl.files(plan))
    files.update(dcgm.files(plan, catalog))
    files.update(monitoring.files(plan, catalog))
    files.update(kubernetes.files(plan, catalog))
    files.update(cloudinit.files(plan, catalog, files))
    files.update(svg.files(plan))
    # PXE files (aifactory.render.pxe) need the provisioning host's address and SSH keys, which
    # are not in the spec; `aifactory pxe` renders them with those settings.
    for rel in files:  # the writer refuses these too; a renderer that makes one is a defect
        if safe_relpath(rel) is None:
            raise AifactoryError(f"renderer produced an unsafe path {rel!r}")
    return dict(sorted(files.items()))


def input_key(plan: Plan) -> str:
    """Digest of everything the output depends on: the plan (which holds all the spec says) and
    this whole package with its templates and catalog, so no code change can leave a stale cache."""
    h = hashlib.sha256()
    h.update(json.dumps(_plan_data(plan), sort_keys=True).encode())
    for root in (templates_dir(), _PACKAGE):
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                           and p.suffix not in (".pyc", ".pyo")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def render(plan: Plan, out: Path | str, *, check: bool = False, catalog: Catalog | None = None,
           force: bool = False) -> RenderResult:
    """Render into ``out`` (or, with ``check``, only compare); see the module docstring.

    The folder is written by :func:`aifactory.files.sync`: confined, locked, atomic, and it
    removes only files an earlier render recorded. A non-empty folder that no aifactory command
    wrote is refused unless ``force``.
    """
    key = input_key(plan)

    def build() -> dict[str, bytes]:
        return {rel: text.encode("utf-8") for rel, text in build_files(plan, catalog).items()}

    return files.sync(out, {}, MANIFEST, input_key=key, check=check, force=force, build=build)
