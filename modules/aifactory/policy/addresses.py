"""What counts as "the internet" among the sources a rule lets reach a port.

The criterion, applied to the *union* of every source that reaches one admin port (so
0.0.0.0/1 + 128.0.0.0/1, or the internet cut into many pieces, reads like 0.0.0.0/0):

* more public IPv4 addresses than a /8 holds (2^24): no organisation holds more than a /8,
  so anything wider is address space strangers use. A single public /7 is already open;
* more global unicast IPv6 addresses than a /32 holds (2^96): a /32 is the smallest block a
  registry allocates to an ISP, and an admin network never spans more than one;
* IPv6 that embeds IPv4 (IPv4-mapped ``::ffff:0:0/96``, the NAT64 prefix ``64:ff9b::/96``)
  counts as the IPv4 space it embeds: ``::ffff:0:0/96`` is 0.0.0.0/0.

Only public addresses count: RFC 1918, shared (CGNAT), loopback, link-local, documentation,
benchmarking, multicast and reserved IPv4 space, and IPv6 outside 2000::/3, however wide, reach
no stranger. Sources that are not addresses are judged by the provider's table in ``rules``:
keywords (``*``, ``any``, ``internet``, any case) and service tags that stand for address
space other tenants use are the internet; text that is not a readable address is refused,
since the cloud, not this pack, would decide what it means.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Optional, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

V4_LIMIT = 1 << 24   # public IPv4 addresses in a /8
V6_LIMIT = 1 << 96   # global unicast IPv6 addresses in a /32

WORLD_WORDS = frozenset({"*", "any", "internet", "all"})

_V4_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/3"))  # 224.0.0.0/3: multicast and the reserved 240.0.0.0/4
_V6_GLOBAL = ipaddress.ip_network("2000::/3")
_V6_NOT_PUBLIC = (ipaddress.ip_network("2001:db8::/32"),)  # documentation
_V4_IN_V6 = (ipaddress.ip_network("::ffff:0:0/96"), ipaddress.ip_network("64:ff9b::/96"))

Interval = tuple[int, int]  # first and last address, inclusive


def _span(net: Network) -> Interval:
    return int(net.network_address), int(net.broadcast_address)


def _merge(spans: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _minus(spans: list[Interval], holes: Iterable[Network]) -> list[Interval]:
    for hole in holes:
        h_lo, h_hi = _span(hole)
        cut = []
        for lo, hi in spans:
            if hi < h_lo or lo > h_hi:
                cut.append((lo, hi))
                continue
            if lo < h_lo:
                cut.append((lo, h_lo - 1))
            if hi > h_hi:
                cut.append((h_hi + 1, hi))
        spans = cut
    return spans


def _within(spans: list[Interval], net: Network) -> list[Interval]:
    n_lo, n_hi = _span(net)
    return [(max(lo, n_lo), min(hi, n_hi)) for lo, hi in spans if hi >= n_lo and lo <= n_hi]


def public_size(networks: Iterable[Network]) -> tuple[int, int]:
    """How many public IPv4 and IPv6 addresses the union of ``networks`` holds."""
    v4: list[Interval] = []
    v6: list[Interval] = []
    for net in networks:
        if net.version == 4:
            v4.append(_span(net))
            continue
        v6.append(_span(net))
        for embed in _V4_IN_V6:  # the IPv4 space an IPv6 range embeds
            base = int(embed.network_address)
            v4 += [(lo - base, hi - base) for lo, hi in _within([_span(net)], embed)]
    v4_public = _minus(_merge(v4), _V4_NOT_PUBLIC)
    v6_public = _minus(_within(_merge(v6), _V6_GLOBAL), _V6_NOT_PUBLIC)
    return sum(hi - lo + 1 for lo, hi in v4_public), sum(hi - lo + 1 for lo, hi in v6_public)


def is_internet(size: tuple[int, int]) -> bool:
    v4, v6 = size
    return v4 > V4_LIMIT or v6 > V6_LIMIT


def describe(size: tuple[int, int]) -> str:
    v4, v6 = size
    parts = []
    if v4:
        parts.append(f"{v4:,} public IPv4 addresses" + (" (more than a /8)" if v4 > V4_LIMIT else ""))
    if v6:
        over = " (more than a /32)" if v6 > V6_LIMIT else ""
        parts.append(f"2^{v6.bit_length() - 1}+ global IPv6 addresses{over}")
    return " and ".join(parts) or "no public address"


@dataclass(frozen=True)
class Source:
    """One source of an ingress rule: an address range, or a name that stands for the internet."""

    text: str
    network: Optional[Network] = None
    world: bool = False  # the internet by itself (a keyword, a shared service tag, unreadable text)
    why: str = ""


def parse_cidr(value) -> Optional[Network]:
    """An address or CIDR, surrounding whitespace ignored; None when it is not one."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError:
        return None


def cidr_source(value, service_tags: Optional[Iterable[str]] = None) -> Optional[Source]:
    """A source field that holds an address range.

    ``service_tags``, for providers that accept names in the field (Azure), lists the names
    (lowercase) that stand for the tenant's own networks; any other name is address space other
    tenants use. Without it, text that is not an address range is refused as unreadable.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value)
    word = text.strip().lower()
    if word in WORLD_WORDS:
        return Source(text, world=True, why="any source")
    net = parse_cidr(text)
    if net is not None:
        return Source(text, network=net)
    if service_tags is not None:
        if word in service_tags:
            return None
        return Source(text, world=True, why="a service tag covering address space other tenants use")
    return Source(text, world=True, why="not a readable address range")
