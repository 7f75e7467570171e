"""``aifactory diff OLD_PLAN.json NEW_PLAN.json``: what a change to the factory does, in plain lines.

It reads two ``plan.json`` files (``aifactory plan --format json`` or a rendered deployment's
``plan.json``) and reports pools added, removed and resized (nodes, GPUs, power), fabric
switch and cable changes, site power, Slurm control-plane changes (controllers, accounting,
sites, login nodes, default partition, QoS, fair-share, federation) and every software version
that moves. It works on
the plan data alone, so a PR can compare the plan on main with the plan of the branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import AifactoryError, format_path
from .files import ReadError, read_json
from .plan.model import is_plan_file

POOL_FIELDS = ("provider", "site", "region", "system", "gpu", "fabric", "scheduler")


@dataclass
class PlanDiff:
    old: str
    new: str
    lines: list[str] = field(default_factory=list)
    totals: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.lines and not self.totals


# A plan file in a pull request is untrusted: every value diff prints is held to a shape that
# cannot forge an output line (no line breaks or control characters) or break the arithmetic
# (finite, non-negative numbers).
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f\x85\u2028\u2029]*$", max_length=200)]
Count = Annotated[int, Field(ge=0, le=10**12, strict=True)]
Amount = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False)]
Version = Optional[Union[Text, bool, Count]]


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Pool(_View):
    name: Text
    provider: Text
    site: Text
    region: Optional[Text] = None
    system: Text
    gpu: Text
    fabric: Optional[Text] = None
    scheduler: Optional[Text] = None
    nodes: Count
    gpus: Count
    racks: Count = 0
    it_kw: Amount


class _Fabric(_View):
    name: Text
    type: Text
    switch: Optional[Text] = None
    site: Optional[Text] = None
    tiers: Count
    switches_by_tier: list[Count] = Field(max_length=16)
    cables: Count


class _Site(_View):
    name: Text
    facility_kw: Optional[Amount] = None
    headroom_kw: Optional[float] = Field(None, ge=-1e12, le=1e12, allow_inf_nan=False)


class _Power(_View):
    it_kw: Amount = 0.0
    facility_kw: Amount = 0.0
    sites: list[_Site] = Field(default_factory=list, max_length=100_000)  # plan schema 1 kept sites here


class _Qos(_View):
    name: Text
    priority: Count = 0
    max_wall: Optional[Count] = None
    max_jobs_per_user: Optional[Count] = None
    max_gpus_per_user: Optional[Count] = None


class _Slurm(_View):
    """A Slurm cluster's control plane (plan schema 3; ``name`` and ``sites`` from one-site clusters
    written before clusters spanned sites fall back to ``site``)."""

    site: Text
    name: Optional[Text] = None
    sites: list[Text] = Field(default_factory=list, max_length=100_000)
    controllers: list[Text] = Field(max_length=2)
    accounting: Text
    accounting_host: Text
    accounting_port: Count
    default_partition: Text
    login: list[Text] = Field(default_factory=list, max_length=16)
    qos: list[_Qos] = Field(default_factory=list, max_length=64)
    fairshare: Optional[dict[Text, Union[Count, dict[Text, Count]]]] = None
    federation: Optional[Text] = None


class PlanView(_View):
    """The part of ``plan.json`` that diff reads."""

    name: Text
    pools: list[_Pool] = Field(max_length=100_000)
    totals: dict[Text, Union[Count, Amount]]
    power: _Power
    sites: list[_Site] = Field(default_factory=list, max_length=100_000)
    software: dict[Text, Version]
    fabrics: list[_Fabric] = Field(default_factory=list, max_length=100_000)
    slurm: list[_Slurm] = Field(default_factory=list, max_length=100_000)


def load(path: Path | str) -> dict:
    """A plan: a plan JSON file (``aifactory plan -f json``, a rendered ``plan.json``) checked
    against :class:`PlanView`, or a factory spec of any file name, planned here. A bad file is a
    one-line error naming the file and the field; a bad spec raises ``SpecError``."""
    path = Path(path)
    if path.suffix.lower() != ".json" and not is_plan_file(path):
        return _spec_plan(path)
    try:
        data = read_json(path)
    except ReadError as exc:
        raise AifactoryError(f"{path}: not a plan JSON file ({exc.reason})") from None
    if not isinstance(data, dict):
        raise AifactoryError(f"{path}: not a plan JSON file (make one with `aifactory plan FILE --format json`)")
    try:
        view = PlanView.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = format_path(err["loc"])
        message = ("must be one line without control characters" if err["type"] == "string_pattern_mismatch"
                   else err["msg"].replace("Input should be", "must be"))
        missing = " (make one with `aifactory plan FILE --format json`)" if err["type"] == "missing" else ""
        raise AifactoryError(f"{path}: not a plan JSON file: {where}: {message}{missing}") from None
    return view.model_dump()


def _spec_plan(path: Path) -> dict:
    from . import plan as planning

    data = planning.load(path).to_dict()
    data.pop("warnings", None)
    return PlanView.model_validate(data).model_dump()


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _delta(old: float, new: float) -> str:
    d = new - old
    return f"{_num(old)} -> {_num(new)} ({'+' if d >= 0 else '-'}{_num(abs(d))})"


def compare(old: dict, new: dict) -> PlanDiff:
    out = PlanDiff(old.get("name", "?"), new.get("name", "?"))
    lines = out.lines
    if old["name"] != new["name"]:
        lines.append(f"factory renamed: {old['name']} -> {new['name']}")
    for key in ("nodes", "gpus", "racks", "nvlink_domains", "switches", "cables"):
        a, b = old["totals"].get(key, 0), new["totals"].get(key, 0)
        if a != b:
            out.totals.append((key, a, b))
    for key in ("it_kw", "facility_kw"):
        a, b = old["power"].get(key, 0.0), new["power"].get(key, 0.0)
        if a != b:
            out.totals.append((key, a, b))

    old_pools = {p["name"]: p for p in old["pools"]}
    new_pools = {p["name"]: p for p in new["pools"]}
    for name in sorted(new_pools.keys() - old_pools.keys()):
        p = new_pools[name]
        lines.append(f"pool {name} added: {p['nodes']:,} x {p['system']} ({p['gpus']:,} {p['gpu']} GPUs) "
                     f"on {p['provider']} at {p['site']}, {_num(p['it_kw'])} kW")
    for name in sorted(old_pools.keys() - new_pools.keys()):
        p = old_pools[name]
        lines.append(f"pool {name} removed: {p['nodes']:,} x {p['system']} ({p['gpus']:,} GPUs), "
                     f"{_num(p['it_kw'])} kW")
    for name in sorted(old_pools.keys() & new_pools.keys()):
        a, b = old_pools[name], new_pools[name]
        for key in ("nodes", "gpus", "racks", "it_kw"):
            if a.get(key) != b.get(key):
                unit = " kW" if key == "it_kw" else ""
                label = "power" if key == "it_kw" else key
                lines.append(f"pool {name}: {label} {_delta(a.get(key, 0), b.get(key, 0))}{unit}")
        for key in POOL_FIELDS:
            if a.get(key) != b.get(key):
                lines.append(f"pool {name}: {key} {a.get(key)} -> {b.get(key)}")

    old_f = {f["name"]: f for f in old.get("fabrics", [])}
    new_f = {f["name"]: f for f in new.get("fabrics", [])}
    for name in sorted(new_f.keys() - old_f.keys()):
        f = new_f[name]
        lines.append(f"fabric {name} added: {f['type']}, {sum(f['switches_by_tier']):,} switches, {f['cables']:,} cables")
    for name in sorted(old_f.keys() - new_f.keys()):
        lines.append(f"fabric {name} removed")
    for name in sorted(old_f.keys() & new_f.keys()):
        a, b = old_f[name], new_f[name]
        for key in ("type", "switch", "site"):
            if a.get(key) != b.get(key):
                lines.append(f"fabric {name}: {key} {a.get(key)} -> {b.get(key)}")
        sa, sb = sum(a["switches_by_tier"]), sum(b["switches_by_tier"])
        if sa != sb or a["tiers"] != b["tiers"]:
            lines.append(f"fabric {name}: switches {_delta(sa, sb)}, tiers {a['tiers']} -> {b['tiers']}")
        if a["cables"] != b["cables"]:
            lines.append(f"fabric {name}: cables {_delta(a['cables'], b['cables'])}")

    old_s = {s["name"]: s for s in old.get("sites") or old["power"].get("sites", [])}
    new_s = {s["name"]: s for s in new.get("sites") or new["power"].get("sites", [])}
    for name in sorted(old_s.keys() & new_s.keys()):
        a, b = old_s[name], new_s[name]
        if a.get("facility_kw") != b.get("facility_kw"):  # either may be absent in a hand-made plan file
            lines.append(f"site {name}: facility power {_delta(a.get('facility_kw') or 0, b.get('facility_kw') or 0)} kW")
        if a.get("headroom_kw") != b.get("headroom_kw") and b.get("headroom_kw") is not None:
            lines.append(f"site {name}: headroom {_num(a.get('headroom_kw') or 0)} -> {_num(b['headroom_kw'])} kW")

    _slurm(old.get("slurm", []), new.get("slurm", []), lines)

    sa, sb = old["software"], new["software"]
    for key in sorted(set(sa) | set(sb)):
        if sa.get(key) != sb.get(key):
            lines.append(f"software {key}: {sa.get(key)} -> {sb.get(key)}")
    return out


def _names(items) -> str:
    return ", ".join(items) if items else "none"


def _slurm(old: list[dict], new: list[dict], lines: list[str]) -> None:
    """Control-plane changes: who runs slurmctld and slurmdbd, the sites a cluster spans, its login
    nodes, default partition, QoS, fair-share and federation."""
    def keyed(clusters):
        return {c.get("name") or c["site"]: {**c, "sites": c.get("sites") or [c["site"]]} for c in clusters}

    a_all, b_all = keyed(old), keyed(new)
    for name in sorted(b_all.keys() - a_all.keys()):
        c = b_all[name]
        lines.append(f"slurm cluster {name} added: sites {_names(c['sites'])}; controllers {_names(c['controllers'])}; "
                     f"accounting {c['accounting']} on {c['accounting_host']}")
    for name in sorted(a_all.keys() - b_all.keys()):
        lines.append(f"slurm cluster {name} removed")
    for name in sorted(a_all.keys() & b_all.keys()):
        a, b = a_all[name], b_all[name]
        for key in ("sites", "controllers", "login"):
            if a.get(key, []) != b.get(key, []):
                lines.append(f"slurm cluster {name}: {key} {_names(a.get(key, []))} -> {_names(b.get(key, []))}")
        where_a = f"{a['accounting']} on {a['accounting_host']}:{a['accounting_port']}"
        where_b = f"{b['accounting']} on {b['accounting_host']}:{b['accounting_port']}"
        if where_a != where_b:
            lines.append(f"slurm cluster {name}: accounting {where_a} -> {where_b}")
        for key in ("default_partition", "federation"):
            if a.get(key) != b.get(key):
                lines.append(f"slurm cluster {name}: {key.replace('_', ' ')} {a.get(key)} -> {b.get(key)}")
        if a.get("fairshare") != b.get("fairshare"):
            lines.append(f"slurm cluster {name}: fair-share {'on' if a.get('fairshare') else 'off'} -> "
                         f"{'on' if b.get('fairshare') else 'off'}"
                         + (" (settings changed)" if a.get("fairshare") and b.get("fairshare") else ""))
        qa = {q["name"]: q for q in a.get("qos", [])}
        qb = {q["name"]: q for q in b.get("qos", [])}
        for q in sorted(qb.keys() - qa.keys()):
            lines.append(f"slurm cluster {name}: QoS {q} added")
        for q in sorted(qa.keys() - qb.keys()):
            lines.append(f"slurm cluster {name}: QoS {q} removed")
        for q in sorted(qa.keys() & qb.keys()):
            changed = [f"{k} {qa[q].get(k)} -> {qb[q].get(k)}" for k in
                       ("priority", "max_wall", "max_jobs_per_user", "max_gpus_per_user") if qa[q].get(k) != qb[q].get(k)]
            if changed:
                lines.append(f"slurm cluster {name}: QoS {q}: {', '.join(changed)}")


def to_json(d: PlanDiff) -> str:
    import json

    return json.dumps({"old": d.old, "new": d.new, "changed": not d.empty,
                       "totals": [{"key": key, "old": a, "new": b, "change": b - a} for key, a, b in d.totals],
                       "changes": d.lines}, indent=2) + "\n"


def to_text(d: PlanDiff) -> str:
    if d.empty:
        return f"no changes between {d.old} and {d.new}\n"
    out = [f"{key}: {_delta(a, b)}" for key, a, b in d.totals]
    return "\n".join(out + d.lines) + "\n"


def to_markdown(d: PlanDiff) -> str:
    if d.empty:
        return f"### aifactory diff: `{d.new}`\n\nNo changes to the plan.\n"
    parts = [f"### aifactory diff: `{d.old}` -> `{d.new}`"]
    if d.totals:
        rows = ["| total | before | after | change |", "|---|---:|---:|---:|"]
        for key, a, b in d.totals:
            diff = b - a
            rows.append(f"| {key} | {_num(a)} | {_num(b)} | {'+' if diff >= 0 else '-'}{_num(abs(diff))} |")
        parts.append("\n".join(rows))
    if d.lines:
        parts.append("\n".join(f"- {line}" for line in d.lines))
    return "\n\n".join(parts) + "\n"
