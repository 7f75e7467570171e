"""What the slurm_hosts role reads from the inventory before it writes a line of /etc/hosts.

Inventory values come from cloud tags and are untrusted: an ``ansible_host`` such as
``10.0.0.1 evil`` or one with a line break would add a name or a line of its own to /etc/hosts.
These filters only read and classify; the role's assertion refuses what does not fit, before
anything is written.
"""

from __future__ import annotations

import ipaddress
import re

# The characters an IPv4 or IPv6 address is written with: no zone (`%eth0`), no prefix (`/24`),
# no space and no line break, whatever ipaddress would accept.
IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}")


def address(value) -> str:
    """``value`` in its canonical text form when it is an IPv4 or IPv6 address, else ``""``."""
    if not isinstance(value, str):
        return ""
    text = str(value)
    try:
        if IPV4.fullmatch(text):
            return str(ipaddress.IPv4Address(text))
        if ":" in text and IPV6.fullmatch(text):
            return ipaddress.IPv6Address(text).compressed
    except ValueError:
        pass
    return ""


def targets(names, hostvars, network_connections) -> list[dict]:
    """One entry per host of ``names`` whose inventory sets ``ansible_host``, sorted by name:
    ``name``, ``ansible_host`` (as text), ``address`` (canonical, or ``""`` when it is not an IP
    address) and ``network`` (whether the host is reached over the network, so that its
    ``ansible_host`` must be an address or a DNS name; a chroot's is a path)."""
    found = []
    for name in sorted({str(n) for n in names}):
        values = hostvars[name]
        if "ansible_host" not in values:
            continue
        value = values["ansible_host"]
        connection = values["ansible_connection"] if "ansible_connection" in values else "ssh"
        found.append({"name": name, "ansible_host": value if isinstance(value, str) else repr(value),
                      "address": address(value), "network": str(connection) in network_connections})
    return found


class FilterModule:
    def filters(self):
        return {
            "slurm_hosts_address": address,
            "slurm_hosts_targets": targets,
        }
