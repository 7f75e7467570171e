"""Where the nvidia_repository role points apt and dnf on each supported OS, and the key it
trusts there: the role's own vars templated with the facts each OS reports.

NVIDIA signs each repository folder with the key published beside it as ``<key>.pub``: 3bf863cc
for debian12, ubuntu2204 and ubuntu2404, D42D0685 for rhel9, and a key of its own, 8793F200,
for debian13 (https://developer.download.nvidia.com/compute/cuda/repos/debian13/x86_64/8793F200.pub,
checked 2026-12-03). A folder the role does not know fails its first task instead of fetching a
key that does not exist.
"""

from __future__ import annotations

import jinja2
import pytest
import yaml

from tests.playbooks.test_roles import PLAYBOOKS

ROLE = PLAYBOOKS / "roles" / "nvidia_repository"
BASE = "https://developer.download.nvidia.com/compute/cuda/repos"

# What Ansible's setup module reports on each OS (distribution, version, major version, family).
FACTS = {
    "debian-12": ("Debian", "12.12", "12", "Debian"),
    "debian-13": ("Debian", "13.2", "13", "Debian"),
    "ubuntu-22.04": ("Ubuntu", "22.04", "22", "Debian"),
    "ubuntu-24.04": ("Ubuntu", "24.04", "24", "Debian"),
    "rhel-9": ("RedHat", "9.6", "9", "RedHat"),
}


def _vars(os_name: str, architecture: str) -> dict[str, str]:
    """The role's vars/main.yml, templated (as Ansible would, lazily) for one OS and architecture."""
    distribution, version, major, family = FACTS[os_name]
    context = {"nvidia_repository_base_url": BASE, "ansible_facts": {
        "distribution": distribution, "distribution_version": version, "distribution_major_version": major,
        "os_family": family, "architecture": architecture}}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    raw = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    for name, value in raw.items():  # each value reads only those before it
        context[name] = env.from_string(value).render(context).strip() if isinstance(value, str) else value
    return context


@pytest.mark.parametrize("os_name,architecture,url,key", [
    ("debian-12", "x86_64", f"{BASE}/debian12/x86_64", "3bf863cc"),
    ("debian-13", "x86_64", f"{BASE}/debian13/x86_64", "8793F200"),
    ("debian-13", "aarch64", f"{BASE}/debian13/sbsa", "8793F200"),
    ("ubuntu-22.04", "x86_64", f"{BASE}/ubuntu2204/x86_64", "3bf863cc"),
    ("ubuntu-24.04", "aarch64", f"{BASE}/ubuntu2404/sbsa", "3bf863cc"),
    ("rhel-9", "x86_64", f"{BASE}/rhel9/x86_64", "D42D0685"),
])
def test_each_os_gets_its_folder_and_the_key_that_signs_it(os_name, architecture, url, key):
    found = _vars(os_name, architecture)
    assert found["_nvidia_repository_url"] == url
    assert found["_nvidia_repository_key"] == key


def test_every_node_os_has_a_folder_the_role_knows():
    from typing import get_args

    from aifactory.fields import NodeOs

    keys = yaml.safe_load((ROLE / "vars/main.yml").read_text())["_nvidia_repository_keys"]
    assert set(FACTS) == set(get_args(NodeOs))
    assert {_vars(os_name, "x86_64")["_nvidia_repository_distro"] for os_name in FACTS} == set(keys)
    # The first task refuses a folder missing from the table, before any key is fetched.
    (assertion,) = yaml.safe_load((ROLE / "tasks/main.yml").read_text())[:1]
    assert "_nvidia_repository_distro in _nvidia_repository_keys" in assertion["ansible.builtin.assert"]["that"]


def test_the_key_is_fetched_from_the_folder_it_signs():
    debian = (ROLE / "tasks/setup-Debian.yml").read_text()
    redhat = (ROLE / "tasks/setup-RedHat.yml").read_text()
    assert "{{ _nvidia_repository_url }}/{{ _nvidia_repository_key }}.pub" in debian
    assert "{{ _nvidia_repository_url }}/{{ _nvidia_repository_key }}.pub" in redhat
