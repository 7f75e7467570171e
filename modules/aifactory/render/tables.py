"""The small data tables the renderers read (``templates/*/*.csv``), typed and sourced.

They sit beside the templates that use them, not in the planning catalog, because only the
rendered configs need them: host CPU topology and memory for Slurm node lines, and the NCCL
variables each provider, fabric and system needs. Like the catalog, every row carries a source
and a row that does not parse is an error naming the file and line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from functools import lru_cache

from ..errors import AifactoryError
from ..resources import templates_dir

NCCL_SCOPES = ("fabric", "provider", "provider-fabric", "system")  # lowest precedence first


@dataclass(frozen=True)
class NodeHardware:
    system: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_gib: int
    source: str

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket

    @property
    def cpus(self) -> int:
        return self.cores * self.threads_per_core


@dataclass(frozen=True)
class NcclVar:
    scope: str
    key: str
    variable: str
    value: str
    source: str


@dataclass(frozen=True)
class DcgmCounter:
    field: str
    type: str
    requires: str
    help: str


def _read(rel: str, record: type) -> list:
    path = templates_dir() / rel
    names = [f.name for f in fields(record)]
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != names:
            raise AifactoryError(f"templates/{rel}: columns {reader.fieldnames} do not match {names}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            values = {}
            for f in fields(record):
                raw = row[f.name]
                if raw is None or raw == "":
                    raise AifactoryError(f"templates/{rel}:{lineno}: {f.name}: empty value")
                try:
                    values[f.name] = int(raw) if f.type in ("int", int) else raw
                except ValueError:
                    raise AifactoryError(f"templates/{rel}:{lineno}: {f.name}: expected a number, got {raw!r}") from None
            rows.append(record(**values))
    return rows


@lru_cache(maxsize=1)
def node_hardware() -> dict[str, NodeHardware]:
    return {r.system: r for r in _read("slurm/node_hardware.csv", NodeHardware)}


@lru_cache(maxsize=1)
def nccl_vars() -> tuple[NcclVar, ...]:
    rows = _read("nccl/nccl_env.csv", NcclVar)
    for r in rows:
        if r.scope not in NCCL_SCOPES:
            raise AifactoryError(f"templates/nccl/nccl_env.csv: {r.variable}: unknown scope {r.scope!r}")
    return tuple(rows)


@lru_cache(maxsize=1)
def dcgm_counters() -> tuple[DcgmCounter, ...]:
    return tuple(_read("dcgm/counters.csv", DcgmCounter))


def hardware_for(system: str) -> NodeHardware:
    try:
        return node_hardware()[system]
    except KeyError:
        raise AifactoryError(
            f"system {system!r} has no row in templates/slurm/node_hardware.csv "
            "(sockets, cores and memory are needed for the Slurm node lines)") from None
