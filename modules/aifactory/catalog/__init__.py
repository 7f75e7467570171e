"""The catalog: versioned flat CSV tables (``data/v1``) with typed accessors, and the one loader.

Every table has one schema, declared here as a frozen dataclass and listed in :data:`TABLES`
with the columns that key a row. The loader converts each cell by the field's annotation,
holds every text cell to a shape (:class:`Cell`) and refuses rows that do not parse, naming the
file and line. Every row carries its ``source``.

The packaged tables can be extended without editing the package, by an *overlay*: rows that add
to a table or replace the row with the same key, checked against the same schema. An overlay
comes from the folder named by ``AIFACTORY_CATALOG`` (CSV files named as the tables, same
columns) or from ``catalog:`` in a factory spec; the plan records the overlay it was made with,
so a plan file renders the same wherever it is read. Loading happens once per overlay and
lookups are dictionary hits.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import difflib
import functools
import os
import re
import types
import typing
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Iterator, Mapping, Optional, Sequence

from .. import providers
from ..errors import AifactoryError, format_path

SCHEMA_VERSION = "v1"
ENV_OVERLAY = "AIFACTORY_CATALOG"


class CatalogError(AifactoryError):
    """A catalog table is malformed. For the packaged tables a packaging defect; for an overlay a
    user error, with the file (or spec path) and line in the message. ``problem`` is the message
    without its place, ``column`` the column it is about (when it is about one) and ``path`` the
    place in a spec's ``catalog:`` mapping."""

    def __init__(self, message: str, problem: str | None = None, column: str | None = None,
                 path: tuple = ()) -> None:
        super().__init__(message)
        self.problem = problem or message
        self.column = column
        self.path = path


@dataclass(frozen=True)
class Cell:
    """The shape every text value of a column must have, in the packaged tables and in any
    overlay alike: catalog text reaches package managers, config files and shell profiles."""

    pattern: str
    what: str

    def check(self, value: str) -> Optional[str]:
        return None if re.fullmatch(self.pattern, value) else f"must be {self.what}"


# Ids, names of packages and services, versions and dates: a word that can never read as an option.
WORD = Cell(r"[A-Za-z0-9][A-Za-z0-9._+/:~-]{0,63}", "a word of letters, digits and ._+/:~- (at most 64)")
# One line of prose for people (names, help texts, sources): no control characters, no braces,
# no shell or template metacharacters.
PROSE = Cell(r"[^\x00-\x1f\x7f{}$`\\]{1,400}", "one line of text without braces, '$', '`' or '\\' (at most 400)")
ENV_NAME = Cell(r"[A-Z][A-Z0-9_]{0,63}", "an environment variable name in capitals")
ENV_VALUE = Cell(r"[A-Za-z0-9^=,._/:+-]{1,256}", "a value of letters, digits and ^=,._/:+-")

Prose = Annotated[str, PROSE]
EnvName = Annotated[str, ENV_NAME]
EnvValue = Annotated[str, ENV_VALUE]


@dataclass(frozen=True)
class Gpu:
    id: str
    name: Prose
    vendor: str
    architecture: str
    compute_capability: Optional[str]
    memory_gb: int
    tdp_w: int
    nvlink_gbytes_s: int
    open_modules_required: bool
    first_cuda: Optional[str]  # when the GPU needs a newer CUDA than its architecture's first (B300: sm_103)
    source: Prose


@dataclass(frozen=True)
class Architecture:
    architecture: str
    vendor: str
    first_cuda: Optional[str]
    min_driver: Optional[str]
    source: Prose


@dataclass(frozen=True)
class CudaRelease:
    cuda: str
    min_driver: str
    compat_min_driver: str
    source: Prose


@dataclass(frozen=True)
class DriverBranch:
    branch: str
    kind: str  # LTSB | PB | NFB
    status: str
    eol: Optional[str]
    latest: Optional[str]
    default_cuda: Optional[str]
    source: Prose


@dataclass(frozen=True)
class DcgmRelease:
    dcgm_major: int
    cuda_major: int
    package: str
    service: str
    min_driver: str
    below_driver: Optional[str]
    source: Prose


@dataclass(frozen=True)
class NcclRelease:
    cuda_major: int
    version: str
    cuda_build: str
    source: Prose


@dataclass(frozen=True)
class GdrcopyRelease:
    """One GDRCopy release as NVIDIA publishes it in its redist folder for a CUDA major
    (``CUDA <cuda_major>.0/<os>/<arch>/``): plain package files, no repository. ``revision`` is the
    package revision of every file of the release (``2.6-1``)."""

    version: str
    revision: int
    cuda_major: int
    released: str
    source: Prose


@dataclass(frozen=True)
class Switch:
    id: str
    name: Prose
    vendor: str
    fabric: str
    ports: int
    port_gbps: int
    rack_units: int
    power_w: int
    source: Prose


@dataclass(frozen=True)
class OnpremSystem:
    id: str
    name: Prose
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
    source: Prose


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
    source: Prose


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


@dataclass(frozen=True)
class NodeHardware:
    """Host CPU topology and memory of a system, for Slurm's node lines."""

    system: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_gib: int
    source: Prose

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket

    @property
    def cpus(self) -> int:
        return self.cores * self.threads_per_core


NCCL_SCOPES = ("fabric", "provider", "provider-fabric", "system")  # lowest precedence first


@dataclass(frozen=True)
class NcclVar:
    """One NCCL (or libfabric) variable for a scope: a fabric type, a provider, a provider and
    fabric (``gcp/roce``) or a system; a later scope replaces a variable set by an earlier one."""

    scope: str
    key: str
    variable: EnvName
    value: EnvValue
    source: Prose


@dataclass(frozen=True)
class DcgmCounter:
    """One dcgm-exporter counter; ``requires`` is ``all``, ``nvlink`` or ``row_remap``."""

    field: EnvName
    type: str
    requires: str
    help: Prose
    source: Prose


# The packages table: one NVIDIA package name per component, OS family and range of driver
# branches. A name is a template: only these placeholders, filled from the software lock.
PACKAGE_PLACEHOLDERS = ("branch", "cuda_major", "cuda_minor")
# driver/driver_open are the metapackages versions.lock.json records; driver_utils (nvidia-smi),
# driver_persistenced (the persistence daemon and its unit), driver_libs (libcuda and, on Ubuntu,
# libnvidia-ml) and driver_kernel/driver_kernel_open (the DKMS modules) are the headless driver the
# nvidia_driver role installs, pins and holds.
PACKAGE_COMPONENTS = ("driver", "driver_open", "driver_stream", "driver_open_stream", "driver_utils",
                      "driver_persistenced", "driver_libs", "driver_kernel", "driver_kernel_open",
                      "fabric_manager", "nscq", "imex", "nvlsm", "cuda_toolkit", "nccl", "nccl_dev")
# debian rows serve Debian and Ubuntu; an ubuntu row wins over them on Ubuntu, where NVIDIA's
# repository names the driver its own way (software.package_keys).
PACKAGE_FAMILIES = ("debian", "ubuntu", "redhat")
# How a version is pinned: `=` apt (name=<version>*), `-` dnf (name-<version>), `module` a dnf
# module stream (enabled, not a package: it has no version of its own).
PACKAGE_PINS = {"=": ("debian", "ubuntu"), "-": ("redhat",), "module": ("redhat",)}
_PLACEHOLDER = r"\{(?:" + "|".join(PACKAGE_PLACEHOLDERS) + r")\}"
PACKAGE_TEMPLATE = Cell(rf"(?:[a-z0-9]|{_PLACEHOLDER})(?:[a-z0-9.+:-]|{_PLACEHOLDER}){{0,63}}",
                        "a package name of a-z, 0-9 and .+:- with no placeholder but "
                        + ", ".join("{" + p + "}" for p in PACKAGE_PLACEHOLDERS))
PACKAGE_COMPONENT = Cell("|".join(PACKAGE_COMPONENTS), "one of " + ", ".join(PACKAGE_COMPONENTS))
PACKAGE_FAMILY = Cell("|".join(PACKAGE_FAMILIES), "one of " + ", ".join(PACKAGE_FAMILIES))
PACKAGE_PIN = Cell("=|-|module", "=, - or module")


@dataclass(frozen=True)
class PackageName:
    """The name of one NVIDIA package (or dnf module stream) for an OS family over a range of
    driver branches, both ends inclusive; an empty end is open. Ranges of one component and
    family never overlap, so a lookup finds at most one row."""

    component: Annotated[str, PACKAGE_COMPONENT]
    family: Annotated[str, PACKAGE_FAMILY]
    first_branch: Optional[int]
    last_branch: Optional[int]
    name: Annotated[str, PACKAGE_TEMPLATE]
    version_pin: Annotated[str, PACKAGE_PIN]
    source: Prose

    def covers(self, branch: int) -> bool:
        return (self.first_branch is None or self.first_branch <= branch) and (
            self.last_branch is None or branch <= self.last_branch)


# A MIG GPU instance profile as nvidia-smi names it: compute slices, memory in GB, and "+me" for
# the variant with media extensions (NVIDIA MIG User Guide, "Supported MIG Profiles").
MIG_PROFILE_PATTERN = r"[1-7]g\.[0-9]{1,4}gb(?:\+me)?"
MIG_PROFILE = Cell(MIG_PROFILE_PATTERN, "a MIG profile name such as 1g.10gb or 1g.10gb+me")
MIG_COMPUTE_SLICES = 7  # a GPU in MIG mode has 7 SM slices and 8 memory slices (MIG User Guide, "Concepts")
MIG_MEMORY_SLICES = 8


@dataclass(frozen=True)
class MigProfile:
    """One MIG GPU instance profile of a GPU: the compute (SM) slices of 7 and memory slices of 8
    one instance takes, and how many instances of it one GPU holds at most."""

    gpu: str
    profile: Annotated[str, MIG_PROFILE]
    compute_slices: int
    memory_slices: int
    max_instances: int
    source: Prose


ONPREM_FABRICS = ("infiniband", "roce", "ethernet")
FABRIC_TYPES = ("infiniband", "roce", "ethernet", "efa", "gpudirect-tcpx", "gpudirect-tcpxo")


@dataclass(frozen=True)
class NcclBusbw:
    """The share of a node's scale-out line rate (compute NICs x NIC speed, in GB/s) that a
    multi-node all_reduce must reach as nccl-tests bus bandwidth on one fabric type: the floor of
    the gpu_health multi-node check. nccl-tests defines bus bandwidth so that it compares with
    the hardware's peak, independently of the number of ranks (doc/PERFORMANCE.md); across nodes
    NCCL's rings leave each node through every compute NIC, so the peak is the node's line rate.
    A fabric type without a row has no floor, and the check is skipped."""

    fabric: Annotated[str, Cell("|".join(FABRIC_TYPES), "one of " + ", ".join(FABRIC_TYPES))]
    efficiency: float
    source: Prose


# The container runtime of Slurm nodes (Enroot and NVIDIA's Pyxis SPANK plugin): artefacts the pyxis role
# fetches from their publisher, each pinned by a digest. Enroot ships as package files per OS family
# and CPU architecture (Ansible's architecture fact); Pyxis is built on the node against its Slurm
# headers, from the source tree of one git commit (family ``source``, arch ``any``).
CONTAINER_RUNTIME_COMPONENTS = ("enroot", "enroot_caps", "pyxis")
CONTAINER_RUNTIME_FAMILIES = ("debian", "redhat", "source")
CONTAINER_RUNTIME_ARCHES = ("x86_64", "aarch64", "any")
# An https URL of a file or repository: no query, fragment, space, quote, brace or '$'.
URL = Cell(r"https://[A-Za-z0-9][A-Za-z0-9.-]{0,252}(?::[0-9]{1,5})?/[A-Za-z0-9._~/+%:@-]{0,400}",
           "an https URL of letters, digits and ._~/+%:@- without query or fragment")
SHA256 = Cell(r"[0-9a-f]{64}", "a sha256 digest, 64 lower-case hex digits")
GIT_COMMIT = Cell(r"[0-9a-f]{40}", "a git commit id, 40 lower-case hex digits")


def _choice(values: tuple[str, ...]) -> Cell:
    return Cell("|".join(re.escape(v) for v in values), "one of " + ", ".join(values))


@dataclass(frozen=True)
class ContainerRuntimeArtifact:
    """One artefact of the container runtime at one version: a package file for an OS family and CPU
    architecture, checked against ``sha256`` after download, or a source tree checked out at
    ``commit``. A digest the publisher does not state and that could not be computed from the file
    stays empty, and the role refuses to install that file until one is supplied."""

    component: Annotated[str, _choice(CONTAINER_RUNTIME_COMPONENTS)]
    version: str
    family: Annotated[str, _choice(CONTAINER_RUNTIME_FAMILIES)]
    arch: Annotated[str, _choice(CONTAINER_RUNTIME_ARCHES)]
    url: Annotated[str, URL]
    sha256: Annotated[Optional[str], SHA256]
    commit: Annotated[Optional[str], GIT_COMMIT]
    source: Prose


@dataclass(frozen=True)
class Table:
    """A catalog table: its file, its record and the columns that key a row (an overlay row with
    the key of a packaged row replaces it)."""

    name: str
    record: type
    key: tuple[str, ...]
    about: str

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    @property
    def columns(self) -> list[str]:
        return [f.name for f in fields(self.record)]

    def key_of(self, row) -> tuple:
        return tuple(getattr(row, k) for k in self.key)


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("gpus", Gpu, ("id",), "GPUs: memory, power, NVLink bandwidth, architecture"),
    Table("architectures", Architecture, ("architecture",), "GPU architectures: first CUDA and minimum driver"),
    Table("cuda", CudaRelease, ("cuda",), "CUDA releases and their minimum drivers"),
    Table("driver_branches", DriverBranch, ("branch",), "NVIDIA data center driver branches and their support"),
    Table("dcgm", DcgmRelease, ("dcgm_major", "cuda_major"), "DCGM packages per major and CUDA major"),
    Table("nccl", NcclRelease, ("cuda_build",), "libnccl2 builds per CUDA minor"),
    Table("gdrcopy", GdrcopyRelease, ("version", "cuda_major"), "GDRCopy releases in NVIDIA's redist folder per CUDA major"),
    Table("switches", Switch, ("id",), "fabric switches: ports, speed, power"),
    Table("systems", OnpremSystem, ("id",), "on-prem systems (DGX, HGX, NVL72)"),
    Table("instance_types", InstanceType, ("id",), "cloud GPU instance types"),
    Table("node_hardware", NodeHardware, ("system",), "host CPUs and memory per system, for Slurm"),
    Table("nccl_env", NcclVar, ("scope", "key", "variable"), "NCCL variables per fabric, provider and system"),
    Table("dcgm_counters", DcgmCounter, ("field",), "dcgm-exporter counters"),
    Table("packages", PackageName, ("component", "family", "first_branch"),
          "NVIDIA package names per component, OS family and driver branch range"),
    Table("mig_profiles", MigProfile, ("gpu", "profile"),
          "MIG profiles per GPU: compute and memory slices, instances per GPU"),
    Table("nccl_busbw", NcclBusbw, ("fabric",),
          "multi-node all_reduce bus bandwidth floor per fabric type, as a share of line rate"),
    Table("container_runtime", ContainerRuntimeArtifact, ("component", "version", "family", "arch"),
          "Enroot packages and the Pyxis source for Slurm containers, each with its digest"),
)}


def table(name: str) -> Table:
    """The table called ``name`` (``branches`` is accepted for ``driver_branches``)."""
    name = {"branches": "driver_branches"}.get(name, name)
    if name not in TABLES:
        raise CatalogError(f"unknown catalog table {name!r}; choose one of {', '.join(TABLES)}")
    return TABLES[name]


def cell_text(value) -> str:
    """A YAML scalar of an overlay in the spelling of a CSV cell (``true``, ``12``, empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise CatalogError("must be a single value (text, number or true/false)")


def _bad(where: str, problem: str) -> CatalogError:
    return CatalogError(f"{where}: {problem}", problem)


def _convert(value: str, annotation, where: str):
    target, shape = annotation, None
    if typing.get_origin(target) is Annotated:
        target, *extras = typing.get_args(target)
        shape = next((e for e in extras if isinstance(e, Cell)), None)
    origin = typing.get_origin(target)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(target) if a is not type(None)]
        if value == "":
            return None
        target = args[0]
    if target is bool:
        if value not in ("true", "false"):
            raise _bad(where, f"expected true/false, got {value[:40]!r}")
        return value == "true"
    if target in (int, float):
        try:
            number = target(value)
        except ValueError:
            raise _bad(where, f"expected {target.__name__}, got {value[:40]!r}") from None
        if number != number or number in (float("inf"), float("-inf")) or number < 0:
            raise _bad(where, f"expected a finite number of at least 0, got {value[:40]!r}")
        return number
    if value == "":
        raise _bad(where, "empty value")
    problem = (shape or WORD).check(value)
    if problem:
        raise _bad(where, problem)
    return value


def parse_row(tbl: Table, cells: Mapping[str, str], where: str):
    """One record of ``tbl`` from its cells as text; :class:`CatalogError` naming ``where`` and
    the column for the first cell that does not fit the schema."""
    hints = typing.get_type_hints(tbl.record, include_extras=True)
    unknown = sorted(set(cells) - set(tbl.columns))
    if unknown:
        problem = f"unknown column {unknown[0]!r} (columns: {', '.join(tbl.columns)})"
        raise CatalogError(f"{where}: {problem}", problem, unknown[0])
    missing = [c for c in tbl.columns if c not in cells]
    if missing:
        problem = f"missing column {missing[0]!r}"
        raise CatalogError(f"{where}: {problem}", problem)
    values = {}
    for k in tbl.columns:
        try:
            values[k] = _convert(cells[k], hints[k], k)
        except CatalogError as exc:
            raise CatalogError(f"{where}: {exc}", exc.problem, k) from None
    return tbl.record(**values)


def parse_csv(tbl: Table, text: str, file: str) -> list:
    """The rows of a CSV file holding table ``tbl`` (header = the schema's columns, in order)."""
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames != tbl.columns:
        raise CatalogError(f"{file}: columns {reader.fieldnames} do not match schema {tbl.columns}")
    rows = []
    for lineno, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise CatalogError(f"{file}:{lineno}: expected {len(tbl.columns)} cells")
        rows.append(parse_row(tbl, row, f"{file}:{lineno}"))
    return rows


@lru_cache(maxsize=None)
def packaged(name: str) -> tuple:
    """The rows of a packaged table, parsed once per process."""
    tbl = TABLES[name]
    text = resources.files(__package__).joinpath("data", SCHEMA_VERSION, tbl.file).read_text(encoding="utf-8")
    return tuple(parse_csv(tbl, text, f"catalog/data/{SCHEMA_VERSION}/{tbl.file}"))


# An overlay as data: ((table, ((column, text), ...)), ...) in order; hashable, so the catalog it
# makes is cached, and exactly what a plan records.
Overlay = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def overlay_rows(overlay: Overlay) -> dict[str, list]:
    """The overlay's rows per table, parsed against the schema."""
    out: dict[str, list] = {}
    for i, (name, cells) in enumerate(overlay):
        tbl = table(name)
        out.setdefault(tbl.name, []).append(parse_row(tbl, dict(cells), f"catalog overlay row {i + 1} ({tbl.name})"))
    return out


def overlay_from_spec(data: Mapping[str, Sequence[Mapping]]) -> Overlay:
    """The overlay of a spec's ``catalog:`` mapping (table -> list of rows), every row checked
    against its table's schema; :class:`CatalogError` with the ``path`` of the first bad cell,
    ``("catalog", table[, index[, column]])``."""
    def fail(path: tuple, problem: str, column: str | None = None):
        return CatalogError(f"{format_path(path)}: {problem}", problem, column, path)

    out = []
    for name, rows in data.items():
        try:
            tbl = table(name)
        except CatalogError as exc:
            raise fail(("catalog", name), str(exc)) from None
        for i, row in enumerate(rows):
            cells = {}
            for column, value in row.items():
                try:
                    cells[str(column)] = cell_text(value)
                except CatalogError as exc:
                    raise fail(("catalog", name, i, column), f"{column}: {exc}", str(column)) from None
            try:
                parse_row(tbl, cells, "")
            except CatalogError as exc:
                path = ("catalog", name, i) + ((exc.column,) if exc.column in row else ())
                raise fail(path, exc.problem, exc.column) from None
            out.append((tbl.name, tuple((c, cells[c]) for c in tbl.columns)))
    return tuple(out)


def overlay_from_folder(folder: Path) -> Overlay:
    """The overlay in ``folder``: a CSV file per table it extends, named and laid out as the
    packaged one (``systems.csv`` ...). Any other ``*.csv`` is an error, so a typo is not ignored."""
    from ..files import ReadError, read_text

    folder = Path(folder)
    if not folder.is_dir():
        raise CatalogError(f"{ENV_OVERLAY}={folder}: not a folder")
    out = []
    for path in sorted(folder.glob("*.csv")):
        tbl = TABLES.get(path.stem)
        if tbl is None:
            raise CatalogError(f"{path}: no catalog table {path.stem!r}; tables: {', '.join(TABLES)}")
        try:
            text = read_text(path, 16 << 20, "catalog overlay")
        except ReadError as exc:
            raise CatalogError(str(exc)) from None
        parse_csv(tbl, text, str(path))  # every row checked, with its line, before any is used
        out += [(tbl.name, tuple((c, cells[c]) for c in tbl.columns)) for cells in csv.DictReader(text.splitlines())]
    return tuple(out)


def version_key(version: str) -> tuple[int, ...]:
    """``"580.95.05"`` -> ``(580, 95, 5)``; compares driver and CUDA versions numerically."""
    return tuple(int(p) for p in version.split("."))


def check_package_ranges(rows: typing.Iterable[PackageName]) -> None:
    """Refuse a packages table whose lookup could be ambiguous or whose pins cannot work: two rows
    of one component and family whose branch ranges overlap, a range that ends before it starts,
    a pin that is not the family's (apt ``=`` for debian; dnf ``-`` or ``module`` for redhat), or
    ``module`` on anything but a module stream."""
    by_key: dict[tuple[str, str], list[PackageName]] = {}
    for r in rows:
        where = f"packages {r.component}/{r.family} from {r.first_branch or 'the first branch'}"
        if r.first_branch is not None and r.last_branch is not None and r.last_branch < r.first_branch:
            raise CatalogError(f"{where}: last_branch {r.last_branch} is before first_branch {r.first_branch}")
        if r.family not in PACKAGE_PINS[r.version_pin]:
            raise CatalogError(f"{where}: version_pin {r.version_pin!r} is not a {r.family} pin")
        if (r.version_pin == "module") != r.component.endswith("_stream"):
            raise CatalogError(f"{where}: version_pin module is for the *_stream components, and only it")
        by_key.setdefault((r.component, r.family), []).append(r)
    low, high = -1, 10**9
    for (component, family), group in by_key.items():
        group.sort(key=lambda r: low if r.first_branch is None else r.first_branch)
        for a, b in zip(group, group[1:]):
            a_end = high if a.last_branch is None else a.last_branch
            b_start = low if b.first_branch is None else b.first_branch
            if b_start <= a_end:
                raise CatalogError(
                    f"packages {component}/{family}: the rows for branches {a.first_branch or '*'}-"
                    f"{a.last_branch or '*'} ({a.name}) and {b.first_branch or '*'}-{b.last_branch or '*'} "
                    f"({b.name}) overlap; give each branch one row")


class Catalog:
    """Typed, indexed view of every table: the packaged rows, then the overlay's. Use
    :func:`load` to get the shared instance for an overlay."""

    def __init__(self, overlay: Overlay = ()) -> None:
        self.overlay = overlay
        extra = overlay_rows(overlay)
        self.rows: dict[str, tuple] = {}
        for name, tbl in TABLES.items():
            merged = {tbl.key_of(r): r for r in packaged(name)}
            for r in extra.get(name, ()):
                merged[tbl.key_of(r)] = r
            self.rows[name] = tuple(merged.values())
        self.gpus = {g.id: g for g in self.rows["gpus"]}
        self.architectures = {a.architecture: a for a in self.rows["architectures"]}
        self.cuda = {c.cuda: c for c in self.rows["cuda"]}
        self.branches = {b.branch: b for b in self.rows["driver_branches"]}
        self.dcgm = list(self.rows["dcgm"])
        # Every build, oldest CUDA first: the lock takes, per locked CUDA minor, the newest at or below it.
        self.nccl = sorted(self.rows["nccl"], key=lambda n: version_key(n.cuda_build))
        self.switches = {s.id: s for s in self.rows["switches"]}
        self.node_hardware = {h.system: h for h in self.rows["node_hardware"]}
        self.nccl_env = self.rows["nccl_env"]
        self.dcgm_counters = self.rows["dcgm_counters"]
        self.nccl_busbw = {b.fabric: b for b in self.rows["nccl_busbw"]}
        self.container_runtime = self.rows["container_runtime"]
        # gpu -> profile -> row; a GPU without rows has no MIG the catalog knows of.
        self.mig_profiles: dict[str, dict[str, MigProfile]] = {}
        for m in self.rows["mig_profiles"]:
            self.mig_profiles.setdefault(m.gpu, {})[m.profile] = m
        self.systems: dict[str, System] = {}
        for s in self.rows["systems"]:
            self._add_system(s.id, "onprem", s, s.rack_units, s.nodes_per_rack, s.compute_nics, ONPREM_FABRICS, None)
        for t in self.rows["instance_types"]:
            if t.id in self.systems:
                raise CatalogError(f"instance type {t.id}: the id is already an on-prem system")
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
        for s in self.systems.values():
            if providers.find(s.provider) is None:
                raise CatalogError(f"instance type {s.id}: unknown provider {s.provider!r}; "
                                   f"known: {', '.join(providers.names())}")
            if s.gpus_per_node < 1 or s.node_kw <= 0:
                raise CatalogError(f"system {s.id}: needs at least one GPU and a power draw above 0 kW")
        for v in self.nccl_env:
            if v.scope not in NCCL_SCOPES:
                raise CatalogError(f"nccl_env {v.variable}: unknown scope {v.scope!r}; scopes: {', '.join(NCCL_SCOPES)}")
        for c in self.dcgm_counters:
            if c.requires not in ("all", "nvlink", "row_remap") or c.type not in ("gauge", "counter"):
                raise CatalogError(f"dcgm_counters {c.field}: type must be gauge or counter and requires "
                                   "all, nvlink or row_remap")
        for b in self.nccl_busbw.values():
            if not 0 < b.efficiency <= 1:
                raise CatalogError(f"nccl_busbw {b.fabric}: efficiency must be above 0 and at most 1")
        check_package_ranges(self.rows["packages"])
        for r in self.container_runtime:
            where = f"container_runtime {r.component} {r.version} {r.family}/{r.arch}"
            source = r.family == "source"
            if source != (r.arch == "any") or source != (r.commit is not None):
                raise CatalogError(f"{where}: a source tree (family source) has arch any and a commit; a package "
                                   "file has an architecture and no commit")
            if not source and not r.url.endswith(".deb" if r.family == "debian" else ".rpm"):
                raise CatalogError(f"{where}: the url must name a .deb (debian) or .rpm (redhat) file")
        for m in self.rows["mig_profiles"]:
            where = f"mig_profiles {m.gpu}/{m.profile}"
            if m.gpu not in self.gpus:
                raise CatalogError(f"{where}: unknown gpu {m.gpu!r}")
            if (m.compute_slices != int(m.profile[0]) or not 1 <= m.memory_slices <= MIG_MEMORY_SLICES
                    or not 1 <= m.max_instances <= MIG_COMPUTE_SLICES):
                raise CatalogError(f"{where}: compute_slices must be the profile's leading number, memory_slices "
                                   f"1-{MIG_MEMORY_SLICES} and max_instances 1-{MIG_COMPUTE_SLICES}")

    def hardware_for(self, system: str) -> NodeHardware:
        """Sockets, cores and memory of ``system``; the ``slurm-hardware`` check makes sure a
        Slurm pool's system has a row before anything is rendered."""
        try:
            return self.node_hardware[system]
        except KeyError:
            raise CatalogError(f"system {system!r} has no row in the node_hardware table") from None

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

    def container_runtime_for(self, component: str, version: str) -> list[ContainerRuntimeArtifact]:
        """The artefacts of ``component`` at ``version``: its package files per OS family and
        architecture, or its source tree; empty when the catalog has none."""
        return [r for r in self.container_runtime if r.component == component and r.version == version]

    def dcgm_for(self, dcgm_major: int, cuda_major: int) -> DcgmRelease | None:
        for row in self.dcgm:
            if row.dcgm_major == dcgm_major and row.cuda_major == cuda_major:
                return row
        return None


_ACTIVE: contextvars.ContextVar[Optional[Overlay]] = contextvars.ContextVar("aifactory_catalog_overlay", default=None)


@lru_cache(maxsize=16)
def _catalog(overlay: Overlay) -> Catalog:
    return Catalog(overlay)


@lru_cache(maxsize=4)
def _env_overlay(folder: str) -> Overlay:
    return overlay_from_folder(Path(folder))


def env_overlay() -> Overlay:
    """The overlay in the folder named by ``AIFACTORY_CATALOG`` (none when it is unset)."""
    folder = os.environ.get(ENV_OVERLAY)
    return _env_overlay(folder) if folder else ()


def load(overlay: Overlay | None = None) -> Catalog:
    """The catalog for ``overlay``. Without one: the overlay in force (see :func:`using`), else
    the one ``AIFACTORY_CATALOG`` names, else the packaged tables alone."""
    if overlay is None:
        overlay = _ACTIVE.get()
    return _catalog(env_overlay() if overlay is None else overlay)


def with_plan_catalog(fn):
    """Decorate a function whose first argument is a plan: it runs with the plan's overlay in
    force, so every catalog lookup beneath it (:func:`load`) reads the rows the plan was made with."""
    @functools.wraps(fn)
    def wrapper(plan, *args, **kwargs):
        with using(plan.catalog_overlay):
            return fn(plan, *args, **kwargs)
    return wrapper


@contextlib.contextmanager
def using(overlay: Overlay) -> Iterator[Catalog]:
    """Make ``overlay`` the one :func:`load` returns inside the block: a plan made with an overlay
    is rendered, configured and deployed with the rows it was planned with, and nothing else."""
    token = _ACTIVE.set(tuple(overlay))
    try:
        yield load()
    finally:
        _ACTIVE.reset(token)
