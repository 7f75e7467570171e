"""Every command that reports something can print it as one JSON document; validate also as SARIF.

In a machine format stdout holds exactly one JSON document and nothing else; the exit codes are
the same as in the human format (0 ok, 1 error, 3 drift or changes).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from aifactory import cli
from tests.cli_helpers import BAD, LAB, REPO, run

SARIF_SCHEMA = json.loads((REPO / "tests/data/sarif-schema-2.1.0.json").read_text())
FINDING_KEYS = {"file", "line", "path", "message", "hint", "severity", "check"}


def one_document(stdout: str):
    """The one JSON document stdout holds (json.loads refuses anything before or after it)."""
    return json.loads(stdout)


def sarif_errors(log) -> list[str]:
    validator = jsonschema.Draft4Validator(SARIF_SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(log)]


def test_validate_json_lists_every_finding(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(BAD)
    code, out, err = run(monkeypatch, capsys, "validate", "bad.yaml", "--format", "json")
    assert code == 1
    doc = one_document(out)
    assert doc["file"] == "bad.yaml" and doc["valid"] is False and doc["errors"] == 1 and doc["summary"] is None
    [finding] = doc["findings"]
    assert set(finding) == FINDING_KEYS
    assert finding == {"file": "bad.yaml", "line": 6, "path": "pools[1].site", "message": "unknown site 'dc9'",
                       "hint": "did you mean 'dc1'?", "severity": "error", "check": "references"}
    # the FILE:LINE lines people read stay on stderr
    assert "bad.yaml:6: pools[1].site: unknown site 'dc9'" in err and "Traceback" not in err

    code, out, _ = run(monkeypatch, capsys, "validate", LAB, "-f", "json")
    doc = one_document(out)
    assert code == 0 and doc["valid"] is True and doc["errors"] == 0
    assert doc["summary"] == {"pools": 1, "nodes": 2, "gpus": 16}
    assert doc["warnings"] == len(doc["findings"]) and all(f["severity"] == "warning" for f in doc["findings"])


def test_validate_json_reports_unreadable_and_malformed_files(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "validate", "missing.yaml", "-f", "json")
    doc = one_document(out)
    assert code == 1 and doc["valid"] is False and "cannot read file" in doc["findings"][0]["message"]
    Path("broken.yaml").write_text("name: x\nsites: [{name: a\n")
    code, out, _ = run(monkeypatch, capsys, "validate", "broken.yaml", "-f", "json")
    doc = one_document(out)
    assert code == 1 and doc["findings"][0]["check"] == "" and doc["findings"][0]["line"] == 3


def test_validate_sarif_is_valid_sarif_2_1_0(monkeypatch, capsys, tmp_path):
    """Checked against the official SARIF 2.1.0 schema (tests/data), with the fields code scanning reads."""
    from aifactory import __version__
    from aifactory.plan.checks import REGISTRY

    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").mkdir()
    # too little power (an error) on an end-of-life driver branch (a warning)
    spec = BAD.replace("dc9", "dc1").replace("name: bad\n", "name: bad\nsoftware: {driver_branch: '535'}\n")
    Path("specs/bad.yaml").write_text(spec)
    code, out, err = run(monkeypatch, capsys, "validate", "specs/bad.yaml", "--format", "sarif")
    assert code == 1 and "Traceback" not in err
    log = one_document(out)
    assert sarif_errors(log) == []
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run_ = log["runs"][0]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "aifactory" and driver["version"] == __version__
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(REGISTRY) <= set(rules)
    for name, info in REGISTRY.items():
        assert rules[name]["help"]["text"] == info.rationale and rules[name]["shortDescription"]["text"]
    by_rule = {r["ruleId"]: r for r in run_["results"]}
    power = by_rule["site-power"]
    assert power["level"] == "error" and driver["rules"][power["ruleIndex"]]["id"] == "site-power"
    assert power["message"]["text"].startswith("sites[0].power_mw: site dc1 needs")
    physical = power["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "specs/bad.yaml"  # relative to the working folder
    assert physical["region"]["startLine"] == 4
    assert by_rule["driver-branch"]["level"] == "warning"
    assert rules["driver-branch"]["defaultConfiguration"]["level"] == "error"  # it raises both


def test_validate_sarif_of_a_clean_spec_and_of_a_file_elsewhere(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "validate", REPO / "stacks/aws-p5/factory.yaml", "-f", "sarif")
    log = one_document(out)
    assert code == 0 and sarif_errors(log) == [] and log["runs"][0]["results"] == []
    code, out, _ = run(monkeypatch, capsys, "validate", LAB, "-f", "sarif")
    log = one_document(out)
    assert code == 0 and sarif_errors(log) == []
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == LAB.as_uri()  # outside the working folder: an absolute file URI
    # loader and schema findings have no named check: they share the `schema` rule
    Path("typo.yaml").write_text(LAB.read_text().replace("pools:", "pool:"))
    code, out, _ = run(monkeypatch, capsys, "validate", "typo.yaml", "-f", "sarif")
    log = one_document(out)
    assert code == 1 and sarif_errors(log) == []
    assert {r["ruleId"] for r in log["runs"][0]["results"]} == {"schema"}


def test_render_check_json_lists_what_differs_and_keeps_exit_3(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--format", "json")
    doc = one_document(out)
    assert code == 0 and doc["check"] is False and doc["out"] == "deploy"
    assert "plan.json" in doc["written"] and doc["removed"] == [] and doc["kept"] == []
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--check", "-f", "json")
    assert code == 0 and one_document(out) == {"out": "deploy", "check": True, "drift": False, "changed": [],
                                               "missing": [], "extra": [], "unchanged": len(doc["written"])}
    (tmp_path / "deploy/plan.json").write_text("{}\n")
    (tmp_path / "deploy/inventory/hosts.yml").unlink()
    code, out, err = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--check", "-f", "json")
    doc = one_document(out)
    assert code == cli.EXIT_DRIFT
    assert doc["drift"] is True and doc["changed"] == ["plan.json"] and doc["missing"] == ["inventory/hosts.yml"]
    assert "differ from the plan" in err
    # the human format is unchanged
    code, out, _ = run(monkeypatch, capsys, "render", LAB, "--out", "deploy", "--check")
    assert code == cli.EXIT_DRIFT and out.splitlines() == ["changed: deploy/plan.json",
                                                           "missing: deploy/inventory/hosts.yml"]


def test_diff_json_is_one_document_with_its_exit_code(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "diff", LAB, REPO / "stacks/aws-p5/factory.yaml", "-f", "json",
                       "--exit-code")
    doc = one_document(out)
    assert code == cli.EXIT_DRIFT and doc["changed"] is True and doc["old"] == "lab" and doc["new"] == "aws-p5"
    assert {t["key"] for t in doc["totals"]} >= {"nodes", "gpus"} and doc["changes"]
    code, out, _ = run(monkeypatch, capsys, "diff", LAB, LAB, "-f", "json", "--exit-code")
    assert code == 0 and one_document(out)["changed"] is False


def test_preflight_json(monkeypatch, capsys):
    from aifactory.preflight import Check

    checks = [Check("gpu", "offering", "ok", "p5.48xlarge offered in us-east-1a"),
              Check("gpu", "quota", "fail", "needs 3072 vCPUs, the quota is 0")]
    monkeypatch.setattr("aifactory.preflight.check_factory", lambda plan, ami=None: checks)
    code, out, err = run(monkeypatch, capsys, "preflight", REPO / "stacks/aws-p5/factory.yaml", "--format", "json")
    doc = one_document(out)
    assert code == 1 and doc["ok"] is False and doc["failed"] == 1
    assert doc["checks"][1] == {"pool": "gpu", "check": "quota", "status": "fail",
                                "message": "needs 3072 vCPUs, the quota is 0"}
    assert "FAIL" not in out
    monkeypatch.setattr("aifactory.preflight.check_factory", lambda plan, ami=None: [])
    code, out, _ = run(monkeypatch, capsys, "preflight", LAB, "-f", "json")
    assert code == 0 and one_document(out) == {"file": str(LAB), "ok": True, "failed": 0, "checks": []}
    # the human format is unchanged
    code, out, _ = run(monkeypatch, capsys, "preflight", LAB)
    assert code == 0 and out == f"{LAB}: no AWS pools to check\n"


def test_the_sarif_check_catches_a_malformed_log(monkeypatch, capsys):
    """The schema check above is not vacuous: a level SARIF does not have, or a result without its
    message, is refused."""
    _, out, _ = run(monkeypatch, capsys, "validate", LAB, "-f", "sarif")
    log = one_document(out)
    log["runs"][0]["results"][0]["level"] = "fatal"
    del log["runs"][0]["results"][0]["message"]
    assert len(sarif_errors(log)) == 2
