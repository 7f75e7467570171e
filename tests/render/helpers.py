"""Shared helpers for the render tests: plan a stack or an inline spec and render it."""

from __future__ import annotations

from pathlib import Path

from aifactory import plan as planning
from aifactory import spec
from aifactory.render.deployment import build_files

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"

# A factory with a Kubernetes pool, which no example stack has.
K8S = """
name: k8s
sites: [{name: hall, power_mw: 1, pue: 1.3, rack_kw: 40}]
fabrics: [{name: ib, type: infiniband, switch: qm9700}]
pools:
  - {name: train, site: hall, provider: onprem, system: dgx-h100, nodes: 4, fabric: ib, scheduler: kubernetes}
"""


# A slurm: section for nvl72_spec(..., hgx=N): the controller on the HGX pool, an external slurmdbd
# on its own port, and the HGX pool as the default partition (not the first pool, the default's).
EXTERNAL_ACCOUNTING = """
slurm:
  clusters:
    - site: hall
      controller: {pool: hgx}
      accounting: {database: external, host: slurmdbd.example.com, port: 7031}
      default_partition: hgx
"""

# Login nodes, QoS and fair-share for nvl72_spec(..., hgx=N): what a cluster users share adds.
LOGIN_QOS_FAIRSHARE = """
slurm:
  clusters:
    - site: hall
      login: [{pool: hgx}]
      qos:
        - {name: high, priority: 100, max_wall: 12h, max_gpus_per_user: 64}
        - {name: debug, max_wall: 30m, max_jobs_per_user: 2}
      fairshare: {decay_half_life_days: 14, weights: {fairshare: 10000, age: 1000, qos: 5000, job_size: 100}}
"""


def planned(source: str | Path):
    loaded = spec.load(source) if isinstance(source, Path) else spec.load_string(source)
    return planning.build(loaded), loaded.factory


def rendered(source: str | Path) -> dict[str, str]:
    p, _ = planned(source)
    return build_files(p)


def expand(hostlist: str) -> list[str]:
    """Expand the hostlist forms the renderer writes (``a-[01-03,07],b``); tests only."""
    out, depth, start = [], 0, 0
    parts = []
    for i, ch in enumerate(hostlist + ","):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(hostlist[start:i])
            start = i + 1
    for part in filter(None, parts):
        if "[" not in part:
            out.append(part)
            continue
        prefix, body = part.split("[", 1)
        body, suffix = body.split("]", 1)
        for rng in body.split(","):
            lo, _, hi = rng.partition("-")
            hi = hi or lo
            out += [f"{prefix}{i:0{len(lo)}d}{suffix}" for i in range(int(lo), int(hi) + 1)]
    return out


def nvl72_spec(nodes: int, os_name: str, hgx: int = 0, hgx_fabric: str = "ib") -> str:
    """A GB200 NVL72 pool (18 trays of 4 GPUs per NVLink domain) on ``os_name`` (none when
    ``nodes`` is 0), and optionally an HGX H100 pool at the same site on ``hgx_fabric``."""
    pools = []
    if nodes:
        pools.append(f"{{name: rack, site: hall, provider: onprem, system: gb200-nvl72, nodes: {nodes}, fabric: ib}}")
    if hgx:
        pools.append(f"{{name: hgx, site: hall, provider: onprem, system: hgx-h100, nodes: {hgx}, "
                     f"fabric: {hgx_fabric}}}")
    return f"""
name: nvl
software: {{driver_branch: "580", cuda: "13.0", os: {os_name}}}
sites: [{{name: hall, power_mw: 20, pue: 1.15, rack_kw: 140}}]
fabrics: [{{name: ib, type: infiniband, switch: qm9700}}, {{name: eth, type: ethernet, switch: sn5600}}]
pools: [{", ".join(pools)}]
"""
