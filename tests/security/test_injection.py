"""Names that later reach shells, templates, hostnames and file paths are refused at the spec.

Each hostile value is put into one field of an otherwise valid spec and run through the real
command line: ``validate`` and ``plan`` must exit 1 with a ``FILE:LINE: path: message`` line
that names exactly that field on exactly its line, print nothing on stdout, write no file and
run nothing (a payload that would create a file is checked for afterwards).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from aifactory.cli import app

# One field per line, so that the expected line of every finding is known without the loader.
TEMPLATE = """\
name: {name}
description: {description}
software:
  driver_branch: "580"
  cuda: "13.0"
  os: debian-12
  nccl: {nccl}
  dcgm_package: {dcgm_package}
access:
  admin_cidrs:
    - {admin_cidr}
  ssh_user: {ssh_user}
tags:
  {tag_key}: {tag_value}
sites:
  - name: {site}
    power_mw: 0.05
    pue: 1.5
    rack_kw: 25
fabrics:
  - name: {fabric}
    type: infiniband
    switch: {switch}
    rail_optimized: false
    subnet_manager: opensm
pools:
  - name: {pool}
    site: {pool_site}
    provider: lab
    system: {system}
    nodes: 2
    fabric: {pool_fabric}
    region: {region}
    zones:
      - {zone}
    reservation: {reservation}
    hosts:
      - name: {host}
        mac: {mac}
        bmc: {bmc}
        ip: {ip}
      - {{name: gpu-2, mac: "00:11:22:33:44:66", bmc: bmc-2.lab.example}}
"""
VALID = {
    "name": "lab", "description": "Two-node lab", "nccl": "2.28.9-1", "dcgm_package": "datacenter-gpu-manager-4-cuda13",
    "admin_cidr": "10.0.0.0/8", "ssh_user": "aifactory", "tag_key": "team", "tag_value": "research",
    "site": "lab", "fabric": "lab-ib", "switch": "qm9700", "pool": "gpu", "pool_site": "lab", "system": "hgx-h100",
    "pool_fabric": "lab-ib", "region": "lab-1", "zone": "rack-a", "reservation": "cr-0123abcd", "host": "gpu-1",
    "mac": "00:11:22:33:44:55", "bmc": "bmc-1.lab.example", "ip": "10.0.0.11",
}
PATHS = {
    "name": "name", "description": "description", "nccl": "software.nccl", "dcgm_package": "software.dcgm_package",
    "admin_cidr": "access.admin_cidrs[0]", "ssh_user": "access.ssh_user", "tag_value": "tags.team",
    "site": "sites[0].name", "fabric": "fabrics[0].name", "switch": "fabrics[0].switch", "pool": "pools[0].name",
    "pool_site": "pools[0].site", "system": "pools[0].system", "pool_fabric": "pools[0].fabric",
    "region": "pools[0].region", "zone": "pools[0].zones[0]", "reservation": "pools[0].reservation",
    "host": "pools[0].hosts[0].name", "mac": "pools[0].hosts[0].mac", "bmc": "pools[0].hosts[0].bmc",
    "ip": "pools[0].hosts[0].ip",
}

SHELL = ["x; rm -rf /", "$(touch PWNED)", "`touch PWNED`", "gpu|touch PWNED", "gpu && touch PWNED", "$HOME",
         "gpu'", 'gpu"', "gpu>PWNED", "*"]
PATH = ["../../etc/passwd", "/etc/shadow", "..", "gpu/../../x", "-rf", "--help"]
TEMPLATE_SYNTAX = ["{{ 7*7 }}", "{% include '/etc/passwd' %}", "{# x #}", "{{ lookup('pipe', 'id') }}"]
LINES = ["gpu\nevil: 1", "gpu\r\nrm", "gpu\x00", "gpu\x1b[2J", "gpu\u2028x"]
LOOKALIKE = ["ｇｐｕ", "gpu\u200b", "GPU", "gpu ", " gpu", "a" * 64]
ALL = SHELL + PATH + TEMPLATE_SYNTAX + LINES + LOOKALIKE

# What each field must refuse. Names, addresses and ids refuse everything above; prose and
# tag values are data (spaces and '/' are fine there) but must stay on one line and must not
# carry template syntax, because Ansible templates variable values.
REFUSES = {field: ALL for field in PATHS}
REFUSES["description"] = TEMPLATE_SYNTAX + LINES
REFUSES["tag_value"] = SHELL + TEMPLATE_SYNTAX + LINES + ["a" * 200]
REFUSES["zone"] = SHELL + PATH + TEMPLATE_SYNTAX + LINES + ["ｇｐｕ", "gpu\u200b", "gpu ", " gpu", "a" * 64]
REFUSES["bmc"] = SHELL + PATH + TEMPLATE_SYNTAX + LINES + ["ｇｐｕ", "gpu\u200b", "gpu ", " gpu", "a" * 300]
REFUSES["reservation"] = SHELL + ["../../etc/passwd", "..", "gpu/../../x", "-rf", "--help"] + TEMPLATE_SYNTAX + \
    LINES + ["ｇｐｕ", "gpu\u200b", "gpu ", " gpu", "a" * 300]
CASES = [(field, payload) for field, payloads in REFUSES.items() for payload in payloads]

FINDING = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<path>\S+): (?P<message>.+)$")


def spec_text(**override) -> str:
    # json.dumps gives a valid YAML double-quoted scalar for any payload, so the YAML itself
    # always parses and the value reaches the field's own validation.
    values = {k: json.dumps(v) for k, v in {**VALID, **override}.items()}
    values["tag_key"] = override.get("tag_key", VALID["tag_key"])
    return TEMPLATE.format(**values)


def line_of(field: str) -> int:
    marker = "{" + field + "}"
    return next(i for i, line in enumerate(TEMPLATE.splitlines(), 1) if marker in line)


def test_the_baseline_is_valid(tmp_path):
    f = tmp_path / "factory.yaml"
    f.write_text(spec_text())
    out = CliRunner().invoke(app, ["validate", str(f)])
    assert out.exit_code == 0, out.stderr


@pytest.mark.parametrize("field,payload", CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_injection_is_refused_with_a_located_error(field, payload, tmp_path):
    f = tmp_path / "factory.yaml"
    f.write_text(spec_text(**{field: payload}))
    runner = CliRunner()
    for args in (["validate", str(f)], ["plan", str(f), "--format", "json"]):
        out = runner.invoke(app, args)
        assert out.exit_code == 1 and isinstance(out.exception, SystemExit), (args, out.stderr)
        assert out.stdout == "", "nothing may be printed for a refused spec"
        located = [m.groupdict() for m in map(FINDING.match, out.stderr.splitlines()) if m]
        assert {"file": str(f), "line": str(line_of(field)), "path": PATHS[field]} in [
            {k: m[k] for k in ("file", "line", "path")} for m in located], out.stderr
        # The payload is never echoed raw: a newline in it could forge a line of output.
        assert all(FINDING.match(line) or " error(s), " in line for line in out.stderr.splitlines()), out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["factory.yaml"]


@pytest.mark.parametrize("key", ["x; rm -rf /", "{{ 7*7 }}", "a\nb", "../etc", "Team", "-team"])
def test_hostile_tag_keys_are_refused(key, tmp_path):
    f = tmp_path / "factory.yaml"
    f.write_text(spec_text(tag_key=json.dumps(key)))
    out = CliRunner().invoke(app, ["validate", str(f)])
    assert out.exit_code == 1, out.stderr
    assert any(line.startswith(f"{f}:{line_of('tag_key')}: tags[") or
               line.startswith(f"{f}:{line_of('tag_key')}: tags.") for line in out.stderr.splitlines()), out.stderr


@pytest.mark.parametrize("field", ["pool", "host", "site", "bmc"])
def test_payloads_do_not_run_through_the_console_script(field, tmp_path):
    """The real process, in a scratch directory: the payload would create PWNED if any shell saw it."""
    f = tmp_path / "factory.yaml"
    f.write_text(spec_text(**{field: "$(touch PWNED); touch PWNED"}))
    for args in (["validate", str(f)], ["plan", str(f), "--format", "json"]):
        out = subprocess.run([sys.executable, "-m", "aifactory", *args], cwd=tmp_path, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"{f}:{line_of(field)}: {PATHS[field]}: invalid value" in out.stderr
    assert not (tmp_path / "PWNED").exists()
