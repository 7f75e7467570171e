"""The Slurm roles refuse bad input before they touch a host, and say why without printing secrets.

Each case runs the real role against localhost; it must stop at its first check, so nothing is
installed here (the roles at work are proven in test_control_plane.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
BIN = Path(sys.executable).parent

COMPLETE = """\
ClusterName=c1
SlurmctldHost=ctl1(10.0.0.1)
SlurmctldHost=ctl2
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmctldParameters=enable_configless
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=db1
"""


def run_role(tmp_path: Path, role: str, variables: dict) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "ctl1", "connection": "local", "gather_facts": True,
                                     "roles": [role]}]))
    extra = tmp_path / "vars.yml"
    extra.write_text(yaml.safe_dump(variables))
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles"), ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "ctl1,", str(play), "-e", f"@{extra}",
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          capture_output=True, text=True, env=env, timeout=300)


CASES = [
    ("SlurmctldParameters", "needs SlurmctldParameters=enable_configless"),
    ("AccountingStorageHost", "needs AccountingStorageType=accounting_storage/slurmdbd and AccountingStorageHost=db1"),
    ("AuthType", "needs AuthType=auth/munge"),
    ("StateSaveLocation", "needs StateSaveLocation"),
    ("SlurmctldHost=ctl2", "names the controllers ['ctl1'] in its SlurmctldHost lines; expected ['ctl1', 'ctl2']"),
]


@pytest.mark.parametrize("drop, says", CASES)
def test_controller_refuses_a_slurm_conf_without_what_it_needs(tmp_path, drop, says):
    conf = "".join(line + "\n" for line in COMPLETE.splitlines() if not line.startswith(drop))
    proc = run_role(tmp_path, "slurm_controller", {
        "slurm_controller_conf_content": conf, "slurm_controller_hosts": ["ctl1", "ctl2"],
        "slurm_controller_accounting_host": "db1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    flat = " ".join(out.split())
    assert f"slurm_controller: slurm.conf {says}" in flat, out
    for _, other in CASES:  # the one missing setting, not the others
        assert other == says or f"slurm.conf {other}" not in flat, (other, out)
    assert "Install slurmctld" not in out


def test_munge_refuses_a_short_key_without_printing_it(tmp_path):
    key = "c2hvcnRrZXlzaG9ydGtleQ=="  # 16 bytes
    proc = run_role(tmp_path, "munge", {"munge_key": key})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "munge: munge_key must be the base64 of the key bytes" in out, out
    assert key not in out and "Install munge" not in out


def test_accounting_needs_a_password_it_can_write(tmp_path):
    proc = run_role(tmp_path, "slurm_accounting", {"slurm_accounting_storage_pass": "has space#"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "set slurm_accounting_storage_pass from a secret store" in out, out
    assert "has space#" not in out and "Install slurmdbd" not in out


@pytest.mark.parametrize("variables, says", [
    ({"slurm_login_conf_servers": ["ctl1 --help"]}, "slurm_login_conf_servers holds 'ctl1 --help'"),
    ({"slurm_login_slurm_version": "22.05", "slurm_login_conf_servers": ["ctl1"]},
     "Slurm 22.05 has no sackd; set slurm_login_conf_content"),
    ({"slurm_login_slurm_version": "24.11", "slurm_login_conf_servers": []},
     "Slurm 24.11 runs sackd, which needs slurm_login_conf_servers"),
])
def test_login_refuses_what_its_configuration_cannot_use(tmp_path, variables, says):
    proc = run_role(tmp_path, "slurm_login", variables)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and says in " ".join(out.split()), out
    assert "Install the Slurm client commands" not in out


def test_pyxis_refuses_enroot_files_without_a_sha256(tmp_path):
    proc = run_role(tmp_path, "pyxis", {"pyxis_install": True})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "needs one enroot file, each with an https url and the sha256 of the file" in " ".join(out.split()), out
    assert "Download the Enroot package files" not in out


def test_pyxis_does_nothing_unless_asked_for(tmp_path):
    proc = run_role(tmp_path, "pyxis", {})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert re.search(r"ctl1\s*:\s*ok=\d+\s+changed=0\s", out), out


@pytest.mark.parametrize("qos, says", [
    ([{"name": "a,b"}], "QoS name 'a,b' is not a name"),
    ([{"name": "high", "max_wall": "1:30:00:00"}], "is not a duration"),
])
def test_accounting_refuses_a_qos_sacctmgr_would_misread_before_asking_it(tmp_path, qos, says):
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "ctl1", "connection": "local", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "slurm_accounting", "tasks_from": "qos.yml"}}]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles"))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "ctl1,", str(play),
                           "-e", json.dumps({"slurm_accounting_qos": qos}),
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and says in out, out
    assert "Read the QoS slurmdbd holds" not in out


def test_accounting_says_why_and_changes_nothing_while_slurmdbd_does_not_answer(tmp_path):
    """First install: no slurm.conf and no slurmdbd yet, so sacctmgr is not even asked (it would wait a
    minute for the file). Values arrive as the inventory writes them."""
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "ctl1", "connection": "local", "gather_facts": False, "tasks": [
        {"ansible.builtin.include_role": {"name": "slurm_accounting", "tasks_from": "qos.yml"}}]}]))
    extra = tmp_path / "vars.yml"
    extra.write_text("slurm_accounting_qos:\n"
                     "  - {name: !unsafe 'high', priority: 100, max_wall: 2880, max_jobs_per_user: 4,\n"
                     "     max_gpus_per_user: null}\n"
                     "slurm_accounting_cluster_name: !unsafe 'lab-c1'\n"
                     "slurm_accounting_federation: {name: !unsafe 'fed', clusters: [!unsafe 'lab-c1']}\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles"))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "ctl1,", str(play), "-e", f"@{extra}",
                           "-e", f"_slurm_accounting_conf_dir={tmp_path / 'etc-slurm'}",
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "slurm_accounting: sacctmgr gets no answer from slurmdbd yet (no " in out, out
    assert "Read the QoS slurmdbd holds" in out and "sacctmgr -n -P show qos" not in out
    assert re.search(r"ctl1\s*:\s*ok=\d+\s+changed=0\s", out), out
    assert "Apply the cluster, the QoS and the federation with sacctmgr" in out and "Add the clusters" not in out
