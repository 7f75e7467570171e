"""The slurm_hosts role writes every Slurm host's address and name into a managed block of the
hosts file, refuses an untrusted ansible_host before writing anything, and changes nothing twice.

Runs the real role over the local connection against scratch hosts files (one per inventory host,
through slurm_hosts_file), never the machine's /etc/hosts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aifactory import fields

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
ROLE = PLAYBOOKS / "roles" / "slurm_hosts"
BIN = Path(sys.executable).parent
BEFORE = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n"
BEGIN = "# BEGIN aifactory slurm_hosts: Slurm hosts of the inventory (managed, edits are replaced)"
END = "# END aifactory slurm_hosts: Slurm hosts of the inventory (managed, edits are replaced)"
# Two hosts reached by address, one by a DNS name, one with no ansible_host at all.
HOSTS = {
    "slurm_controller": {"ctl-0001": "10.20.0.5"},
    "slurm_login": {"login-0001": "login-0001.example.com"},
    "slurm": {"aws-0001": "FD00:0:0:0::17", "aws-0002": None},
}


def inventory(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    """An inventory whose ansible_host values are `!unsafe`, as aifactory writes them; JSON
    strings are YAML double-quoted scalars, so a line break arrives as one."""
    groups = {group: dict(hosts) for group, hosts in HOSTS.items()}
    groups["slurm"].update(extra or {})
    lines = ["all:", "  children:"]
    for group, hosts in groups.items():
        lines += [f"    {group}:", "      hosts:"]
        for host, address in hosts.items():
            lines.append(f"        {host}:" + (f"\n          ansible_host: !unsafe {json.dumps(address)}"
                                                if address is not None else ""))
    path = tmp_path / "hosts.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_role(tmp_path: Path, hosts: Path) -> subprocess.CompletedProcess:
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Keep the Slurm hosts in scratch hosts files",
        "hosts": "slurm_controller:slurm_accounting:slurm_login:slurm",
        "gather_facts": False,
        "vars": {"slurm_hosts_file": str(tmp_path / "etc") + "/{{ inventory_hostname }}.hosts"},
        "roles": ["slurm_hosts"]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=str(PLAYBOOKS / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1",
               ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles"), ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"))
    return subprocess.run([str(BIN / "ansible-playbook"), "-c", "local", "-i", str(hosts), str(play),
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          capture_output=True, text=True, env=env, timeout=300)


def changed(proc: subprocess.CompletedProcess) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", proc.stdout, re.M)}


def scratch(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    for host in ("ctl-0001", "login-0001", "aws-0001", "aws-0002", "bad-0001"):
        (etc / f"{host}.hosts").write_text(BEFORE)
    return etc


def test_every_slurm_host_gets_the_same_sorted_block_and_a_second_run_changes_nothing(tmp_path):
    etc = scratch(tmp_path)
    hosts = inventory(tmp_path)
    first = run_role(tmp_path, hosts)
    assert first.returncode == 0, first.stdout + first.stderr
    assert changed(first) == {"ctl-0001": 1, "login-0001": 1, "aws-0001": 1, "aws-0002": 1}, first.stdout
    # The address in canonical form, then the name; sorted by name; the DNS-named and the
    # address-less host left out; the rest of the file kept.
    wanted = BEFORE + f"{BEGIN}\nfd00::17 aws-0001\n10.20.0.5 ctl-0001\n{END}\n"
    for host in ("ctl-0001", "login-0001", "aws-0001", "aws-0002"):
        assert (etc / f"{host}.hosts").read_text() == wanted, host
    second = run_role(tmp_path, hosts)
    assert second.returncode == 0, second.stdout + second.stderr
    assert changed(second) == {"ctl-0001": 0, "login-0001": 0, "aws-0001": 0, "aws-0002": 0}, second.stdout
    assert (etc / "ctl-0001.hosts").read_text() == wanted


@pytest.mark.parametrize("hostile", ["10.0.0.1 evil", "10.0.0.1\n10.0.0.66 ctl-0001", "10.0.0.1\n",
                                     "fe80::1%eth0", "10.0.0.1/24", "010.0.0.1", "-evil"])
def test_a_hostile_ansible_host_stops_every_host_and_writes_nothing(tmp_path, hostile):
    etc = scratch(tmp_path)
    proc = run_role(tmp_path, inventory(tmp_path, {"bad-0001": hostile}))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    flat = " ".join(out.split())
    assert (f'slurm_hosts: nothing was written: the ansible_host of "bad-0001", {json.dumps(hostile)}, is neither '
            "an IPv4 or IPv6 address (without a zone) nor a DNS name; fix the inventory") in flat, out
    assert "Write the Slurm hosts' addresses" not in out
    assert all(p.read_text() == BEFORE for p in etc.iterdir())
    assert not set(changed(proc).values()) - {0}, out


def test_a_name_that_is_no_rfc_1123_label_is_refused(tmp_path):
    etc = scratch(tmp_path)
    proc = run_role(tmp_path, inventory(tmp_path, {"Bad_Name": "10.0.0.9"}))
    flat = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode != 0, flat
    assert 'slurm_hosts: nothing was written: the inventory name "Bad_Name" is not one RFC 1123 label' in flat, flat
    assert "the ansible_host of" not in flat
    assert all(p.read_text() == BEFORE for p in etc.iterdir())


def _filters():
    spec = importlib.util.spec_from_file_location("slurm_hosts_filters", ROLE / "filter_plugins/slurm_hosts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("value, address", [
    ("10.0.0.1", "10.0.0.1"), ("FD00:0:0:0::17", "fd00::17"), ("::ffff:10.0.0.1", "::ffff:a00:1"),
    ("10.0.0.1 evil", ""), ("10.0.0.1\n", ""), ("010.0.0.1", ""), ("256.0.0.1", ""), ("fe80::1%eth0", ""),
    ("10.0.0.0/8", ""), ("ctl-0001", ""), (167772161, ""), ("", "")])
def test_only_plain_ip_addresses_are_addresses(value, address):
    assert _filters().address(value) == address


def test_the_role_checks_names_and_dns_names_as_the_spec_does():
    """The role's patterns accept exactly what fields.py's do, never a trailing line break, and
    no DNS name of digits and dots alone (a malformed address)."""
    role_vars = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    samples = ["a", "aws-0001", "onprem-0001", "a" * 42, "a" * 43, "Aws-0001", "aws_0001", "-aws", "aws-", "1aws",
               "aws.example.com", "login-0001.example.com", "a" * 63 + ".b", "a" * 64, "x..y", "10.0.0.1", "010.0.0.1", "10.0.0.1x",
               "10.0.0.1 evil", "aws-0001\n", "aws-0001\nevil", ""]
    for role_pattern, spec_pattern in ((role_vars["_slurm_hosts_name_pattern"], fields.NAME_PATTERN),
                                       (role_vars["_slurm_hosts_hostname_pattern"], fields.HOSTNAME_PATTERN)):
        for sample in samples:
            spec_says = bool(re.fullmatch(spec_pattern, sample))
            if spec_pattern == fields.HOSTNAME_PATTERN:
                spec_says = spec_says and len(sample) <= 253 and not re.fullmatch(r"[0-9.]+", sample)
            assert bool(re.match(role_pattern, sample)) == spec_says, (role_pattern, sample)
