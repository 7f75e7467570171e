"""The attack corpus: one folder per known attack on the untrusted inputs, run through the real CLI.

``tests/security/corpus/<class>/<case>/`` holds ``case.yaml`` (what to set up and run, and the
exit code it must end with), ``expected.txt`` (regular expressions the error output must match,
one per line) and the input files of the attack; see ``corpus/README.md`` for the format.

Every case runs in a fresh sandbox (``tests.fuzz.harness``) with a hand-written file beside
``--out`` and one in a folder of its own, and must: end with the expected exit code, print the
expected error (which names the file and line, or the field), print no traceback, change
nothing outside the folders the command may write, keep every file the case marks as the
user's, and never create the canary file that each payload names.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from unittest import mock

import pytest
import yaml

from tests.fuzz import harness

CORPUS = Path(__file__).resolve().parent / "corpus"
CASES = sorted(CORPUS.glob("*/*/case.yaml"))
META = {"case.yaml", "expected.txt"}


def _subst(text: str, root: Path) -> str:
    return (text.replace("@CANARY@", str(harness.CANARY)).replace("@CANARY_NAME@", harness.CANARY_NAME)
            .replace("@SANDBOX@", str(root)))


def _subst_data(value, root: Path):
    if isinstance(value, str):
        return _subst(value, root)
    if isinstance(value, list):
        return [_subst_data(v, root) for v in value]
    if isinstance(value, dict):
        return {_subst_data(k, root): _subst_data(v, root) for k, v in value.items()}
    return value


def _merge(into: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _copy_stack(name: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for p in (harness.REPO / "stacks" / name).iterdir():
        if p.is_file() and p.suffix in (".yaml", ".py"):
            shutil.copyfile(p, dest / p.name)


def _setup(step: dict, root: Path) -> None:
    """One preparation step; paths are relative to the sandbox root."""
    (kind, arg), = step.items()
    if kind == "run":
        result = harness.invoke(arg, root)
        assert result.code == 0 and result.exception is None, f"setup run failed:\n{result.describe()}"
    elif kind == "write":
        path = root / arg["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if "size" in arg:  # a large file, made here rather than kept in git
            chunk = arg.get("repeat", "x").encode()
            with open(path, "wb") as fh:
                head = arg.get("head", "").encode()
                fh.write(head)
                left = arg["size"] - len(head)
                block = chunk * max(1, (1 << 20) // len(chunk))
                while left > 0:
                    fh.write(block[:left])
                    left -= len(block)
                fh.write(arg.get("tail", "").encode())
        elif "hex" in arg:
            path.write_bytes(bytes.fromhex(arg["hex"]))
        else:
            path.write_text(arg.get("text", ""))
    elif kind == "mkdir":
        (root / arg).mkdir(parents=True, exist_ok=True)
    elif kind == "remove":
        target = root / arg
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    elif kind == "symlink":
        link = root / arg["path"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            shutil.rmtree(link) if link.is_dir() and not link.is_symlink() else link.unlink()
        os.symlink(arg["target"], link)
    elif kind == "fifo":
        os.mkfifo(root / arg)
    elif kind == "json_merge":
        path = root / arg["path"]
        data = json.loads(path.read_text())
        path.write_text(json.dumps(_merge(data, arg["merge"]), indent=1))
    else:
        raise AssertionError(f"unknown setup step {kind!r}")


class _PauseAtFirstWrite:
    """Run ``argv`` (in a process of its own) the moment this process first renames a file into
    ``out``: the first command is then mid-way and holds whatever lock it takes."""

    def __init__(self, out: Path, argv: list[str], root: Path, timeout: float) -> None:
        self.out, self.argv, self.root, self.timeout = os.path.abspath(out), argv, root, timeout
        self.result: harness.Result | None = None
        self._real = {name: getattr(os, name) for name in ("replace", "rename")}

    def _wrap(self, name):
        def wrapped(src, dst, *args, **kwargs):
            if self.result is None and os.path.abspath(os.fsdecode(dst)).startswith(self.out + os.sep):
                self.result = harness.invoke_subprocess(self.argv, self.root, timeout=self.timeout)
            return self._real[name](src, dst, *args, **kwargs)
        return wrapped

    def __enter__(self):
        self._patches = [mock.patch(f"os.{name}", self._wrap(name)) for name in self._real]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in reversed(self._patches):
            p.stop()


def _exits(value) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, list) else (value,)


@pytest.mark.parametrize("case_file", CASES, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in CASES])
def test_corpus_case(case_file: Path, tmp_path: Path):
    folder = case_file.parent
    harness.clear_canary()
    box = harness.Sandbox(tmp_path)
    root = box.root
    case = _subst_data(yaml.safe_load(case_file.read_text()), root)
    expected = [line for line in (folder / "expected.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")] if (folder / "expected.txt").exists() else []

    # 1. inputs: an example stack or spec, then the case's own files on top.
    if "stack" in case:
        _copy_stack(case["stack"], box.inputs / case["stack"])
    if "spec" in case:
        shutil.copyfile(harness.REPO / "stacks" / case["spec"] / "factory.yaml", box.inputs / "factory.yaml")
    for src in sorted(folder.rglob("*")):
        rel = src.relative_to(folder)
        if src.is_file() and str(rel) not in META:
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            try:
                dst.write_bytes(_subst(data.decode("utf-8"), root).encode("utf-8"))
            except UnicodeDecodeError:
                dst.write_bytes(data)
    (root / "victim.txt").write_text(harness.HAND_WRITTEN)
    # 2. the state the attack needs.
    for step in case.get("setup", []):
        _setup(step, root)
    outs = tuple(root / o for o in case.get("out", ["out"]))
    keep = {rel: (root / rel).read_bytes() for rel in case.get("keep", [])}
    box.freeze(only=outs)

    # 3. the run.
    exits = _exits(case["exit"])
    argv = [str(a) for a in case["argv"]]
    timeout = case.get("timeout", 10)
    concurrent = None
    try:
        if case.get("isolate"):
            result = harness.invoke_subprocess(argv, root, timeout=timeout + 10, memory=case.get("memory", 2 << 30))
        elif "concurrent" in case:
            with _PauseAtFirstWrite(root / case["concurrent"]["out"], case["concurrent"]["argv"], root, 30) as pause:
                result = harness.invoke(argv, root)
            concurrent = pause.result
        elif "fault" in case:
            code = getattr(errno, case["fault"]["errno"])
            with harness.failing_writes(root / case["fault"]["under"], code):
                result = harness.invoke(argv, root)
        else:
            result = harness.invoke(argv, root)

        # 4. the verdict.
        where = result.describe()
        if result.exception is None:  # (an exception is reported by check_contract, as a traceback)
            assert result.code is not None, f"did not finish within {timeout + 10}s:\n{where}"
        harness.check_contract(result, box, usage_ok=2 in exits, time_limit=timeout)
        assert result.code in exits, f"exit {result.code}, expected {exits}:\n{where}"
        if result.code != 0 or exits == (0,):
            for pattern in expected:
                assert re.search(pattern, result.stderr, re.MULTILINE), \
                    f"expected error /{pattern}/ not in stderr:\n{where}"
        for pattern in case.get("forbidden", []):
            assert not re.search(pattern, result.stdout + result.stderr), f"output holds /{pattern}/:\n{where}"
        for rel, data in keep.items():
            assert (root / rel).is_file() and not (root / rel).is_symlink(), f"{rel}: the user's file is gone\n{where}"
            assert (root / rel).read_bytes() == data, f"{rel}: the user's file was changed\n{where}"
        for rel in case.get("absent", []):
            assert not (root / rel).exists() and not (root / rel).is_symlink(), f"{rel} is still there\n{where}"
        for pattern in case.get("absent_glob", []):
            left = sorted(str(p.relative_to(root)) for p in root.glob(pattern))
            assert not left, f"left behind: {left}\n{where}"
        if concurrent is not None or "concurrent" in case:
            assert concurrent is not None, f"the first command wrote nothing into --out, so nothing ran beside it\n{where}"
            second = concurrent.describe()
            assert concurrent.code is not None, f"the second command waited instead of refusing:\n{second}"
            assert "Traceback" not in concurrent.stderr, second
            assert concurrent.code in _exits(case["concurrent"]["exit"]), f"second command:\n{second}"
            for pattern in case["concurrent"].get("expected", []):
                assert re.search(pattern, concurrent.stderr, re.MULTILINE), \
                    f"second command: /{pattern}/ not in stderr:\n{second}"
    finally:
        harness.clear_canary()
        box.cleanup()


def test_every_class_is_covered():
    classes = {p.parent.parent.name for p in CASES}
    assert {"01-code-execution", "02-deletion-outside-out", "03-data-loss", "05-alias-bomb", "06-tracebacks",
            "07-pxe-paths-and-anchors", "08-silent-coercions", "09-stack-config", "10-concurrency"} <= classes
