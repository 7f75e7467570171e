"""The catalog: versioned flat CSV tables (``data/v1``) with typed accessors.

Every table has one schema, declared here as a frozen dataclass; the loader converts each
cell by the field's annotation and refuses rows that do not parse. Loading happens once
per process (the tables are small) and lookups are dictionary hits.
"""

from __future__ import annotations

import csv
import difflib
import types
import typing
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from typing import Optional

SCHEMA_VERSION = "v1"


class CatalogError(Exception):
    """A catalog table is malformed (a packaging defect, not a user error)."""


@dataclass(frozen=True)
class Gpu:
    id: str
    name: str
    vendor: str
    architecture: str
    compute_capability: Optional[str]
    memory_gb: int
    tdp_w: int
    nvlink_gbytes_s: int
    open_modules_required: bool
    source: str


@dataclass(frozen=True)
class Architecture:
    architecture: str
    vendor: str
    first_cuda: Optional[str]
    min_driver: Optional[str]
    source: str


@dataclass(frozen=True)
class CudaRelease:
    cuda: str
    min_driver: str
    compat_min_driver: str
    source: str


@dataclass(frozen=True)
class DriverBranch:
    branch: str
    kind: str  # LTSB | PB | NFB
    status: str
    eol: Optional[str]
    latest: Optional[str]
    default_cuda: Optional[str]
    fabric_manager_package_versioned: bool
    source: str


@dataclass(frozen=True)
class DcgmRelease:
    dcgm_major: int
    cuda_major: int
    package: str
    service: str
    min_driver: str
    below_driver: Optional[str]
    source: str


@dataclass(frozen=True)
class NcclRelease:
    cuda_major: int
    version: str
    cuda_build: str
    source: str


@dataclass(frozen=True)
class Switch:
    id: str
    name: str
    vendor: str
    fabric: str
    ports: int
    port_gbps: int
    rack_units: int
    power_w: int
    source: str


@dataclass(frozen=True)
class OnpremSystem:
    id: str
    name: str
    gpu: str
    gpus_per_node: int
    nvlink_domain_gpus: int
    node_kw: float
    rack_units: int
    nodes_per_rack: Optional[int]
    nvswitch: bool
    fabric_manager: bool
    nvlsm: bool
    imex: bool
    cpu_arch: str
    compute_nics: int
    nic_gbps: int
    source: str


@dataclass(frozen=True)
class InstanceType:
    id: str
    provider: str
    gpu: str
    gpus_per_node: int
    nvlink_domain_gpus: int
    node_kw: float
    nvswitch: bool
    fabric_manager: bool
    nvlsm: bool
    imex: bool
    cpu_arch: str
    fabric: str
    fabric_nics: int
    nic_gbps: int
    mtu: Optional[int]
    source: str


@dataclass(frozen=True)
class System:
    """What the planner needs of a node type, whether a bare-metal system or a cloud instance."""

    id: str
    provider: str  # "onprem" or a cloud provider
    gpu: Gpu
    gpus_per_node: int
    nvlink_domain_gpus: int  # 0 when the GPUs share no NVLink domain
    node_kw: float
    rack_units: int  # 0 for cloud instances
    nodes_per_rack: Optional[int]  # fixed for rack-scale systems (NVL72), else None
    nvswitch: bool
    fabric_manager: bool
    nvlsm: bool
    imex: bool
    cpu_arch: str
    compute_nics: int
    nic_gbps: int
    fabrics: tuple[str, ...]  # fabric types this node can join
    mtu: Optional[int]
    source: str

    @property
    def rack_scale(self) -> bool:
        return self.nodes_per_rack is not None


ONPREM_FABRICS = ("infiniband", "roce", "ethernet")
FABRIC_TYPES = ("infiniband", "roce", "ethernet", "efa", "gpudirect-tcpx", "gpudirect-tcpxo")
PROVIDERS = ("onprem", "lab", "aws", "gcp", "azure", "oci")


def _convert(value: str, annotation, where: str):
    target = annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value == "":
            return None
        target = args[0]
    if target is bool:
        if value not in ("true", "false"):
            raise CatalogError(f"{where}: expected true/false, got {value!r}")
        return value == "true"
    if target in (int, float):
        try:
            return target(value)
        except ValueError:
            raise CatalogError(f"{where}: expected {target.__name__}, got {value!r}") from None
    if value == "":
        raise CatalogError(f"{where}: empty value")
    return value


def _load_table(name: str, record: type) -> list:
    hints = typing.get_type_hints(record)
    names = [f.name for f in fields(record)]
    text = resources.files(__package__).joinpath("data", SCHEMA_VERSION, name).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames != names:
        raise CatalogError(f"{name}: columns {reader.fieldnames} do not match schema {names}")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        rows.append(record(**{k: _convert(row[k], hints[k], f"{name}:{lineno}: {k}") for k in names}))
    return rows


def version_key(version: str) -> tuple[int, ...]:
    """``"580.95.05"`` -> ``(580, 95, 5)``; compares driver and CUDA versions numerically."""
    return tuple(int(p) for p in version.split("."))


class Catalog:
    """Typed, indexed view of every table. Use :func:`load` to get the shared instance."""

    def __init__(self) -> None:
        self.gpus = {g.id: g for g in _load_table("gpus.csv", Gpu)}
        self.architectures = {a.architecture: a for a in _load_table("architectures.csv", Architecture)}
        self.cuda = {c.cuda: c for c in _load_table("cuda.csv", CudaRelease)}
        self.branches = {b.branch: b for b in _load_table("driver_branches.csv", DriverBranch)}
        self.dcgm = _load_table("dcgm.csv", DcgmRelease)
        # Every build, oldest CUDA first: the lock takes, per locked CUDA minor, the newest at or below it.
        self.nccl = sorted(_load_table("nccl.csv", NcclRelease), key=lambda n: version_key(n.cuda_build))
        self.switches = {s.id: s for s in _load_table("switches.csv", Switch)}
        self.systems: dict[str, System] = {}
        for s in _load_table("systems.csv", OnpremSystem):
            self._add_system(s.id, "onprem", s, s.rack_units, s.nodes_per_rack, s.compute_nics, ONPREM_FABRICS, None)
        for t in _load_table("instance_types.csv", InstanceType):
            self._add_system(t.id, t.provider, t, 0, None, t.fabric_nics, (t.fabric, "ethernet"), t.mtu)
        self._check_references()

    def _add_system(self, id_, provider, row, rack_units, nodes_per_rack, nics, fabrics, mtu) -> None:
        if row.gpu not in self.gpus:
            raise CatalogError(f"system {id_}: unknown gpu {row.gpu!r}")
        self.systems[id_] = System(
            id=id_, provider=provider, gpu=self.gpus[row.gpu], gpus_per_node=row.gpus_per_node,
            nvlink_domain_gpus=row.nvlink_domain_gpus, node_kw=row.node_kw, rack_units=rack_units,
            nodes_per_rack=nodes_per_rack, nvswitch=row.nvswitch, fabric_manager=row.fabric_manager,
            nvlsm=row.nvlsm, imex=row.imex, cpu_arch=row.cpu_arch, compute_nics=nics, nic_gbps=row.nic_gbps,
            fabrics=tuple(dict.fromkeys(fabrics)), mtu=mtu, source=row.source,
        )

    def _check_references(self) -> None:
        for g in self.gpus.values():
            if g.architecture not in self.architectures:
                raise CatalogError(f"gpu {g.id}: unknown architecture {g.architecture!r}")
        for b in self.branches.values():
            if b.latest and b.latest.split(".")[0] != b.branch:
                raise CatalogError(f"driver branch {b.branch}: latest {b.latest} is not on the branch")

    # -- lookups -------------------------------------------------------------------------
    def system(self, system_id: str) -> System | None:
        return self.systems.get(system_id)

    def suggest(self, table: typing.Iterable[str], wanted: str) -> str | None:
        """The closest known id, for "did you mean" hints."""
        match = difflib.get_close_matches(wanted, list(table), n=1, cutoff=0.5)
        if not match:
            lowered = {k.lower(): k for k in table}
            match = difflib.get_close_matches(wanted.lower(), list(lowered), n=1, cutoff=0.5)
            match = [lowered[m] for m in match]
        return match[0] if match else None

    def cuda_release(self, cuda: str) -> CudaRelease | None:
        return self.cuda.get(cuda)

    def nccl_for(self, cuda: str) -> NcclRelease | None:
        """The libnccl2 build for a locked CUDA ``X.Y``: the newest build for CUDA X.Z with Z <= Y.

        A build for a newer minor statically links a newer runtime than the locked toolkit and
        driver run natively; None when the catalog has no build old enough."""
        major = int(cuda.split(".")[0])
        fits = [n for n in self.nccl if n.cuda_major == major and version_key(n.cuda_build) <= version_key(cuda)]
        return fits[-1] if fits else None

    def dcgm_for(self, dcgm_major: int, cuda_major: int) -> DcgmRelease | None:
        for row in self.dcgm:
            if row.dcgm_major == dcgm_major and row.cuda_major == cuda_major:
                return row
        return None


@lru_cache(maxsize=1)
def load() -> Catalog:
    return Catalog()
