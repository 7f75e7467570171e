"""Words for messages: plurals and the names of fabric kinds, so no message reads "1 resources"
or "a infiniband fabric"."""

from __future__ import annotations

FABRIC_NAMES = {
    "infiniband": "InfiniBand",
    "roce": "RoCE",
    "ethernet": "Ethernet",
    "efa": "EFA",
    "gpudirect-tcpx": "GPUDirect-TCPX",
    "gpudirect-tcpxo": "GPUDirect-TCPXO",
}
_AN = ("InfiniBand", "Ethernet", "EFA")  # read aloud with a vowel sound first


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 resource``, ``2 resources``, ``1,000 nodes``."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def fabric_name(kind: str) -> str:
    return FABRIC_NAMES.get(kind, kind)


def a_fabric(kind: str) -> str:
    """``an InfiniBand``, ``a RoCE``: the article and the name of a fabric kind."""
    name = fabric_name(kind)
    return f"{'an' if name in _AN else 'a'} {name}"
