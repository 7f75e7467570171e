"""The factory declaration as pydantic v2 models.

Unknown fields are refused (a typo must not silently fall back to a default). Every name
that later reaches a shell, a hostname, a template or a file path is held to a strict
pattern here, before anything is built from it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat,
                      StrictInt, StringConstraints)

from .. import providers
from ..catalog import FABRIC_TYPES, MIG_COMPUTE_SLICES, MIG_PROFILE_PATTERN, TABLES

from ..fields import (  # noqa: F401 - re-exported: the spec's public types
    CatalogId,
    Cidr,
    CudaVersion,
    DriverBranch,
    DriverVersion,
    HOSTNAME_PATTERN,
    Hostname,
    IpAddress,
    LooseStr,
    Mac,
    NAME_PATTERN,
    Name,
    NoBool,
    NodeOs,
    Nodes,
    PackageVersion,
    Prose,
    Region,
    ReservationId,
    TagKey,
    TagValue,
    Zone,
)


def _known_provider(value: str) -> str:
    if providers.find(value) is None:
        raise ValueError(f"unknown provider {value!r}; known: {', '.join(providers.names())}")
    return value


# aws, gcp, azure, oci, onprem, lab, or a provider a plugin registers (aifactory.providers).
ProviderName = Annotated[str, StringConstraints(pattern=f"^{providers.NAME_PATTERN}$"), AfterValidator(_known_provider)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# A GDRCopy release as NVIDIA numbers it (2.5.1, 2.6): it reaches file names and URLs of NVIDIA's
# redist folder and a dnf version lock. Which releases exist is the catalog's (table gdrcopy).
GdrcopyVersion = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,2}\.[0-9]{1,2}(\.[0-9]{1,2})?$")]


class Software(_Model):
    """The pinned NVIDIA stack. Leave fields unset to resolve them from the catalog."""

    driver_branch: Annotated[Optional[DriverBranch], LooseStr] = Field(None, description="Driver branch, e.g. '580'")
    driver: Annotated[Optional[DriverVersion], LooseStr] = Field(None, description="Exact driver version, e.g. '580.95.05'")
    cuda: Annotated[Optional[CudaVersion], LooseStr] = Field(None, description="CUDA toolkit major.minor, e.g. '13.0'")
    open_kernel_modules: Optional[bool] = Field(None, description="Open GPU kernel modules; required on Blackwell and GH200")
    fabric_manager: Annotated[Optional[DriverVersion], LooseStr] = Field(
        None, description="Fabric manager version; must equal the driver version")
    nvlsm: Optional[bool] = Field(None, description="NVLink subnet manager; required on HGX B200 and later")
    imex: Optional[bool] = Field(None, description="IMEX daemon; required on NVL72 compute trays")
    dcgm: Optional[Literal[3, 4]] = Field(None, description="DCGM major version")
    dcgm_package: Optional[str] = Field(None, pattern=r"^[a-z0-9][a-z0-9.+-]{0,63}$")
    nccl: Annotated[Optional[PackageVersion], LooseStr] = Field(None, description="libnccl2 version, e.g. '2.28.9-1'")
    gdrcopy: Annotated[Optional[GdrcopyVersion], LooseStr] = Field(
        None, description="GDRCopy release from NVIDIA's redist folder, e.g. '2.6'; unset: GDRCopy is not installed")
    os: NodeOs = "ubuntu-24.04"


class Site(_Model):
    name: Name
    power_mw: Annotated[Optional[float], NoBool] = Field(None, gt=0, le=100_000, description="Facility power budget in MW")
    pue: Annotated[float, NoBool] = Field(1.2, ge=1.0, le=3.0, description="Power usage effectiveness")
    rack_kw: Annotated[float, NoBool] = Field(40, gt=0, le=2_000, description="Power a rack position can take, kW")
    rack_units: Annotated[int, NoBool] = Field(42, ge=1, le=60, description="Usable rack units per rack")
    provider: Optional[ProviderName] = Field(None, description="Set for cloud regions", examples=list(providers.BUILTIN))
    region: Optional[Region] = None


class Fabric(_Model):
    name: Name
    type: Literal[FABRIC_TYPES]  # type: ignore[valid-type]
    switch: Optional[CatalogId] = Field(None, description="Catalog switch id, e.g. qm9700 (on-prem fabrics)")
    rail_optimized: bool = True
    su_nodes: Annotated[Optional[int], NoBool] = Field(None, ge=1, le=1024, description="Node slots per scalable unit; default radix/2")
    subnet_manager: Optional[Literal["ufm", "switch", "opensm"]] = None


class Host(_Model):
    """One bare-metal node: its boot MAC and its BMC."""

    name: Name
    mac: Mac
    bmc: Hostname
    ip: Optional[IpAddress] = None


# A MIG profile as nvidia-smi names it (1g.10gb, 3g.40gb, 1g.18gb+me): it reaches nvidia-smi's
# argv, a systemd unit and Slurm's Gres= lines. Which profiles a GPU has is the catalog's
# (mig_profiles), checked by `mig-profiles`.
MigProfileName = Annotated[str, StringConstraints(pattern=f"^{MIG_PROFILE_PATTERN}$")]
MigCount = Annotated[StrictInt, Field(ge=1, le=MIG_COMPUTE_SLICES)]


class Pool(_Model):
    name: Name
    site: Name
    provider: ProviderName = Field(description="aws, gcp, azure, oci, onprem, lab, or a plugin's provider",
                                   examples=list(providers.BUILTIN))
    system: CatalogId = Field(description="Catalog id: an on-prem system (dgx-h100) or an instance type (p5.48xlarge)")
    nodes: Nodes = Field(description="Node count, or 'fill' to use the site's remaining power")
    fabric: Optional[Name] = None
    region: Optional[Region] = None
    zones: list[Zone] = Field(default_factory=list)
    capacity: Literal["on-demand", "reservation", "capacity-block", "spot"] = "on-demand"
    reservation: Optional[ReservationId] = None
    scheduler: Literal["slurm", "kubernetes", "none"] = "slurm"
    hosts: list[Host] = Field(default_factory=list, description="Bare-metal hosts with MAC and BMC (on-prem)")
    mig: dict[MigProfileName, MigCount] = Field(
        default_factory=dict, max_length=MIG_COMPUTE_SLICES,
        description="MIG instances per GPU, applied to every GPU of the pool: profile -> count, "
                    "e.g. {'3g.40gb': 2}; `aifactory catalog mig_profiles` lists each GPU's profiles")


class Access(_Model):
    admin_cidrs: list[Cidr] = Field(default_factory=list, description="CIDRs allowed to reach SSH on admin hosts")
    ssh_user: Name = "aifactory"


class SlurmHost(_Model):
    """Where a Slurm daemon or login runs: the first node of a pool, or one declared host (give one)."""

    pool: Optional[Name] = Field(None, description="A Slurm pool at one of the cluster's sites: the daemon runs "
                                 "on its first node, declared or planned (<pool>-0001), so cloud pools can host it too")
    host: Optional[Name] = Field(None, description="A host declared under a Slurm pool of one of the cluster's "
                                 "sites (pools[].hosts[].name)")


# slurmdbd's own default DbdPort (slurmdbd.conf(5)); slurmctld's AccountingStoragePort default.
SLURMDBD_PORT = 6819


class SlurmAccounting(_Model):
    """Where slurmctld sends job records: slurmdbd on the primary controller (local), or a
    slurmdbd the site already runs (external)."""

    database: Literal["local", "external"] = Field(
        "local", description="local: slurmdbd and MariaDB on the primary controller (the slurm_accounting role); "
                             "external: an existing slurmdbd at host:port")
    host: Optional[Hostname] = Field(None, description="The external slurmdbd's host name or IPv4 address")
    port: Annotated[Optional[int], NoBool] = Field(None, ge=1, le=65535,
                                                  description=f"The external slurmdbd's port (default {SLURMDBD_PORT})")


# Slurm's job priority is a 32-bit unsigned integer: the weighted factors must add up to no more
# (https://slurm.schedmd.com/priority_multifactor.html, checked 2026-12-03).
PRIORITY_MAX = 2**32 - 1
QOS_PRIORITY_MAX = 2**31 - 1
MAX_LOGIN_NODES = 16
MAX_QOS = 64
# A QoS wall-clock limit with its unit: minutes, hours or days, up to a year. A bare number, or
# Slurm's own "days-hours:minutes:seconds", is refused: YAML 1.1 reads an unquoted 1:30:00 as the
# base-60 integer 5400, which a field of minutes would take without a word.
WALL_UNITS = {"m": 1, "h": 60, "d": 24 * 60}
WALL_MAX_MINUTES = 365 * 24 * 60


def _wall(value: str) -> str:
    if int(value[:-1]) * WALL_UNITS[value[-1]] > WALL_MAX_MINUTES:
        raise ValueError(f"{value} is longer than a year ({WALL_MAX_MINUTES} minutes)")
    return value


def _wall_text(value):
    if not isinstance(value, str):
        raise ValueError("must be a duration with its unit, such as 90m, 12h or 7d (YAML reads 1:30:00 as a number)")
    return value


WallTime = Annotated[str, BeforeValidator(_wall_text), StringConstraints(pattern=r"^[1-9][0-9]{0,5}[mhd]$"),
                     AfterValidator(_wall)]


def wall_minutes(value: str) -> int:
    """A :data:`WallTime` in minutes, the unit sacctmgr's MaxWall takes."""
    return int(value[:-1]) * WALL_UNITS[value[-1]]


class SlurmQos(_Model):
    """A quality of service that slurmdbd holds (``sacctmgr add qos``); jobs ask for it with ``--qos``."""

    name: Name = Field(description="The QoS name, e.g. high; 'normal' is the one Slurm creates, and may be set here")
    priority: Annotated[StrictInt, Field(ge=0, le=QOS_PRIORITY_MAX)] = Field(
        0, description="Priority; counts only with fairshare.weights.qos")
    max_wall: Optional[WallTime] = Field(None, description="Longest run time of a job: 90m, 12h or 7d")
    max_jobs_per_user: Optional[Annotated[StrictInt, Field(ge=1, le=1_000_000)]] = Field(
        None, description="Running jobs per user (MaxJobsPerUser)")
    max_gpus_per_user: Optional[Annotated[StrictInt, Field(ge=1, le=100_000_000)]] = Field(
        None, description="GPUs in use per user (MaxTRESPerUser=gres/gpu=N)")


PriorityWeight = Annotated[StrictInt, Field(ge=0, le=PRIORITY_MAX)]


class SlurmPriorityWeights(_Model):
    """The multifactor weights (PriorityWeight*): what each factor, from 0 to 1, is worth."""

    fairshare: PriorityWeight = Field(10_000, description="Under-served accounts first")
    age: PriorityWeight = Field(1_000, description="Waiting jobs first (grows up to PriorityMaxAge, 7 days)")
    qos: PriorityWeight = Field(10_000, description="Higher QoS priority first")
    job_size: PriorityWeight = Field(0, description="Larger jobs first; 0 leaves job size out")


class SlurmFairshare(_Model):
    """Fair-share scheduling: priority/multifactor, with usage decaying over a half-life."""

    enabled: StrictBool = Field(True, description="false keeps FIFO order with backfill (Slurm's basic priority)")
    decay_half_life_days: Annotated[StrictInt, Field(ge=1, le=365)] = Field(
        7, description="Past usage counts half after this many days (PriorityDecayHalfLife)")
    weights: SlurmPriorityWeights = Field(default_factory=SlurmPriorityWeights)


class SlurmCluster(_Model):
    """One Slurm cluster: the sites whose Slurm pools it schedules (a partition per pool), its
    controllers, login nodes, accounting, QoS and fair-share. Sites that no entry lists get a
    cluster from ``slurm.layout``."""

    name: Optional[Name] = Field(None, description="The cluster's name (inventory groups, rendered folder, "
                                 "ClusterName <factory>-<name>); default the site's; required with several sites")
    site: Optional[Name] = Field(None, description="The one site of a cluster; the same as sites: [site]")
    sites: Optional[list[Name]] = Field(
        None, min_length=1, max_length=1000,
        description="The sites one cluster spans, across providers too: one controller, a partition per pool")
    controller: Optional[SlurmHost] = Field(
        None, description="slurmctld's host; default the first node of the cluster's first Slurm pool")
    backup: Optional[SlurmHost] = Field(
        None, description="A backup slurmctld on another host; StateSaveLocation must be storage both mount")
    accounting: SlurmAccounting = Field(default_factory=SlurmAccounting)
    default_partition: Optional[Name] = Field(
        None, description="The Slurm pool whose partition jobs go to when they name none; default the cluster's first")
    login: list[SlurmHost] = Field(
        default_factory=list, max_length=MAX_LOGIN_NODES,
        description="Login nodes: the Slurm clients and munge, no daemon; a Slurm pool's first node or a declared host")
    qos: list[SlurmQos] = Field(default_factory=list, max_length=MAX_QOS,
                                description="QoS that slurmdbd holds; jobs are then held to associations, "
                                            "limits and QoS (AccountingStorageEnforce)")
    fairshare: Optional[SlurmFairshare] = Field(
        None, description="Fair-share priority; without it jobs run in submission order, with backfill")

    @property
    def site_names(self) -> list[str]:
        """The sites this entry names, whichever form it uses (checks refuse both or neither)."""
        if self.sites is not None:
            return list(self.sites)
        return [self.site] if self.site is not None else []


class Slurm(_Model):
    layout: Literal["per-site", "single", "federation"] = Field(
        "per-site", description="Clusters for the sites no entry lists: a cluster per site (per-site), one "
                                "cluster of them all, named main (single), or a cluster per site in one federation")
    federation: Optional[Name] = Field(
        None, description="The federation's name with layout: federation; default the factory's name")
    clusters: list[SlurmCluster] = Field(default_factory=list, max_length=1000,
                                         description="Clusters as named here; they override the layout for their sites")


# A row of a catalog overlay as written in YAML: column -> one scalar. The cells are checked
# against the table's own schema by the `catalog-overlay` check, which places each error.
CatalogColumn = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,40}$")]
CatalogCell = Union[StrictBool, StrictInt, StrictFloat, Annotated[str, StringConstraints(max_length=400)], None]
CatalogRows = Annotated[list[dict[CatalogColumn, CatalogCell]], Field(max_length=10_000)]


class Factory(_Model):
    name: Name
    description: Optional[Prose] = None
    software: Software = Field(default_factory=Software)
    access: Access = Field(default_factory=Access)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    sites: list[Site] = Field(min_length=1)
    fabrics: list[Fabric] = Field(default_factory=list)
    pools: list[Pool] = Field(min_length=1)
    slurm: Slurm = Field(default_factory=Slurm, description="The Slurm clusters: which sites each spans, and "
                                                            "their control plane")
    catalog: dict[Literal[tuple(TABLES)], CatalogRows] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Rows added to catalog tables, or replacing the row with the same key "
                    "(see `aifactory catalog TABLE` for each table's columns)")


# The editor schema: what `aifactory schema` prints and docs/schema/factory-v1.json holds. It must
# accept every spec `validate` accepts (an editor that flags a valid file teaches people to ignore
# it), so where a field's validator turns one YAML type into another, the schema says so too.
SCHEMA_ID = "https://aifactory.dev/schema/factory-v1.json"
SCHEMA_FILE = "docs/schema/factory-v1.json"  # in the repository, the file SCHEMA_ID names


def _editor_schema_generator():
    import typing

    from pydantic.json_schema import GenerateJsonSchema

    from ..fields import MAX_POOL_NODES

    loose = LooseStr.func
    nodes = typing.get_args(Nodes)[1].func

    class EditorSchema(GenerateJsonSchema):
        def function_before_schema(self, schema):
            inner = super().function_before_schema(schema)
            func = schema["function"].get("function")
            if func is loose:
                # YAML reads an unquoted `cuda: 13.0` as a float and `driver_branch: 580` as an
                # int; validate takes the number's text, which the string pattern then checks.
                branches = list(inner["anyOf"]) if set(inner) == {"anyOf"} else [inner]
                nulls = [b for b in branches if b == {"type": "null"}]
                rest = [b for b in branches if b != {"type": "null"}]
                return {"anyOf": [*rest, {"type": "number"}, *nulls]}
            if func is nodes:
                return {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_POOL_NODES}, {"const": "fill"}]}
            return inner

    return EditorSchema


def json_schema() -> dict:
    """The JSON Schema of factory.yaml (draft 2020-12), for editors and other tools."""
    body = Factory.model_json_schema(schema_generator=_editor_schema_generator())
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "$comment": "Generated by `aifactory schema`; regenerate it rather than editing it.",
        "title": "aifactory factory spec",
    }
    schema.update((k, v) for k, v in body.items() if k not in schema)
    return schema
