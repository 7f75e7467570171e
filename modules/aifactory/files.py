"""Every file aifactory reads from an untrusted place, and every folder it writes, goes through here.

Reading (:func:`read_bytes`, :func:`read_text`, :func:`read_json`): only regular files (a FIFO
would block, ``/dev/zero`` would never end), never more than a stated size, UTF-8 only, and
for JSON a bounded depth and no ``NaN``/``Infinity``. Every failure is an
:class:`~aifactory.errors.AifactoryError` of one line that names the file. YAML has its own
bounded loader (:mod:`aifactory.yamlfile`), which reads through :func:`read_bytes` too.

Writing (:func:`sync`): one writer for ``render``, ``inventory`` and ``pxe`` output folders.

* It stays inside the folder: every relative path is checked (no absolute path, no ``..``, no
  control characters) and no folder on the way may be a symlink, so a link planted in a
  committed deployment folder (``slurm -> /etc``) is refused instead of written through.
* It takes an exclusive lock on the folder (``flock`` on the folder itself, so nothing extra is
  left behind): a second run into the same folder stops at once with a clear message.
* Writes are atomic: an unpredictable temporary file created with ``O_EXCL`` beside the target,
  then ``os.replace``; a planted symlink at a temporary path is never followed. Files written by
  a run that was killed (``.aifactory-tmp-*``) are removed by the next one, under the lock.
* It removes only files it recorded itself in its manifest, whose content still hashes to what
  it wrote. The manifest is untrusted too: an entry that is not a plain relative path inside the
  folder is ignored, and nothing outside the folder can ever be named.
* It refuses a non-empty folder that holds no aifactory manifest (someone else's files) unless
  ``force`` is given; even then it never removes a file it did not write.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import AifactoryError

MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
TMP_PREFIX = ".aifactory-tmp-"
MANIFEST_PREFIX = ".aifactory-"  # every manifest is .aifactory-<kind>.json
_SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+=-]{0,254}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


# --- reading ---------------------------------------------------------------------------------

class ReadError(AifactoryError):
    """A file that cannot be read as asked; ``reason`` is the message without the file name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def read_bytes(path: Path | str, max_bytes: int, what: str = "") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; one-line :class:`ReadError` otherwise."""
    name = f"{what} {path}".strip()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ReadError(name, f"cannot read file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(name, "is a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        if st.st_size > max_bytes:
            raise ReadError(name, f"file is larger than {_size(max_bytes)}")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # it grew while being read
                raise ReadError(name, f"file is larger than {_size(max_bytes)}")
        return b"".join(chunks)
    except OSError as exc:
        raise ReadError(name, f"cannot read file: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_head(path: Path | str, n: int) -> bytes:
    """The first ``n`` bytes of a regular file; empty when it is not one or cannot be read (the
    caller then reads it properly and gets the real error)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return b""
    try:
        return os.read(fd, n) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


def read_text(path: Path | str, max_bytes: int, what: str = "") -> str:
    raw = read_bytes(path, max_bytes, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReadError(f"{what} {path}".strip(), f"not UTF-8 text (byte {exc.start})") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _depth_ok(data: Any, limit: int) -> bool:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return True


def parse_json(text: str, name: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON text to data: no NaN/Infinity, no duplicate keys, at most ``max_depth`` levels."""
    def pairs(items):
        out = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    try:
        data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=pairs)
    except RecursionError:
        raise AifactoryError(f"{name}: nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError as exc:
        raise AifactoryError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except ValueError as exc:
        raise AifactoryError(f"{name}: not valid JSON: {str(exc).splitlines()[0][:200]}") from None
    if not _depth_ok(data, max_depth):
        raise AifactoryError(f"{name}: nested deeper than {max_depth} levels")
    return data


def read_json(path: Path | str, what: str = "", max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A bounded JSON file (see :func:`parse_json`)."""
    return parse_json(read_text(path, max_bytes, what), f"{what} {path}".strip(), max_depth)


# --- writing ---------------------------------------------------------------------------------

@dataclass
class SyncResult:
    written: list[str] = field(default_factory=list)  # created or changed
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # recorded earlier, no longer planned, but changed by hand
    unchanged: int = 0
    # check only:
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    cached: bool = False  # inputs unchanged: nothing was rendered

    @property
    def drift(self) -> bool:
        return bool(self.changed or self.missing or self.extra)


def safe_relpath(rel: object) -> Optional[str]:
    """``rel`` when it is a plain relative POSIX path of safe names, else None."""
    if not isinstance(rel, str) or not rel or len(rel) > 1024:
        return None
    parts = rel.split("/")
    if any(not _SAFE_PART.fullmatch(p) or p in (".", "..") for p in parts):
        return None
    if parts[0].startswith(MANIFEST_PREFIX):
        return None
    return rel


def out_dir(value: str | os.PathLike | None, option: str = "--out") -> Path:
    """The output folder an operator named; an empty value is refused rather than read as '.'."""
    if value is None or not os.fspath(value).strip():
        raise AifactoryError(f"{option}: give a folder (an empty path would write into the current folder)")
    text = os.fspath(value)
    if "\x00" in text:
        raise AifactoryError(f"{option}: not a valid path")
    return Path(text)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_file(path: Path) -> Optional[str]:
    """Digest of a regular file (never through a symlink, never a device); None when absent or not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through an ``O_EXCL`` temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        _fsync_dir(path.parent)  # and the rename survives a power cut
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            # Name the file being written, not the temporary one (the same OSError subclass).
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Folder:
    """An output folder held under an exclusive lock (see the module docstring)."""

    def __init__(self, root: Path, manifest: str, *, force: bool = False, check: bool = False,
                 dir_mode: int = 0o755) -> None:
        self.root = Path(root)
        self.manifest_name = manifest
        self.force = force
        self.check = check
        self.dir_mode = dir_mode
        self._fd: Optional[int] = None
        self.created = False

    # -- lifecycle --
    def __enter__(self) -> "Folder":
        root = self.root
        if root.is_symlink() and not root.is_dir():
            raise AifactoryError(f"{root}: a symlink to something that is not a folder")
        if root.exists() and not root.is_dir():
            raise AifactoryError(f"{root}: exists and is not a folder")
        if not root.exists():
            if self.check:
                return self
            try:
                root.mkdir(parents=True, mode=self.dir_mode)
            except FileExistsError:
                # Another run made it between the look and the mkdir: the lock below decides which
                # run writes. Anything but a real folder there now is refused as above.
                if root.is_symlink() or not root.is_dir():
                    raise AifactoryError(f"{root}: exists and is not a folder") from None
            except OSError as exc:
                raise AifactoryError(f"{root}: cannot create the folder: {exc.strerror}") from None
            else:
                self.created = True
        try:
            self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise AifactoryError(f"{root}: cannot open the folder: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_SH if self.check else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AifactoryError(f"{root}: another aifactory run is writing this folder; "
                                     "wait for it to finish") from None
            raise AifactoryError(f"{root}: cannot lock the folder: {exc.strerror}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    # -- the manifest --
    def read_manifest(self) -> dict:
        """``{"input": str|None, "files": {rel: digest}}`` with every unsafe entry dropped."""
        path = self.root / self.manifest_name
        if not path.is_file() or path.is_symlink():
            return {}
        try:
            data = parse_json(read_text(path, MAX_MANIFEST_BYTES), str(path))
        except AifactoryError:
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            return {}
        files = {rel: digest for rel, digest in data["files"].items()
                 if safe_relpath(rel) and isinstance(digest, str) and _DIGEST.fullmatch(digest)}
        key = data.get("input")
        return {"input": key if isinstance(key, str) else None, "files": files}

    def has_manifest(self) -> bool:
        """Whether some aifactory writer owns this folder (any of its manifests is here)."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return False
        return any(n.startswith(MANIFEST_PREFIX) and n.endswith(".json") for n in names)

    def write_manifest(self, data: dict) -> None:
        self.write(self.manifest_name, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())

    # -- paths --
    def path(self, rel: str) -> Path:
        """The path of ``rel`` inside the folder; refuses unsafe names and symlinked folders."""
        if safe_relpath(rel) is None and rel != self.manifest_name:
            raise AifactoryError(f"{self.root}: refusing the unsafe relative path {rel!r}")
        cur = self.root
        for part in rel.split("/")[:-1]:
            cur = cur / part
            if cur.is_symlink():
                raise AifactoryError(f"{cur}: is a symlink; refusing to write through it (remove it and rerun)")
        return self.root / rel

    def _parent_ready(self, path: Path) -> None:
        missing = []
        cur = path.parent
        while cur != self.root and not cur.exists() and not cur.is_symlink():
            missing.append(cur)
            cur = cur.parent
        if cur != self.root and (cur.is_symlink() or not cur.is_dir()):
            raise AifactoryError(f"{cur}: is not a folder (or is a symlink); refusing to write through it")
        for folder in reversed(missing):
            folder.mkdir(mode=self.dir_mode)

    def hash(self, rel: str) -> Optional[str]:
        return _hash_file(self.path(rel))

    def write(self, rel: str, data: bytes, mode: int = 0o644) -> None:
        path = self.path(rel)
        self._parent_ready(path)
        if path.is_dir() and not path.is_symlink():
            raise AifactoryError(f"{path}: is a folder where a file belongs")
        _atomic_write(path, data, mode)

    def remove(self, rel: str) -> None:
        path = self.path(rel)
        path.unlink()
        folder = path.parent
        while folder != self.root and folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent

    def on_disk(self) -> set[str]:
        """Relative paths of the files in the folder (manifests and temporary files aside)."""
        found = set()
        if not self.root.is_dir():
            return found
        for dirpath, dirs, names in os.walk(self.root):  # os.walk does not descend into symlinks
            for name in names + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                rel = os.path.relpath(os.path.join(dirpath, name), self.root).replace(os.sep, "/")
                if "/" not in rel and rel.startswith(MANIFEST_PREFIX) and rel.endswith(".json"):
                    continue
                if not name.startswith(TMP_PREFIX):
                    found.add(rel)
        return found

    def clean_temporary(self) -> list[str]:
        """Remove what a killed run left behind: ``.aifactory-tmp-*`` files and staging folders (the
        lock says no run is writing). A symlink of that name is removed itself, never followed."""
        import shutil

        removed = []
        for dirpath, dirs, names in os.walk(self.root):
            for name in names + [d for d in dirs if d.startswith(TMP_PREFIX)]:
                if not name.startswith(TMP_PREFIX):
                    continue
                path = os.path.join(dirpath, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                removed.append(name)
            dirs[:] = [d for d in dirs if not d.startswith(TMP_PREFIX)]
        return removed

    def refuse_foreign(self) -> None:
        """Refuse a non-empty folder that aifactory did not write, unless forced."""
        if self.created or self.force or self.has_manifest():
            return
        try:
            entries = [n for n in os.listdir(self.root) if not n.startswith(TMP_PREFIX)]
        except OSError as exc:
            raise AifactoryError(f"{self.root}: cannot list the folder: {exc.strerror}") from None
        if entries:
            raise AifactoryError(
                f"{self.root}: not empty and not written by aifactory ({len(entries)} entries, e.g. "
                f"{sorted(entries)[0]!r}); choose an empty or new folder, or pass --force to write into it "
                "(files aifactory did not write are never removed)")


def sync(root: Path | str, files: dict[str, bytes], manifest: str, *, input_key: Optional[str] = None,
         check: bool = False, force: bool = False, file_mode: int = 0o644, dir_mode: int = 0o755,
         build=None) -> SyncResult:
    """Make ``root`` hold ``files`` (relative path -> bytes); see the module docstring.

    ``input_key`` is a digest of everything the files depend on; when the manifest holds the
    same key and every file still hashes to it, nothing is built or compared. ``build`` (a
    function returning ``files``) lets a caller skip building in that case.

    What an interrupted run leaves behind: each file is wholly old or wholly new. Before the
    first change the manifest is replaced by one that matches no input and lists every file
    either run owns; the final manifest is written last. A rerun of either input finishes or
    undoes the change.
    """
    root = Path(root)
    try:
        with Folder(root, manifest, force=force, check=check, dir_mode=dir_mode) as folder:
            return _sync(folder, files, input_key, check, file_mode, build)
    except OSError as exc:
        where = exc.filename or root
        raise AifactoryError(f"{where}: {exc.strerror or exc}; files written before it are complete, the others "
                             f"unchanged; rerun to finish (--check lists what differs)") from None


def _sync(folder: Folder, files, input_key, check, file_mode, build) -> SyncResult:
    result = SyncResult()
    if not check and folder.root.is_dir():
        folder.refuse_foreign()
        folder.clean_temporary()
    old = folder.read_manifest()
    if input_key is not None and old.get("input") == input_key:
        expected = old["files"]
        if all(folder.hash(rel) == digest for rel, digest in expected.items()):
            result.cached = True
            result.unchanged = len(expected)
            return result
    if build is not None:
        files = build()
    for rel in files:
        if safe_relpath(rel) is None:
            raise AifactoryError(f"refusing to write the unsafe relative path {rel!r}")
    digests = {rel: _digest(data) for rel, data in files.items()}
    to_write = []
    for rel in files:
        current = folder.hash(rel)
        if current == digests[rel]:
            result.unchanged += 1
        elif check:
            (result.missing if current is None else result.changed).append(rel)
        else:
            to_write.append(rel)
    if check:
        # Extra: files an earlier run wrote that these no longer hold. Files that no aifactory
        # run wrote (a README beside the deployment) are not this writer's to judge.
        result.extra = sorted(rel for rel in set(old.get("files", {})) - set(files) if folder.hash(rel) is not None)
        return result
    # Files an earlier run wrote that these no longer hold (a pool was removed), and only those:
    # listed in the manifest and still holding the bytes that run wrote.
    old_files = old.get("files", {})
    to_remove, kept = [], []
    for rel in sorted(set(old_files) - set(files)):
        digest = folder.hash(rel)
        if digest is None:
            continue
        (to_remove if digest == old_files[rel] else kept).append(rel)
    result.kept = kept
    if to_write or to_remove:
        # Unfinished from here on: no input matches (so nothing is taken from the cache) and
        # every file either run owns is listed (so a rerun of either input removes the other's).
        folder.write_manifest({"input": None, "files": {**old_files, **digests}})
    for rel in to_write:
        folder.write(rel, files[rel], file_mode)
        result.written.append(rel)
    for rel in to_remove:
        folder.remove(rel)
        result.removed.append(rel)
    final = {"input": input_key, "files": digests}
    if folder.read_manifest() != final or not (folder.root / folder.manifest_name).is_file():
        folder.write_manifest(final)
    return result
