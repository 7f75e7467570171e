"""The dcgm role's units as Ansible renders them: the host engine's real unit name for DCGM 3 and
4, and an exporter unit that reads the settings `aifactory render` writes for it, which the role
installs and cloud-init writes at the same paths.

DCGM 3 and 4 both ship ``nvidia-dcgm.service``; DCGM 3's ``dcgm.service`` is deprecated and
conflicts with it (NVIDIA/DCGM ``config-files/systemd``). dcgm-exporter takes each setting from
a flag or its environment variable (NVIDIA/dcgm-exporter ``pkg/cmd/app.go``).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys

import pytest
import yaml

from aifactory.render import dcgm
from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS
from tests.render.helpers import STACKS
from tests.render.helpers import rendered as _rendered

# ansible-playbook runs the role: a real external program (the fast target leaves it out).
pytestmark = pytest.mark.slow

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


def test_the_unit_leaves_every_rendered_setting_to_the_environment_file(tmp_path):
    """One owner per setting: the unit sets none of what the rendered file sets, and no flag."""
    unit = unit_settings(render_unit(tmp_path))
    # A flag would win over the file: the command has none.
    assert unit["ExecStart"] == ["/usr/bin/dcgm-exporter"]
    own = dict(v.split("=", 1) for v in unit["Environment"])
    assert own == {"DCGM_REMOTE_HOSTENGINE_INFO": f"localhost:{dcgm.HOSTENGINE_PORT}"}
    for rel, text in rendered(STACKS / "multicloud" / "factory.yaml").items():
        if rel.endswith("dcgm-exporter.env"):
            names = {line.split("=", 1)[0] for line in text.splitlines() if re.match(r"^[A-Z_]+=", line)}
            assert names and not names & set(own), rel
    # The file is optional: a bare run without the inventory's content has none.
    assert unit["EnvironmentFile"] == [f"-{dcgm.ENVIRONMENT_PATH}"]


def _install_task() -> dict:
    tasks = yaml.safe_load((ROLE / "tasks/main.yml").read_text())
    return next(t for t in tasks if "dcgm_exporter_counters_content" in json.dumps(t))


def test_the_role_installs_the_rendered_files_where_the_environment_and_cloud_init_expect_them(tmp_path):
    internal = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    assert internal["_dcgm_exporter_counters_file"] == dcgm.COUNTERS_PATH
    assert internal["_dcgm_exporter_environment_file"] == dcgm.ENVIRONMENT_PATH
    task = _install_task()
    assert task["ansible.builtin.copy"]["content"] == "{{ item.content }}"  # the bytes, not a template
    assert {(i["dest"], i["content"]) for i in task["loop"]} == {
        ("{{ _dcgm_exporter_counters_file }}", "{{ dcgm_exporter_counters_content }}"),
        ("{{ _dcgm_exporter_environment_file }}", "{{ dcgm_exporter_environment_content }}")}
    assert not (ROLE / "templates" / "counters.csv.j2").exists()
    files = rendered(STACKS / "aws-p5" / "factory.yaml")
    env = dict(line.split("=", 1) for line in files["dcgm/train/dcgm-exporter.env"].splitlines()
               if line and not line.startswith("#"))
    assert env["DCGM_EXPORTER_COLLECTORS"] == dcgm.COUNTERS_PATH
    written = _cloud_init_files("aws-p5")["train"]
    assert written[dcgm.COUNTERS_PATH] == files["dcgm/train/dcgm-exporter.csv"]
    assert written[dcgm.ENVIRONMENT_PATH] == files["dcgm/train/dcgm-exporter.env"]


@pytest.mark.parametrize("stack", ["lab", "aws-p5", "multicloud", "superpod-h100"])
def test_the_exporter_listens_where_the_rendered_scrape_configuration_looks(stack):
    files = rendered(STACKS / stack / "factory.yaml")
    config = yaml.safe_load(files["prometheus/prometheus.yml"])
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    pools = [rel.split("/")[1] for rel in files if rel.endswith("dcgm-exporter.env")]
    assert pools
    for pool in pools:
        env = dict(line.split("=", 1) for line in files[f"dcgm/{pool}/dcgm-exporter.env"].splitlines()
                   if line and not line.startswith("#"))
        port = int(env["DCGM_EXPORTER_LISTEN"].rsplit(":", 1)[1])
        job = jobs[f"dcgm-{pool}"]
        if "ec2_sd_configs" in job:
            assert [sd["port"] for sd in job["ec2_sd_configs"]] == [port], pool
        else:
            address = next(r for r in job["relabel_configs"] if r.get("target_label") == "__address__")
            assert address["replacement"] == f"${{1}}:{port}", pool


def test_rendered_exporter_environment_names_only_variables_the_exporter_reads():
    files = rendered(STACKS / "aws-p5" / "factory.yaml")
    for rel, text in files.items():
        if rel.endswith("dcgm-exporter.env"):
            names = {line.split("=", 1)[0] for line in text.splitlines() if re.match(r"^[A-Z_]+=", line)}
            assert names and names <= EXPORTER_ENV, (rel, names - EXPORTER_ENV)
