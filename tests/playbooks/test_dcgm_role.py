"""The dcgm role's units as Ansible renders them: the host engine's real unit name for DCGM 3 and
4, and an exporter unit that reads the settings cloud-init writes for it.

DCGM 3 and 4 both ship ``nvidia-dcgm.service``; DCGM 3's ``dcgm.service`` is deprecated and
conflicts with it (NVIDIA/DCGM ``config-files/systemd``). dcgm-exporter takes each setting from
a flag or its environment variable (NVIDIA/dcgm-exporter ``pkg/cmd/app.go``), and systemd lets
``EnvironmentFile=`` override ``Environment=`` (systemd.exec(5)).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS
from tests.render.helpers import STACKS
from tests.render.helpers import rendered as _rendered

ROLE = PLAYBOOKS / "roles" / "dcgm"
# The environment variables dcgm-exporter reads (NVIDIA/dcgm-exporter pkg/cmd/app.go, 2026-12-03).
EXPORTER_ENV = {"DCGM_EXPORTER_COLLECTORS", "DCGM_EXPORTER_LISTEN", "DCGM_EXPORTER_INTERVAL",
                "DCGM_REMOTE_HOSTENGINE_INFO", "DCGM_EXPORTER_KUBERNETES", "DCGM_EXPORTER_DEVICES_STR"}


@functools.lru_cache(maxsize=None)
def rendered(path):
    return _rendered(path)


def render_unit(tmp_path, **extra) -> str:
    """dcgm-exporter.service as the role writes it, with the role's defaults and vars."""
    out = tmp_path / "dcgm-exporter.service"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
        "tasks": [
            {"name": "Render the exporter unit", "ansible.builtin.template": {
                "src": str(ROLE / "templates/dcgm-exporter.service.j2"), "dest": str(out), "mode": "0644"}},
            {"name": "Say which unit is the host engine", "ansible.builtin.debug": {
                "msg": "hostengine={{ _dcgm_service }}"}},
        ]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra})],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hostengine=nvidia-dcgm" in proc.stdout, proc.stdout
    return out.read_text()


def unit_settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value.strip('"'))
    return settings


@pytest.mark.parametrize("major,package", [(3, "datacenter-gpu-manager"), (4, "datacenter-gpu-manager-4-cuda12"),
                                           (4, "datacenter-gpu-manager-4-cuda13")])
def test_exporter_follows_the_host_engine_unit_dcgm_ships(tmp_path, major, package):
    unit = unit_settings(render_unit(tmp_path, dcgm_major=major, dcgm_package=package))
    assert unit["Requires"] == ["nvidia-dcgm.service"] and unit["After"] == ["nvidia-dcgm.service"]


def _cloud_init_files(stack: str) -> dict[str, dict[str, str]]:
    """pool -> {node path: content} written by the rendered cloud-init user data."""
    out = {}
    for rel, text in rendered(STACKS / stack / "factory.yaml").items():
        if rel.startswith("cloud-init/"):
            data = yaml.safe_load(text)
            out[rel.split("/")[1]] = {f["path"]: f["content"] for f in data["write_files"]}
    return out


def test_exporter_reads_the_environment_file_cloud_init_writes(tmp_path):
    files = rendered(STACKS / "aws-p5" / "factory.yaml")
    written = _cloud_init_files("aws-p5")
    assert written
    unit = unit_settings(render_unit(tmp_path))
    env_files = [f.lstrip("-") for f in unit.get("EnvironmentFile", [])]
    for pool, node_files in written.items():
        env_paths = [path for path, content in node_files.items() if content == files[f"dcgm/{pool}/dcgm-exporter.env"]]
        assert len(env_paths) == 1, (pool, sorted(node_files))
        assert env_paths[0] in env_files, (env_paths[0], env_files)
        # The collectors file the environment names is one cloud-init writes too.
        env = dict(line.split("=", 1) for line in node_files[env_paths[0]].splitlines()
                   if line and not line.startswith("#"))
        assert env["DCGM_EXPORTER_COLLECTORS"] in node_files


def test_the_environment_file_can_override_the_units_defaults(tmp_path):
    text = render_unit(tmp_path, dcgm_exporter_listen=":9500")
    unit = unit_settings(text)
    # A flag would win over both the unit's Environment= and the file: the command has none.
    assert unit["ExecStart"] == ["/usr/bin/dcgm-exporter"]
    defaults = dict(v.split("=", 1) for v in unit["Environment"])
    assert defaults["DCGM_EXPORTER_LISTEN"] == ":9500"
    assert defaults["DCGM_EXPORTER_COLLECTORS"] == "/etc/dcgm-exporter/counters.csv"
    assert set(defaults) <= EXPORTER_ENV
    # Order does not matter to systemd, but the file must be optional: nodes Ansible set up
    # without cloud-init have none.
    assert all(f.startswith("-") for f in unit["EnvironmentFile"])


def test_rendered_exporter_environment_names_only_variables_the_exporter_reads():
    files = rendered(STACKS / "aws-p5" / "factory.yaml")
    for rel, text in files.items():
        if rel.endswith("dcgm-exporter.env"):
            names = {line.split("=", 1)[0] for line in text.splitlines() if re.match(r"^[A-Z_]+=", line)}
            assert names and names <= EXPORTER_ENV, (rel, names - EXPORTER_ENV)
