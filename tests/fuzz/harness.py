"""Run ``aifactory`` on untrusted input and check the contract every command owes CI.

The threat model (docs/SECURITY.md): in GitOps CI the tool validates, plans, renders and previews
files from unreviewed pull requests. Whatever those files hold, a run must

* exit 0 or 1 (2 only for a malformed command-line argument), never with a traceback;
* explain a failure in lines that name where the problem is: ``FILE:LINE: path: message`` for
  spec findings, one ``aifactory: subject: message`` line for everything else;
* write nothing outside ``--out`` and remove nothing it did not write there;
* never let a value reach a shell or a template engine: every payload names a canary file
  (:data:`CANARY`), which must never come to exist, and template syntax from an input must
  never reach a rendered file;
* stay inside a time and a memory bound.

Most runs happen in this process (``aifactory.cli.main`` with a patched ``sys.argv``), which
is what makes thousands of cases per minute possible; :func:`invoke_subprocess` runs the real
console entry point under ``RLIMIT_AS`` for the few that need an interpreter of their own.
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import hashlib
import io
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
# How many generated cases each fuzz test runs: its default count times AIFACTORY_FUZZ_SCALE
# (0.04 in `make test-fast`, 10 for a long soak).
SCALE = float(os.environ.get("AIFACTORY_FUZZ_SCALE", "1"))


def scaled(n: int) -> int:
    return max(1, int(n * SCALE))

# Every payload names this file. The name is per process, so parallel workers never see each
# other's canary; it lives in the temporary folder rather than a run's sandbox so that a
# payload rendered with a relative path elsewhere still points at one known place.
CANARY = Path(tempfile.gettempdir()) / f"aifactory-canary-{os.getpid()}"
# Payloads that cannot hold a '/' (an IPv6 scope id may not) name the canary relative to the
# working directory, which is the sandbox: it must not appear there either.
CANARY_NAME = CANARY.name
# A line that a value with a line break would forge in the output if it were echoed raw.
FORGED = "FORGED-LINE"

# What a failure may print on stderr, line by line.
FINDING = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+): (?P<path>[^\n]+?): (?P<message>[^\n]+)$")
SUMMARY = re.compile(r"^[^\n]+: \d+ error\(s\), \d+ warning\(s\)$")
ONE_LINE = re.compile(r"^aifactory: [^\n]+$")
USAGE_LINE = re.compile(r"^(Usage: |Try '|Error: |[ ╭│╰─]|$)")

TIME_LIMIT_S = 5.0  # CPU seconds per run
WALL_LIMIT_S = 30.0
PREVIEW_TIME_LIMIT_S = 20.0  # the first preview of a provider imports its cloud SDK
RSS_GROWTH_LIMIT = 768 * 1024 * 1024


def max_rss() -> int:
    """The process's peak resident set, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass
class Result:
    args: list[str]
    code: int | None
    stdout: str
    stderr: str
    exception: BaseException | None = None
    trace: str = ""
    seconds: float = 0.0  # wall clock
    rss_growth: int = 0
    cpu_seconds: float | None = None  # what the run itself computed; None: not measured

    def describe(self) -> str:
        cpu = f", {self.cpu_seconds:.2f}s CPU" if self.cpu_seconds is not None else ""
        text = f"aifactory {' '.join(map(repr, self.args))} -> exit {self.code} in {self.seconds:.2f}s{cpu}\n"
        if self.trace:
            text += self.trace[-3000:]
        return text + f"--- stderr ---\n{self.stderr[-3000:]}\n--- stdout ---\n{self.stdout[-1500:]}"


class _Sink(io.StringIO):
    """A text stream that also offers ``buffer``, as a real ``sys.stdout`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = _ByteSink(self)

    def isatty(self) -> bool:
        return False


class _ByteSink(io.RawIOBase):
    def __init__(self, text: _Sink) -> None:
        self._text = text

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)


class _BuiltApp:
    """``cli.app`` with its click command built once: typer rebuilds it from the function
    signatures on every call, which costs more than most commands themselves. Arguments,
    exits and exceptions pass through unchanged, so ``main()`` behaves exactly as installed."""

    _cache: dict[int, object] = {}

    def __init__(self, app) -> None:
        import typer.main

        key = id(app)
        if key not in self._cache:
            self._cache.clear()
            self._cache[key] = typer.main.get_command(app)
        self.command = self._cache[key]

    def __call__(self, *args, **kwargs):
        return self.command(*args, **kwargs)


def invoke(args, cwd: Path | str) -> Result:
    """``aifactory ARGS`` in this process, from ``cwd``; an exception escaping ``main()`` is recorded
    (it is what the user would see as a traceback)."""
    from aifactory import cli

    main = cli.main
    args = [str(a) for a in args]
    out, err = _Sink(), _Sink()
    before_rss, old_cwd = max_rss(), os.getcwd()
    code, exc, trace = None, None, ""
    started, cpu_started = time.perf_counter(), time.process_time()
    os.chdir(cwd)
    try:
        with mock.patch.object(sys, "argv", ["aifactory", *args]), mock.patch.object(cli, "app", _BuiltApp(cli.app)), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except (Exception, RecursionError, MemoryError) as caught:  # noqa: BLE001 - anything is a traceback
        exc, trace = caught, traceback.format_exc()
    finally:
        os.chdir(old_cwd)
    return Result(args, code, out.getvalue(), err.getvalue(), exc, trace, time.perf_counter() - started,
                  max(0, max_rss() - before_rss), time.process_time() - cpu_started)


def _limit_memory(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def invoke_subprocess(args, cwd: Path | str, timeout: float = 60, memory: int = 3 * 1024 ** 3) -> Result:
    """``python -m aifactory ARGS`` in its own process with an address-space limit; a timeout is
    recorded as exit code None with the time it took."""
    args = [str(a) for a in args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "modules"), os.environ.get("PYTHONPATH", "")])}
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        proc = subprocess.run([sys.executable, "-m", "aifactory", *args], cwd=cwd, capture_output=True,
                              timeout=timeout, preexec_fn=_limit_memory(memory), env=env)
    except subprocess.TimeoutExpired as exc:
        return Result(args, None, (exc.stdout or b"").decode("utf-8", "replace"),
                      (exc.stderr or b"").decode("utf-8", "replace"), seconds=time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Result(args, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                  proc.stderr.decode("utf-8", "replace"), seconds=time.perf_counter() - started,
                  cpu_seconds=(after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime))


# -- the sandbox -----------------------------------------------------------------------------


def _entry(path: Path):
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", stat.S_IMODE(st.st_mode))
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read(1 << 20)).hexdigest()
        return ("file", st.st_size, digest)
    return ("other", stat.S_IFMT(st.st_mode))


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed) except under ``skip``: kind, size, digest."""
    skip_set = {os.path.abspath(s) for s in skip}
    found: dict[str, tuple] = {}
    for dirpath, dirs, names in os.walk(root, followlinks=False):
        keep_dirs = []
        for name in dirs:
            full = os.path.join(dirpath, name)
            if os.path.abspath(full) in skip_set:
                continue
            found[os.path.relpath(full, root)] = _entry(Path(full))
            if not os.path.islink(full):
                keep_dirs.append(name)
        dirs[:] = keep_dirs
        for name in names:
            full = os.path.join(dirpath, name)
            if os.path.abspath(full) not in skip_set:
                found[os.path.relpath(full, root)] = _entry(Path(full))
    return found


def tree_diff(before: dict, after: dict) -> list[str]:
    out = []
    for rel in sorted(set(before) | set(after)):
        if rel not in after:
            out.append(f"removed: {rel}")
        elif rel not in before:
            out.append(f"created: {rel}")
        elif before[rel] != after[rel]:
            out.append(f"changed: {rel}")
    return out


HAND_WRITTEN = "written by a person; no tool may remove or change this file\n"


class Sandbox:
    """A fresh working folder for one run::

        <root>/                  the run's cwd
          in/                    the inputs (spec, stack folder, plan files, keys)
          keep/notes.txt         a hand-written file in a folder of its own
          sentinel.txt           a file beside --out
          out/                   --out (not created: the command creates it)
    """

    def __init__(self, base: Path | str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sbx-", dir=base)).resolve()
        self.inputs = self.root / "in"
        self.inputs.mkdir()
        (self.root / "keep").mkdir()
        (self.root / "keep" / "notes.txt").write_text(HAND_WRITTEN)
        (self.root / "sentinel.txt").write_text(HAND_WRITTEN)
        self.out = self.root / "out"
        self._before: dict | None = None
        self._outs: tuple[Path, ...] = ()

    def write(self, rel: str, data: bytes | str) -> Path:
        path = self.inputs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        return path

    def freeze(self, *outs: Path, only: tuple[Path, ...] | None = None) -> None:
        """Remember the tree outside ``outs`` (default: ``out/``; ``only=()``: nothing may change
        anywhere); :meth:`outside_changes` compares."""
        self._outs = tuple(only) if only is not None else (tuple(outs) or (self.out,))
        self._before = snapshot(self.root, self._outs)

    def outside_changes(self) -> list[str]:
        assert self._before is not None, "freeze() first"
        return tree_diff(self._before, snapshot(self.root, self._outs))

    def out_files(self) -> dict[str, bytes]:
        found = {}
        for out in self._outs:
            if out.is_dir() and not out.is_symlink():
                for dirpath, _dirs, names in os.walk(out):
                    for name in names:
                        p = Path(dirpath, name)
                        if p.is_file() and not p.is_symlink():
                            with open(p, "rb") as fh:
                                found[str(p.relative_to(self.root))] = fh.read(8 << 20)
        return found

    def cleanup(self) -> None:
        def writable(func, path, _exc):
            os.chmod(os.path.dirname(path), 0o755)
            func(path)
        shutil.rmtree(self.root, onerror=writable)


@contextlib.contextmanager
def sandbox(base: Path | str | None = None):
    box = Sandbox(base)
    try:
        yield box
    finally:
        box.cleanup()


@contextlib.contextmanager
def fast_base(fallback: Path, need: int = 2 << 30):
    """A folder for sandboxes on a memory file system when there is one with room (``/dev/shm``):
    the writers fsync every file and folder, which on a disk costs more than rendering it."""
    shm = Path("/dev/shm")
    try:
        st = os.statvfs(shm)
        roomy = shm.is_dir() and os.access(shm, os.W_OK) and st.f_bavail * st.f_frsize >= need
    except OSError:
        roomy = False
    if not roomy:
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="aifactory-fuzz-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_REUSED: dict[str, Sandbox] = {}


@contextlib.contextmanager
def reused_sandbox(key: str, base: Path | str | None = None):
    """One sandbox for many runs of a command that writes nothing (validate, plan, diff): each run
    rewrites its inputs, freezes the whole tree and must leave it as it was. A failing run
    discards the sandbox, so the next one (hypothesis replaying it) starts clean."""
    box = _REUSED.get(key)
    if box is None or not box.root.is_dir():
        box = _REUSED[key] = Sandbox(base)
    try:
        yield box
    except BaseException:
        _REUSED.pop(key, None)
        box.cleanup()
        raise


def clear_canary() -> None:
    with contextlib.suppress(FileNotFoundError):
        CANARY.unlink()


# Template payloads exactly as the inputs carry them: one of these in a rendered file means a
# value with template syntax got through validation into a file that Ansible or Jinja reads.
TEMPLATE_MARKERS = ("{{ lookup(", "{{lookup(", "{% set ", "{{ cycler", "{%- ")


def check_contract(result: Result, box: Sandbox | None = None, *, files=(), usage_ok: bool = False,
                   time_limit: float = TIME_LIMIT_S, check_outputs: bool = True) -> None:
    """Assert everything the module docstring promises about one run.

    ``files``: the input files whose name a spec error must carry; ``usage_ok``: the case passes
    a malformed argument on purpose, so click's exit 2 is a correct answer.
    """
    where = result.describe()
    assert result.exception is None, f"uncaught {type(result.exception).__name__} (a traceback):\n{where}"
    assert "Traceback (most recent call last)" not in result.stderr + result.stdout, f"traceback printed:\n{where}"
    # main() turns a defect into this one line (the traceback goes to --debug and the log file).
    assert "aifactory: internal error:" not in result.stderr, f"a defect reported:\n{where}"
    allowed = (0, 1, 2) if usage_ok else (0, 1)
    assert result.code in allowed, f"exit {result.code}, expected one of {allowed}:\n{where}"
    assert not CANARY.exists(), f"a payload ran: {CANARY} exists\n{where}"
    if box is not None:
        assert not (box.root / CANARY_NAME).exists(), f"a payload ran: {box.root / CANARY_NAME} exists\n{where}"
    for stream in (result.stdout, result.stderr):
        assert not any(line.startswith(FORGED) for line in stream.splitlines()), \
            f"a value with a line break forged an output line:\n{where}"
    if result.code == 1:
        _check_error_lines(result, files, where)
    elif result.code == 2:
        assert "Usage:" in result.stderr or "Error:" in result.stderr, f"exit 2 without a usage message:\n{where}"
    # The bound is on the work done (CPU time), which a loaded CI machine does not inflate; the
    # wall clock only catches a run that waits on something (a FIFO, a lock) instead of working.
    if result.cpu_seconds is not None:
        assert result.cpu_seconds < time_limit, \
            f"took {result.cpu_seconds:.1f}s of CPU (limit {time_limit}s):\n{where}"
    assert result.seconds < max(WALL_LIMIT_S, 6 * time_limit), f"took {result.seconds:.1f}s (waiting?):\n{where}"
    assert result.rss_growth < RSS_GROWTH_LIMIT, f"peak memory grew by {result.rss_growth >> 20} MiB:\n{where}"
    if box is not None:
        changes = box.outside_changes()
        assert not changes, f"changed outside --out: {changes[:10]}\n{where}"
        if check_outputs:
            for rel, data in box.out_files().items():
                hit = next((m for m in TEMPLATE_MARKERS if m.encode() in data and CANARY_NAME.encode() in data), None)
                assert hit is None, f"template syntax from an input reached {rel} ({hit!r}):\n{where}"


# What an "aifactory: ..." line must name: "SUBJECT: message" (a field path or a file), or
# somewhere in it a file path, a file name, a config key (aifactory:factory) or an option (--out).
_NAMES_SUBJECT = re.compile(r"^aifactory: \S[^\n]*?: \S|/|\.(ya?ml|json|pub)\b|\b[a-z][\w-]*:[a-zA-Z]\w*|--[a-z]|"
                            r"\w\[\d+\]|\b[a-z_]+\.[a-z_]+\b")


def _check_error_lines(result: Result, files, where: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, f"exit 1 without a message on stderr:\n{where}"
    findings = [line for line in lines if FINDING.match(line) and not line.startswith("aifactory: ")]
    one_line = [line for line in lines if ONE_LINE.match(line)]
    for line in lines:
        assert FINDING.match(line) or SUMMARY.match(line) or ONE_LINE.match(line) or line.startswith("warning: "), \
            f"an error line is neither FILE:LINE: path: message nor 'aifactory: ...': {line!r}\n{where}"
    assert len(one_line) <= 1, f"more than one 'aifactory:' line:\n{where}"
    if one_line:
        line = one_line[0]
        if line.endswith(":"):  # a header ("FILE is not a valid factory:") over located findings
            assert findings, f"an error header without the findings it announces:\n{where}"
        assert _NAMES_SUBJECT.search(line), f"the error names no file or field: {line!r}\n{where}"
    errors = [line for line in findings if ": warning: " not in line]
    if errors and files:
        names = {str(f) for f in files}
        assert any(FINDING.match(line)["file"] in names for line in errors), \
            f"no finding names the input ({', '.join(sorted(names))}):\n{where}"
    assert errors or one_line or any(SUMMARY.match(line) for line in lines), f"exit 1 without an error line:\n{where}"


# -- fault injection (read-only or full file systems, as root cannot make them) ---------------


@contextlib.contextmanager
def failing_writes(under: Path, err: int = errno_module.EROFS):
    """Every attempt to create, write, rename or remove a path under ``under`` fails with ``err``,
    in this process: what a read-only or full file system does to the command."""
    under_s = os.path.abspath(under)

    def inside(path) -> bool:
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return p == under_s or p.startswith(under_s + os.sep)

    def refuse(path):
        raise OSError(err, os.strerror(err), os.fsdecode(path))

    real_open, real_os_open = open, os.open
    real = {name: getattr(os, name) for name in ("mkdir", "replace", "rename", "unlink", "rmdir", "chmod")}

    def os_open(path, flags, mode=0o777, *, dir_fd=None):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def io_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guard(name):
        def wrapped(*args, **kwargs):
            if any(isinstance(a, (str, bytes, os.PathLike)) and inside(a) for a in args[:2]):
                refuse(args[0] if inside(args[0]) else args[1])
            return real[name](*args, **kwargs)
        return wrapped

    patches = [mock.patch("builtins.open", io_open), mock.patch("io.open", io_open), mock.patch("os.open", os_open)]
    patches += [mock.patch(f"os.{name}", guard(name)) for name in real]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        yield
