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
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..catalog import Catalog
from ..catalog import load as load_catalog
from ..errors import AifactoryError
from ..plan import software
from ..plan.model import Plan
from ..resources import templates_dir
from ..spec.models import Factory

MANIFEST = ".aifactory-render.json"
_PACKAGE = Path(__file__).resolve().parent.parent  # modules/aifactory


@dataclass
class RenderResult:
    written: list[str] = field(default_factory=list)  # created or changed
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # --check only:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    cached: bool = False  # inputs unchanged: nothing was rendered

    @property
    def drift(self) -> bool:
        return bool(self.changed or self.missing or self.extra)


def lock(plan: Plan, catalog: Catalog) -> dict:
    """Every pinned version, and the package each pin applies to."""
    sw = plan.software
    packages = dict(software.packages(sw, catalog).values())
    return {
        "factory": plan.name,
        "os": sw.os,
        "software": asdict(sw),
        "packages": dict(sorted(packages.items())),
        "catalog_schema": "v1",
        "systems": sorted({p.system for p in plan.pools}),
    }


def _plan_data(plan: Plan) -> dict:
    """The plan as rendered: without its warnings, which depend on the day the render runs
    (a driver branch passing end of life) and not on the spec; `aifactory plan` prints them."""
    data = plan.to_dict()
    data.pop("warnings", None)
    return data


def build_files(plan: Plan, factory: Factory, catalog: Catalog | None = None,
                spec_name: str | None = None) -> dict[str, str]:
    """Relative path -> content of the whole deployment directory."""
    from .. import inventory
    from . import cloudinit, dcgm, kubernetes, monitoring, nccl, slurm, svg

    catalog = catalog or load_catalog()
    files: dict[str, str] = {}
    files["plan.json"] = json.dumps(_plan_data(plan), indent=2, sort_keys=True) + "\n"
    files["versions.lock.json"] = json.dumps(lock(plan, catalog), indent=2, sort_keys=True) + "\n"
    for rel, text in inventory.build_files(plan, factory).items():
        files[rel if rel.startswith("inventory/") else f"inventory/{rel}"] = text
    files.update(slurm.files(plan, factory, catalog))
    files.update(nccl.files(plan))
    files.update(dcgm.files(plan, catalog))
    files.update(monitoring.files(plan, factory, catalog))
    files.update(kubernetes.files(plan, catalog))
    files.update(cloudinit.files(plan, factory, catalog, files))
    files.update(svg.files(plan))
    # PXE files (aifactory.render.pxe) need the provisioning host's address and SSH keys, which
    # are not in the spec; `aifactory pxe` renders them with those settings.
    for rel in files:
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise AifactoryError(f"renderer produced an unsafe path {rel!r}")
    return dict(sorted(files.items()))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_key(plan: Plan, factory: Factory, spec_name: str | None) -> str:
    """Digest of everything the output depends on: plan, spec, templates and renderer code."""
    h = hashlib.sha256()
    h.update(json.dumps(_plan_data(plan), sort_keys=True).encode())
    h.update(factory.model_dump_json().encode())
    h.update(os.path.basename(spec_name or "").encode())
    # plan/ holds the package naming (plan.software.packages) that the lock and inventory use.
    roots = [templates_dir(), _PACKAGE / "render", _PACKAGE / "inventory", _PACKAGE / "plan",
             _PACKAGE / "catalog" / "data"]
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _read_manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}
    except (OSError, ValueError):
        return {}


def _on_disk(out: Path) -> set[str]:
    if not out.is_dir():
        return set()
    found = set()
    for dirpath, _dirs, names in os.walk(out):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), out).replace(os.sep, "/")
            if rel != MANIFEST and not name.startswith(".aifactory-tmp-"):
                found.add(rel)
    return found


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".aifactory-tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            # Name the file being written, not the temporary one (the same OSError subclass).
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _hash_file(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except FileNotFoundError:
        return None


def render(plan: Plan, factory: Factory, out: Path | str, *, check: bool = False,
           catalog: Catalog | None = None, spec_name: str | None = None) -> RenderResult:
    """Render into ``out`` (or, with ``check``, only compare); see the module docstring."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AifactoryError(f"{out}: exists and is not a folder")
    try:
        return _render(plan, factory, out, check, catalog, spec_name)
    except OSError as exc:
        where = exc.filename or out
        raise AifactoryError(f"{where}: {exc.strerror or exc}; files written before it are complete, the others "
                             f"unchanged; rerun to finish (--check lists what differs)") from None


def _render(plan: Plan, factory: Factory, out: Path, check: bool, catalog: Catalog | None,
            spec_name: str | None) -> RenderResult:
    result = RenderResult()
    key = input_key(plan, factory, spec_name)
    manifest = _read_manifest(out)
    disk = _on_disk(out)

    if manifest.get("input") == key:
        expected = manifest["files"]
        stale = [rel for rel, digest in expected.items() if _hash_file(out / rel) != digest]
        if not stale:
            result.cached = True
            result.unchanged = len(expected)
            result.extra = sorted(disk - set(expected)) if check else []
            return result

    files = build_files(plan, factory, catalog, spec_name)
    encoded = {rel: text.encode("utf-8") for rel, text in files.items()}
    digests = {rel: _digest(data) for rel, data in encoded.items()}
    to_write = []
    for rel in encoded:
        current = _hash_file(out / rel)
        if current == digests[rel]:
            result.unchanged += 1
        elif check:
            (result.missing if current is None else result.changed).append(rel)
        else:
            to_write.append(rel)
    if check:
        result.extra = sorted(disk - set(encoded))
        return result
    # Files an earlier render wrote that this plan no longer has (a pool was removed); files
    # someone else put here are left alone.
    old_files = manifest.get("files", {})
    to_remove = [rel for rel in sorted(set(old_files) - set(encoded)) if (out / rel).is_file()]
    if to_write or to_remove:
        # Unfinished from here on: no input matches (so nothing is taken from the cache) and
        # every file either render owns is listed (so a rerun of either spec removes the other's).
        pending = {"input": None, "files": {**old_files, **digests}}
        _atomic_write(out / MANIFEST, (json.dumps(pending, indent=1, sort_keys=True) + "\n").encode())
    for rel in to_write:
        _atomic_write(out / rel, encoded[rel])
        result.written.append(rel)
    for rel in to_remove:
        path = out / rel
        path.unlink()
        result.removed.append(rel)
        _prune(path.parent, out)
    new_manifest = json.dumps({"input": key, "files": digests}, indent=1, sort_keys=True) + "\n"
    if (out / MANIFEST).exists() is False or (out / MANIFEST).read_text(encoding="utf-8") != new_manifest:
        _atomic_write(out / MANIFEST, new_manifest.encode())
    return result


def _prune(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
