"""Target 1: a 10 GW factory plans in under 1 s including interpreter start, and planning
time is flat from a 2-node lab to 10 GW (ratio 10 GW / lab <= 1.5)."""

from __future__ import annotations

from .harness import REPO, Result, aifactory, time_command


def run() -> list[Result]:
    lab = time_command(aifactory("plan", str(REPO / "stacks/lab/factory.yaml"), "--format", "json"))
    gw = time_command(aifactory("plan", str(REPO / "stacks/campus-10gw/factory.yaml"), "--format", "json"))
    return [
        Result("plan: 2-node lab (process wall time)", lab, "s", "-", None),
        Result("plan: 10 GW campus (process wall time)", gw, "s", "< 1 s", gw < 1.0),
        Result("plan: ratio 10 GW / lab", gw / lab, "x", "<= 1.5", gw / lab <= 1.5),
    ]
