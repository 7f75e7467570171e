"""NVLSM on HGX/DGX B200 and later: fabric manager starts it and first checks for ib_umad and
mlx5_ib. The nvidia_fabric role installs infiniband-diags, on Ubuntu the running kernel's
linux-modules-extra (mlx5_ib is not in linux-modules there), loads ib_umad and persists it in
/etc/modules-load.d (NVIDIA Fabric Manager user guide; NVIDIA/gpu-driver-container installs
``nvlsm infiniband-diags`` with fabric manager from R570).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS

# ansible-playbook runs the role: a real external program (the fast target leaves it out).
pytestmark = pytest.mark.slow

ROLE = PLAYBOOKS / "roles" / "nvidia_fabric"


def _evaluate(tmp_path, os_vars: str, **extra) -> dict:
    """NVLSM's package list for one OS vars file, the running kernel, and the rendered modules-load file."""
    out = tmp_path / f"{os_vars}.json"
    conf = tmp_path / f"{os_vars}-nvlsm.conf"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": True, "gather_subset": ["min"],
        "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars" / f"{os_vars}.yml"),
                       str(ROLE / "vars/main.yml")],
        "tasks": [
            {"name": "Write what NVLSM gets", "ansible.builtin.copy": {"dest": str(out), "mode": "0644", "content": (
                "{{ {'packages': _nvidia_fabric_nvlsm_packages + (_nvidia_fabric_nvlsm_kernel_packages"
                " if nvidia_fabric_kernel_modules else []), 'kernel': ansible_facts['kernel']} | to_json }}")}},
            {"name": "Render the modules-load file", "ansible.builtin.template": {
                "src": str(ROLE / "templates/nvlsm.conf.j2"), "dest": str(conf), "mode": "0644"}},
        ]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra})],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**json.loads(out.read_text()), "modules": conf.read_text()}


@pytest.mark.parametrize("os_vars", ["Ubuntu", "Debian", "RedHat"])
def test_nvlsm_gets_infiniband_diags_and_ib_umad(tmp_path, os_vars):
    got = _evaluate(tmp_path, os_vars)
    assert "infiniband-diags" in got["packages"]
    modules = [line for line in got["modules"].splitlines() if line and not line.startswith("#")]
    assert modules == ["ib_umad"]
    extra = f"linux-modules-extra-{got['kernel']}"
    assert (extra in got["packages"]) == (os_vars == "Ubuntu"), got


def test_images_without_their_own_kernel_skip_the_kernel_package(tmp_path):
    got = _evaluate(tmp_path, "Ubuntu", nvidia_fabric_kernel_modules=False)
    assert got["packages"] == ["infiniband-diags"]


def test_ib_umad_is_loaded_before_fabric_manager_starts():
    tasks = yaml.safe_load((ROLE / "tasks/main.yml").read_text())
    names = [t["name"] for t in tasks]
    install = next(t for t in tasks if "_nvidia_fabric_nvlsm_packages" in str(t.get("ansible.builtin.package")))
    assert "nvidia_fabric_nvlsm" in install["when"] and "nvidia_fabric_install" in install["when"]
    load = next(t for t in tasks if t.get("community.general.modprobe", {}).get("name") == "ib_umad")
    # Only a booted node has a kernel to load it into; a chroot or image build persists it only.
    assert "_nvidia_fabric_systemd.stat.exists" in load["when"] and "nvidia_fabric_nvlsm" in load["when"]
    persist = next(t for t in tasks if t.get("ansible.builtin.template", {}).get("dest") == "/etc/modules-load.d/nvlsm.conf")
    start = names.index("Start the fabric services")
    assert names.index(install["name"]) < names.index(load["name"]) < start
    assert names.index(persist["name"]) < start
