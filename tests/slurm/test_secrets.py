"""The Slurm secrets (slurm_accounting_storage_pass, munge_key) never pass through aifactory: the
inventory has none, and `configure` hands the operator's secrets file to ansible-playbook by path."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifactory import configure
from aifactory import plan as planning
from aifactory import spec
from aifactory.errors import AifactoryError
from aifactory.inventory import build_files

REPO = Path(__file__).resolve().parents[2]
SECRETS = ("slurm_accounting_storage_pass", "munge_key")


@pytest.mark.parametrize("stack", ["lab", "onprem-dgx", "multicloud"])
def test_the_inventory_names_no_secret(stack):
    files = build_files(planning.build(spec.load(REPO / "stacks" / stack / "factory.yaml")))
    assert any("slurm_controller_conf_content" in text for text in files.values())
    for path, text in files.items():
        assert not any(name in text for name in SECRETS), path


def test_configure_hands_a_secrets_file_to_ansible_playbook_by_path(tmp_path, monkeypatch):
    import ansible_runner

    secrets = tmp_path / "secrets.yml"
    secrets.write_text("slurm_accounting_storage_pass: s3cret-value\n")
    seen = {}

    class Done:
        status, rc, stats = "successful", 0, {}
        config = type("Config", (), {"artifact_dir": str(tmp_path)})()

    def fake_run(**kwargs):
        seen.update(kwargs)
        return Done()

    monkeypatch.setattr(ansible_runner, "run", fake_run)
    (tmp_path / "inventory").mkdir()
    result = configure.run(tmp_path / "inventory", "slurm.yml", check=True, vars_files=[secrets],
                           artifacts_dir=tmp_path / "runner")
    assert result.rc == 0 and seen["playbook"] == "slurm.yml"
    assert seen["cmdline"] == f"--check --diff -e @{secrets.resolve()}"
    assert seen["extravars"] == {}  # the value itself is never in the runner's folder
    assert not any("s3cret-value" in p.read_text() for p in (tmp_path / "runner").rglob("*") if p.is_file())
    with pytest.raises(AifactoryError, match="does not exist"):
        configure.run(tmp_path / "inventory", "slurm.yml", vars_files=[tmp_path / "missing.yml"])
