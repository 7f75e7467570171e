"""Static checks of playbooks/: ansible-lint (production profile), syntax, role conventions."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import ansible_data

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
ROLES = sorted(p for p in (PLAYBOOKS / "roles").iterdir() if p.is_dir())
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1")


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean():
    proc = subprocess.run([str(BIN / "ansible-lint"), "--profile", "production", "--nocolor",
                           "site.yml", "upgrade.yml", "health.yml", "slurm.yml", "roles",
                           "playbooks"],
                          cwd=PLAYBOOKS, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


@pytest.mark.parametrize("playbook", ["site.yml", "upgrade.yml", "health.yml", "slurm.yml"])
def test_syntax_check(playbook, tmp_path):
    inventory = tmp_path / "hosts.yml"
    groups = ["nvidia", "nvswitch", "imex", "rdma", "efa", "gpudirect_tcpx", "gpudirect_tcpxo", "slurm", "monitoring",
              "slurm_controller", "slurm_accounting", "slurm_login"]
    inventory.write_text(yaml.safe_dump({"all": {"children": {g: {"hosts": {"n1": None}} for g in groups}}}))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "--syntax-check", playbook],
                          cwd=PLAYBOOKS, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_syntax_check_catches_a_broken_playbook(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("- hosts: all\n  tasks:\n    - ansible.builtin.debug: msg=x\n      bogus_keyword: 1\n")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "--syntax-check", str(broken)],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode != 0


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_layout_and_argument_specs(role):
    name = role.name
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    meta = yaml.safe_load((role / "meta/main.yml").read_text())
    assert meta["galaxy_info"]["role_name"] == name
    assert (role / "README.md").is_file()
    # Every default is declared, typed and described; nothing is declared that has no default.
    assert set(defaults) == set(specs), set(defaults) ^ set(specs)
    for var, option in specs.items():
        assert var.startswith(f"{name}_"), var
        assert option.get("type") and option.get("description"), var
        if "default" in option:
            assert option["default"] == defaults[var], var
        if "choices" in option and "{{" not in str(defaults[var]):
            assert defaults[var] in option["choices"], var
    # Internal values: vars/ only, with a leading underscore and the role prefix.
    for file in sorted((role / "vars").glob("*.yml")) if (role / "vars").is_dir() else []:
        for var in yaml.safe_load(file.read_text()) or {}:
            assert var.startswith(f"_{name}_"), (file.name, var)
    # Registered and set_fact names follow the same rule.
    for file in sorted((role / "tasks").glob("*.yml")):
        text = file.read_text()
        for var in re.findall(r"^\s+register:\s*(\S+)", text, re.M):
            assert var.startswith(f"_{name}_"), (file.name, var)
    # Defaults live only in defaults/main.yml: no `| default(` on role variables in tasks; only a
    # registered result (whose keys depend on whether the command ran) may need one.
    for file in sorted((role / "tasks").glob("*.yml")):
        for line in file.read_text().splitlines():
            for used in re.findall(r"([A-Za-z_][\w.\[\]']*)\s*\|\s*default\(", line):
                assert used.startswith(f"_{name}_"), (file.name, line)


OS_ROLES = ["nvidia_driver", "cuda_toolkit", "rdma", "slurm_client", "nccl", "nvidia_fabric", "node_exporter",
            "prometheus", "munge", "slurm_controller", "slurm_accounting", "slurm_login", "pyxis"]


@pytest.mark.parametrize("name", OS_ROLES)
def test_one_os_dispatch_covers_debian_ubuntu_and_rhel(name):
    role = PLAYBOOKS / "roles" / name
    vars_files = {p.stem for p in (role / "vars").glob("*.yml")}
    assert {"Debian", "Ubuntu", "RedHat"} <= vars_files, vars_files
    main = (role / "tasks/main.yml").read_text()
    assert "ansible.builtin.first_found" in main
    setups = {p.stem for p in (role / "tasks").glob("setup-*.yml")}
    if setups:
        assert setups == {"setup-Debian", "setup-RedHat"}
        assert "setup-{{ ansible_facts['os_family'] }}.yml" in main


def test_pyxis_defaults_are_the_catalog_rows():
    """The role's pinned Enroot files and Pyxis commit are the catalog's container_runtime rows."""
    from aifactory.catalog import load as load_catalog

    catalog = load_catalog()
    defaults = yaml.safe_load((PLAYBOOKS / "roles/pyxis/defaults/main.yml").read_text())
    rows = [r for component in ("enroot", "enroot_caps")
            for r in catalog.container_runtime_for(component, defaults["pyxis_enroot_version"])]
    assert rows
    wanted = [{"component": r.component, "family": r.family, "arch": r.arch, "url": r.url, "sha256": r.sha256 or ""}
              for r in rows]
    key = lambda f: (f["component"], f["family"], f["arch"])  # noqa: E731
    assert sorted(defaults["pyxis_enroot_packages"], key=key) == sorted(wanted, key=key)
    [source] = catalog.container_runtime_for("pyxis", defaults["pyxis_version"])
    assert (defaults["pyxis_source_url"], defaults["pyxis_source_commit"]) == (source.url, source.commit)


def test_pyxis_only_runs_where_asked_for():
    """Existing runs are unchanged: the role is off by default and every play gates it."""
    assert yaml.safe_load((PLAYBOOKS / "roles/pyxis/defaults/main.yml").read_text())["pyxis_install"] is False
    gated = []
    for book in ("site.yml", "slurm.yml"):
        for play in yaml.safe_load((PLAYBOOKS / book).read_text()):
            for role in play.get("roles", []):
                if role["role"] == "pyxis":
                    assert role["when"] == "pyxis_install | default(false) | bool", (book, play["name"])
                    gated.append((book, play["hosts"]))
    assert ("site.yml", "slurm") in gated and ("slurm.yml", "slurm:slurm_login") in gated, gated


def test_services_are_only_started_where_systemd_runs():
    """A chroot or image build has no running systemd: starts/restarts must be guarded."""
    for role in ROLES:
        for file in list((role / "tasks").glob("*.yml")) + list((role / "handlers").glob("*.yml")):
            tasks = yaml.safe_load(file.read_text()) or []
            for task in tasks:
                module = task.get("ansible.builtin.systemd_service")
                if not module or module.get("state") not in ("started", "restarted", "reloaded"):
                    continue
                assert f"_{role.name}_systemd.stat.exists" in str(task.get("when")), (role.name, task["name"])


def test_fabric_manager_and_nscq_follow_the_driver_version():
    defaults = yaml.safe_load((PLAYBOOKS / "roles/nvidia_fabric/defaults/main.yml").read_text())
    assert defaults["nvidia_fabric_nscq_version"] == "{{ nvidia_fabric_manager_version }}"
    driver = yaml.safe_load((PLAYBOOKS / "roles/nvidia_driver/defaults/main.yml").read_text())
    assert defaults["nvidia_fabric_manager_version"] == driver["nvidia_driver_version"]
    # The default branch is R580, from which NVIDIA's repository names fabric manager without the
    # branch on apt and dnf alike (catalog table packages); the inventory sets the name per branch.
    assert driver["nvidia_driver_branch"] == "580" and defaults["nvidia_fabric_manager_package"] == "nvidia-fabricmanager"


NVL72_590 = """
name: nvl
software: {driver_branch: "590"}
sites: [{name: hall, power_mw: 2, pue: 1.2, rack_kw: 140}]
pools: [{name: nvl, site: hall, provider: onprem, system: gb200-nvl72, nodes: 36}]
"""


def test_imex_follows_the_driver_and_lists_its_nvlink_domain(tmp_path):
    """NVL72 pools have no fabric manager: IMEX's version and package still follow the driver
    (R590: unversioned names), as versions.lock.json says, and each host's peers are its domain."""
    import json

    from aifactory import inventory, plan, spec
    from aifactory.catalog import load as load_catalog
    from aifactory.render.deployment import lock

    loaded = spec.load_string(NVL72_590)
    built = plan.build(loaded)
    assert built.software.driver == "590.44.01" and built.software.fabric_manager is None
    inventory.write_files(inventory.build_files(built), tmp_path)
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(tmp_path / "inventory"), "--list"],
                          capture_output=True, text=True, check=True, env=ENV)
    hostvars = ansible_data.load_json(proc.stdout)["_meta"]["hostvars"]
    assert len(hostvars) == 36
    packages = lock(built, load_catalog())["packages"]
    for host, values in hostvars.items():
        assert values["nvidia_fabric_imex_version"] == values["nvidia_driver_version"] == "590.44.01"
        assert packages[values["nvidia_fabric_imex_package"]] == "590.44.01"
        first = (int(host.rsplit("-", 1)[1]) - 1) // 18 * 18
        assert values["nvidia_fabric_imex_peers"] == [f"nvl-{i:04d}" for i in range(first + 1, first + 19)]
    assert values["nvidia_fabric_imex_package"] == "nvidia-imex"


def test_imex_version_default_is_the_driver_version(tmp_path):
    """Without the inventory's value the role's default resolves to the driver version."""
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars_files": [str(PLAYBOOKS / "roles/nvidia_fabric/defaults/main.yml")],
        "tasks": [{"ansible.builtin.debug": {"msg": "imex={{ nvidia_fabric_imex_version }}"}}]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
                           "-e", "nvidia_driver_version=590.44.01"],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "imex=590.44.01" in proc.stdout


def test_ansible_cfg_is_tuned_for_fleets():
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(PLAYBOOKS / "ansible.cfg")
    assert cfg.getboolean("ssh_connection", "pipelining")
    assert cfg.getint("defaults", "forks") >= 50
    assert cfg.get("defaults", "fact_caching") == "jsonfile"
    assert cfg.get("defaults", "gathering") == "smart"
    assert cfg.getboolean("defaults", "host_key_checking")
