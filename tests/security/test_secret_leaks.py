"""Planted secrets never show up in what the tool prints, logs, exports or writes.

Fake values are planted where real ones enter: the BMC password as a Pulumi config secret of
the on-prem stack, cloud keys and join tokens in the environment (where the cloud SDKs and
Ansible read them). Then every command and view that exists runs — validate, plan (table, JSON,
Markdown), the offline preview (JSON, table, stack outputs, warnings, logs) — and all of its
stdout, stderr, log records and files are searched for the planted values.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"

BMC_PASSWORD = "s3cr3t-PLANTED-bmc-9f1c"
PLANTED_ENV = {
    "AWS_SECRET_ACCESS_KEY": "s3cr3t-PLANTED-aws-7d2e",
    "AWS_SESSION_TOKEN": "s3cr3t-PLANTED-sts-11aa",
    "ARM_CLIENT_SECRET": "s3cr3t-PLANTED-azure-4b8f",
    "GOOGLE_CREDENTIALS": '{"private_key": "s3cr3t-PLANTED-gcp-0c3d"}',
    "OCI_PRIVATE_KEY": "s3cr3t-PLANTED-oci-5e6f",
    "PULUMI_CONFIG_PASSPHRASE": "s3cr3t-PLANTED-passphrase-2a2a",
    "PULUMI_ACCESS_TOKEN": "s3cr3t-PLANTED-pulumi-3b3b",
    "K3S_TOKEN": "s3cr3t-PLANTED-join-8c8c",
    "SLURM_JWT_KEY": "s3cr3t-PLANTED-jwt-6d6d",
    "ANSIBLE_VAULT_PASSWORD": "s3cr3t-PLANTED-vault-1e1e",
    "AIFACTORY_BMC_PASSWORD": BMC_PASSWORD,
}
MARK = "PLANTED"  # every planted value carries it: one search finds any of them, or any part


def _assert_clean(where: str, text: str) -> None:
    assert MARK not in text, f"a planted secret leaked into {where}: ...{text[max(0, text.find(MARK) - 80):][:200]}..."


def _files_under(root: Path) -> dict[Path, str]:
    return {p: p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def planted(monkeypatch, tmp_path):
    for key, value in PLANTED_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # anything written to the working directory gets searched too
    return tmp_path


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **PLANTED_ENV}
    return subprocess.run([sys.executable, "-m", "aifactory", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


@pytest.mark.parametrize("stack", sorted(p.parent.name for p in STACKS.glob("*/factory.yaml")))
def test_plan_and_validate_output_carry_no_secret(stack, planted):
    factory = STACKS / stack / "factory.yaml"
    runs = [_cli("validate", str(factory), cwd=planted)]
    runs += [_cli("plan", str(factory), "--format", fmt, cwd=planted) for fmt in ("table", "json", "markdown")]
    for run in runs:
        assert run.returncode == 0, run.stderr
        _assert_clean(f"{run.args[3:]} stdout", run.stdout)
        _assert_clean(f"{run.args[3:]} stderr", run.stderr)
    for path, text in _files_under(planted).items():
        _assert_clean(str(path), text)


def test_bmc_password_stays_secret_in_the_offline_preview(planted, caplog, capfd):
    """The on-prem stack with its BMC password set as a config secret, as `pulumi config set --secret` does."""
    from aifactory import preview

    stack_dir = STACKS / "onprem-dgx"
    project, stack, config = preview.stack_settings(stack_dir)
    config["aifactory:bmcPassword"] = BMC_PASSWORD
    with caplog.at_level(logging.DEBUG):
        result = preview.run_program(stack_dir / "__main__.py", project, stack, config)

    # The secret did reach the resources (otherwise this test would prove nothing) ...
    nodes = [r for r in result.resources if "bmc_password" in r.inputs or "bmcPassword" in r.inputs]
    assert nodes, "no resource received the BMC password; the planted secret never entered the program"
    for r in nodes:
        assert r.inputs.get("bmc_password", r.inputs.get("bmcPassword")) == preview.mocks.SECRET, r.inputs
    # ... and is in none of the views of the preview.
    table = io.StringIO()
    preview.print_table(result, Console(file=table, width=240))
    _assert_clean("preview JSON", preview.to_json(result))
    _assert_clean("preview table", table.getvalue())
    _assert_clean("stack outputs", repr(result.outputs))
    _assert_clean("preview warnings", "\n".join(result.warnings))
    _assert_clean("log records", "\n".join(f"{r.name}: {r.getMessage()}" for r in caplog.records))
    out, err = capfd.readouterr()
    _assert_clean("stdout", out)
    _assert_clean("stderr", err)
    for path, text in _files_under(planted).items():
        _assert_clean(str(path), text)


def test_the_search_would_find_a_leak():
    """The detector itself: a value that does contain a planted secret is reported."""
    with pytest.raises(AssertionError, match="leaked"):
        _assert_clean("example", f"password={BMC_PASSWORD}")
