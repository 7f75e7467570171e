"""Planted secrets never show up in what the tool prints, logs, exports or writes.

Fake values are planted where real ones enter: the BMC password as a Pulumi config secret of
the on-prem stack, cloud keys and join tokens in the environment (where the cloud SDKs and
Ansible read them). Then every command and view that exists runs — validate, plan (table, JSON,
Markdown), the offline preview (JSON, table, stack outputs, warnings, logs), render (and
--check), inventory, pxe and configure — and all of its stdout, stderr, log records and files
are searched for the planted values. None of the files written needs a secret, so none may be
world-writable and none holds one; configure's runner folder, which does, must not outlive it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.conftest import missing

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


def _planted_stack(stack: str, root: Path) -> Path:
    """A copy of the stack with the BMC password in its Pulumi config, in the clear (the harshest
    form: whatever reads the stack's config sees the value itself); returns its factory.yaml."""
    copy = root / "stacks" / stack
    # .aifactory/ holds a lab's node root filesystems (with /proc mounted while one is configured)
    shutil.copytree(STACKS / stack, copy, ignore=shutil.ignore_patterns(".aifactory", "__pycache__"))
    for config in copy.glob("Pulumi.*.yaml"):
        data = yaml.safe_load(config.read_text()) or {}
        data.setdefault("config", {})["aifactory:bmcPassword"] = BMC_PASSWORD
        config.write_text(yaml.safe_dump(data))
    return copy / "factory.yaml"


def _assert_modes(root: Path, secret_files: set[str] = frozenset()) -> None:
    """Files a consumer needs a secret in are 0600; nothing is world-writable."""
    for path in (p for p in [root, *root.rglob("*")] if not p.is_symlink()):
        mode = stat.S_IMODE(path.stat().st_mode)
        rel = path.relative_to(root).as_posix()
        assert not mode & stat.S_IWOTH, f"{rel} is world-writable ({mode:o})"
        if rel in secret_files:
            assert mode == 0o600, f"{rel} holds a secret but is {mode:o}"


@pytest.mark.parametrize("stack", sorted(p.parent.name for p in STACKS.glob("*/factory.yaml")))
def test_written_files_carry_no_secret(stack, tmp_path):
    """render (and its --check), inventory and, for on-prem hosts, pxe: every written file and all output."""
    factory = _planted_stack(stack, tmp_path / "in")
    work = tmp_path / "work"  # the working directory and every --out: all of it is searched
    work.mkdir()
    runs = [_cli("render", str(factory), "--out", "deploy", cwd=work),
            _cli("render", str(factory), "--out", "deploy", "--check", cwd=work),
            _cli("inventory", str(factory), "--out", "inv", cwd=work)]
    if any(p.get("hosts") for p in yaml.safe_load(factory.read_text()).get("pools", [])):
        key = tmp_path / "in" / "admin.pub"
        key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE ops@ctl\n")
        # The stack's `inventory` output as `pulumi stack output --json --show-secrets` gives it, with a
        # careless extra field: only names and MACs may be taken from it.
        hosts = [{"name": h["name"], "macs": [h["mac"]], "bmc": {"password": BMC_PASSWORD}}
                 for p in yaml.safe_load(factory.read_text())["pools"] for h in p.get("hosts", []) if h.get("mac")]
        inventory = tmp_path / "in" / "inventory.json"
        inventory.write_text(json.dumps({"dgx": {"hosts": hosts, "bmc_password": BMC_PASSWORD}}))
        runs.append(_cli("pxe", str(factory), "--out", "pxe", "--server-ip", "10.20.0.2", "--ssh-key", str(key),
                         "--inventory", str(inventory), cwd=work))
    for run in runs:
        assert run.returncode == 0, (run.args, run.stderr)
        _assert_clean(f"{run.args[3:]} stdout", run.stdout)
        _assert_clean(f"{run.args[3:]} stderr", run.stderr)
    files = _files_under(work)
    assert len(files) > 5, sorted(files)
    for path, text in files.items():
        _assert_clean(str(path), text)
    _assert_modes(work)  # none of these files needs a secret


def test_a_private_key_given_as_the_pxe_ssh_key_is_refused_without_echoing_it(tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-PLANTED-private-key-AAAA\n"
                   "-----END OPENSSH PRIVATE KEY-----\n")
    run = _cli("pxe", str(STACKS / "onprem-dgx" / "factory.yaml"), "--out", "pxe", "--server-ip", "10.20.0.2",
               "--ssh-key", str(key), cwd=tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "private keys are refused" in run.stderr
    _assert_clean("pxe stdout", run.stdout)
    _assert_clean("pxe stderr", run.stderr)
    for path, text in _files_under(tmp_path).items():
        if path != key:
            _assert_clean(str(path), text)


def test_configure_leaves_no_copy_of_the_environment_or_extra_vars(tmp_path):
    """ansible-runner writes the process environment and the extra vars to its private folder; the
    run's own temporary folder must be gone afterwards. The join token enters as an extra var."""
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        missing("ansible-playbook not installed next to this interpreter: pip install -e '.[dev]'")
    work = tmp_path / "work"
    work.mkdir()
    inv = _cli("inventory", str(STACKS / "onprem-dgx" / "factory.yaml"), "--out", "inv", cwd=work)
    assert inv.returncode == 0, inv.stderr
    env = {**os.environ, **PLANTED_ENV, "TMPDIR": str(work), "HOME": str(work),
           "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(work / "facts"), "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp")}
    # --limit matches no host: ansible-runner sets up and writes its files, ansible-playbook stops at once.
    run = subprocess.run([sys.executable, "-m", "aifactory", "configure", "inv", "--check", "--limit", "no-such-host",
                          "-e", f"k3s_token={PLANTED_ENV['K3S_TOKEN']}"],
                         capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert "no hosts" in run.stdout + run.stderr, run.stdout + run.stderr  # it did run ansible-playbook
    _assert_clean("configure stdout", run.stdout)
    _assert_clean("configure stderr", run.stderr)
    assert not list(work.glob("aifactory-configure-*")), "the runner's private folder was left behind"
    for path, text in _files_under(work).items():
        _assert_clean(str(path), text)
    _assert_modes(work / "inv")


def test_configure_into_a_chosen_folder_drops_the_environment_copy(tmp_path, monkeypatch):
    """A caller-chosen artifacts folder keeps the run's events, not the copy of the environment."""
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        missing("ansible-playbook not installed next to this interpreter: pip install -e '.[dev]'")
    from aifactory import configure

    for key, value in PLANTED_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path / "facts"))
    out = tmp_path / "work"
    r = _cli("inventory", str(STACKS / "onprem-dgx" / "factory.yaml"), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    runner = tmp_path / "runner"
    result = configure.run(out, check=True, limit="no-such-host", artifacts_dir=runner,
                           console=Console(file=io.StringIO()))
    assert result.artifacts and result.artifacts.is_dir() and (result.artifacts / "status").exists()
    assert not list(runner.glob("artifacts/*/command"))
    for path, text in _files_under(runner).items():
        _assert_clean(str(path), text)


def test_the_search_would_find_a_leak():
    """The detector itself: a value that does contain a planted secret is reported."""
    with pytest.raises(AssertionError, match="leaked"):
        _assert_clean("example", f"password={BMC_PASSWORD}")
