"""The Slurm roles refuse bad input before they touch a host, and say why without printing secrets.

Each case runs the real role against localhost; it must stop at its first check, so nothing is
installed here (the roles at work are proven in test_control_plane.py).
"""

from __future__ import annotations

import os
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
