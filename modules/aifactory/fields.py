"""Strict field types shared by the spec, the plan and every reader of untrusted data.

Every value that later reaches a shell, a host name, a template, a file path or an Ansible
variable is held to one of these shapes, whether it comes from a factory spec, a plan file, a
stack config or a cloud API: one definition, so the spec and a plan read back can never
disagree on what is safe.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BeforeValidator, StringConstraints

# DNS-label shaped: safe as a hostname part, a file name, a shell word and a cloud resource name.
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$|^[a-z]$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,40}[a-z0-9]$")]
Zone = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9:-]{1,40}$")]
Mac = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"),
                BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
                AfterValidator(lambda v: unicast_mac(v))]
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
# Cloud scopes named on the command line or in a stack config: a Google Cloud project id (optionally
# domain-scoped, example.com:my-project), an Azure subscription id (a UUID) and an OCI OCID.
GCP_PROJECT_PATTERN = r"(?:[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]"
AZURE_SUBSCRIPTION_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
OCID_PATTERN = r"ocid1\.[a-z0-9]+\.[a-z0-9-]+(?:\.[a-z0-9-]*){1,2}\.[A-Za-z0-9_-]{1,200}"
# Free prose that ends up in comments of rendered files and in Ansible variables: one line (a
# newline would start a new config line) and no braces (Ansible templates variable values).
Prose = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f\x85\u2028\u2029{}]*$", max_length=1000)]
# The node operating systems: the spec's software.os and the lock's os, one list so a plan file
# can never name an OS the spec refuses (or the other way round).
NodeOs = Literal["ubuntu-22.04", "ubuntu-24.04", "debian-12", "debian-13", "rhel-9"]


def _coerce_str(value):
    # YAML reads `cuda: 13.0` as a float and `driver_branch: 580` as an int; both mean the string.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def unicast_mac(value: str) -> str:
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


MAX_POOL_NODES = 2_000_000


def _nodes(value):
    if value == "fill":
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number of nodes or 'fill'")
    # 2,000,000 is more nodes than one 10 GW site holds (about 1.1 million NVL72 trays): a larger
    # count is a typo, and it would make every output that lists nodes grow without purpose.
    if value < 1 or value > MAX_POOL_NODES:
        raise ValueError(f"must be between 1 and {MAX_POOL_NODES:,} (or 'fill'); split larger fleets into pools")
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
