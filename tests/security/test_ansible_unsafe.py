"""Every value aifactory writes for Ansible is data, never a template, as real Ansible reads it.

The spec's strict types refuse template syntax first (see test_injection.py); this is the second
wall. Payloads are planted past the spec models (``model_copy`` does not validate) into every
string that reaches the inventory, and real Ansible then reads and uses the inventory on this
machine: the canary file a template would create must not appear.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aifactory import inventory
from aifactory import plan as planning
from aifactory import spec

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_planted_templates_in_every_inventory_string_never_run(tmp_path):
    canary = tmp_path / "canary"
    payload = "{{ lookup('pipe', 'touch %s') }}" % canary
    built = planning.build(spec.load(REPO / "stacks" / "onprem-dgx" / "factory.yaml"))
    pools = []
    for pool in built.pools:
        hosts = [h.model_copy(update={"ip": payload, "bmc": payload + "b"}) for h in pool.hosts]
        pools.append(pool.model_copy(update={"hosts": hosts}))
    access = built.access.model_copy(update={"ssh_user": payload + "u"})
    built = built.model_copy(update={"pools": pools, "access": access})
    files = inventory.build_files(built)
    assert any("lookup(" in text for text in files.values())
    inventory.write_files(files, tmp_path / "out")
    inv = tmp_path / "out" / "inventory"
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    # Read every variable of every host, templated as a task would template it.
    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(inv), "--list"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    used = subprocess.run([str(BIN / "ansible"), "all", "-i", str(inv), "-c", "local", "-m", "debug",
                           "-a", 'msg="{{ ansible_host }} {{ aifactory_bmc }} {{ ansible_user }}"'],
                          capture_output=True, text=True, env=env, timeout=120)
    assert used.returncode == 0, used.stdout + used.stderr
    assert payload in used.stdout  # printed as the literal text it is
    assert not canary.exists(), "a value from the inventory was evaluated as a template"
