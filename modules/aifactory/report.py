"""Human and machine views of a Plan: JSON, a terminal table, Markdown for PR comments."""

from __future__ import annotations

import json

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
                              ("Power", SITE_HEAD, sites), ("Software lock", ["component", "version"], lock)):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for i, h in enumerate(head):
            table.add_column(h, justify="right" if i and title != "Software lock" and i >= 4 else "left")
        for r in rows:
            table.add_row(*r)
        console.print(table)
