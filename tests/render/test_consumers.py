"""Rendered files against the programs that read them: promtool, cloud-init, yamllint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.render.helpers import STACKS, rendered

pytestmark = pytest.mark.slow

CASES = ["multicloud", "superpod-h100", "lab", "aws-p5"]

# Generated YAML carries hostlists and embedded file contents that cannot wrap at 80
# columns, and no document-start marker (cloud-init wants `#cloud-config` on line 1).
# PyYAML writes block sequences flush with their parent key, consistently; yamllint's default
# wants them indented, which is a style choice, not a defect.
YAMLLINT_CONFIG = """
extends: default
rules:
  line-length: disable
  document-start: disable
  indentation: {spaces: 2, indent-sequences: whatever}
"""
# `#cloud-config` has no space after `#` and must not: cloud-init matches that exact header.
CLOUD_CONFIG_YAMLLINT = YAMLLINT_CONFIG + """  comments: {require-starting-space: false}
"""


def _write(files: dict[str, str], root: Path) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("case", CASES)
def test_promtool_accepts_prometheus_config(case, tmp_path):
    promtool = require_tool("promtool", "prometheus")
    root = _write(rendered(STACKS / case / "factory.yaml"), tmp_path)
    r = subprocess.run([promtool, "check", "config", str(root / "prometheus" / "prometheus.yml")],
                       capture_output=True, text=True, cwd=root / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr
    # Every target file the configuration reads was rendered too (promtool checks each one).
    assert "does not exist" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_promtool_rejects_a_broken_config(tmp_path):
    """The acceptance above means something: the same promtool refuses a bad scrape config."""
    promtool = require_tool("promtool", "prometheus")
    files = rendered(STACKS / "lab" / "factory.yaml")
    bad = files["prometheus/prometheus.yml"].replace("scrape_interval: 30s", "scrape_interval: often", 1)
    (tmp_path / "prometheus.yml").write_text(bad)
    r = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert r.returncode != 0


@pytest.mark.parametrize("case", ["multicloud", "aws-p5"])
def test_cloud_init_schema_accepts_user_data(case, tmp_path):
    cloud_init = require_tool("cloud-init", "cloud-init")
    files = rendered(STACKS / case / "factory.yaml")
    user_data = {k: v for k, v in files.items() if k.startswith("cloud-init/")}
    assert user_data, "cloud pools must get user data"
    for rel, text in user_data.items():
        path = tmp_path / rel.replace("/", "_")
        path.write_text(text)
        r = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, f"{rel}: {r.stdout}{r.stderr}"
        assert "Valid cloud-config" in r.stdout + r.stderr


def test_cloud_init_schema_rejects_a_bad_key(tmp_path):
    cloud_init = require_tool("cloud-init", "cloud-init")
    files = rendered(STACKS / "aws-p5" / "factory.yaml")
    text = files["cloud-init/train/user-data.yaml"].replace("ssh_pwauth: false", "ssh_pwauth: [not, a, bool]")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = subprocess.run([cloud_init, "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert r.returncode != 0


@pytest.mark.parametrize("case", CASES)
def test_yamllint_passes_on_yaml_output(case, tmp_path):
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf, cloud_conf = YamlLintConfig(YAMLLINT_CONFIG), YamlLintConfig(CLOUD_CONFIG_YAMLLINT)
    files = rendered(STACKS / case / "factory.yaml")
    yaml_files = {k: v for k, v in files.items() if k.endswith((".yml", ".yaml"))}
    assert any(k.startswith("inventory/") for k in yaml_files) and "prometheus/prometheus.yml" in yaml_files
    problems = [f"{rel}:{p.line}: {p.rule}: {p.desc}" for rel, text in yaml_files.items()
                for p in linter.run(text, cloud_conf if rel.startswith("cloud-init/") else conf)]
    assert not problems, "\n".join(problems)
