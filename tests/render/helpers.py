"""Shared helpers for the render tests: plan a stack or an inline spec and render it."""

from __future__ import annotations

from pathlib import Path

from aifactory import plan as planning
from aifactory import spec
from aifactory.render.deployment import build_files

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"


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
