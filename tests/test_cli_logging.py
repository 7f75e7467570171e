"""Global options: -v/--verbose, -q/--quiet, --debug and --log-file (AIFACTORY_LOG_FILE), before
or after the command's name; errors stay one line unless --debug asks for the traceback."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys

import pytest

from aifactory import cli
from tests.cli_helpers import LAB, run

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d \d+ [A-Z]+ aifactory[.\w]*: ")


def test_quiet_leaves_out_success_lines_only(monkeypatch, capsys, tmp_path):
    code, out, err = run(monkeypatch, capsys, "validate", LAB)
    assert code == 0 and out.startswith(f"{LAB}: valid (")
    code, quiet_out, quiet_err = run(monkeypatch, capsys, "-q", "validate", LAB)
    assert code == 0 and quiet_out == "" and quiet_err == err  # the spec's warning is still said
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--quiet")
    assert code == 0 and out == ""
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--check", "-q")
    assert code == 0 and out == ""
    (tmp_path / "deploy/plan.json").write_text("{}\n")
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--check", "-q")
    assert code == cli.EXIT_DRIFT and out == "changed: deploy/plan.json\n"  # what was asked for stays


def test_verbose_says_what_each_step_does_on_stderr(monkeypatch, capsys):
    _, plain_out, plain_err = run(monkeypatch, capsys, "plan", LAB, "-f", "json")
    code, out, err = run(monkeypatch, capsys, "plan", LAB, "-f", "json", "-v")
    assert code == 0 and out == plain_out  # stdout is the same document
    extra = [line for line in err.splitlines() if line not in plain_err.splitlines()]
    assert extra and all(line.startswith("aifactory: info: ") for line in extra), extra
    assert any("planned 1 pool, 2 nodes, 16 GPUs" in line for line in extra), extra
    code, _, vv_err = run(monkeypatch, capsys, "-vv", "plan", LAB, "-f", "json")
    assert code == 0 and len(vv_err.splitlines()) >= len(err.splitlines())


def test_global_options_after_the_command_never_take_an_option_value(monkeypatch, capsys, tmp_path):
    """`--out -q` names a folder; words after `--` belong to the command `exec` runs."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "-q")
    assert code == 0 and (tmp_path / "-q" / "plan.json").is_file() and "written" in out
    from typer.main import get_command

    command = get_command(cli.app).commands["exec"]
    cli._OPTS = cli._Global()
    assert cli._take_global_options(command, ["stacks/lab", "gpu-0001", "-v", "--", "ls", "-v", "--debug"]) == \
        ["stacks/lab", "gpu-0001", "--", "ls", "-v", "--debug"]
    assert cli._OPTS.verbose == 1 and not cli._OPTS.debug


def test_log_file_is_private_timestamped_and_names_no_secret(monkeypatch, capsys, tmp_path):
    log = tmp_path / "logs" / "aifactory.log"
    log.parent.mkdir()
    old_umask = os.umask(0o022)
    try:
        code, out, _ = run(monkeypatch, capsys, "validate", LAB, "--log-file", log)
    finally:
        os.umask(old_umask)
    assert code == 0 and out.startswith(f"{LAB}: valid")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = log.read_text().splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines
    text = "\n".join(lines)
    assert f"aifactory validate {LAB} --log-file {log}" in text
    assert "driver-branch" in text  # the findings it printed
    assert "valid (1 pools" in text
    assert re.search(r"INFO aifactory\.cli: exit 0 after \d+\.\d\d s$", lines[-1]), lines[-1]

    # appended to, through AIFACTORY_LOG_FILE; a variable's value given on the command line is not written
    monkeypatch.setenv("AIFACTORY_LOG_FILE", str(log))
    code, _, err = run(monkeypatch, capsys, "configure", tmp_path / "no-inventory", "-e", "munge_key=hunter2",
                       "--extra-vars=db_password=swordfish", "-e", f"@{tmp_path / 'vault.yml'}")
    assert code == 1
    text = log.read_text()
    assert "hunter2" not in text and "swordfish" not in text
    assert "-e munge_key=<redacted> --extra-vars=db_password=<redacted>" in text
    assert re.search(r"ERROR aifactory\.cli: .*vault\.yml does not exist", text), text
    assert text.count("aifactory 0.1.0 (Python") == 2


def test_redaction_of_the_logged_command_line():
    assert cli._redacted_argv(["aifactory", "configure", "inv", "-e", "a=1", "-eb=2", "--extra-vars", "@s.yml",
                               "--token=abc", "exec", "--", "mysql", "-psecret"]) == (
        "aifactory configure inv -e a=<redacted> -eb=<redacted> --extra-vars @s.yml --token=<redacted> exec "
        "-- <2 arguments>")
    assert cli._redacted_argv(["--extra-vars=x=1", "-e@f.yml", "--extra-vars", "{\"k\": 1}"]) == \
        "--extra-vars=x=<redacted> -e@f.yml --extra-vars <redacted>"


def test_a_log_file_that_cannot_be_opened_is_one_line(monkeypatch, capsys, tmp_path):
    code, out, err = run(monkeypatch, capsys, "--log-file", tmp_path / "missing" / "x.log", "validate", LAB)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [f"aifactory: --log-file {tmp_path / 'missing' / 'x.log'}: cannot open it: "
                                        "No such file or directory"]


def _defect(*_args, **_kwargs):
    raise KeyError("pools\nforged: line \x1b[2J")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("aifactory.plan.validate", _defect)
    code, out, err = run(monkeypatch, capsys, "validate", LAB)
    assert code == 1 and out == "" and "Traceback" not in err
    [line] = err.splitlines()
    assert line.startswith("aifactory: internal error: KeyError: ") and "rerun with --debug" in line
    assert "\x1b" not in line

    # the log file gets the traceback even without --debug
    log = tmp_path / "x.log"
    run(monkeypatch, capsys, "validate", LAB, "--log-file", log)
    assert "Traceback (most recent call last)" in log.read_text() and "_defect" in log.read_text()

    for args in (["--debug", "validate", LAB], ["validate", LAB, "--debug"]):
        monkeypatch.setattr(sys, "argv", ["aifactory", *map(str, args)])
        with pytest.raises(KeyError):
            cli.main()
    monkeypatch.setenv("AIFACTORY_DEBUG", "1")
    monkeypatch.setattr(sys, "argv", ["aifactory", "validate", str(LAB)])
    with pytest.raises(KeyError):
        cli.main()
    capsys.readouterr()


def test_runs_leave_no_handler_behind(monkeypatch, capsys, tmp_path):
    before = list(logging.getLogger("aifactory").handlers), list(logging.getLogger().handlers)
    level = logging.getLogger("aifactory").level
    for args in (["-vvv", "validate", LAB], ["validate", LAB, "--log-file", tmp_path / "l"], ["validate", "nope"]):
        run(monkeypatch, capsys, *args)
    assert (list(logging.getLogger("aifactory").handlers), list(logging.getLogger().handlers)) == before
    assert logging.getLogger("aifactory").level == level


def test_global_options_through_the_console_script(tmp_path):
    """The installed entry point: usage errors stay click's exit 2, and global options work on
    either side of the command's name."""
    def cli_(*args, **kw):
        return subprocess.run([sys.executable, "-m", "aifactory", *map(str, args)], capture_output=True, text=True,
                              **kw)

    out = cli_("validate", LAB, "--verbose", "--nope")
    assert out.returncode == 2 and "No such option" in out.stderr
    out = cli_("-q", "validate", LAB, "--log-file", tmp_path / "l.log", "-v")
    assert out.returncode == 0 and out.stdout == "" and (tmp_path / "l.log").is_file()
