"""An interrupted ``aifactory render`` never leaves a state that looks finished but is not.

The guarantee (see ``aifactory.render.deployment``): every file in the deployment directory is at
all times either wholly the previous version or wholly the new one (a temporary file in the same
folder, then ``os.replace``); no temporary file is left behind by a failed write; and until the
render finishes, the manifest says the directory is unfinished. So after a failure or a kill at any
point, ``render --check`` exits 1 exactly when some file differs from the plan, and a plain rerun of
either the new spec or the previous one converges to a byte-identical copy of a fresh render.

The failure is injected for real at every write and removal the render makes: a write fails at
``os.replace`` with ENOSPC after its temporary file was written (so the clean-up path runs), a
removal fails with EACCES, and a "kill" is an exception that no handler in the code catches.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from unittest import mock

import pytest

from aifactory import plan as planning
from aifactory import spec
from aifactory.cli import main
from aifactory.errors import AifactoryError
from aifactory import files
from aifactory.render import deployment
from aifactory.render.deployment import MANIFEST

REPO = Path(__file__).resolve().parents[2]
BASE = (REPO / "stacks" / "superpod-h100" / "factory.yaml").read_text()
POOL = "  - {name: dgx, site: dc1, provider: onprem, system: dgx-h100, nodes: 127, fabric: compute}\n"
assert POOL in BASE, "the superpod stack changed; update this test's edit"
# Fewer nodes in one pool and a second pool: files change, and whole folders appear (grow) or,
# going the other way, disappear (shrink).
GROWN = BASE.replace(POOL, POOL.replace("nodes: 127", "nodes: 120")
                     + "  - {name: dgxb, site: dc1, provider: onprem, system: dgx-h100, nodes: 8, fabric: compute}\n")


class Killed(BaseException):
    """Stands for SIGKILL or a power cut: nothing in the code under test may handle it."""


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _content(tree: dict[str, bytes]) -> dict[str, bytes]:
    return {rel: data for rel, data in tree.items() if rel != MANIFEST}


def _render(path: Path, out: Path, check: bool = False):
    loaded = spec.load(path)
    return deployment.render(planning.build(loaded), out, check=check)


def _cli(capsys, *args) -> tuple[int, str, str]:
    """The real entry point, in this process (so a failure can be injected); an exception that escapes
    ``main()`` is a traceback for the user and fails the test."""
    capsys.readouterr()
    with mock.patch.object(sys, "argv", ["aifactory", *map(str, args)]):
        with pytest.raises(SystemExit) as exc:
            main()
    out, err = capsys.readouterr()
    return exc.value.code, out, err


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """The two specs (same file name, so plan.json is the same wherever they live) and a fresh render of each."""
    root = tmp_path_factory.mktemp("specs")
    result = {}
    for name, text in (("base", BASE), ("grown", GROWN)):
        path = root / name / "factory.yaml"
        path.parent.mkdir()
        path.write_text(text)
        out = root / f"{name}-fresh"
        _render(path, out)
        result[name] = (path, _tree(out))
    assert _content(result["base"][1]) != _content(result["grown"][1])
    assert set(result["grown"][1]) - set(result["base"][1]), "the grown spec must add files"
    return result


class Inject:
    """Count the render's writes and removals; make event number ``at`` fail in the way ``how`` says."""

    def __init__(self, out: Path, at: int, how: str):
        self.out, self.at, self.how, self.events = out, at, how, []
        self._write, self._unlink = files._atomic_write, Path.unlink

    def _event(self, kind: str, path: Path) -> bool:
        self.events.append((kind, path.relative_to(self.out).as_posix()))
        if len(self.events) - 1 != self.at:
            return False
        if self.how == "kill":
            raise Killed()
        return True

    def write(self, path: Path, data: bytes, mode: int = 0o644) -> None:
        if not self._event("write", path):
            return self._write(path, data, mode)
        # Fail where a full disk fails: after the temporary file holds the data, at the rename.
        with mock.patch.object(os, "replace", side_effect=OSError(errno.ENOSPC, "No space left on device")):
            self._write(path, data, mode)

    def unlink(self, path: Path, missing_ok: bool = False) -> None:
        inside = path.is_relative_to(self.out) and not path.name.startswith(".aifactory-tmp-")
        if inside and self._event("remove", path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return self._unlink(path, missing_ok=missing_ok)

    def __enter__(self):
        def unlink(path: Path, missing_ok: bool = False) -> None:  # a plain function: binds as a method
            return self.unlink(path, missing_ok)

        self._patches = [mock.patch.object(files, "_atomic_write", self.write),
                         mock.patch.object(Path, "unlink", unlink)]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in reversed(self._patches):
            p.stop()


def _events(src: Path, dst: Path, out: Path) -> list:
    """The writes and removals of rendering ``dst`` over a fresh render of ``src``, in order."""
    _render(src, out)
    with Inject(out, at=-1, how="none") as probe:
        _render(dst, out)
    return probe.events


def _assert_each_file_whole(tree: dict[str, bytes], old: dict[str, bytes], new: dict[str, bytes]) -> None:
    assert not [rel for rel in tree if ".aifactory-tmp-" in rel], f"temporary files left: {sorted(tree)}"
    for rel, data in _content(tree).items():
        assert rel in old or rel in new, f"{rel}: a file neither render writes"
        assert data in (old.get(rel), new.get(rel)), f"{rel}: neither the previous nor the new version"
    for rel in set(_content(old)) & set(_content(new)):
        assert rel in tree, f"{rel}: in both versions but missing after the failure"


@pytest.mark.parametrize("how", ["fail", "kill"])
@pytest.mark.parametrize("direction", ["grow", "shrink"])
def test_a_render_interrupted_anywhere_is_detected_and_repaired(specs, tmp_path, direction, how):
    (src, old), (dst, new) = (specs["base"], specs["grown"]) if direction == "grow" else (specs["grown"], specs["base"])
    events = _events(src, dst, tmp_path / "probe")
    kinds = {kind for kind, _ in events}
    assert "write" in kinds and (direction == "grow" or "remove" in kinds), events
    assert events[0] == events[-1] == ("write", MANIFEST), "the manifest must be invalidated first and written last"

    for at, (kind, rel) in enumerate(events):
        out = tmp_path / f"at-{at}"
        _render(src, out)
        assert _tree(out) == old
        with Inject(out, at, how) as inject:
            with pytest.raises(Killed if how == "kill" else AifactoryError):
                _render(dst, out)
        assert inject.events == events[: at + 1], "the render took a different path than the probe"
        tree = _tree(out)
        where = f"{how} at event {at} ({kind} {rel})"
        _assert_each_file_whole(tree, old, new)
        if kind == "write" and rel != MANIFEST:
            assert tree.get(rel) == old.get(rel), f"{where}: the failed write changed its file"

        # --check: drift exactly when some file differs from the plan, whatever the manifest says.
        check = _render(dst, out, check=True)
        assert check.drift == (_content(tree) != _content(new)), f"{where}: --check said drift={check.drift}"
        assert _tree(out) == tree, "--check must write nothing"
        # A rerun of either spec converges to a fresh render, byte for byte (manifest included).
        back = tmp_path / f"at-{at}-back"
        shutil.copytree(out, back)
        _render(dst, out)
        assert _tree(out) == new, f"{where}: rerunning the new spec did not converge"
        _render(src, back)
        assert _tree(back) == old, f"{where}: rerunning the previous spec did not converge"
        assert not _render(src, back, check=True).drift


def test_failed_write_is_one_line_through_the_cli_and_leaves_no_temp_file(specs, tmp_path, capsys):
    (src, old), (dst, new) = specs["base"], specs["grown"]
    out = tmp_path / "deploy"
    assert _cli(capsys, "render", src, "--out", out)[0] == 0
    writes = [i for i, (kind, rel) in enumerate(_events(src, dst, tmp_path / "probe")) if kind == "write"]
    at = writes[len(writes) // 2]  # part-way: some files are written, some are not

    with Inject(out, at, "fail"):
        code, stdout, stderr = _cli(capsys, "render", dst, "--out", out)
    assert code == 1
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("aifactory: ") and "No space left on device" in stderr, stderr
    assert ".aifactory-tmp-" not in stderr, "name the file the user knows, not the temporary one"
    tree = _tree(out)
    _assert_each_file_whole(tree, old, new)
    assert _content(tree) != _content(old) and _content(tree) != _content(new), "the failure was not part-way"

    code, stdout, stderr = _cli(capsys, "render", dst, "--out", out, "--check")
    assert code == 3 and "differ from the plan" in stderr  # drift
    assert _cli(capsys, "render", dst, "--out", out)[0] == 0
    assert _tree(out) == new
    code, stdout, stderr = _cli(capsys, "render", dst, "--out", out, "--check")
    assert code == 0, stdout + stderr


def test_killed_render_then_check_reports_drift_and_a_plain_rerun_converges(specs, tmp_path, capsys):
    """Killed between two file writes (the exception stands for the process dying there)."""
    (src, old), (dst, new) = specs["base"], specs["grown"]
    out = tmp_path / "deploy"
    assert _cli(capsys, "render", src, "--out", out)[0] == 0
    events = _events(src, dst, tmp_path / "probe")
    # The first file write that is not the manifest's: the kill lands after it, before the next one.
    first = next(i for i, (kind, rel) in enumerate(events) if kind == "write" and rel != MANIFEST)
    with Inject(out, first + 1, "kill"):
        with pytest.raises(Killed):
            main_argv = ["aifactory", "render", str(dst), "--out", str(out)]
            with mock.patch.object(sys, "argv", main_argv):
                main()
    assert _content(_tree(out)) != _content(old)

    code, stdout, stderr = _cli(capsys, "render", dst, "--out", out, "--check")
    assert code == 3, stdout + stderr  # drift
    assert any(line.startswith(("changed: ", "missing: ")) for line in stdout.splitlines()), stdout
    # The previous spec's check sees the half-written state too: nothing claims to be up to date.
    assert _cli(capsys, "render", src, "--out", out, "--check")[0] == 3
    code, stdout, stderr = _cli(capsys, "render", dst, "--out", out)
    assert code == 0, stderr
    assert _tree(out) == new
    assert _cli(capsys, "render", dst, "--out", out, "--check")[0] == 0


def test_interrupt_is_reported_not_traced(specs, tmp_path, capsys):
    (src, _), (dst, _) = specs["base"], specs["grown"]
    out = tmp_path / "deploy"
    _render(src, out)
    with mock.patch.object(files, "_atomic_write", side_effect=KeyboardInterrupt):
        code, _, stderr = _cli(capsys, "render", dst, "--out", out)
    assert code == 130 and "Traceback" not in stderr, stderr
    assert not [p for p in out.rglob(".aifactory-tmp-*")]


def test_output_folder_that_is_a_file_is_a_clean_error(specs, tmp_path, capsys):
    (src, _) = specs["base"]
    out = tmp_path / "deploy"
    out.write_text("not a folder\n")
    code, _, stderr = _cli(capsys, "render", src, "--out", out)
    assert code == 1 and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert out.read_text() == "not a folder\n"
