"""Fields that reach inventories, leases and templates are strict: no silent coercion, no extras.

Each hostile value goes into one field of the on-prem example and must be refused by
`validate` on exactly that field's line; each fair value must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aifactory import plan as planning
from aifactory import spec
from aifactory.errors import SpecError

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "stacks" / "onprem-dgx" / "factory.yaml").read_text()
HOST = '{name: dgx-001, mac: "5c:ff:35:a0:00:01", bmc: 10.20.1.11, ip: 10.20.0.11}'
assert HOST in TEXT


def _host_line() -> int:
    return TEXT[:TEXT.index(HOST)].count("\n") + 1


def _errors(text: str):
    try:
        loaded = spec.load_string(text, "factory.yaml")
    except SpecError as exc:
        return exc.findings
    return planning.validate(loaded).errors


@pytest.mark.parametrize("field,value", [
    ("ip", '"fe80::1%eth0"'),
    ("ip", "\"fe80::1%{{lookup('pipe','touch /tmp/x')}}\""),
    ("ip", '"fe80::1%x\\n10.0.0.9"'),
    ("ip", "true"),
    ("ip", "167772171"),
    ("ip", '"0.0.0.0"'),
    ("ip", '"127.0.0.1"'),
    ("ip", '"224.0.0.1"'),
    ("ip", '"255.255.255.255"'),
    ("ip", '" 10.20.0.11"'),
    ("mac", '"ff:ff:ff:ff:ff:ff"'),
    ("mac", '"01:00:5e:00:00:01"'),
    ("mac", '"00:00:00:00:00:00"'),
    ("mac", '"5c:ff:35:a0:00:01\\n"'),
    ("mac", '"5c-ff-35-a0-00-01"'),
    ("bmc", '"a..b"'),
    ("bmc", '"-bmc"'),
    ("bmc", '"' + "a" * 64 + '.example"'),
    ("bmc", '"bmc\\nx"'),
    ("bmc", '"bmc_1"'),
])
def test_hostile_host_fields_are_refused_on_their_line(field, value):
    old = {"ip": "10.20.0.11", "mac": '"5c:ff:35:a0:00:01"', "bmc": "10.20.1.11"}[field]
    text = TEXT.replace(HOST, HOST.replace(f"{field}: {old}", f"{field}: {value}"))
    assert text != TEXT
    errors = _errors(text)
    assert errors, f"{field}: {value} was accepted"
    assert any(f.path[-1] == field and f.path[:2] == ("pools", 0) and f.line == _host_line() for f in errors), \
        [f.render() for f in errors]


@pytest.mark.parametrize("field,value", [
    ("ip", '"fd00::11"'), ("ip", '"10.20.0.99"'), ("mac", '"5C:FF:35:A0:00:01"'), ("mac", '"02:00:00:00:00:01"'),
    ("bmc", "bmc-001.example.com"), ("bmc", "10.20.1.99"),
])
def test_fair_host_fields_pass(field, value):
    old = {"ip": "10.20.0.11", "mac": '"5c:ff:35:a0:00:01"', "bmc": "10.20.1.11"}[field]
    assert _errors(TEXT.replace(HOST, HOST.replace(f"{field}: {old}", f"{field}: {value}"))) == []


@pytest.mark.parametrize("field", ["ip", "mac", "name"])
def test_duplicate_host_addresses_are_refused(field):
    second = '{name: dgx-002, mac: "5c:ff:35:a0:00:02", bmc: 10.20.1.12, ip: 10.20.0.12}'
    first = {"ip": "10.20.0.11", "mac": '"5c:ff:35:a0:00:01"', "name": "dgx-001"}[field]
    old = {"ip": "10.20.0.12", "mac": '"5c:ff:35:a0:00:02"', "name": "dgx-002"}[field]
    text = TEXT.replace(second, second.replace(f"{field}: {old}", f"{field}: {first}"))
    assert text != TEXT
    errors = _errors(text)
    assert any(f.check == "unique-names" and f.path[-1] == field and "duplicate" in f.message for f in errors), \
        [f.render() for f in errors]


@pytest.mark.parametrize("field,old", [("power_mw", "0.2"), ("pue", "1.3"), ("rack_kw", "42")])
def test_booleans_are_not_quantities(field, old):
    site = "{name: hall1, power_mw: 0.2, pue: 1.3, rack_kw: 42}"
    text = TEXT.replace(site, site.replace(f"{field}: {old}", f"{field}: true"))
    assert text != TEXT
    errors = _errors(text)
    assert any(f.path[-1] == field and "boolean" in f.message for f in errors), [f.render() for f in errors]


SLURM_LINES = {
    "site": "    - site: hall1",
    "controller": "      controller: {host: dgx-001}",
    "accounting": "      accounting: {database: local}",
    "default_partition": "      default_partition: dgx",
}
assert all(line in TEXT.splitlines() for line in SLURM_LINES.values())


@pytest.mark.parametrize("key,value,field", [
    ("site", '"hall1; rm -rf /"', "site"),
    ("site", "\"{{ lookup('pipe','id') }}\"", "site"),
    ("site", '"Hall1"', "site"),
    ("controller", '{host: "dgx-001\\nSlurmctldHost=evil"}', "host"),
    ("controller", '{host: "$(reboot)"}', "host"),
    ("controller", '{pool: "../dgx"}', "pool"),
    ("controller", "{host: dgx-001, port: 22}", "controller"),
    ("accounting", '{database: external, host: "db;id"}', "host"),
    ("accounting", '{database: external, host: "a..b"}', "host"),
    ("accounting", '{database: external, host: "db\\nAccountingStorageHost=evil"}', "host"),
    ("accounting", '{database: external, host: "fe80::1%eth0"}', "host"),
    ("accounting", "{database: external, host: db1, port: true}", "port"),
    ("accounting", "{database: external, host: db1, port: 0}", "port"),
    ("accounting", "{database: external, host: db1, port: 70000}", "port"),
    ("accounting", '{database: external, host: db1, port: "6819 x"}', "port"),
    ("accounting", "{database: remote}", "database"),
    ("accounting", "{database: local, storage_pass: hunter2}", "accounting"),
    ("default_partition", '"dgx\\nPartitionName=evil"', "default_partition"),
    ("default_partition", '"{{ 7*7 }}"', "default_partition"),
])
def test_hostile_slurm_fields_are_refused_on_their_line(key, value, field):
    old = SLURM_LINES[key]
    new = old.split(":", 1)[0] + ": " + value
    text = TEXT.replace(old, new)
    assert text != TEXT
    line = text.splitlines().index(new) + 1
    errors = _errors(text)
    assert errors, f"{key}: {value} was accepted"
    assert any(f.path[:2] == ("slurm", "clusters") and field in f.path and f.line == line for f in errors), \
        [f.render() for f in errors]


@pytest.mark.parametrize("key,value", [
    ("controller", "{pool: dgx}"), ("accounting", "{database: external, host: slurmdbd.hall1.example.com}"),
    ("accounting", "{database: external, host: 10.20.0.5, port: 7031}"), ("default_partition", "dgx"),
])
def test_fair_slurm_fields_pass(key, value):
    old = SLURM_LINES[key]
    assert _errors(TEXT.replace(old, old.split(":", 1)[0] + ": " + value)) == []


# Fields of a cluster that the on-prem example leaves out: each hostile value, on a line of its own
# after default_partition, is refused on that line.
@pytest.mark.parametrize("line,field", [
    ("      name: \"global\\nClusterName=evil\"", "name"),
    ("      name: \"{{ lookup('pipe','id') }}\"", "name"),
    ("      name: ../x", "name"),
    ("      sites: [hall1, \"$(reboot)\"]", "sites"),
    ("      login: [{host: \"dgx-003\\nSlurmctldHost=evil\"}]", "host"),
    ("      login: [{pool: \"{{ 7*7 }}\"}]", "pool"),
    ("      login: [" + ", ".join(["{pool: dgx}"] * 17) + "]", "login"),
    ("      qos: [{name: \"high\\nPriorityType=priority/basic\"}]", "name"),
    ("      qos: [{name: \"{{ lookup('pipe','id') }}\"}]", "name"),
    ("      qos: [{name: high, priority: true}]", "priority"),
    ("      qos: [{name: high, priority: -1}]", "priority"),
    ("      qos: [{name: high, priority: 2147483648}]", "priority"),
    ("      qos: [{name: high, priority: \"10\"}]", "priority"),
    ("      qos: [{name: high, max_wall: 1:30:00}]", "max_wall"),
    ("      qos: [{name: high, max_wall: 90}]", "max_wall"),
    ("      qos: [{name: high, max_wall: \"12h; rm -rf /\"}]", "max_wall"),
    ("      qos: [{name: high, max_jobs_per_user: 0}]", "max_jobs_per_user"),
    ("      qos: [{name: high, max_gpus_per_user: 1.5}]", "max_gpus_per_user"),
    ("      qos: [{name: high, grp_tres: \"gres/gpu=1\"}]", "qos"),
    ("      qos: [" + ", ".join(f"{{name: q{i}}}" for i in range(65)) + "]", "qos"),
    ("      fairshare: {enabled: \"yes\"}", "enabled"),
    ("      fairshare: {decay_half_life_days: 0}", "decay_half_life_days"),
    ("      fairshare: {weights: {fairshare: 4294967296}}", "fairshare"),
    ("      fairshare: {weights: {age: true}}", "age"),
    ("      fairshare: {weights: {site: 1}}", "weights"),
])
def test_hostile_slurm_cluster_fields_are_refused_on_their_line(line, field):
    anchor = SLURM_LINES["default_partition"]
    text = TEXT.replace(anchor, anchor + "\n" + line)
    number = text.splitlines().index(line) + 1
    errors = _errors(text)
    assert errors, f"{line!r} was accepted"
    assert any(f.path[:2] == ("slurm", "clusters") and field in f.path and f.line == number for f in errors), \
        [f.render() for f in errors]


@pytest.mark.parametrize("line,where", [
    ("  layout: \"single\\nx\"", "layout"),
    ("  layout: one", "layout"),
    ("  federation: \"{{ lookup('pipe','id') }}\"", "federation"),
])
def test_hostile_slurm_layout_fields_are_refused_on_their_line(line, where):
    text = TEXT.replace("slurm:\n  clusters:\n", f"slurm:\n{line}\n  clusters:\n")
    number = text.splitlines().index(line) + 1
    errors = _errors(text)
    assert any(f.path == ("slurm", where) and f.line == number for f in errors), [f.render() for f in errors]


@pytest.mark.parametrize("line", [
    "      login: [{host: dgx-003}, {pool: dgx}]",
    "      qos: [{name: high, priority: 100, max_wall: 7d, max_jobs_per_user: 4, max_gpus_per_user: 32}]",
    "      fairshare: {decay_half_life_days: 14, weights: {fairshare: 100000, age: 1000, qos: 10000, job_size: 0}}",
    "      name: hall",
])
def test_fair_slurm_cluster_fields_pass(line):
    anchor = SLURM_LINES["default_partition"]
    assert _errors(TEXT.replace(anchor, anchor + "\n" + line)) == []
