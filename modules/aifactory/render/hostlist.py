"""Slurm hostlist expressions for a pool's nodes, without listing the nodes one by one.

Names agree with the Ansible inventory because they come from the plan's one naming rule
(:meth:`aifactory.plan.model.PoolPlan.host_names` / ``name_width``): generated pools are
``<pool>-0001`` …, wider when a pool has 10,000+ nodes; declared bare-metal hosts keep their
names. A generated pool is held as a numeric range, so slicing it into scalable units or
NVLink domains and writing ``gpu-[0033-0064]`` costs the same for 10 nodes or 1,000,000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..plan.model import PoolPlan

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True)
class Segment:
    """Nodes ``start`` … ``end - 1`` (0-based) of one pool."""

    nodes: "PoolNodes"
    start: int
    end: int

    def hostlist(self) -> str:
        return self.nodes.hostlist(self.start, self.end)


@dataclass(frozen=True)
class PoolNodes:
    """The node names of one pool: a generated range or the declared hosts."""

    pool: str
    count: int
    width: int
    declared: tuple[str, ...] = ()

    @classmethod
    def of(cls, pool: PoolPlan) -> "PoolNodes":
        if pool.hosts:
            names = tuple(pool.host_names())
            return cls(pool.name, len(names), 0, names)
        return cls(pool.name, pool.nodes, pool.name_width)

    def name(self, index: int) -> str:
        if self.declared:
            return self.declared[index]
        return f"{self.pool}-{index + 1:0{self.width}d}"

    def hostlist(self, start: int = 0, end: int | None = None) -> str:
        end = self.count if end is None else end
        if start >= end:
            return ""
        if self.declared:
            return compress(self.declared[start:end])
        if end - start == 1:
            return self.name(start)
        w = self.width
        return f"{self.pool}-[{start + 1:0{w}d}-{end:0{w}d}]"


def compress(names: Iterable[str]) -> str:
    """``["n1", "n2", "n3", "x"]`` -> ``"n[1-3],x"``: runs of consecutive, equally wide numbers."""
    out: list[str] = []
    run: list = []  # [prefix, width, first, last]

    def flush() -> None:
        if not run:
            return
        prefix, width, first, last = run
        if first == last:
            out.append(f"{prefix}{first:0{width}d}")
        else:
            out.append(f"{prefix}[{first:0{width}d}-{last:0{width}d}]")
        run.clear()

    for name in names:
        m = _TRAILING_NUMBER.match(name)
        if not m:
            flush()
            out.append(name)
            continue
        prefix, digits = m.group(1), m.group(2)
        number, width = int(digits), len(digits)
        if run and run[0] == prefix and run[1] == width and number == run[3] + 1:
            run[3] = number
            continue
        flush()
        run.extend([prefix, width, number, number])
    flush()
    return ",".join(out)


def join(segments: Sequence[Segment]) -> str:
    return ",".join(s for s in (seg.hostlist() for seg in segments) if s)


def slices(pools: Sequence[PoolNodes], size: int) -> list[list[Segment]]:
    """Consecutive groups of ``size`` nodes over the pools in order (the last may be short)."""
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    room = size
    for nodes in pools:
        i = 0
        while i < nodes.count:
            take = min(room, nodes.count - i)
            current.append(Segment(nodes, i, i + take))
            i += take
            room -= take
            if room == 0:
                groups.append(current)
                current, room = [], size
    if current:
        groups.append(current)
    return groups
