"""The ingress table: for every resource type that lets traffic in, the sources it admits and
the admin ports they reach, read the same way for security groups, firewalls, NSGs and
security lists. What counts as the internet among those sources is in :mod:`.addresses`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Mapping

from .addresses import Source, cidr_source, is_internet, public_size
from .model import (
    AWS_DEFAULT_SG, AWS_EKS_NODES, AWS_INGRESS, AWS_PREFIX_ENTRY, AWS_PREFIX_LIST, AWS_SG, AWS_SG_RULE,
    AZ_CLASSIC_NSG, AZ_CLASSIC_RULE, AZ_NSG, AZ_RULE, GCP_FIREWALL, GCP_POLICY_RULES, GCP_POLICY_WITH_RULES,
    OCI_DEFAULT_SECLIST, OCI_NSG_RULE, OCI_SECLIST, Resource, Stack, as_dict, as_list, as_text, dicts, flat,
    is_true, values_of,
)

# Ports that must never be open to the internet: SSH, HTTPS (BMC web UI / Redfish, management
# consoles), IPMI over LAN (UDP 623), RDP, VNC and the Kubernetes API.
ADMIN_PORTS = {22: "SSH", 443: "HTTPS/Redfish", 623: "IPMI", 3389: "RDP", 5900: "VNC", 6443: "Kubernetes API"}


@dataclass(frozen=True)
class Grant:
    """One ingress rule: the sources it lets reach which admin ports."""

    resource: Resource
    where: str
    sources: tuple[Source, ...]
    ports: tuple[int, ...]
    listed: tuple[Source, ...] = ()  # sources read from other resources (AWS managed prefix lists)

    @property
    def size(self) -> tuple[int, int]:
        return _size(self.sources + self.listed)

    @property
    def world(self) -> bool:
        """Its sources, its own and those it names, are the internet by themselves."""
        return is_internet(self.size)

    @property
    def literal_world(self) -> bool:
        """Its own sources are the internet, whatever other resources say."""
        return is_internet(_size(self.sources))

    @property
    def networks(self) -> list:
        return [s.network for s in self.sources + self.listed if s.network is not None]


def _size(sources: tuple[Source, ...]) -> tuple[int, int]:
    if any(s.world for s in sources):
        return (1 << 32, 1 << 128)
    return public_size([s.network for s in sources if s.network is not None])


_PROTOCOLS = {"-1": "all", "all": "all", "*": "all", "any": "all", "tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp"}


def _port_span(low, high) -> tuple[int, int]:
    try:
        return int(low), int(high)
    except (TypeError, ValueError):
        return 0, 65535  # unreadable: every port


def _port_specs(specs: Iterable) -> list[tuple[int, int]]:
    """Port ranges written as '22', '1000-2000' or '*' (Azure, GCP); none at all is every port."""
    out = []
    for spec in specs:
        spec = as_text(spec)
        if spec in ("*", ""):
            out.append((0, 65535))
        elif "-" in spec:
            low, _, high = spec.partition("-")
            out.append(_port_span(low, high))
        else:
            out.append(_port_span(spec, spec))
    return out or [(0, 65535)]


def _admin_ports(protocol, spans: Iterable[tuple[int, int]]) -> tuple[int, ...]:
    kind = "all" if protocol is None else _PROTOCOLS.get(as_text(protocol).lower())
    if kind is None:
        return ()
    hit = {p for low, high in spans for p in ADMIN_PORTS if low <= p <= high}
    if kind == "tcp":
        hit.discard(623)  # IPMI is UDP; the others are TCP
    elif kind == "udp":
        hit &= {623}
    return tuple(sorted(hit))


def _sources(values, service_tags=None) -> list[Source]:
    return [s for v in values if (s := cidr_source(v, service_tags)) is not None]


def _aws_prefix_lists(stack: Stack, r: Resource, prop: str, value) -> list[Source]:
    """The entries of the managed prefix lists ``value`` names that this stack declares. A list
    maintained outside the stack cannot be read here and adds no source."""
    out = []
    for plist in stack.targets(r, prop, value, (AWS_PREFIX_LIST,)):
        cidrs = [e.get("cidr") for e in dicts(plist.props.get("entries"))]
        cidrs += [e.props.get("cidr") for e in stack.of(AWS_PREFIX_ENTRY)
                  if plist in stack.targets(e, "prefixListId", e.props.get("prefixListId"), (AWS_PREFIX_LIST,))]
        out += [replace(s, text=f"{s.text} (prefix list {plist.name})") for s in _sources(cidrs)]
    return out


def _aws_grant(stack: Stack, r: Resource, rule: Mapping, prop: str, where: str = "", *, v4="cidrBlocks",
               v6="ipv6CidrBlocks", plists="prefixListIds", protocol="protocol") -> list[Grant]:
    cidrs = [c for key in (v4, v6) for c in values_of(rule.get(key))]
    listed = _aws_prefix_lists(stack, r, prop, rule.get(plists))
    proto = rule.get(protocol)
    spans = [(0, 65535)] if _PROTOCOLS.get(as_text(proto).lower()) == "all" else [
        _port_span(rule.get("fromPort"), rule.get("toPort"))]
    return [Grant(r, where, tuple(_sources(cidrs)), _admin_ports(proto, spans), tuple(listed))]


def _aws_sg(stack: Stack, r: Resource) -> list[Grant]:
    return [g for i, rule in enumerate(dicts(r.props.get("ingress")))
            for g in _aws_grant(stack, r, rule, "ingress", f"ingress[{i}] ")]


def _aws_sg_rule(stack: Stack, r: Resource) -> list[Grant]:
    if as_text(r.props.get("type")).lower() != "ingress":
        return []
    return _aws_grant(stack, r, r.props, "prefixListIds")


def _aws_ingress(stack: Stack, r: Resource) -> list[Grant]:
    return _aws_grant(stack, r, r.props, "prefixListId", v4="cidrIpv4", v6="cidrIpv6", plists="prefixListId",
                      protocol="ipProtocol")


def _aws_eks(stack: Stack, r: Resource) -> list[Grant]:
    access = as_dict(r.props.get("remoteAccess"))
    # "If you specify ec2SshKey but not sourceSecurityGroupIds, port 22 is opened to the internet."
    if access.get("ec2SshKey") and not as_list(access.get("sourceSecurityGroupIds")):
        return [Grant(r, "remoteAccess ", (Source("0.0.0.0/0", world=True, why="EKS opens SSH to the internet "
                                                  "without sourceSecurityGroupIds"),), (22,))]
    return []


def _gcp_firewall(stack: Stack, r: Resource) -> list[Grant]:
    p = r.props
    if as_text(p.get("direction") or "INGRESS").upper() != "INGRESS" or is_true(p.get("disabled")):
        return []
    sources = _sources(as_list(p.get("sourceRanges")))
    if not any(as_list(p.get(k)) for k in ("sourceRanges", "sourceTags", "sourceServiceAccounts")):
        sources = [Source("(no source)", world=True, why="an ingress rule without sources applies to 0.0.0.0/0")]
    ports = {port for allow in dicts(p.get("allows"))
             for port in _admin_ports(allow.get("protocol"), _port_specs(as_list(allow.get("ports"))))}
    return [Grant(r, "", tuple(sources), tuple(sorted(ports)))]


def _gcp_policy_rule(r: Resource, rule: Mapping, where: str) -> list[Grant]:
    if (as_text(rule.get("direction") or "INGRESS").upper() != "INGRESS" or is_true(rule.get("disabled"))
            or as_text(rule.get("action")).lower() in ("deny", "goto_next")):
        return []
    match = as_dict(rule.get("match"))
    sources = _sources(as_list(match.get("srcIpRanges")))
    if as_list(match.get("srcRegionCodes")):
        sources.append(Source(",".join(map(str, as_list(match.get("srcRegionCodes")))), world=True,
                              why="a region code is a whole country's address space"))
    if as_list(match.get("srcThreatIntelligences")):
        sources.append(Source("srcThreatIntelligences", world=True, why="lists of addresses strangers hold"))
    if as_text(match.get("srcNetworkScope")).upper() == "INTERNET":
        sources.append(Source("srcNetworkScope INTERNET", world=True, why="any internet source"))
    named = ("srcIpRanges", "srcRegionCodes", "srcThreatIntelligences", "srcNetworkScope", "srcAddressGroups",
             "srcFqdns", "srcNetworks", "srcSecureTags", "srcNetworkContext")
    if not any(match.get(k) for k in named):
        sources.append(Source("(no source)", world=True, why="a rule without sources matches every source"))
    ports = {port for l4 in dicts(match.get("layer4Configs"))
             for port in _admin_ports(l4.get("ipProtocol"), _port_specs(as_list(l4.get("ports"))))}
    return [Grant(r, where, tuple(sources), tuple(sorted(ports)))]


# Azure tags that name the tenant's own networks; every other tag covers shared address space.
_AZURE_PRIVATE_TAGS = frozenset({"virtualnetwork", "azureloadbalancer"})


def _azure_rules(rules: list, where: str, r: Resource) -> list[Grant]:
    out = []
    for i, rule in enumerate(rules):
        rule = flat(rule)
        if as_text(rule.get("direction")).lower() != "inbound" or as_text(rule.get("access")).lower() != "allow":
            continue
        sources = _sources([rule.get("sourceAddressPrefix"), *as_list(rule.get("sourceAddressPrefixes"))],
                           _AZURE_PRIVATE_TAGS)
        specs = ([rule.get("destinationPortRange")] if rule.get("destinationPortRange") else []) + as_list(
            rule.get("destinationPortRanges"))
        out.append(Grant(r, f"{where}[{i}] " if where else "", tuple(sources),
                         _admin_ports(rule.get("protocol"), _port_specs(specs))))
    return out


def _oci_rules(rules: list, where: str, r: Resource) -> list[Grant]:
    out = []
    for i, rule in enumerate(rules):
        rule = as_dict(rule)
        source_type = as_text(rule.get("sourceType") or "CIDR_BLOCK").upper()
        sources = _sources([rule.get("source")]) if source_type == "CIDR_BLOCK" else []
        protocol = as_text(rule.get("protocol")).lower()
        spans = [(0, 65535)]
        if protocol in ("6", "17"):
            opts = as_dict(rule.get("tcpOptions" if protocol == "6" else "udpOptions"))
            dest = as_dict(opts.get("destinationPortRange")) or opts  # NSG rule vs. security list
            if dest:
                spans = [_port_span(dest.get("min", 1), dest.get("max", 65535))]
        out.append(Grant(r, f"{where}[{i}] " if where else "", tuple(sources), _admin_ports(protocol, spans)))
    return out


GrantReader = Callable[[Stack, Resource], list[Grant]]

INGRESS_KINDS: dict[str, GrantReader] = {
    AWS_SG: _aws_sg,
    AWS_DEFAULT_SG: _aws_sg,
    AWS_SG_RULE: _aws_sg_rule,
    AWS_INGRESS: _aws_ingress,
    AWS_EKS_NODES: _aws_eks,
    GCP_FIREWALL: _gcp_firewall,
    **{t: (lambda stack, r: _gcp_policy_rule(r, r.props, "")) for t in GCP_POLICY_RULES},
    **{t: (lambda stack, r: [g for i, rule in enumerate(dicts(r.props.get("rules")))
                             for g in _gcp_policy_rule(r, rule, f"rules[{i}] ")]) for t in GCP_POLICY_WITH_RULES},
    AZ_NSG: lambda stack, r: _azure_rules(as_list(r.props.get("securityRules")), "securityRules", r),
    AZ_CLASSIC_NSG: lambda stack, r: _azure_rules(as_list(r.props.get("securityRules")), "securityRules", r),
    AZ_RULE: lambda stack, r: _azure_rules([r.props], "", r),
    AZ_CLASSIC_RULE: lambda stack, r: _azure_rules([r.props], "", r),
    OCI_SECLIST: lambda stack, r: _oci_rules(as_list(r.props.get("ingressSecurityRules")), "ingressSecurityRules", r),
    OCI_DEFAULT_SECLIST: lambda stack, r: _oci_rules(as_list(r.props.get("ingressSecurityRules")),
                                                     "ingressSecurityRules", r),
    OCI_NSG_RULE: lambda stack, r: _oci_rules([r.props] if as_text(r.props.get("direction")).upper() == "INGRESS"
                                              else [], "", r),
}


def ports_text(ports: Iterable[int]) -> str:
    return ", ".join(f"{p} ({ADMIN_PORTS[p]})" for p in sorted(ports))


def sources_text(grant: Grant) -> str:
    return ", ".join(f"{s.text!r}" + (f" ({s.why})" if s.world else "") for s in grant.sources + grant.listed)


def grants(stack: Stack) -> list[Grant]:
    """Every ingress rule of the stack that lets some source reach some admin port."""
    found = [g for r in stack.resources if (reader := INGRESS_KINDS.get(r.type)) for g in reader(stack, r)]
    return [g for g in found if (g.sources or g.listed) and g.ports]
