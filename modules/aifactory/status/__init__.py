"""The live factory against its plan, per pool and node.

The expected side is the plan alone: its pools, their node names and the software lock's
digest. The live side comes from engines the factory already runs, each optional: Slurm's node
JSON (a file a job or the controller saved, or the lab's controller), Prometheus (exporters up,
each node's lock digest, DCGM XID errors, the last health gate), and in a lab the packages read
back from each node's tree. No node is reached one by one.

A node is *ok* when every source that was read agrees with the plan and finds it healthy. A
source that was not read says nothing (its columns stay empty); a source that was read and does
not know a planned node counts against it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from ..plan.model import Plan
from .prometheus import NodeMetrics, PrometheusView
from .slurm import SlurmNodes, one_line

SCHEMA_VERSION = 1


@dataclass
class NodeStatus:
    pool: str
    node: str
    provisioned: Optional[bool] = None  # seen by a source; None when no source was read
    slurm_state: Optional[str] = None
    slurm_ok: Optional[bool] = None
    drain_reason: Optional[str] = None
    exporter_up: Optional[bool] = None
    lock: Optional[str] = None  # "match", "drift", "missing"; None when not read
    lock_digest: Optional[str] = None  # what the node reports, where it differs from the plan's
    xid: Optional[int] = None
    gate_ok: Optional[bool] = None
    gate_age_s: Optional[int] = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"pool": self.pool, "node": self.node, "ok": self.ok, "provisioned": self.provisioned,
                "slurm_state": self.slurm_state, "slurm_ok": self.slurm_ok, "drain_reason": self.drain_reason,
                "exporter_up": self.exporter_up, "lock": self.lock, "lock_digest": self.lock_digest,
                "xid_errors": self.xid, "health_gate_ok": self.gate_ok, "health_gate_age_s": self.gate_age_s,
                "problems": self.problems}


@dataclass
class Status:
    factory: str
    lock_digest: str
    sources: dict[str, Optional[str]]
    nodes: list[NodeStatus]
    unplanned: list[str] = field(default_factory=list)  # reported by a source, not in the plan
    refused: list[str] = field(default_factory=list)  # source entries left out as malformed

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.nodes) and not self.unplanned

    def pools(self) -> list[dict]:
        out: dict[str, dict] = {}
        for n in self.nodes:
            p = out.setdefault(n.pool, {"pool": n.pool, "nodes": 0, "ok": 0, "provisioned": 0, "slurm_serving": 0,
                                        "lock_match": 0, "xid_errors": 0, "problems": 0})
            p["nodes"] += 1
            p["ok"] += n.ok
            p["provisioned"] += n.provisioned is True
            p["slurm_serving"] += n.slurm_ok is True
            p["lock_match"] += n.lock == "match"
            p["xid_errors"] += bool(n.xid)
            p["problems"] += len(n.problems)
        return list(out.values())

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, "factory": self.factory, "ok": self.ok,
                "lock_digest": self.lock_digest, "sources": self.sources, "pools": self.pools(),
                "nodes": [n.to_dict() for n in self.nodes], "unplanned": self.unplanned, "refused": self.refused}


def collect(plan: Plan, *, slurm: Optional[SlurmNodes] = None, slurm_source: Optional[str] = None,
            prometheus: Optional[PrometheusView] = None, lab_digests: Optional[dict[str, set[str]]] = None,
            lab_failures: Optional[dict[str, list[str]]] = None, now: Optional[float] = None) -> Status:
    """Each planned node against what the sources report."""
    digest = plan.software.digest
    now = time.time() if now is None else now
    sources = {"slurm": slurm_source if slurm is not None else None,
               "prometheus": prometheus.url if prometheus is not None else None,
               "lab": "read back" if lab_failures is not None else None}
    status = Status(plan.name, digest, sources, [])
    planned: set[str] = set()
    slurm_pools = {p.name for p in plan.pools if p.scheduler == "slurm"}
    for pool in plan.pools:
        for name in pool.host_names():
            planned.add(name)
            n = NodeStatus(pool.name, name)
            seen: list[bool] = []
            if slurm is not None and pool.name in slurm_pools:
                seen.append(_slurm(n, slurm))
            if prometheus is not None:
                _prometheus(n, prometheus, digest, now)
                seen.append(bool(n.exporter_up) or n.lock in ("match", "drift"))
            if lab_digests is not None:
                _lock(n, lab_digests.get(name, set()), digest, "its lock file")
            if lab_failures is not None:
                seen.append(name in lab_failures)
                n.problems.extend(lab_failures.get(name, []))
            if seen:
                n.provisioned = any(seen)
            status.nodes.append(n)
    reported = set(slurm.nodes) if slurm is not None else set()
    if prometheus is not None:
        reported |= set(prometheus.nodes)
    status.unplanned = sorted(reported - planned)
    if slurm is not None:
        status.refused.extend(f"Slurm: {r}" for r in slurm.refused)
    if prometheus is not None and prometheus.refused:
        status.refused.append(f"Prometheus: {prometheus.refused} series without a host name in their node label")
    return status


def _slurm(n: NodeStatus, slurm: SlurmNodes) -> bool:
    """Fill in Slurm's view of ``n``; whether its slurmd has registered."""
    node = slurm.nodes.get(n.node)
    if node is None:
        n.problems.append("not in Slurm")
        return False
    n.slurm_state = node.label
    n.slurm_ok = node.healthy
    n.drain_reason = node.reason or None
    if not node.healthy:
        n.problems.append(f"Slurm {node.label}" + (f": {node.reason}" if node.reason else ""))
    return node.responding


def _lock(n: NodeStatus, digests: set[str], digest: str, where: str) -> None:
    if not digests:
        n.lock = "missing"
        n.problems.append(f"no lock digest in {where}")
    elif digests == {digest}:
        n.lock = "match"
    else:
        n.lock = "drift"
        n.lock_digest = ",".join(sorted(d[:12] for d in digests))
        n.problems.append(f"lock {n.lock_digest} is not the plan's {digest[:12]}")


def _prometheus(n: NodeStatus, view: PrometheusView, digest: str, now: float) -> None:
    m = view.nodes.get(n.node) or NodeMetrics()
    n.exporter_up = m.node_up
    if m.node_up is None:
        n.problems.append("not scraped by Prometheus")
    elif not m.node_up:
        n.problems.append("node_exporter down")
    else:
        _lock(n, m.digests, digest, "Prometheus")
    if m.dcgm_up is False:
        n.problems.append("dcgm-exporter down")
    n.xid = m.xid
    if m.xid:
        n.problems.append(f"XID {m.xid}")
    n.gate_ok = m.gate_ok
    if m.gate_time is not None:
        n.gate_age_s = max(0, int((view.time or now) - m.gate_time))
    if m.gate_ok is False:
        n.problems.append("failed its last health gate")


# -- reports -----------------------------------------------------------------------------------

def _yes(value: Optional[bool]) -> str:
    return "" if value is None else ("yes" if value else "no")


def _age(seconds: Optional[int]) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _gate(n: NodeStatus) -> str:
    if n.gate_ok is None:
        return ""
    return ("ok" if n.gate_ok else "FAILED") + (f" {_age(n.gate_age_s)} ago" if n.gate_age_s is not None else "")


COLUMNS = ("pool", "node", "provisioned", "slurm", "drain reason", "lock", "XID", "health gate", "problems")


def rows(status: Status) -> list[tuple[str, ...]]:
    """Every cell a printable string (names are host names; reasons were cut to one line)."""
    return [(n.pool, n.node, _yes(n.provisioned), n.slurm_state or "", n.drain_reason or "",
             n.lock or "", "" if n.xid is None else str(n.xid), _gate(n), one_line("; ".join(n.problems), 300))
            for n in status.nodes]


def summary(status: Status) -> str:
    bad = sum(not n.ok for n in status.nodes)
    read = ", ".join(k for k, v in status.sources.items() if v) or "no source"
    text = (f"{status.factory}: {len(status.nodes):,} planned nodes, {bad:,} with problems"
            f"{f', {len(status.unplanned):,} unplanned' if status.unplanned else ''} (read: {read}; "
            f"lock {status.lock_digest[:12]})")
    return text


def print_table(status: Status, console) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{status.factory}: live against the plan", title_justify="left")
    for c in COLUMNS:
        table.add_column(c, overflow="fold")
    for n, row in zip(status.nodes, rows(status)):
        # Text, never markup: a reason is whatever an operator (or anyone) typed into Slurm.
        table.add_row(*(Text(c) for c in row), style=None if n.ok else "red")
    console.print(table)
    totals = Table(title="per pool", title_justify="left")
    keys = ("pool", "nodes", "ok", "provisioned", "slurm_serving", "lock_match", "xid_errors")
    for k in keys:
        totals.add_column(k.replace("_", " "))
    for p in status.pools():
        totals.add_row(*(Text(str(p[k])) for k in keys))
    console.print(totals)
    if status.unplanned:
        console.print(Text("not in the plan: " + ", ".join(status.unplanned[:50])
                           + (" ..." if len(status.unplanned) > 50 else "")))
    for r in status.refused[:20]:
        console.print(Text(f"left out: {r}"))
    console.print(Text(summary(status)))


def _md(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") \
        .replace("`", "\\`").replace("*", "\\*").replace("_", "\\_").replace("[", "\\[")


def to_markdown(status: Status) -> str:
    lines = [f"### Status of {_md(status.factory)}", "", _md(summary(status)), "",
             "| pool | nodes | ok | provisioned | Slurm serving | lock match | XID errors |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {_md(p['pool'])} | {p['nodes']} | {p['ok']} | {p['provisioned']} | {p['slurm_serving']} | {p['lock_match']} | "
              f"{p['xid_errors']} |" for p in status.pools()]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows(status)]
    if status.unplanned:
        lines += ["", "Not in the plan: " + ", ".join(_md(u) for u in status.unplanned)]
    if status.refused:
        lines += ["", "Left out: " + "; ".join(_md(r) for r in status.refused[:20])]
    return "\n".join(lines) + "\n"
