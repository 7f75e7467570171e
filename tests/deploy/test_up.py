"""`aifactory up`: the Automation API glue, driven against a recording fake PulumiCommand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import semver
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from aifactory import deploy
from aifactory.errors import AifactoryError

REPO = Path(__file__).resolve().parents[2]

HISTORY = [{"kind": "update", "result": "succeeded", "startTime": "2026-01-01T00:00:00.000Z",
            "endTime": "2026-01-01T00:05:00.000Z", "version": 1, "message": "", "environment": {},
            "config": {}, "resourceChanges": {"create": 15}}]


class RecordingPulumi(auto.PulumiCommand):
    """Stands in for the CLI: records argv, cwd and env; answers like the CLI would."""

    def __init__(self, fail_on: str = "", stderr: str = "") -> None:  # no `pulumi version` subprocess
        self.command = "pulumi"
        self.version = semver.VersionInfo.parse("3.200.0")
        self.calls: list[dict] = []
        self.fail_on, self.stderr = fail_on, stderr

    def run(self, args, cwd, additional_env, on_output=None, on_error=None):
        self.calls.append({"args": list(args), "cwd": cwd, "env": dict(additional_env)})
        if self.fail_on and self.fail_on in args:
            raise auto.errors.create_command_error(CommandResult(stdout="", stderr=self.stderr, code=255))
        if args[:2] == ["stack", "output"]:
            return CommandResult(stdout=json.dumps({"factory": "aws-p5"}), stderr="", code=0)
        if args[:2] == ["stack", "history"]:
            return CommandResult(stdout=json.dumps(HISTORY), stderr="", code=0)
        if args[0] in ("up", "preview") and on_output:
            on_output("Updating (dev):")
        if "--event-log" in args:  # the engine streams events there; preview reads its summary
            event = {"sequence": 1, "timestamp": 0, "summaryEvent": {
                "maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 15}, "policyPacks": {}}}
            Path(args[args.index("--event-log") + 1]).write_text(json.dumps(event) + "\n")
        return CommandResult(stdout="", stderr="", code=0)


def test_up_selects_the_stack_in_the_folder_and_runs_pulumi_up():
    fake, lines = RecordingPulumi(), []
    result = deploy.up(REPO / "stacks" / "aws-p5", command=fake, on_output=lines.append)
    argv = [c["args"] for c in fake.calls]
    assert argv[0][:3] == ["stack", "select", "--stack"] and argv[0][3] == "dev"
    up = next(a for a in argv if a[0] == "up")
    assert "--yes" in up and up[up.index("--stack") + 1] == "dev"
    assert all(c["cwd"] == str(REPO / "stacks" / "aws-p5") for c in fake.calls)
    assert result.summary.result == "succeeded" and result.outputs["factory"].value == "aws-p5"
    assert lines == ["Updating (dev):"]


def test_preview_only_runs_pulumi_preview_and_never_up():
    fake = RecordingPulumi()
    deploy.up(REPO / "stacks" / "aws-p5", command=fake, preview_only=True)
    commands = [c["args"][0] for c in fake.calls]
    assert "preview" in commands and "up" not in commands


def test_bad_factory_stops_before_any_pulumi_command(tmp_path):
    from aifactory.errors import SpecError
    from tests.preview.harness import make_stack

    root = make_stack(tmp_path / "s", "name: x\nsites: [{name: s}]\npools: []\n")
    fake = RecordingPulumi()
    with pytest.raises(SpecError):
        deploy.up(root, command=fake)
    assert fake.calls == []


def test_cli_failure_becomes_one_line():
    fake = RecordingPulumi(fail_on="up", stderr="warning: x\nerror: no credentials: run `pulumi login`\n")
    with pytest.raises(AifactoryError, match=r"stack dev .*: error: no credentials") as err:
        deploy.up(REPO / "stacks" / "aws-p5", command=fake)
    assert "\n" not in str(err.value)


def test_without_the_cli_the_command_says_how_to_install_it(tmp_path):
    """No `pulumi` on PATH: exit 1 with one line naming the install command, no traceback."""
    env = {**os.environ, "PATH": str(tmp_path)}  # an empty folder: no pulumi anywhere
    out = subprocess.run([sys.executable, "-m", "aifactory", "up", "stacks/aws-p5"], capture_output=True,
                         text=True, cwd=REPO, env=env)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "the Pulumi CLI is not installed" in out.stderr and "get.pulumi.com" in out.stderr
    assert "Traceback" not in out.stderr


def test_pulumi_command_detection_without_the_cli(monkeypatch):
    monkeypatch.setattr(deploy.shutil, "which", lambda name: None)
    with pytest.raises(AifactoryError, match="pulumi login --local"):
        deploy.pulumi_command()
