"""Slurm hostlist expressions for a pool's nodes, without listing the nodes one by one.

Names agree with the Ansible inventory because they come from the same functions
(:func:`aifactory.inventory.host_names` / ``host_range``): generated pools are
``<pool>-0001`` …, wider when a pool has 10,000+ nodes; declared bare-metal hosts keep their
names. A generated pool is held as a numeric range, so slicing it into scalable units or
NVLink domains and writing ``gpu-[0033-0064]`` costs the same for 10 nodes or 1,000,000.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..inventory import host_names
from ..plan.model import PoolPlan
from ..spec.models import Pool

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
    def of(cls, pool: PoolPlan, spec_pool: Pool | None) -> "PoolNodes":
        if spec_pool is not None and spec_pool.hosts:
            names = tuple(host_names(pool, spec_pool))
            return cls(pool.name, len(names), 0, names)
        # Same width rule as aifactory.inventory.host_range (checked by a test against it).
        return cls(pool.name, pool.nodes, max(4, len(str(pool.nodes))))

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
