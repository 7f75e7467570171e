"""`aifactory up` on tampered stack folders: refused before the Pulumi CLI is ever run."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from aifactory import deploy
from aifactory.errors import AifactoryError, SpecError
from tests.deploy.test_up import RecordingPulumi

REPO = Path(__file__).resolve().parents[2]
PLANTED = "PLANTED-s3cr3t-51d0"


def copy_stack(tmp_path: Path, name: str = "aws-p5") -> Path:
    dst = tmp_path / name
    shutil.copytree(REPO / "stacks" / name, dst, ignore=shutil.ignore_patterns(".aifactory", "__pycache__"))
    return dst


def set_config(stack: Path, **config) -> Path:
    path = stack / "Pulumi.dev.yaml"
    path.write_text(yaml.safe_dump({"config": {k.replace("__", ":"): v for k, v in config.items()}}))
    return path


def refused(stack: Path, exc_type=AifactoryError, stack_name=None) -> str:
    fake = RecordingPulumi()
    with pytest.raises(exc_type) as err:
        deploy.up(stack, stack_name, command=fake)
    assert fake.calls == []  # nothing reached the Pulumi CLI
    return str(err.value)


def test_alias_bomb_in_the_stack_config_is_refused_fast(tmp_path):
    stack = copy_stack(tmp_path)
    bomb = "".join(f"  b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]\n" if i else "  b0: &b0 [x, x, x, x, x, x, x, x]\n"
                   for i in range(10))
    (stack / "Pulumi.dev.yaml").write_text("config:\n" + bomb)
    started = time.monotonic()
    message = refused(stack, SpecError)
    assert time.monotonic() - started < 10
    assert f"{stack.resolve() / 'Pulumi.dev.yaml'}:" in message and "alias" in message


def test_factory_outside_the_folder_is_refused_with_its_line(tmp_path):
    stack = copy_stack(tmp_path)
    config = set_config(stack, aifactory__factory="/etc/passwd")
    message = refused(stack)
    assert message.startswith(f"{config.resolve()}:2: config aifactory:factory: must be a relative path")
    assert "root:" not in message


def test_committed_factory_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text(f"name: {PLANTED}\n")
    stack = copy_stack(tmp_path)
    (stack / "factory.yaml").unlink()
    (stack / "factory.yaml").symlink_to(outside)
    message = refused(stack)
    assert "factory.yaml" in message and "symlink" in message and PLANTED not in message


def test_up_checks_the_factory_the_program_will_use(tmp_path):
    """``aifactory:factory`` names another spec: that one is planned before the engine runs."""
    stack = copy_stack(tmp_path)
    (stack / "other.yaml").write_text((stack / "factory.yaml").read_text().replace("p5.48xlarge", "p5.99xlarge"))
    set_config(stack, aifactory__factory="other.yaml")
    message = refused(stack, SpecError)
    assert "other.yaml:" in message and "system" in message


def test_bad_reservation_is_refused_naming_file_line_and_key(tmp_path):
    stack = copy_stack(tmp_path)
    config = set_config(stack, aifactory__reservations={"train": f"cr-1; echo {PLANTED}"})
    message = refused(stack)
    assert message.startswith(f"{config.resolve()}:2: config aifactory:reservations: train: not a valid")
    assert PLANTED not in message


def test_unknown_or_unsafe_stack_is_refused(tmp_path):
    stack = copy_stack(tmp_path)
    assert "(stacks: dev)" in refused(stack, stack_name="prod")
    assert "is not a stack name" in refused(stack, stack_name="../dev")


def test_encrypted_values_are_left_to_the_pulumi_cli(tmp_path):
    stack = copy_stack(tmp_path)
    (stack / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n  aifactory:bmcPassword:\n"
                                           "    secure: v1:AAAA\n")
    fake = RecordingPulumi()
    deploy.up(stack, command=fake)
    assert any(c["args"][0] == "up" for c in fake.calls)


@pytest.mark.parametrize("config", [{"aifactory:factory": "/etc/passwd"}, {"aifactory:reservations": ["x"]}])
def test_up_through_the_command_line_is_one_error(tmp_path, capsys, monkeypatch, config):
    from aifactory.cli import main

    stack = copy_stack(tmp_path)
    (stack / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))
    monkeypatch.setattr(sys, "argv", ["aifactory", "up", str(stack)])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"aifactory: {stack.resolve() / 'Pulumi.dev.yaml'}:2: config ")
