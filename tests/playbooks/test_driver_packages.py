"""What the nvidia_driver role installs on Ubuntu: the packages that carry nvidia-smi and
nvidia-persistenced, for both driver sources and both kernel module flavours.

Ubuntu's split: nvidia-smi is in ``nvidia-utils-<branch>``, nvidia-persistenced and its unit in
``nvidia-compute-utils-<branch>`` (``-server`` suffix for the archive's server builds;
manpages.ubuntu.com "Provided by" lines). NVIDIA's repository drops the branch from R590 (its
installation guide, "Ubuntu 590 and later packages"); those names reach the role from the catalog
through the inventory. The ``-open`` flavour only changes the kernel package.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from aifactory import plan as planning
from aifactory.inventory import build_files
from aifactory.spec import load_string
from tests import ansible_data
from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS

# ansible-playbook runs the role: a real external program (the fast target leaves it out).
pytestmark = pytest.mark.slow

ROLE = PLAYBOOKS / "roles" / "nvidia_driver"
SUFFIX = {"nvidia": "", "distro": "-server"}
# binary -> Ubuntu package that ships it, per source
PROVIDES = {
    "nvidia-smi": "nvidia-utils-{branch}{suffix}",
    "nvidia-persistenced": "nvidia-compute-utils-{branch}{suffix}",
}


def _inventory_names(branch: str, open_modules: bool) -> dict:
    """What the plan's inventory hands the role for an Ubuntu 24.04 factory on ``branch``."""
    plan = planning.build(load_string(yaml.safe_dump({
        "name": "p", "software": {"driver_branch": branch, "os": "ubuntu-24.04", "open_kernel_modules": open_modules},
        "sites": [{"name": "dc", "power_mw": 5, "rack_kw": 140}],
        "pools": [{"name": "g", "site": "dc", "provider": "onprem", "system": "dgx-h100", "nodes": 2}]})))
    hostvars = ansible_data.load_yaml(build_files(plan)["inventory/group_vars/all.yml"])
    return {k: hostvars[k] for k in ("nvidia_driver_packages", "nvidia_driver_kernel_package",
                                     "nvidia_driver_version")}


def _packages(tmp_path, branch: str, open_modules: bool, kernel_modules: bool) -> dict[str, list[str]]:
    """The role's pinned package list on Ubuntu, per driver source, as Ansible templates it."""
    out = tmp_path / f"pinned-{branch}-{open_modules}-{kernel_modules}.json"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": True, "gather_subset": ["min"],
        "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/Ubuntu.yml"), str(ROLE / "vars/main.yml")],
        "tasks": [
            {"name": "Collect the pinned packages per source", "ansible.builtin.set_fact": {
                "found": "{{ found | default({}) | combine({item: lookup('ansible.builtin.vars', '_nvidia_driver_packages')[item]"
                         "['userspace'] + (lookup('ansible.builtin.vars', '_nvidia_driver_packages')[item]['kernel']"
                         " if nvidia_driver_kernel_modules else [])}) }}"},
             "loop": ["nvidia", "distro"]},
            {"name": "Write them", "ansible.builtin.copy": {"content": "{{ found | to_json }}", "dest": str(out),
                                                              "mode": "0644"}},
        ]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
                           "-e", json.dumps({"nvidia_driver_branch": branch,
                                             **_inventory_names(branch, open_modules),
                                             "nvidia_driver_open_kernel_modules": open_modules,
                                             "nvidia_driver_kernel_modules": kernel_modules,
                                             "ansible_python_interpreter": sys.executable})],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("branch", ["580", "595"])
@pytest.mark.parametrize("open_modules", [True, False], ids=["open", "proprietary"])
@pytest.mark.parametrize("kernel_modules", [True, False], ids=["dkms", "no-kernel"])
def test_ubuntu_installs_nvidia_smi_and_nvidia_persistenced(tmp_path, branch, open_modules, kernel_modules):
    found = _packages(tmp_path, branch, open_modules, kernel_modules)
    for source, packages in found.items():
        # The archive's -server builds keep the branch; NVIDIA's repository drops it from R590.
        tag = f"-{branch}" if source == "distro" or int(branch) < 590 else ""
        for binary, package in PROVIDES.items():
            wanted = package.format(branch=branch, suffix=SUFFIX[source]).replace(f"-{branch}", tag)
            assert wanted in packages, (source, binary, packages)
        kernel = [p for p in packages if p.startswith("nvidia-dkms")]
        assert bool(kernel) == kernel_modules, packages
        assert all(p.endswith("-open") == open_modules for p in kernel), packages
        assert all((f"-{branch}" in p) == bool(tag) for p in packages), packages


def test_the_same_packages_are_pinned_and_held():
    """The userspace list feeds both the pinned install and the hold: nothing is installed unpinned."""
    vars_main = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    assert "_nvidia_driver_selected['userspace']" in vars_main["_nvidia_driver_pinned"]
    ubuntu = yaml.safe_load((ROLE / "vars/Ubuntu.yml").read_text())
    assert ubuntu["_nvidia_driver_unpinned"] == {"nvidia": [], "distro": []}
