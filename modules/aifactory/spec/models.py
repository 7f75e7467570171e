"""The factory declaration as pydantic v2 models.

Unknown fields are refused (a typo must not silently fall back to a default). Every name
that later reaches a shell, a hostname, a template or a file path is held to a strict
pattern here, before anything is built from it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ..catalog import FABRIC_TYPES, PROVIDERS

# DNS-label shaped: safe as a hostname part, a file name, a shell word and a cloud resource name.
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$|^[a-z]$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")]
Zone = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9:-]{1,40}$")]
Mac = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"),
                BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
                AfterValidator(lambda v: _unicast_mac(v))]
# RFC 1123 host name (or a dotted IPv4 address, which has the same shape): labels of 1-63
# letters, digits and '-', neither starting nor ending with '-', at most 253 characters.
HOSTNAME_PATTERN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
Hostname = Annotated[str, StringConstraints(pattern=HOSTNAME_PATTERN, max_length=253)]
DriverBranch = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")]
DriverVersion = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}\.[0-9]{1,3}(\.[0-9]{1,3})?$")]
CudaVersion = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}\.[0-9]{1,2}$")]
# Debian policy: a version starts with a digit (so it can never read as an option such as -rf).
PackageVersion = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9A-Za-z.+~:-]{0,63}$")]
TagValue = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 _.:/=+@-]{0,128}$")]
TagKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]
# Catalog ids (dgx-h100, p5.48xlarge, Standard_ND96isr_H100_v5, BM.GPU.H100.8): checked against
# the catalog later, but held to a safe shape first so that no error path echoes a payload.
CatalogId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# Cloud reservation ids (cr-…, projects/p/reservations/r, /subscriptions/…/capacityReservationGroups/g,
# ocid1.…): '/'-separated segments that start with a letter, digit or '_', so never '..' or '-flag'.
ReservationId = Annotated[str, StringConstraints(
    pattern=r"^/?[A-Za-z0-9_][A-Za-z0-9_.:-]*(/[A-Za-z0-9_][A-Za-z0-9_.:-]*)*$", max_length=256)]
# Free prose that ends up in comments of rendered files and in Ansible variables: one line (a
# newline would start a new config line) and no braces (Ansible templates variable values).
Prose = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f\x85\u2028\u2029{}]*$", max_length=1000)]


def _coerce_str(value):
    # YAML reads `cuda: 13.0` as a float and `driver_branch: 580` as an int; both mean the string.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def _unicast_mac(value: str) -> str:
    first = int(value[:2], 16)
    if value == "00:00:00:00:00:00":
        raise ValueError("the all-zero MAC is not a network interface's address")
    if first & 1:  # the I/G bit: broadcast ff:ff:.. and every multicast group address
        raise ValueError(f"{value} is a broadcast or multicast address, not a network interface's")
    return value


def _ip(value):
    """An IPv4 or IPv6 address, written as an address: no scope id (``fe80::1%eth0``; the zone is
    free text that would reach inventories and Ansible), no integers or booleans (``ip: true``
    would silently become 0.0.0.1), and one that can be a node's own unicast address."""
    if not isinstance(value, str):
        raise ValueError("must be an IP address written as a string, such as 10.0.0.11")
    if "%" in value:
        raise ValueError("scope ids (addr%zone) are not allowed; write the plain address")
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("not a valid IPv4 or IPv6 address") from None
    if addr.is_unspecified or addr.is_multicast or addr.is_loopback or addr.is_reserved or (
            addr.version == 4 and addr == ipaddress.IPv4Address("255.255.255.255")):
        raise ValueError(f"{addr} cannot be a node's address (unspecified, loopback, multicast or reserved)")
    return str(addr)


def _number(value):
    # YAML's `true` is not a quantity; pydantic's lax mode would read it as 1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _nodes(value):
    if value == "fill":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number of nodes or 'fill'")
    if value < 1 or value > 10_000_000:
        raise ValueError("must be between 1 and 10,000,000 (or 'fill')")
    return value


def _cidr(value):
    if not isinstance(value, str):
        raise ValueError("must be a CIDR string such as 10.0.0.0/16")
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a valid CIDR: {exc}") from None
    return str(net)


Nodes = Annotated[Union[int, str], BeforeValidator(_nodes)]
IpAddress = Annotated[str, BeforeValidator(_ip)]
NoBool = BeforeValidator(_number)
Cidr = Annotated[str, BeforeValidator(_cidr)]
LooseStr = BeforeValidator(_coerce_str)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


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
    os: Literal["ubuntu-22.04", "ubuntu-24.04", "debian-12", "rhel-9"] = "ubuntu-24.04"


class Site(_Model):
    name: Name
    power_mw: Annotated[Optional[float], NoBool] = Field(None, gt=0, le=100_000, description="Facility power budget in MW")
    pue: Annotated[float, NoBool] = Field(1.2, ge=1.0, le=3.0, description="Power usage effectiveness")
    rack_kw: Annotated[float, NoBool] = Field(40, gt=0, le=2_000, description="Power a rack position can take, kW")
    rack_units: Annotated[int, NoBool] = Field(42, ge=1, le=60, description="Usable rack units per rack")
    provider: Optional[Literal[PROVIDERS]] = Field(None, description="Set for cloud regions")  # type: ignore[valid-type]
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


class Pool(_Model):
    name: Name
    site: Name
    provider: Literal[PROVIDERS]  # type: ignore[valid-type]
    system: CatalogId = Field(description="Catalog id: an on-prem system (dgx-h100) or an instance type (p5.48xlarge)")
    nodes: Nodes = Field(description="Node count, or 'fill' to use the site's remaining power")
    fabric: Optional[Name] = None
    region: Optional[Region] = None
    zones: list[Zone] = Field(default_factory=list)
    capacity: Literal["on-demand", "reservation", "capacity-block", "spot"] = "on-demand"
    reservation: Optional[ReservationId] = None
    scheduler: Literal["slurm", "kubernetes", "none"] = "slurm"
    hosts: list[Host] = Field(default_factory=list, description="Bare-metal hosts with MAC and BMC (on-prem)")


class Access(_Model):
    admin_cidrs: list[Cidr] = Field(default_factory=list, description="CIDRs allowed to reach SSH on admin hosts")
    ssh_user: Name = "aifactory"


class Factory(_Model):
    name: Name
    description: Optional[Prose] = None
    software: Software = Field(default_factory=Software)
    access: Access = Field(default_factory=Access)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    sites: list[Site] = Field(min_length=1)
    fabrics: list[Fabric] = Field(default_factory=list)
    pools: list[Pool] = Field(min_length=1)


def json_schema() -> dict:
    schema = Factory.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aifactory factory spec"
    return schema
