"""The one reader and the one writer (aifactory.files) against hostile folders and files.

The output folder of a GitOps render is a checked-out folder from a pull request: its manifest,
its symlinks and its stray files are the attacker's. Whatever they hold, a render writes only
inside --out, removes only files it recorded and that still hold what it wrote, and fails with
one line instead of a traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from aifactory import files
from aifactory.cli import main
from aifactory.errors import AifactoryError
from aifactory.render.deployment import MANIFEST

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "stacks" / "lab" / "factory.yaml"


def _cli(capsys, *args) -> tuple[int, str, str]:
    with mock.patch.object(sys, "argv", ["aifactory", *map(str, args)]):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _one_error(err: str) -> bool:
    """Apart from the spec's warnings, exactly one line: the error."""
    return len([line for line in err.splitlines() if ": warning: " not in line]) == 1


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture
def rendered(tmp_path, capsys) -> Path:
    out = tmp_path / "deploy"
    code, _, err = _cli(capsys, "render", LAB, "--out", out)
    assert code == 0, err
    return out


# --- the manifest is untrusted ----------------------------------------------------------------

@pytest.mark.parametrize("entry", ["../victim.txt", "/VICTIM", "inventory/../../victim.txt", "./../victim.txt",
                                   "inventory/\n../victim.txt", "", ".aifactory-render.json"])
def test_a_tampered_manifest_never_removes_outside_or_unrecorded_files(rendered, capsys, entry):
    victim = rendered.parent / "victim.txt"
    victim.write_text("keep me\n")
    absolute = rendered.parent / "absolute.txt"
    absolute.write_text("keep me too\n")
    manifest = json.loads((rendered / MANIFEST).read_text())
    digest = files._digest(b"keep me\n")
    name = entry.replace("/VICTIM", str(absolute))
    manifest["files"][name] = digest
    manifest["input"] = "changed"  # force a full pass, with removals
    (rendered / MANIFEST).write_text(json.dumps(manifest))
    code, _, err = _cli(capsys, "render", LAB, "--out", rendered)
    assert code == 0, err
    assert victim.read_text() == "keep me\n" and absolute.read_text() == "keep me too\n"


@pytest.mark.parametrize("kind", ["device", "fifo", "huge", "not-json", "nan", "deep", "list"])
def test_a_manifest_that_is_not_one_is_ignored_not_trusted(rendered, capsys, kind):
    path = rendered / MANIFEST
    path.unlink()
    if kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with open(path, "wb") as fh:
            fh.truncate(files.MAX_MANIFEST_BYTES + 1)  # sparse: no disk used
    else:
        path.write_text({"not-json": "{", "nan": '{"input": NaN, "files": {}}',
                         "deep": "[" * 10_000 + "]" * 10_000, "list": "[]"}[kind])
    code, _, err = _cli(capsys, "render", LAB, "--out", rendered)
    assert code == 0, err  # a folder with someone's manifest: written, nothing removed
    assert path.is_file() and not path.is_symlink() and json.loads(path.read_text())["input"]


def test_a_removed_pool_removes_only_files_that_still_hold_what_render_wrote(tmp_path, capsys):
    out = tmp_path / "deploy"
    assert _cli(capsys, "render", REPO / "stacks/multicloud/factory.yaml", "--out", out)[0] == 0
    edited, gone = out / "inventory/group_vars/pool_azure.yml", out / "inventory/group_vars/pool_gcp.yml"
    edited.write_text("# changed by hand\n")
    code, stdout, err = _cli(capsys, "render", LAB, "--out", out)
    assert code == 0, err
    assert not gone.exists() and f"removed {gone}" in stdout
    assert edited.read_text() == "# changed by hand\n" and f"kept {edited}" in err


# --- the folder is untrusted ------------------------------------------------------------------

def test_a_symlink_in_the_output_folder_is_never_written_through(rendered, capsys, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    slurm = rendered / "slurm"
    for child in sorted(slurm.rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    slurm.rmdir()
    slurm.symlink_to(outside, target_is_directory=True)
    manifest = json.loads((rendered / MANIFEST).read_text())
    manifest["input"] = "changed"
    (rendered / MANIFEST).write_text(json.dumps(manifest))
    code, _, err = _cli(capsys, "render", LAB, "--out", rendered)
    assert code == 1 and "symlink" in err and _one_error(err), err
    assert list(outside.iterdir()) == []


def test_a_symlinked_file_is_replaced_not_followed(rendered, capsys, tmp_path):
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    plan = rendered / "plan.json"
    plan.unlink()
    plan.symlink_to(target)
    code, _, err = _cli(capsys, "render", LAB, "--out", rendered)
    assert code == 0, err
    assert target.read_text() == "root:x:0:0\n"
    assert not plan.is_symlink() and json.loads(plan.read_text())["name"] == "lab"


def test_a_non_empty_folder_it_did_not_write_is_refused_unless_forced(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    for command in (["render", LAB], ["inventory", LAB]):
        code, _, err = _cli(capsys, *command, "--out", out)
        assert code == 1 and "not empty" in err and "--force" in err, err
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    code, _, err = _cli(capsys, "render", LAB, "--out", out, "--force")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "plan.json").is_file()


@pytest.mark.parametrize("command", ["render", "inventory"])
def test_an_empty_out_is_refused_not_read_as_the_current_folder(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, command, LAB, "--out", "")
    assert code == 1 and "--out" in err
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_or_non_folder_out_is_one_line(tmp_path, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    code, _, err = _cli(capsys, "render", LAB, "--out", afile)
    assert code == 1 and "not a folder" in err and _one_error(err), err
    code, _, err = _cli(capsys, "render", LAB, "--out", afile / "below")
    assert code == 1 and _one_error(err), err


# --- concurrency and leftovers -----------------------------------------------------------------

def test_a_second_writer_is_refused_while_the_first_holds_the_folder(rendered, capsys):
    fd = os.open(rendered, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = _tree(rendered)
        (rendered / MANIFEST).write_text(json.dumps({"input": None, "files": {}}))
        code, _, err = _cli(capsys, "render", LAB, "--out", rendered)
        assert code == 1 and "another aifactory run" in err, err
        code, _, err = _cli(capsys, "render", LAB, "--out", rendered, "--check")
        assert code == 1 and "another aifactory run" in err, err
        assert {k: v for k, v in _tree(rendered).items() if k != MANIFEST} == \
            {k: v for k, v in before.items() if k != MANIFEST}
    finally:
        os.close(fd)
    assert _cli(capsys, "render", LAB, "--out", rendered)[0] == 0


def test_two_renders_at_once_one_wins_the_other_says_so(tmp_path):
    out = tmp_path / "deploy"
    cmd = [sys.executable, "-m", "aifactory", "render", str(LAB), "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code in (0, 1) and "Traceback" not in err for code, _, err in results), results
    assert any(code == 0 for code, _, _ in results)
    for code, _, err in results:
        if code == 1:
            assert "another aifactory run" in err
    check = subprocess.run(cmd + ["--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(rendered, capsys):
    stale = rendered / "slurm" / f"{files.TMP_PREFIX}killed"
    stale.write_text("half")
    manifest = json.loads((rendered / MANIFEST).read_text())
    manifest["input"] = "changed"
    (rendered / MANIFEST).write_text(json.dumps(manifest))
    (rendered / "plan.json").write_text("{}")  # something to write, so the run is not a no-op
    assert _cli(capsys, "render", LAB, "--out", rendered)[0] == 0
    assert not stale.exists()


# --- the reader -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "huge", "binary"])
def test_the_reader_refuses_what_is_not_a_small_regular_text_file(tmp_path, kind):
    path = tmp_path / "input"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path = Path("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        with open(path, "wb") as fh:
            fh.truncate(1024 * 1024 + 1)
    else:
        path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(AifactoryError) as exc:
        files.read_text(path, 1024 * 1024, "--thing")
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": 1, "a": 2}', "[" * 5000 + "]" * 5000,
                                  "1" * 5000, "[" * 70 + "]" * 70])
def test_json_is_bounded(text):
    with pytest.raises(AifactoryError) as exc:
        files.parse_json(text, "x.json")
    assert str(exc.value).startswith("x.json") and "\n" not in str(exc.value)


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../x", "a//b", "a/./b", "", "a\nb", ".hidden",
                                 ".aifactory-render.json", "a/\x00", "-rf"])
def test_unsafe_relative_paths_are_refused(rel):
    assert files.safe_relpath(rel) is None


def test_a_folder_another_run_creates_first_is_locked_not_refused(tmp_path):
    """Two runs look, see no folder, and both mkdir: the loser's mkdir finds it made. That is not an
    error: the lock decides which run writes (found as "cannot create the folder: File exists"
    when two renders started at once). Anything but a real folder in its place is refused."""
    out = tmp_path / "deploy"

    def made_by_the_other_run(self, *args, **kwargs):
        os.mkdir(out)  # the other run's mkdir, a moment earlier
        raise FileExistsError(17, "File exists", str(out))

    with mock.patch.object(Path, "mkdir", made_by_the_other_run):
        with files.Folder(out, MANIFEST) as folder:
            assert not folder.created and out.is_dir()
    target = tmp_path / "elsewhere"
    target.write_text("x")

    def symlink_by_the_other_run(self, *args, **kwargs):
        (tmp_path / "planted").symlink_to(target)
        raise FileExistsError(17, "File exists", str(tmp_path / "planted"))

    with mock.patch.object(Path, "mkdir", symlink_by_the_other_run):
        with pytest.raises(AifactoryError, match="exists and is not a folder"):
            with files.Folder(tmp_path / "planted", MANIFEST):
                pass
