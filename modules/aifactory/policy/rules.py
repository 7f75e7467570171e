"""Security guardrails for every stack, as pure functions of (resource type, properties).

The same rules back two entry points:

* ``policy/`` — a pulumi-policy pack (``pulumi up --policy-pack policy``), every rule mandatory;
* :func:`evaluate` — offline, over the resources a stack registers under Pulumi's mocks
  (``aifactory preview --policy``), so a laptop or CI without a cloud account sees the same result.

Properties use the engine's names (camelCase, as pulumi-policy and the mock monitor see them).
Booleans may arrive as strings ("true"): several bridged providers type them so (the AWS launch
template's ``ebs.encrypted``, OCI's ``assignPublicIp``), and both forms are handled.

Nothing here swallows exceptions: during ``pulumi preview`` an unknown value raises the policy
SDK's ``UnknownValueError`` on access, and the SDK reports that the policy could not be decided.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from ..components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, label_key

# Tag keys every compute resource carries: inventories select nodes by them and cost reports
# group by them. The components write them (components/base.py); AWS and Azure take them as
# they are (aifactory:pool), GCP labels and OCI freeform tags in label form (aifactory-pool).
REQUIRED_TAGS = (TAG_FACTORY, TAG_POOL, TAG_ROLE)

# Ports that must never be open to the internet: SSH, HTTPS (BMC web UI / Redfish, management
# consoles), IPMI over LAN (UDP 623), RDP, VNC and the Kubernetes API.
ADMIN_PORTS = {22: "SSH", 443: "HTTPS/Redfish", 623: "IPMI", 3389: "RDP", 5900: "VNC", 6443: "Kubernetes API"}

# Instance types that carry GPUs (AWS p/g/trn families, GCP a2/a3/a4/g2, Azure N-series, OCI *.GPU).
_GPU_TYPES = re.compile(r"^(p[0-9]|g[0-9]|trn[0-9]|inf[0-9])[a-z0-9-]*\.|^(a[2-4]|g2)-|^Standard_N|^(BM|VM)\.GPU")

AWS_LT = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_VOLUME = "aws:ebs/volume:Volume"
AWS_ASG = "aws:autoscaling/group:Group"
AWS_SG = "aws:ec2/securityGroup:SecurityGroup"
AWS_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
AWS_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
GCP_TEMPLATES = ("gcp:compute/instanceTemplate:InstanceTemplate", "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate")
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
AZ_VMSS = "azure-native:compute:VirtualMachineScaleSet"
AZ_VM = "azure-native:compute:VirtualMachine"
AZ_NIC = "azure-native:network:NetworkInterface"
AZ_NSG = "azure-native:network:NetworkSecurityGroup"
AZ_RULE = "azure-native:network:SecurityRule"
OCI_INSTANCE = "oci:Core/instance:Instance"
OCI_CONFIG = "oci:Core/instanceConfiguration:InstanceConfiguration"
OCI_SECLIST = "oci:Core/securityList:SecurityList"
OCI_NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"

COMPUTE_TYPES = (AWS_LT, AWS_INSTANCE, AWS_ASG, *GCP_TEMPLATES, GCP_INSTANCE, AZ_VMSS, AZ_VM, OCI_INSTANCE, OCI_CONFIG)


@dataclass(frozen=True)
class Resource:
    """One registered resource: what the mock harness records and what the policy SDK passes."""

    type: str
    name: str
    props: Mapping
    urn: str = ""
    dependencies: tuple = ()  # URNs (or names) of the resources it depends on

    @property
    def id(self):
        return self.props.get("id")


@dataclass(frozen=True)
class Violation:
    rule: str
    type: str
    name: str
    message: str
    urn: str = ""

    def render(self) -> str:
        return f"[{self.rule}] {self.type} {self.name}: {self.message}"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[str, Mapping], list[str]] | None = None  # per resource
    stack_check: Callable[[list[Resource]], list[tuple[Resource, str]]] | None = None  # whole stack
    remediation: str = ""
    types: tuple = field(default=())


# --- helpers ---------------------------------------------------------------------------------

def _true(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _false(value) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _list(value) -> list:
    # Sequence, not list: the policy SDK hands rules read-only proxies (Sequence and Mapping).
    return list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else []


def _dict(value) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _dig(props: Mapping, *path):
    cur = props
    for part in path:
        cur = _dict(cur).get(part)
    return cur


def _required(rtype: str) -> tuple[str, ...]:
    if rtype.startswith(("gcp:", "oci:")):
        return tuple(label_key(k) for k in REQUIRED_TAGS)
    return REQUIRED_TAGS


def _pool_tag(rtype: str) -> str:
    return label_key(TAG_POOL) if rtype.startswith(("gcp:", "oci:")) else TAG_POOL


def _tags(rtype: str, props: Mapping) -> Mapping:
    if rtype == AWS_ASG:  # a list of {key, value, propagateAtLaunch}
        return {t.get("key"): t.get("value") for t in _list(props.get("tags")) if isinstance(t, Mapping)}
    if rtype.startswith("gcp:"):
        return _dict(props.get("labels"))
    if rtype.startswith("oci:"):
        tags = dict(_dict(props.get("freeformTags")))
        tags.update(_dict(_dig(props, "instanceDetails", "launchDetails", "freeformTags")))
        return tags
    return _dict(props.get("tags"))


def _machine_type(rtype: str, props: Mapping) -> str:
    if rtype in (AWS_LT, AWS_INSTANCE):
        value = props.get("instanceType")
    elif rtype.startswith("gcp:"):
        value = props.get("machineType")
    elif rtype == AZ_VMSS:
        value = _dig(props, "sku", "name")
    elif rtype == AZ_VM:
        value = _dig(props, "hardwareProfile", "vmSize")
    elif rtype == OCI_CONFIG:
        value = _dig(props, "instanceDetails", "launchDetails", "shape")
    else:
        value = props.get("shape")
    return value if isinstance(value, str) else ""


def _efa_interfaces(props: Mapping) -> list[Mapping]:
    return [n for n in _list(props.get("networkInterfaces"))
            if isinstance(n, Mapping) and n.get("interfaceType") in ("efa", "efa-only")]


def is_gpu_node(rtype: str, props: Mapping) -> bool:
    """A compute resource that runs GPU nodes: a GPU instance type, EFA interfaces or a pool tag."""
    if rtype not in COMPUTE_TYPES:
        return False
    if _GPU_TYPES.search(_machine_type(rtype, props)):
        return True
    if rtype.startswith("gcp:") and _list(props.get("guestAccelerators")):
        return True
    return bool(_efa_interfaces(props)) or _pool_tag(rtype) in _tags(rtype, props)


def _open_to_world(cidrs: Iterable) -> list[str]:
    out = []
    for cidr in cidrs:
        if not isinstance(cidr, str):
            continue
        if cidr.strip() in ("*", "Internet", "Any", "any"):
            out.append(cidr)
            continue
        try:
            if ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0:
                out.append(cidr)
        except ValueError:
            continue
    return out


def _ports_hit(low, high) -> list[int]:
    try:
        low, high = int(low), int(high)
    except (TypeError, ValueError):
        return sorted(ADMIN_PORTS)
    return [p for p in sorted(ADMIN_PORTS) if low <= p <= high]


def _port_ranges(specs: Iterable) -> list[int]:
    """Admin ports covered by strings such as '22', '1000-2000' or '*' (Azure, GCP)."""
    hit: set[int] = set()
    for spec in specs:
        spec = str(spec).strip()
        if spec in ("*", ""):
            hit.update(ADMIN_PORTS)
        elif "-" in spec:
            low, _, high = spec.partition("-")
            hit.update(_ports_hit(low, high))
        else:
            hit.update(_ports_hit(spec, spec))
    return sorted(hit)


def _ports_text(ports: list[int]) -> str:
    return ", ".join(f"{p} ({ADMIN_PORTS[p]})" for p in ports)


# --- imdsv2-required -------------------------------------------------------------------------

def imdsv2(rtype: str, props: Mapping) -> list[str]:
    """EC2 instances must require IMDSv2 session tokens: IMDSv1 lets any SSRF read the node's
    instance-role credentials (AWS: "Use IMDSv2"; ParallelCluster and EKS set it by default)."""
    if rtype not in (AWS_LT, AWS_INSTANCE):
        return []
    options = _dict(props.get("metadataOptions"))
    if options.get("httpEndpoint") == "disabled":
        return []
    if options.get("httpTokens") != "required":
        return [f"metadataOptions.httpTokens is {options.get('httpTokens')!r}; set it to 'required' (IMDSv2)"]
    return []


# --- encrypted-volumes -----------------------------------------------------------------------

def encrypted_volumes(rtype: str, props: Mapping) -> list[str]:
    """Every volume is encrypted at rest (and, on OCI VMs, in transit).

    GCP encrypts every persistent disk at rest and cannot be told not to, so GCP has nothing to
    check here. Azure managed disks are always encrypted at rest; encryption at host also
    covers the temp disk and the disk caches, which hold checkpoints and datasets.
    """
    out = []
    if rtype == AWS_LT:
        mappings = [m for m in _list(props.get("blockDeviceMappings")) if isinstance(m, Mapping)]
        if not mappings:
            out.append("no blockDeviceMappings: the root volume's encryption is left to the AMI; "
                       "declare it with ebs.encrypted = true")
        for i, m in enumerate(mappings):
            ebs = m.get("ebs")
            if isinstance(ebs, Mapping) and not _true(ebs.get("encrypted")):
                out.append(f"blockDeviceMappings[{i}] ({m.get('deviceName')}) is not encrypted")
    elif rtype == AWS_INSTANCE:
        if not _true(_dig(props, "rootBlockDevice", "encrypted")):
            out.append("rootBlockDevice.encrypted is not true")
        for i, d in enumerate(_list(props.get("ebsBlockDevices"))):
            if isinstance(d, Mapping) and not _true(d.get("encrypted")):
                out.append(f"ebsBlockDevices[{i}] ({d.get('deviceName')}) is not encrypted")
    elif rtype == AWS_VOLUME:
        if not _true(props.get("encrypted")):
            out.append("encrypted is not true")
    elif rtype in (AZ_VMSS, AZ_VM):
        profile = _dict(props.get("virtualMachineProfile")) if rtype == AZ_VMSS else props
        if not _true(_dig(profile, "securityProfile", "encryptionAtHost")):
            out.append("securityProfile.encryptionAtHost is not true (temp disk and caches stay unencrypted)")
    elif rtype in (OCI_INSTANCE, OCI_CONFIG):
        details = _dict(_dig(props, "instanceDetails", "launchDetails")) if rtype == OCI_CONFIG else props
        shape = _machine_type(rtype, props)
        flags = [details.get("isPvEncryptionInTransitEnabled"),
                 _dig(details, "launchOptions", "isPvEncryptionInTransitEnabled")]
        # OCI encrypts every boot and block volume at rest. In-transit encryption applies to
        # paravirtualized attachments, which VM shapes use; bare metal attaches boot volumes over
        # iSCSI, so there it must only not be switched off explicitly.
        if shape.startswith("BM."):
            if any(_false(f) for f in flags):
                out.append("isPvEncryptionInTransitEnabled is explicitly false")
        elif not any(_true(f) for f in flags):
            out.append("isPvEncryptionInTransitEnabled is not true (boot volume traffic unencrypted)")
    return out


# --- no-public-ip-on-gpu-nodes ---------------------------------------------------------------

def no_public_ip(rtype: str, props: Mapping) -> list[str]:
    """GPU nodes live on private subnets; people reach them through a bastion or SSM."""
    if not is_gpu_node(rtype, props):
        return []
    out = []
    if rtype == AWS_LT:
        for i, nic in enumerate(_list(props.get("networkInterfaces"))):
            if isinstance(nic, Mapping) and _true(nic.get("associatePublicIpAddress")):
                out.append(f"networkInterfaces[{i}].associatePublicIpAddress is true")
    elif rtype == AWS_INSTANCE:
        if _true(props.get("associatePublicIpAddress")):
            out.append("associatePublicIpAddress is true")
    elif rtype.startswith("gcp:"):
        for i, nic in enumerate(_list(props.get("networkInterfaces"))):
            if not isinstance(nic, Mapping):
                continue
            for key in ("accessConfigs", "ipv6AccessConfigs"):
                if _list(nic.get(key)):
                    out.append(f"networkInterfaces[{i}].{key} gives the node an external IP")
    elif rtype in (AZ_VMSS, AZ_VM):
        network = (_dig(props, "virtualMachineProfile", "networkProfile") if rtype == AZ_VMSS
                   else props.get("networkProfile"))
        for i, nic in enumerate(_list(_dict(network).get("networkInterfaceConfigurations"))):
            for j, ip in enumerate(_list(_dict(nic).get("ipConfigurations"))):
                if _dict(ip).get("publicIPAddressConfiguration"):
                    out.append(f"networkInterfaceConfigurations[{i}].ipConfigurations[{j}] has a "
                               "publicIPAddressConfiguration")
    elif rtype in (OCI_INSTANCE, OCI_CONFIG):
        vnic = (_dig(props, "instanceDetails", "launchDetails", "createVnicDetails") if rtype == OCI_CONFIG
                else props.get("createVnicDetails"))
        # OCI assigns a public IP by default on a public subnet: it must be refused explicitly.
        if not _false(_dict(vnic).get("assignPublicIp")):
            out.append("createVnicDetails.assignPublicIp is not false")
    return out


# --- no-open-admin-ports ---------------------------------------------------------------------

def _aws_rule(rule: Mapping, cidr_keys=("cidrBlocks", "ipv6CidrBlocks")) -> list[str]:
    cidrs = [c for key in cidr_keys for c in (_list(rule.get(key)) or [rule.get(key)])]
    world = _open_to_world(cidrs)
    if not world:
        return []
    protocol = str(rule.get("protocol", rule.get("ipProtocol", ""))).lower()
    if protocol in ("-1", "all"):
        ports = sorted(ADMIN_PORTS)
    elif protocol in ("tcp", "6", "udp", "17"):
        ports = _ports_hit(rule.get("fromPort"), rule.get("toPort"))
        if protocol in ("udp", "17"):
            ports = [p for p in ports if p == 623]  # IPMI is UDP; the others are TCP
        else:
            ports = [p for p in ports if p != 623]
    else:
        return []
    return [f"{', '.join(world)} may reach {_ports_text(ports)}"] if ports else []


def no_open_admin_ports(rtype: str, props: Mapping) -> list[str]:
    """No rule lets 0.0.0.0/0 (or ::/0) reach SSH, BMC/management or other admin ports."""
    out = []
    if rtype == AWS_SG:
        for i, rule in enumerate(_list(props.get("ingress"))):
            out += [f"ingress[{i}]: {m}" for m in _aws_rule(_dict(rule))]
    elif rtype == AWS_SG_RULE and props.get("type") == "ingress":
        out += _aws_rule(props)
    elif rtype == AWS_INGRESS:
        out += _aws_rule(props, ("cidrIpv4", "cidrIpv6"))
    elif rtype == GCP_FIREWALL:
        if str(props.get("direction", "INGRESS")).upper() == "INGRESS" and not _true(props.get("disabled")):
            world = _open_to_world(_list(props.get("sourceRanges")))
            if world:
                ports: set[int] = set()
                for allow in _list(props.get("allows")):
                    protocol = str(_dict(allow).get("protocol", "")).lower()
                    specs = _list(_dict(allow).get("ports")) or ["*"]
                    hit = _port_ranges(specs) if protocol in ("all", "tcp", "udp", "6", "17") else []
                    if protocol in ("tcp", "6"):
                        hit = [p for p in hit if p != 623]
                    elif protocol in ("udp", "17"):
                        hit = [p for p in hit if p == 623]
                    ports.update(hit)
                if ports:
                    out.append(f"sourceRanges {', '.join(world)} may reach {_ports_text(sorted(ports))}")
    elif rtype in (AZ_NSG, AZ_RULE):
        rules = _list(props.get("securityRules")) if rtype == AZ_NSG else [props]
        for i, rule in enumerate(rules):
            rule = _dict(rule)
            props_ = _dict(rule.get("properties")) or rule  # both flattened and nested shapes
            if str(props_.get("direction", "")).lower() != "inbound" or str(props_.get("access", "")).lower() != "allow":
                continue
            world = _open_to_world([props_.get("sourceAddressPrefix"), *_list(props_.get("sourceAddressPrefixes"))])
            ports = _port_ranges([props_.get("destinationPortRange")] * bool(props_.get("destinationPortRange"))
                                 + _list(props_.get("destinationPortRanges")))
            if world and ports:
                where = f"securityRules[{i}] " if rtype == AZ_NSG else ""
                out.append(f"{where}{', '.join(world)} may reach {_ports_text(ports)}")
    elif rtype in (OCI_SECLIST, OCI_NSG_RULE):
        rules = _list(props.get("ingressSecurityRules")) if rtype == OCI_SECLIST else (
            [props] if str(props.get("direction", "")).upper() == "INGRESS" else [])
        for i, rule in enumerate(rules):
            rule = _dict(rule)
            world = _open_to_world([rule.get("source")])
            protocol = str(rule.get("protocol", ""))
            if not world:
                continue
            if protocol == "all":
                ports = sorted(ADMIN_PORTS)
            elif protocol in ("6", "17"):
                opts = _dict(rule.get("tcpOptions" if protocol == "6" else "udpOptions"))
                dest = _dict(opts.get("destinationPortRange")) or opts  # NSG rule vs. security list
                ports = _ports_hit(dest.get("min", 1), dest.get("max", 65535)) if dest else sorted(ADMIN_PORTS)
                ports = [p for p in ports if (p == 623) == (protocol == "17")]
            else:
                continue
            if ports:
                where = f"ingressSecurityRules[{i}] " if rtype == OCI_SECLIST else ""
                out.append(f"{where}{', '.join(world)} may reach {_ports_text(ports)}")
    return out


# --- required-tags ---------------------------------------------------------------------------

def required_tags(rtype: str, props: Mapping) -> list[str]:
    """Compute resources carry the factory, pool and role tags (inventories and cost reports use
    them); an AWS launch template also passes them on to the instances it launches."""
    if rtype not in COMPUTE_TYPES:
        return []
    out = []
    tags = _tags(rtype, props)
    missing = [k for k in _required(rtype) if not tags.get(k)]
    if missing:
        what = "labels" if rtype.startswith("gcp:") else "freeformTags" if rtype.startswith("oci:") else "tags"
        out.append(f"{what} lack {', '.join(missing)}")
    if rtype == AWS_LT:
        specs = [_dict(t) for t in _list(props.get("tagSpecifications"))]
        instance = next((_dict(t.get("tags")) for t in specs if t.get("resourceType") == "instance"), {})
        missing = [k for k in REQUIRED_TAGS if not instance.get(k)]
        if missing:
            out.append(f"tagSpecifications for instances lack {', '.join(missing)} (launched nodes untagged)")
    return out


# --- efa-security-group-self-rule ------------------------------------------------------------

def _refs(value, resource: Resource) -> bool:
    """Does ``value`` (an id, or a list of ids) point at ``resource``?"""
    values = _list(value) or [value]
    return any(v is not None and v == resource.id for v in values)


def _depends(r: Resource, target: Resource) -> bool:
    return (bool(target.urn) and target.urn in r.dependencies) or target.name in r.dependencies


def _points_at(r: Resource, value, target: Resource) -> bool:
    """``value`` (a property of ``r``) names ``target``: by id where ids are recorded, else by
    the dependency the engine records for every output passed as an input."""
    if value is None:
        return False
    return _refs(value, target) if target.id is not None else _depends(r, target)


def _all_traffic(protocol) -> bool:
    return str(protocol).lower() in ("-1", "all")


def _self_rules(sg: Resource, resources: list[Resource]) -> set[str]:
    """Directions ('ingress', 'egress') in which ``sg`` allows all traffic from/to itself."""
    found = set()
    for direction in ("ingress", "egress"):
        for rule in _list(sg.props.get(direction)):
            rule = _dict(rule)
            if _true(rule.get("self")) and _all_traffic(rule.get("protocol")):
                found.add(direction)
    for r in resources:
        if r.type not in (AWS_SG_RULE, AWS_INGRESS, AWS_EGRESS):
            continue
        owner = r.props.get("securityGroupId")
        if not _points_at(r, owner, sg):
            continue
        if r.type == AWS_SG_RULE and _all_traffic(r.props.get("protocol")) and (
                _true(r.props.get("self")) or r.props.get("sourceSecurityGroupId") == owner):
            found.add(str(r.props.get("type")))
        elif r.type in (AWS_INGRESS, AWS_EGRESS) and _all_traffic(r.props.get("ipProtocol")) and (
                r.props.get("referencedSecurityGroupId") == owner):
            found.add("ingress" if r.type == AWS_INGRESS else "egress")
    return found


def efa_self_rule(resources: list[Resource]) -> list[tuple[Resource, str]]:
    """EFA needs a security group that allows all traffic to and from itself, in and out
    (AWS EFA user guide, "Prepare an EFA-enabled security group"); without it NCCL hangs."""
    groups = [r for r in resources if r.type == AWS_SG]
    out = []
    for r in resources:
        if r.type not in (AWS_LT, AWS_INSTANCE):
            continue
        nics = _efa_interfaces(r.props)
        if not nics:
            continue
        ids = [g for nic in nics for g in _list(nic.get("securityGroups"))] + _list(r.props.get("vpcSecurityGroupIds"))
        used = [g for g in groups if _refs(ids, g) or _depends(r, g)]
        if not used:
            out.append((r, "EFA interfaces use no security group declared in this stack"))
            continue
        if not any(_self_rules(g, resources) >= {"ingress", "egress"} for g in used):
            names = ", ".join(g.name for g in used)
            out.append((r, f"none of its security groups ({names}) allows all traffic to and from itself "
                           "(ingress and egress self rules)"))
    return out


RULES: tuple[Rule, ...] = (
    Rule("imdsv2-required", "EC2 instances and launch templates require IMDSv2 (httpTokens = required)",
         check=imdsv2, remediation="set metadata_options.http_tokens='required'"),
    Rule("encrypted-volumes", "Volumes are encrypted: EBS, Azure encryption at host, OCI in-transit encryption",
         check=encrypted_volumes, remediation="encrypt every block device; enable encryption at host / in transit"),
    Rule("no-public-ip-on-gpu-nodes", "GPU nodes get no public IP address",
         check=no_public_ip, remediation="put nodes on private subnets; reach them through a bastion"),
    Rule("no-open-admin-ports", "No ingress from 0.0.0.0/0 or ::/0 to SSH, BMC/IPMI or management ports",
         check=no_open_admin_ports, remediation="allow only the spec's access.admin_cidrs"),
    Rule("required-tags", f"Compute resources carry the {', '.join(REQUIRED_TAGS)} tags/labels",
         check=required_tags, remediation="pass the component's tags through to every child"),
    Rule("efa-security-group-self-rule", "EFA security groups allow all traffic to and from themselves",
         stack_check=efa_self_rule, remediation="add ingress and egress rules with self = true, protocol -1"),
)
RULE_NAMES = tuple(r.name for r in RULES)


def _resource(r) -> Resource:
    if isinstance(r, Resource):
        return r
    if not isinstance(r, Mapping):  # a recorder's record object (aifactory.preview)
        r = {**r.to_dict(), "urn": getattr(r, "urn", "")} if hasattr(r, "to_dict") else vars(r)
    props = r.get("props")
    return Resource(type=r["type"], name=r["name"], props=props if props is not None else r.get("inputs") or {},
                    urn=r.get("urn") or "", dependencies=tuple(r.get("dependencies") or ()))


def evaluate(resources: Iterable) -> list[Violation]:
    """Every violation of every rule, for resources recorded offline (or converted from the SDK).

    ``resources`` holds :class:`Resource` objects, mappings or record objects with ``type``,
    ``name``, ``props`` (or ``inputs``) and optionally ``urn`` and ``dependencies`` (URNs or
    names). Ids are taken from ``props["id"]`` where recorded; otherwise references between
    resources are followed through the dependencies.
    """
    items = [_resource(r) for r in resources]
    out = []
    for rule in RULES:
        if rule.check:
            for r in items:
                out += [Violation(rule.name, r.type, r.name, m, r.urn) for m in rule.check(r.type, r.props)]
        if rule.stack_check:
            out += [Violation(rule.name, r.type, r.name, m, r.urn) for r, m in rule.stack_check(items)]
    return out
