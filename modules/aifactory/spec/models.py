"""The factory declaration as pydantic v2 models.

Unknown fields are refused (a typo must not silently fall back to a default). Every name
that later reaches a shell, a hostname, a template or a file path is held to a strict
pattern here, before anything is built from it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StringConstraints

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
    """Where a Slurm daemon runs: the first node of a pool, or one declared host (give one)."""

    pool: Optional[Name] = Field(None, description="A Slurm pool at the cluster's site: the daemon runs on its "
                                 "first node, declared or planned (<pool>-0001), so cloud pools can host it too")
    host: Optional[Name] = Field(None, description="A host declared under a Slurm pool of the cluster's site "
                                 "(pools[].hosts[].name)")


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


class SlurmCluster(_Model):
    """The Slurm cluster of one site: its controllers, accounting and default partition. A site
    with Slurm pools and no entry gets the defaults."""

    site: Name = Field(description="The site whose Slurm pools form this cluster (one cluster per site)")
    controller: Optional[SlurmHost] = Field(
        None, description="slurmctld's host; default the first node of the site's first Slurm pool")
    backup: Optional[SlurmHost] = Field(
        None, description="A backup slurmctld on another host; StateSaveLocation must be storage both mount")
    accounting: SlurmAccounting = Field(default_factory=SlurmAccounting)
    default_partition: Optional[Name] = Field(
        None, description="The Slurm pool whose partition jobs go to when they name none; default the site's first")


class Slurm(_Model):
    clusters: list[SlurmCluster] = Field(default_factory=list, max_length=1000,
                                         description="Settings per site; sites not listed get the defaults")


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
    slurm: Slurm = Field(default_factory=Slurm, description="The Slurm control plane of each site's cluster")
    catalog: dict[Literal[tuple(TABLES)], CatalogRows] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Rows added to catalog tables, or replacing the row with the same key "
                    "(see `aifactory catalog TABLE` for each table's columns)")


def json_schema() -> dict:
    schema = Factory.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aifactory factory spec"
    return schema
