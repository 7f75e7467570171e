"""Human and machine views of a Plan (JSON, a terminal table, Markdown for PR comments) and of
`validate`'s findings (JSON, SARIF for code scanning)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from .errors import format_path
from .plan import Plan


def to_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2) + "\n"


def _mw(kw: float | None) -> str:
    return "-" if kw is None else f"{kw / 1000:,.2f}"


def _rows(plan: Plan):
    pools = [[p.name, p.provider, p.site, p.system, f"{p.nodes:,}", f"{p.gpus:,}", f"{p.nvlink_domains:,}",
              f"{p.racks:,}", _mw(p.it_kw)] for p in plan.pools]
    fabrics = [[f.name, f.type, f.switch or "-", f.managed_by, str(f.tiers), f"{f.leaf_switches:,}",
                f"{f.spine_switches:,}", f"{f.core_switches:,}", f"{f.cables:,}"] for f in plan.fabrics]
    sites = [[s.name, _mw(s.budget_kw), _mw(s.it_kw), f"{s.pue:g}", _mw(s.facility_kw), _mw(s.headroom_kw)]
             for s in plan.sites]
    sw = plan.software
    lock = [[k, "-" if v is None else str(v)] for k, v in (
        ("driver", sw.driver), ("cuda", sw.cuda), ("open kernel modules", sw.open_kernel_modules),
        ("fabric manager", sw.fabric_manager), ("nvlsm", sw.nvlsm), ("imex", sw.imex),
        ("dcgm", sw.dcgm_package), ("nccl", sw.nccl), ("os", sw.os))]
    return pools, fabrics, sites, lock


def _slurm_rows(plan: Plan) -> list[list[str]]:
    """One row per Slurm cluster: who runs slurmctld and slurmdbd, what it spans, how jobs queue."""
    rows = []
    for c in plan.slurm:
        accounting = f"{c.accounting} on {c.accounting_host}"
        qos = ", ".join(q.name for q in c.qos) or "-"
        rows.append([c.cluster_name(plan.name), ", ".join(c.sites), ", ".join(c.controllers), accounting,
                     ", ".join(c.login) or "-", c.default_partition, qos,
                     "yes" if c.fairshare else "no", c.federation or "-"])
    return rows


SLURM_HEAD = ["cluster", "sites", "controllers", "accounting", "login", "default partition", "QoS", "fair-share",
              "federation"]
POOL_HEAD = ["pool", "provider", "site", "system", "nodes", "GPUs", "NVLink domains", "racks", "IT MW"]
FABRIC_HEAD = ["fabric", "type", "switch", "by", "tiers", "leaf", "spine", "core", "cables"]
SITE_HEAD = ["site", "budget MW", "IT MW", "PUE", "facility MW", "headroom MW"]


def to_markdown(plan: Plan) -> str:
    pools, fabrics, sites, lock = _rows(plan)
    t = plan.totals

    def table(head, rows):
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    parts = [
        f"### aifactory plan: `{plan.name}`",
        f"**{t['gpus']:,} GPUs** on {t['nodes']:,} nodes in {t['racks']:,} racks; "
        f"{t['switches']:,} switches, {t['cables']:,} cables; "
        f"IT {_mw(plan.power['it_kw'])} MW, facility {_mw(plan.power['facility_kw'])} MW.",
        table(POOL_HEAD, pools),
        table(FABRIC_HEAD, fabrics) if fabrics else "_No compute fabrics declared._",
        table(SITE_HEAD, sites),
        *([table(SLURM_HEAD, _slurm_rows(plan))] if plan.slurm else []),
        "<details><summary>Software lock</summary>\n\n" + table(["component", "version"], lock) + "\n\n</details>",
    ]
    if plan.warnings:
        parts.append("**Warnings**\n\n" + "\n".join(f"- {w}" for w in plan.warnings))
    return "\n\n".join(parts) + "\n"


def print_table(plan: Plan, console) -> None:
    from rich.table import Table

    pools, fabrics, sites, lock = _rows(plan)
    t = plan.totals
    console.print(f"[bold]{plan.name}[/]: {t['gpus']:,} GPUs, {t['nodes']:,} nodes, {t['racks']:,} racks, "
                  f"{t['switches']:,} switches, IT {_mw(plan.power['it_kw'])} MW, "
                  f"facility {_mw(plan.power['facility_kw'])} MW")
    for title, head, rows in (("Pools", POOL_HEAD, pools), ("Fabrics", FABRIC_HEAD, fabrics),
                              ("Power", SITE_HEAD, sites), ("Slurm", SLURM_HEAD, _slurm_rows(plan)),
                              ("Software lock", ["component", "version"], lock)):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(head):
            table.add_column(h, justify="right" if i >= 4 and title not in ("Software lock", "Slurm") else "left")
        for r in rows:
            table.add_row(*r)
        console.print(table)


# --- findings: what `validate` reports, as JSON and as SARIF --------------------------------

def finding_to_dict(finding) -> dict:
    """One finding as ``validate --format json`` lists it: the FILE:LINE: path: message line, in fields."""
    return {"file": finding.file, "line": finding.line, "path": format_path(finding.path),
            "message": finding.message, "hint": finding.hint, "severity": finding.severity,
            "check": finding.check}


def validation_to_dict(file: str, findings, plan: Plan | None) -> dict:
    """``validate --format json``: whether FILE is valid, every finding, and the size of the plan."""
    errors = sum(1 for f in findings if f.severity == "error")
    summary = None
    if plan is not None and not errors:
        summary = {"pools": len(plan.pools), "nodes": plan.totals["nodes"], "gpus": plan.totals["gpus"]}
    return {"file": file, "valid": not errors, "errors": errors, "warnings": len(findings) - errors,
            "findings": [finding_to_dict(f) for f in findings], "summary": summary}


SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
# Findings of the loader and the typed models (a wrong type, an unknown field, bad YAML) come from
# no named check; code scanning wants a rule for every result, so they share this one.
SCHEMA_RULE = ("schema", "The spec has the fields and value shapes the factory schema declares",
               "unknown fields are refused so that a typo never falls back to a default, and every value is "
               "held to a strict type before anything is built from it (`aifactory schema` prints the JSON "
               "Schema)")


def _sentence(text: str) -> str:
    """A rationale's first clause, as a title: 'names become host names; ...' -> 'Names become host names'."""
    for stop in ("; ", ": "):
        text = text.split(stop, 1)[0]
    return text[:1].upper() + text[1:]


def _artifact(file: str, cwd) -> dict:
    """The finding's file as SARIF wants it: relative to the working folder (code scanning reads
    it against the checkout) when the file is inside it, else an absolute file: URI."""
    path = Path(file)
    absolute = path if path.is_absolute() else Path(cwd) / path
    try:
        rel = Path(os.path.normpath(absolute)).relative_to(Path(os.path.normpath(cwd)))
    except ValueError:
        return {"uri": Path(os.path.normpath(absolute)).as_uri()}
    return {"uri": quote(rel.as_posix()), "uriBaseId": "%SRCROOT%"}


def to_sarif(findings, checks, version: str, cwd=None) -> dict:
    """``validate --format sarif``: a SARIF 2.1.0 log with one run, its rules from the check
    registry (``checks``: CheckInfo by name) and one result per finding."""
    cwd = cwd or os.getcwd()
    rules = [{"id": c.name, "shortDescription": {"text": _sentence(c.rationale)},
              "fullDescription": {"text": c.rationale}, "help": {"text": c.rationale},
              "defaultConfiguration": {"level": "warning" if c.severity == "warning" else "error"},
              "properties": {"phase": c.phase, "providers": list(c.providers)}}
             for c in checks.values()]
    rule_id, short, rationale = SCHEMA_RULE
    rules.append({"id": rule_id, "shortDescription": {"text": short}, "fullDescription": {"text": rationale},
                  "help": {"text": rationale}, "defaultConfiguration": {"level": "error"}})
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = []
    for f in findings:
        rule = f.check or rule_id
        if rule not in index:  # a check that is not registered (a plugin's): still a rule of its own
            index[rule] = len(rules)
            rules.append({"id": rule, "shortDescription": {"text": rule}})
        path = format_path(f.path)
        text = f"{path}: {f.message}" + (f" (hint: {f.hint})" if f.hint else "")
        location: dict = {"logicalLocations": [{"fullyQualifiedName": path}]} if f.path else {}
        if f.file:
            physical: dict = {"artifactLocation": _artifact(f.file, cwd)}
            if f.line >= 1:
                physical["region"] = {"startLine": f.line}
            location["physicalLocation"] = physical
        result = {"ruleId": rule, "ruleIndex": index[rule], "level": "warning" if f.severity == "warning" else "error",
                  "message": {"text": text}}
        if location:
            result["locations"] = [location]
        results.append(result)
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [{
        "tool": {"driver": {"name": "aifactory", "version": version, "semanticVersion": version, "rules": rules}},
        "results": results,
    }]}
