"""The prometheus role for real, on this machine: the rendered configuration and target files
installed byte for byte, checked by promtool before they replace the old ones, stale target
files removed, and a stop with the file's name where a pool's target file is missing.

The role runs with its folders moved under a temporary directory (extra vars) and without
installing the package; promtool is this machine's (Debian's ``prometheus`` package).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import require_tool
from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS
from tests.render.helpers import STACKS, rendered

pytestmark = pytest.mark.slow


def run_role(tmp_path, config: str, targets: dict[str, str]):
    require_tool("promtool", "prometheus")
    root = tmp_path / "etc-prometheus"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Run the prometheus role", "hosts": "localhost", "connection": "local", "gather_facts": True,
        "roles": [{"role": str(PLAYBOOKS / "roles" / "prometheus")}]}]))
    extra = {"ansible_python_interpreter": sys.executable, "prometheus_install": False,
             "prometheus_config_content": config, "prometheus_targets_content": targets,
             "_prometheus_config_dir": str(root), "_prometheus_targets_dir": str(root / "targets")}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play), "-e", f"@{tmp_path / 'extra.json'}"],
                          capture_output=True, text=True, env=ENV)
    return proc, root


def changed(proc) -> int:
    recap = next(line for line in proc.stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(recap.split("changed=")[1].split()[0])


def lab_files() -> tuple[str, dict[str, str]]:
    files = rendered(STACKS / "lab" / "factory.yaml")
    targets = {rel.rsplit("/", 1)[1]: text for rel, text in files.items() if rel.startswith("prometheus/targets/")}
    return files["prometheus/prometheus.yml"], targets


def test_installs_the_rendered_files_and_converges(tmp_path):
    config, targets = lab_files()
    proc, root = run_role(tmp_path, config, targets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "prometheus.yml").read_text() == config
    assert {p.name: p.read_text() for p in (root / "targets").iterdir()} == targets
    again, _ = run_role(tmp_path, config, targets)
    assert again.returncode == 0 and changed(again) == 0, again.stdout


def test_removes_target_files_of_pools_that_are_gone(tmp_path):
    config, targets = lab_files()
    (tmp_path / "etc-prometheus" / "targets").mkdir(parents=True)
    (tmp_path / "etc-prometheus" / "targets" / "old.json").write_text("[]")
    (tmp_path / "etc-prometheus" / "targets" / "notes.txt").write_text("mine")
    proc, root = run_role(tmp_path, config, targets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in (root / "targets").iterdir()) == sorted([*targets, "notes.txt"])


def test_stops_and_names_a_target_file_the_inventory_does_not_carry(tmp_path):
    config, targets = lab_files()
    proc, root = run_role(tmp_path, config, {})
    assert proc.returncode != 0
    assert "targets/gpu.json is not in the inventory" in proc.stdout, proc.stdout
    assert not (root / "prometheus.yml").exists()
    # Copied by hand, as for a pool too large for the inventory: the role accepts it.
    (root / "targets" / "gpu.json").write_text(targets["gpu.json"])
    proc, _ = run_role(tmp_path, config, {})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (root / "prometheus.yml").read_text() == config


def test_promtool_refuses_a_broken_configuration_and_the_old_one_stays(tmp_path):
    config, targets = lab_files()
    assert run_role(tmp_path, config, targets)[0].returncode == 0
    broken = config.replace("scrape_interval: 30s", "scrape_interval: often", 1)
    proc, root = run_role(tmp_path, broken, targets)
    assert proc.returncode != 0 and "failed to validate" in proc.stdout, proc.stdout
    assert (root / "prometheus.yml").read_text() == config


def test_refuses_a_target_name_that_is_not_a_pool_file(tmp_path):
    config, targets = lab_files()
    proc, root = run_role(tmp_path, config, {**targets, "../../escape.json": "[]"})
    assert proc.returncode != 0 and "is not a target file name" in proc.stdout, proc.stdout
    assert not (tmp_path / "escape.json").exists()
