"""What a provisioning host needs to network-install the on-prem nodes of a plan.

``pxe_files(plan, settings)`` returns ``{relative path: text}``; ``render_pxe`` writes
them. The layout::

    dnsmasq.conf                      DHCP (static leases by MAC) + TFTP + iPXE chainloading
    http/boot.ipxe                    served over HTTP: chains to the node's script by MAC
    http/ipxe/<mac-with-hyphens>.ipxe kernel, initrd and the autoinstall data source per node
    http/autoinstall/<node>/user-data Ubuntu autoinstall; its user-data section is cloud-init
    http/autoinstall/<node>/meta-data
    http/autoinstall/<node>/vendor-data

The node comes up Ansible-ready: the spec's admin user (``access.ssh_user``) with the given
SSH public keys and passwordless sudo, ``python3`` and ``openssh-server`` installed, password
logins off. Nothing here is secret: the autoinstall files are fetched over plain HTTP by the
installer, so they carry no password hashes (the admin account is key-only, root is locked).

Only hosts declared in the spec get a lease, and dnsmasq ignores every other DHCP client
(``dhcp-ignore=tag:!known``): a PXE server must never install a machine it was not told about.
Boot MACs come from the spec; a Redfish inventory (the ``inventory`` stack output of an on-prem
pool) adds the other MACs the BMC reports, so the node gets its lease whichever port PXE-boots.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import AifactoryError
from ..fields import unicast_mac
from ..files import read_json, sync
from .environment import render

# Ubuntu live-server ISOs that carry the autoinstall-capable installer (subiquity). The kernel
# and initrd come from the ISO's casper/ folder, extracted under http/ubuntu/<version>/.
UBUNTU_ISOS = {
    ("ubuntu-22.04", "x86_64"): "ubuntu-22.04.5-live-server-amd64.iso",
    ("ubuntu-22.04", "arm64"): "ubuntu-22.04.5-live-server-arm64.iso",
    ("ubuntu-24.04", "x86_64"): "ubuntu-24.04.3-live-server-amd64.iso",
    ("ubuntu-24.04", "arm64"): "ubuntu-24.04.3-live-server-arm64.iso",
}
# iPXE builds from the Debian/Ubuntu `ipxe` package (/usr/lib/ipxe/), copied into the TFTP root.
IPXE_EFI = {"x86_64": "ipxe.efi", "arm64": "ipxe-arm64.efi"}
_IFACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$")
_SSH_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|"
                      r"sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]{16,}( [^\x00-\x1f\x7f]{0,200})?$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class PxeSettings:
    """The provisioning host: where it sits on the boot network and whom the nodes trust."""

    server_ip: str
    ssh_public_keys: tuple[str, ...]
    interface: str = "eno1"
    subnet: Optional[str] = None  # boot network CIDR; default: the smallest /8../24 holding all hosts
    gateway: Optional[str] = None
    dns: tuple[str, ...] = ()
    domain: Optional[str] = None
    http_port: int = 8080
    tftp_root: str = "/srv/aifactory/tftp"
    inventory: dict[str, list[str]] = field(default_factory=dict)  # node -> MACs reported by its BMC


@dataclass(frozen=True)
class _Node:
    name: str
    pool: str
    system: str
    cpu_arch: str
    mac: str
    macs: tuple[str, ...]
    ip: str


def _fail(path: str, message: str) -> AifactoryError:
    return AifactoryError(f"{path}: {message}")


def _check_settings(s: PxeSettings) -> None:
    try:
        ipaddress.IPv4Address(s.server_ip)
    except ValueError:
        raise _fail("pxe.server_ip", f"not an IPv4 address: {s.server_ip!r}") from None
    if not _IFACE.fullmatch(s.interface):
        raise _fail("pxe.interface", f"not a network interface name: {s.interface!r}")
    if not s.ssh_public_keys:
        raise _fail("pxe.ssh_public_keys", "at least one SSH public key is needed (the Ansible controller's)")
    for i, key in enumerate(s.ssh_public_keys):
        if not _SSH_KEY.fullmatch(key.strip()):
            raise _fail(f"pxe.ssh_public_keys[{i}]", "not a single-line OpenSSH public key "
                        "(ssh-ed25519 AAAA... comment); private keys are refused")
    for i, ip in enumerate((s.gateway, *s.dns) if s.gateway else s.dns):
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise _fail("pxe.gateway" if s.gateway and i == 0 else "pxe.dns", f"not an IPv4 address: {ip!r}") from None
    if s.domain is not None and not _DOMAIN.fullmatch(s.domain):
        raise _fail("pxe.domain", f"not a DNS domain: {s.domain!r}")
    if not 1 <= s.http_port <= 65535:
        raise _fail("pxe.http_port", f"out of range: {s.http_port}")
    if not s.tftp_root.startswith("/") or any(c in s.tftp_root for c in " \n\t,#"):
        raise _fail("pxe.tftp_root", f"must be an absolute path without spaces, ',' or '#': {s.tftp_root!r}")


def _nodes(plan, settings: PxeSettings) -> list[_Node]:
    nodes: list[_Node] = []
    for i, pool in enumerate(plan.pools):
        if pool.provider != "onprem" or not pool.hosts:
            continue
        for j, host in enumerate(pool.hosts):
            if host.ip is None:
                raise _fail(f"pools[{i}].hosts[{j}].ip", f"host {host.name} needs an ip for its static DHCP lease")
            if ipaddress.ip_address(host.ip).version != 4:
                raise _fail(f"pools[{i}].hosts[{j}].ip", f"host {host.name}: PXE boot hands out DHCPv4 leases; "
                            f"{host.ip} is not an IPv4 address")
            if host.ip == settings.server_ip:
                raise _fail(f"pools[{i}].hosts[{j}].ip", f"host {host.name} has the provisioning host's own "
                            f"address {host.ip} (--server-ip)")
            reported = [m.lower() for m in settings.inventory.get(host.name, [])]
            if reported and host.mac not in reported:
                raise _fail(f"pools[{i}].hosts[{j}].mac", f"{host.mac} is not among the MACs the BMC of {host.name} "
                            f"reports ({', '.join(reported)}); fix the spec or the BMC address")
            macs = tuple([host.mac] + sorted(set(reported) - {host.mac}))
            nodes.append(_Node(host.name, pool.name, pool.system, pool.cpu_arch, host.mac, macs, host.ip))
    if not nodes:
        raise _fail("pools", "no on-prem pool declares hosts (name, mac, bmc, ip); nothing to PXE-boot")
    unknown = sorted(set(settings.inventory) - {n.name for n in nodes})
    if unknown:
        raise _fail("pxe.inventory", f"nodes not declared in the spec: {', '.join(unknown)}")
    seen: dict[str, str] = {}
    for n in nodes:
        for mac in n.macs:
            if seen.setdefault(mac, n.name) != n.name:
                raise _fail("pxe.inventory", f"MAC {mac} is reported for both {seen[mac]} and {n.name}")
    return nodes


def _subnet(nodes: list[_Node], settings: PxeSettings) -> ipaddress.IPv4Network:
    addresses = [ipaddress.IPv4Address(n.ip) for n in nodes] + [ipaddress.IPv4Address(settings.server_ip)]
    if settings.subnet:
        try:
            net = ipaddress.IPv4Network(settings.subnet, strict=True)
        except ValueError as exc:
            raise _fail("pxe.subnet", str(exc)) from None
        outside = [str(a) for a in addresses if a not in net]
        if outside:
            raise _fail("pxe.subnet", f"{net} does not hold {', '.join(outside)}")
        return net
    for prefix in range(24, 7, -1):
        net = ipaddress.IPv4Network(f"{addresses[0]}/{prefix}", strict=False)
        if all(a in net for a in addresses):
            return net
    raise _fail("pxe.subnet", "hosts and server are not in one /8; give the boot network with --subnet")


def pxe_files(plan, settings: PxeSettings) -> dict[str, str]:
    """``{relative path: content}`` for the provisioning host; deterministic for the same inputs."""
    _check_settings(settings)
    os_name = plan.software.os
    nodes = _nodes(plan, settings)
    for n in nodes:
        if (os_name, n.cpu_arch) not in UBUNTU_ISOS:
            raise _fail("software.os", f"PXE install renders Ubuntu autoinstall (ubuntu-22.04, ubuntu-24.04 on "
                        f"x86_64/arm64); {os_name} on {n.cpu_arch} ({n.name}) is not supported")
    net = _subnet(nodes, settings)
    version = os_name.split("-", 1)[1]
    http = f"http://{settings.server_ip}:{settings.http_port}"
    keys = [k.strip() for k in settings.ssh_public_keys]
    # cloud-init 24.1 renamed the nocloud-net data source to nocloud (the old name still works on
    # 22.04's cloud-init, which does not know the new one).
    datasource = "nocloud-net" if version == "22.04" else "nocloud"
    common = {"factory": plan.name, "server_ip": settings.server_ip, "http": http}

    files: dict[str, str] = {}
    files["dnsmasq.conf"] = render(
        "pxe/dnsmasq.conf.j2", **common, interface=settings.interface, network=net.network_address,
        netmask=net.netmask, gateway=settings.gateway, dns=list(settings.dns), domain=settings.domain,
        tftp_root=settings.tftp_root, archs=sorted({n.cpu_arch for n in nodes}), ipxe_efi=IPXE_EFI,
        nodes=sorted(nodes, key=lambda n: n.name))
    files["http/boot.ipxe"] = render("pxe/boot.ipxe.j2", **common)
    for n in nodes:
        iso = UBUNTU_ISOS[(os_name, n.cpu_arch)]
        files[f"http/ipxe/{n.mac.replace(':', '-')}.ipxe"] = render(
            "pxe/node.ipxe.j2", **common, node=n, version=version, iso=iso, datasource=datasource)
        base = f"http/autoinstall/{n.name}"
        files[f"{base}/user-data"] = render("autoinstall/user-data.j2", **common,
                                            autoinstall=_autoinstall(n, plan, keys, settings))
        files[f"{base}/meta-data"] = render("autoinstall/meta-data.j2", node=n, factory=plan.name)
        files[f"{base}/vendor-data"] = render("autoinstall/vendor-data.j2")
    return dict(sorted(files.items()))


def _autoinstall(node: _Node, plan, keys: list[str], settings: PxeSettings) -> dict:
    """The autoinstall document (https://canonical-subiquity.readthedocs-hosted.com/en/latest/reference/autoinstall-reference.html)."""
    user = plan.access.ssh_user
    hostname = node.name
    cloud = {
        "hostname": hostname,
        "preserve_hostname": False,
        "users": [{
            "name": user,
            "gecos": f"aifactory admin ({plan.name})",
            "groups": ["sudo", "adm"],
            "shell": "/bin/bash",
            # Ansible needs non-interactive sudo; the account has no password at all.
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "lock_passwd": True,
            "ssh_authorized_keys": list(keys),  # copies: one object twice would become a YAML anchor
        }],
        "disable_root": True,
        "ssh_pwauth": False,
        "package_update": False,
        "runcmd": [["systemctl", "enable", "--now", "ssh"]],
    }
    if settings.domain:
        cloud["fqdn"] = f"{hostname}.{settings.domain}"
    return {
        "version": 1,
        "locale": "en_US.UTF-8",
        "keyboard": {"layout": "us"},
        "refresh-installer": {"update": False},
        "network": {"version": 2, "ethernets": {"boot": {
            "match": {"macaddress": node.mac}, "set-name": "boot0", "dhcp4": True}}},
        # DGX/HGX boot from a pair of small NVMe drives; the large ones are for data, so the OS
        # goes on the smallest disk.
        "storage": {"layout": {"name": "lvm", "match": {"size": "smallest"}}},
        "ssh": {"install-server": True, "allow-pw": False, "authorized-keys": list(keys)},
        "packages": ["python3", "openssh-server", "python3-apt"],
        "user-data": cloud,
        "shutdown": "reboot",
    }


MANIFEST = ".aifactory-pxe.json"


def render_pxe(plan, out_dir: Path | str, settings: PxeSettings, *, force: bool = False) -> list[Path]:
    """Write :func:`pxe_files` under ``out_dir`` through :func:`aifactory.files.sync`; returns the paths.

    Files are 0644 (dnsmasq reads its config as an unprivileged user, the HTTP server serves the
    rest) because none holds a secret; folders are 0755.
    """
    out = Path(out_dir)
    rendered = pxe_files(plan, settings)
    sync(out, {rel: text.encode("utf-8") for rel, text in rendered.items()}, MANIFEST, force=force)
    return [out / rel for rel in rendered]


_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_NODE = re.compile(r"[a-z][a-z0-9-]{0,41}")
MAX_INVENTORY_BYTES = 16 * 1024 * 1024


def read_inventory(path: Path | str) -> dict[str, list[str]]:
    """``{node: [MACs]}`` from a JSON file: either that mapping, or the ``inventory`` stack output of
    the on-prem pools (``pulumi stack output inventory --json``: ``{pool: {"hosts": [{name, macs}]}}``).

    The file is untrusted (it comes from a BMC through the stack): read through the bounded JSON
    reader, every node name held to the spec's name pattern, every MAC to a MAC's shape."""
    where = f"--inventory {path}"
    data = read_json(path, "--inventory", MAX_INVENTORY_BYTES)
    if not isinstance(data, dict):
        raise _fail(where, "expected a JSON object")
    pairs: list[tuple[object, object]] = []
    if any(isinstance(v, dict) for v in data.values()):  # the stack output: pools of hosts
        for pool_name, pool in data.items():
            hosts = pool.get("hosts") if isinstance(pool, dict) else None
            if not isinstance(hosts, list):
                raise _fail(where, f"pool {str(pool_name)[:64]!r}: expected {{\"hosts\": [{{\"name\", \"macs\"}}, ...]}}")
            for host in hosts:
                if not isinstance(host, dict):
                    raise _fail(where, f"pool {str(pool_name)[:64]!r}: each host must be an object with name and macs")
                pairs.append((host.get("name"), host.get("macs", [])))
    else:
        pairs = list(data.items())
    out: dict[str, list[str]] = {}
    for node, macs in pairs:
        if not isinstance(node, str) or not _NODE.fullmatch(node):
            raise _fail(where, f"{str(node)[:64]!r}: not a node name (lowercase letters, digits and '-')")
        if not isinstance(macs, list) or not all(isinstance(m, str) and _MAC.fullmatch(m.lower()) for m in macs):
            raise _fail(where, f"{node!r}: expected a list of MAC addresses")
        for m in macs:
            try:
                unicast_mac(m.lower())
            except ValueError as exc:
                raise _fail(where, f"{node!r}: {exc}") from None
        if node in out:
            raise _fail(where, f"{node!r}: listed twice")
        out[node] = [m.lower() for m in macs]
    return out
