"""The inventory hands the roles the very package names versions.lock.json lists.

Both come from one function (aifactory.plan.software.packages, over the catalog table
``packages``); here they are read back as files, the lock as JSON and the inventory as Ansible
reads it, and compared name for name. The driver metapackage is the one name only the lock
carries: the nvidia_driver role installs its headless part (nvidia_driver_packages and
nvidia_driver_kernel_package), which the lock lists too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aifactory import plan as planning
from aifactory.catalog import load as load_catalog
from aifactory.inventory import build_files, write_files
from aifactory.render.deployment import lock as lock_file
from aifactory.spec import load_string
from tests import ansible_data

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV_ANSIBLE = {"ANSIBLE_CONFIG": str(REPO / "playbooks" / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}

# The inventory variables that carry a package name (nccl_packages: a list of two).
NAME_VARS = ("nvidia_driver_module_stream", "nvidia_fabric_manager_package", "nvidia_fabric_nscq_package",
             "nvidia_fabric_imex_package", "nvidia_fabric_nvlsm_package", "cuda_toolkit_package", "dcgm_package")
# name variable -> version variable, where the role pins the name to the lock
VERSION_VARS = {"nvidia_fabric_manager_package": "nvidia_fabric_manager_version",
                "nvidia_fabric_nscq_package": "nvidia_fabric_nscq_version",
                "nvidia_fabric_imex_package": "nvidia_fabric_imex_version"}

CASES = {
    "ubuntu-24.04-R580-b200": ("ubuntu-24.04", "580", "dgx-b200", {}),
    "ubuntu-22.04-R570-h100": ("ubuntu-22.04", "570", "dgx-h100", {"imex": True}),
    "ubuntu-24.04-R595-nvl72": ("ubuntu-24.04", "595", "gb200-nvl72", {}),
    "rhel-9-R570-h100": ("rhel-9", "570", "dgx-h100", {"imex": True}),
    "rhel-9-R580-b200": ("rhel-9", "580", "dgx-b200", {}),
}


def _plan(os_id: str, branch: str, system: str, extra: dict):
    nodes = 18 if system.endswith("nvl72") else 2
    return planning.build(load_string(yaml.safe_dump({
        "name": "p", "software": {"driver_branch": branch, "os": os_id, **extra},
        "sites": [{"name": "dc", "power_mw": 5, "rack_kw": 140}],
        "pools": [{"name": "g", "site": "dc", "provider": "onprem", "system": system, "nodes": nodes}]})))


@pytest.mark.parametrize("case", CASES)
def test_inventory_and_lock_carry_identical_names(case):
    plan = _plan(*CASES[case])
    catalog = load_catalog()
    locked = json.loads(json.dumps(lock_file(plan, catalog)))  # as versions.lock.json holds it
    files = build_files(plan, catalog)
    hostvars = ansible_data.load_yaml(files["inventory/group_vars/all.yml"])

    driver = set(hostvars["nvidia_driver_packages"]) | {hostvars["nvidia_driver_kernel_package"]}
    from_inventory = ({hostvars[v] for v in NAME_VARS if v in hostvars} | set(hostvars.get("nccl_packages", []))
                      | driver)
    from_lock = set(locked["packages"]) | set(locked.get("module_streams", []))
    driver_metapackage = from_lock - from_inventory
    assert len(driver_metapackage) == 1, (from_lock, from_inventory)
    assert locked["packages"][driver_metapackage.pop()] == plan.software.driver
    assert from_inventory <= from_lock
    # Where a role pins a name, it pins the version the lock lists for it.
    for name_var, version_var in VERSION_VARS.items():
        if name_var in hostvars:
            assert locked["packages"][hostvars[name_var]] == hostvars[version_var]
    # The headless driver the nvidia_driver role pins: every piece at the lock's driver version.
    assert len(driver) == 4 and all(locked["packages"][name] == hostvars["nvidia_driver_version"] for name in driver)
    for name in hostvars.get("nccl_packages", []):
        assert locked["packages"][name] == hostvars["nccl_version"]
    assert locked["packages"][hostvars["cuda_toolkit_package"]] == hostvars["cuda_toolkit_version"]
    # Module streams exist on RHEL only, and only the lock of a RHEL factory lists them.
    assert ("module_streams" in locked) == plan.software.os.startswith("rhel")


def _probe(tmp_path: Path, plan, role_name: str, vars_file: str, expression: str, **extra):
    """``expression`` as a role sees it on the plan's inventory: a probe role with the role's
    defaults and one of its vars files, so that the inventory's group_vars take precedence over
    the defaults exactly as they do for the real role."""
    write_files(build_files(plan, load_catalog()), tmp_path)
    role = REPO / "playbooks" / "roles" / role_name
    probe = tmp_path / "roles" / "probe"
    for part, source in (("defaults", "defaults/main.yml"), ("vars", vars_file)):
        (probe / part).mkdir(parents=True)
        (probe / part / "main.yml").write_text((role / source).read_text())
    out = tmp_path / "probe.json"
    (probe / "tasks").mkdir()
    (probe / "tasks" / "main.yml").write_text(yaml.safe_dump([{
        "name": "Write what the role would ask for", "run_once": True, "ansible.builtin.copy": {
            "content": "{{ " + expression + " | to_json }}", "dest": str(out), "mode": "0644"}}]))
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "all", "gather_facts": False, "connection": "local",
                                     "roles": ["probe"]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory"), str(play),
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra})],
                          capture_output=True, text=True, env={**os.environ, **ENV_ANSIBLE})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow  # runs ansible-playbook
def test_the_fabric_role_asks_dnf_for_the_names_the_inventory_gives(tmp_path):
    """RHEL 9, R570: the nvidia_fabric role, fed the inventory's names, asks dnf for exactly what
    NVIDIA/gpu-driver-container rhel9/install.sh (commit 78fa4ac) installs before R580:
    nvidia-fabric-manager-<version> and libnvidia-nscq-<branch>-<version> (checked 2026-12-03)."""
    plan = _plan(*CASES["rhel-9-R570-h100"])
    version = plan.software.driver
    # An HGX H100 pool runs fabric manager, not IMEX (a pool switch, nvidia_fabric_imex).
    assert _probe(tmp_path, plan, "nvidia_fabric", "vars/main.yml", "_nvidia_fabric_pinned | map(attribute='dnf') | list") \
        == [f"nvidia-fabric-manager-{version}", f"libnvidia-nscq-570-{version}"]


@pytest.mark.slow  # runs ansible-playbook
@pytest.mark.parametrize("role, vars_file, expression, expected", [
    ("nvidia_driver", "vars/RedHat.yml", "nvidia_driver_module_stream", "nvidia-driver:570-open"),
    ("cuda_toolkit", "vars/RedHat.yml", "_cuda_toolkit_packages['nvidia']", ["cuda-toolkit-12-8"]),
    ("nccl", "vars/RedHat.yml", "_nccl_packages", ["libnccl", "libnccl-devel"]),
], ids=["driver-stream", "cuda-toolkit", "nccl"])
def test_the_other_roles_take_the_inventory_names_on_rhel(tmp_path, role, vars_file, expression, expected):
    plan = _plan(*CASES["rhel-9-R570-h100"])
    assert _probe(tmp_path, plan, role, vars_file, expression) == expected


@pytest.mark.slow  # runs ansible-playbook
def test_the_nccl_role_falls_back_to_its_os_names_without_the_inventory(tmp_path):
    """An empty nccl_packages (a bare run) installs the OS family's own NCCL packages."""
    plan = _plan(*CASES["ubuntu-24.04-R580-b200"])
    assert _probe(tmp_path, plan, "nccl", "vars/RedHat.yml", "_nccl_packages", nccl_packages=[]) \
        == ["libnccl", "libnccl-devel"]
    assert _probe(tmp_path / "ubuntu", plan, "nccl", "vars/Ubuntu.yml", "_nccl_packages", nccl_packages=[]) \
        == ["libnccl2", "libnccl-dev"]


@pytest.mark.parametrize("case, gpudirect", [("ubuntu-24.04-R580-b200", "dmabuf"), ("rhel-9-R570-h100", "dmabuf")])
def test_gpudirect_follows_the_kernel_module_flavour(case, gpudirect):
    """DMA-BUF needs the open kernel modules; a lock with the proprietary ones gets nvidia-peermem."""
    os_id, branch, system, extra = CASES[case]
    for open_modules, expected in ((True, gpudirect), (False, "peermem")):
        if system == "dgx-b200" and not open_modules:
            continue  # Blackwell runs the open modules only (the open-modules check refuses it)
        plan = _plan(os_id, branch, system, {**extra, "open_kernel_modules": open_modules})
        hostvars = ansible_data.load_yaml(build_files(plan, load_catalog())["inventory/group_vars/all.yml"])
        assert hostvars["rdma_gpudirect"] == expected, (case, open_modules)
