"""Security guardrails for every stack, as pure functions of the resources it registers.

The same rules back two entry points:

* ``policy/`` — a pulumi-policy pack (``pulumi up --policy-pack policy``), every rule mandatory;
* :func:`evaluate` — offline, over the resources a stack registers under Pulumi's mocks
  (``aifactory preview --policy``), so a laptop or CI without a cloud account sees the same result.

The rules judge effective exposure, not the literal text of one property, because the stack
program may come from an unreviewed pull request:

* every resource type that can launch a node is read through one table (:data:`NODE_KINDS`:
  type -> where its machine type, tags, metadata options, disks and addresses live), so a spot
  request, a fleet or an instance configuration meets the same rules as a launch template;
* node groups (Auto Scaling groups, fleets, managed instance groups, instance pools) must launch
  templates declared in the stack, or no rule could see what they launch;
* a public address is looked for on every path: the node's own interfaces, the subnet default it
  leaves the choice to, elastic/public IPs and interfaces attached by separate resources;
* an admin port is open when the union of the sources reaching it, across every rule of the
  provider in the stack, covers the internet (see :mod:`.addresses` for the criterion).

Properties use the engine's names (camelCase, as pulumi-policy and the mock monitor see them).
Booleans may arrive as strings ("true"): several bridged providers type them so, and both forms
are handled. References between resources are followed by id or name where recorded, else
through the dependencies the engine records for every output passed as an input (per property
where the engine says which property).

Per resource (in the pack, resource policies decided before anything is created): IMDSv2,
encryption, tags, a node's own public addresses, a rule whose own sources are the internet.
Across resources (stack policies): everything that needs a reference followed.

Not examined: load balancers and forwarding rules in front of nodes (beyond Azure NAT pools and
rules on a node's own IP configuration), prefix lists and address groups maintained outside the
stack (they add no source), deny rules (never subtracted, which errs towards refusing), and node
types outside :data:`NODE_KINDS` (GKE and OKE node pools, aws-native and classic Azure compute).
Offline, the mocks record no per-property dependencies, so a reference written as a literal id
next to an unrelated ``depends_on`` is taken at its word; the pack has the engine's.

Nothing here swallows exceptions: during ``pulumi preview`` an unknown value raises the policy
SDK's ``UnknownValueError`` on access, and the SDK reports that the policy could not be decided.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping

from .addresses import describe, is_internet, public_size
from .ingress import ADMIN_PORTS, INGRESS_KINDS, grants, ports_text, sources_text
from .model import (
    AWS_DEFAULT_ROUTE_TABLE, AWS_DEFAULT_SUBNET, AWS_EGRESS, AWS_EIP, AWS_EIP_ASSOC, AWS_IGW, AWS_INGRESS,
    AWS_INSTANCE, AWS_LT, AWS_MAIN_ROUTE_ASSOC, AWS_NIC, AWS_NIC_ATTACH, AWS_ROUTE, AWS_ROUTE_ASSOC,
    AWS_ROUTE_TABLE, AWS_SG, AWS_SG_RULE, AWS_SPOT_INSTANCE, AWS_SUBNET, AWS_VOLUME, AWS_VPC, AZ_NIC, AZ_VM,
    GCP_FROM_TEMPLATE, GCP_INSTANCE, GCP_SUBNETWORK, GCP_TEMPLATES, OCI_INSTANCE, OCI_PRIVATE_IP, OCI_PUBLIC_IP,
    OCI_VNIC_ATTACH, OCI_VOLUME_ATTACH, Resource, Rule, Stack, Violation, as_list, as_resource, as_text, count_of,
    dicts, is_false, is_true, provider_of,
)
from .nodes import (COMPUTE_TYPES, NODE_KINDS, REQUIRED_TAGS, ROOT_DEVICES, NodeKind, azure_ip_configs,
                    efa_interfaces, oci_vnic_findings, required_keys, tag_sets, is_gpu, is_gpu_node, launchers)

__all__ = [
    "ADMIN_PORTS", "COMPUTE_TYPES", "INGRESS_KINDS", "NODE_KINDS", "REQUIRED_TAGS", "ROOT_DEVICES", "RULES",
    "RULE_NAMES", "Resource", "Rule", "Stack", "Violation", "evaluate", "is_gpu_node",
]


# --- imdsv2-required -------------------------------------------------------------------------

def imdsv2(rtype: str, props: Mapping) -> list[str]:
    """EC2 nodes must require IMDSv2 session tokens: IMDSv1 lets any SSRF read the node's
    instance-role credentials (AWS: "Use IMDSv2"; ParallelCluster and EKS set it by default).
    Every resource that defines what an EC2 node runs is read: launch templates and
    configurations, instances, spot requests, spot fleets' launch specifications (which cannot
    set it) and EKS node groups without a launch template (whose default does not)."""
    kind = NODE_KINDS.get(rtype)
    return kind.imds(props) if kind and kind.imds else []


# --- encrypted-volumes -----------------------------------------------------------------------

def encrypted_volumes(rtype: str, props: Mapping) -> list[str]:
    """Every volume is encrypted at rest (and, on OCI VMs, in transit).

    An EC2 node declares an encrypted EBS root: a launch template that maps only instance-store
    (ephemeral) devices or data volumes leaves the root volume to the AMI's snapshot, which may
    be unencrypted. GCP encrypts every persistent disk at rest and cannot be told not to, so GCP
    has nothing to check here. Azure managed disks are always encrypted at rest; encryption at
    host also covers the temp disk and the disk caches, which hold checkpoints and datasets.
    """
    if rtype == AWS_VOLUME:
        return [] if is_true(props.get("encrypted")) else ["encrypted is not true"]
    if rtype == OCI_VOLUME_ATTACH:
        if (as_text(props.get("attachmentType")).lower() == "paravirtualized"
                and not is_true(props.get("isPvEncryptionInTransitEnabled"))):
            return ["a paravirtualized attachment without isPvEncryptionInTransitEnabled (volume traffic unencrypted)"]
        return []
    kind = NODE_KINDS.get(rtype)
    return kind.disks(props) if kind and kind.disks else []


# --- required-tags ---------------------------------------------------------------------------

def required_tags(rtype: str, props: Mapping) -> list[str]:
    """Compute resources carry the factory, pool and role tags (inventories and cost reports use
    them), with a value that is not blank; where a resource tags both itself and the nodes it
    launches (an AWS launch template's tagSpecifications, an OCI instance configuration's launch
    details), both carry them."""
    out = []
    for where, tags in tag_sets(rtype, props):
        missing = [k for k in required_keys(rtype) if not as_text(tags.get(k))]
        if missing:
            note = " (launched nodes untagged)" if "instances" in where else ""
            out.append(f"{where} lack {', '.join(missing)}{note}")
    return out


# --- no-public-ip-on-gpu-nodes ---------------------------------------------------------------

def _subnet_public_v4(subnet: Resource) -> bool:
    flag = subnet.props.get("mapPublicIpOnLaunch")
    # Default subnets assign public addresses unless told otherwise.
    return not is_false(flag) if subnet.type == AWS_DEFAULT_SUBNET else is_true(flag)


def _subnet_v6(subnet: Resource) -> bool:
    return is_true(subnet.props.get("assignIpv6AddressOnCreation")) or is_true(subnet.props.get("ipv6Native"))


def _route_tables(stack: Stack, subnet: Resource) -> list[Resource]:
    """The route tables that route ``subnet``: its explicit associations, else its VPC's main table."""
    tables = [t for a in stack.of(AWS_ROUTE_ASSOC)
              if subnet in stack.targets(a, "subnetId", a.props.get("subnetId"), (AWS_SUBNET, AWS_DEFAULT_SUBNET))
              for t in stack.targets(a, "routeTableId", a.props.get("routeTableId"), (AWS_ROUTE_TABLE,))]
    if tables:
        return tables
    vpcs = stack.targets(subnet, "vpcId", subnet.props.get("vpcId"), (AWS_VPC,))
    out = list(vpcs)  # routes added to the VPC's implicit main table name the VPC
    for a in stack.of(AWS_MAIN_ROUTE_ASSOC):
        if any(v in stack.targets(a, "vpcId", a.props.get("vpcId"), (AWS_VPC,)) for v in vpcs):
            out += stack.targets(a, "routeTableId", a.props.get("routeTableId"), (AWS_ROUTE_TABLE,))
    for t in stack.of(AWS_DEFAULT_ROUTE_TABLE):
        owners = stack.targets(t, "defaultRouteTableId", t.props.get("defaultRouteTableId"), (AWS_VPC,))
        if any(v in owners for v in vpcs):
            out.append(t)
    return out


def _is_igw(stack: Stack, r: Resource, prop: str, value) -> bool:
    if not value:
        return False
    return as_text(value).startswith("igw-") or bool(stack.targets(r, prop, value, (AWS_IGW,)))


def _routes_to_igw(stack: Stack, subnet: Resource) -> bool:
    """Does ``subnet`` route anything to an internet gateway? Taken as yes where this stack does
    not say how the subnet is routed (no association, and no VPC of its own declared here)."""
    tables = _route_tables(stack, subnet)
    if not tables:
        return True
    for table in tables:
        if table.type != AWS_VPC and any(_is_igw(stack, table, "routes", route.get("gatewayId"))
                                         for route in dicts(table.props.get("routes"))):
            return True
        for route in stack.of(AWS_ROUTE):
            if table in stack.targets(route, "routeTableId", route.props.get("routeTableId"),
                                      (AWS_ROUTE_TABLE, AWS_DEFAULT_ROUTE_TABLE, AWS_VPC)) \
                    and _is_igw(stack, route, "gatewayId", route.props.get("gatewayId")):
                return True
    return False


def _aws_landing(stack: Stack, r: Resource, kind: NodeKind, out: list[tuple[Resource, str]]) -> None:
    """Public addresses an AWS node gets from the subnets it lands in."""
    unrefused = kind.unrefused(r.props)
    ipv6 = kind.ipv6(r.props)
    # (resource that names the subnets, the subnets) — the node's own, else each launcher's
    placements = [(r, kind.subnets(r.props))] if kind.subnets(r.props) else []
    for launcher, _ in launchers(stack, r):
        placements.append((launcher, NODE_KINDS[launcher.type].subnets(launcher.props)))
    if not placements and (unrefused or ipv6):
        where = ", ".join(unrefused + ipv6)
        if kind.template:
            out.append((r, f"{where}: no public address refused, and no node group in this stack says which subnet "
                           "it lands in; set associatePublicIpAddress = false"))
        else:
            out.append((r, f"{where}: no public address refused and no subnet named, so it lands in the default "
                           "VPC, whose subnets assign public IPs; set associatePublicIpAddress = false"))
        return
    for owner, refs in placements:
        if not refs and unrefused:
            out.append((owner, f"no subnet named: nodes land in the default VPC, whose subnets assign public IPs, and "
                               f"{', '.join(unrefused)} does not refuse one (associatePublicIpAddress = false)"))
        for prop, value in refs:
            subnets = stack.targets(owner, prop, value, (AWS_SUBNET, AWS_DEFAULT_SUBNET))
            label = f"subnet {value}"
            if not subnets:
                if unrefused or ipv6:
                    out.append((owner, f"{label} is not declared in this stack, so its public-IP default cannot be "
                                       f"checked, and {', '.join(unrefused + ipv6)} does not refuse a public address"))
                continue
            for subnet in subnets:
                if unrefused and _subnet_public_v4(subnet):
                    out.append((owner, f"lands in subnet {subnet.name}, which maps public IPs on launch, and "
                                       f"{', '.join(unrefused)} does not refuse one "
                                       "(associatePublicIpAddress = false)"))
                if (ipv6 or _subnet_v6(subnet)) and _routes_to_igw(stack, subnet):
                    what = ", ".join(ipv6) or f"subnet {subnet.name} assigns IPv6 addresses on creation"
                    out.append((owner, f"{what}, and subnet {subnet.name} routes to an internet gateway "
                                       "(use an egress-only internet gateway for IPv6)"))


def _gpu_instances(stack: Stack, r: Resource, prop: str, value) -> list[Resource]:
    return [t for t in stack.targets(r, prop, value, (AWS_INSTANCE, AWS_SPOT_INSTANCE)) if is_gpu(stack, t)]


def _aws_nic_owners(stack: Stack, nic: Resource) -> list[Resource]:
    """GPU nodes an EC2 network interface is attached to, by any of the three ways to attach one."""
    owners = _gpu_instances(stack, nic, "attachments", [a.get("instance") for a in dicts(nic.props.get("attachments"))])
    for a in stack.of(AWS_NIC_ATTACH):
        if nic in stack.targets(a, "networkInterfaceId", a.props.get("networkInterfaceId"), (AWS_NIC,)):
            owners += _gpu_instances(stack, a, "instanceId", a.props.get("instanceId"))
    for node in stack.resources:
        kind = NODE_KINDS.get(node.type)
        if kind and node.type.startswith("aws:") and is_gpu(stack, node) and any(
                nic in stack.targets(node, prop, value, (AWS_NIC,)) for prop, value in kind.nics(node.props)):
            owners.append(node)
    return owners


def _aws_addresses(stack: Stack, out: list[tuple[Resource, str]]) -> None:
    """Elastic IPs and IPv6 interfaces attached to GPU nodes by separate resources."""
    nic_owners = {id(n): _aws_nic_owners(stack, n) for n in stack.of(AWS_NIC)}
    for nic in stack.of(AWS_NIC):
        ipv6 = (count_of(nic.props.get("ipv6AddressCount")) > 0 or as_list(nic.props.get("ipv6Addresses"))
                or is_true(nic.props.get("enablePrimaryIpv6")))
        if nic_owners[id(nic)] and ipv6:
            subnets = stack.targets(nic, "subnetId", nic.props.get("subnetId"), (AWS_SUBNET, AWS_DEFAULT_SUBNET))
            if not subnets or any(_routes_to_igw(stack, s) for s in subnets):
                out.append((nic, f"IPv6 addresses on an interface of GPU node {nic_owners[id(nic)][0].name}, in a "
                                 "subnet routed to an internet gateway (or not declared in this stack)"))
    for eip in stack.of(AWS_EIP, AWS_EIP_ASSOC):
        keys = ("instance", "networkInterface") if eip.type == AWS_EIP else ("instanceId", "networkInterfaceId")
        nodes = _gpu_instances(stack, eip, keys[0], eip.props.get(keys[0]))
        for nic in stack.targets(eip, keys[1], eip.props.get(keys[1]), (AWS_NIC,)):
            nodes += nic_owners[id(nic)]
        if nodes:
            out.append((eip, f"attaches an elastic IP to GPU node {nodes[0].name}"))


def _azure_addresses(stack: Stack, out: list[tuple[Resource, str]]) -> None:
    for vm in stack.of(AZ_VM):
        if not is_gpu(stack, vm):
            continue
        for prop, value in NODE_KINDS[AZ_VM].nics(vm.props):
            nics = stack.targets(vm, prop, value, (AZ_NIC,))
            if value and not nics:
                out.append((vm, f"network interface {value} is not declared in this stack: its public IP "
                                "configuration cannot be checked"))
            for nic in nics:
                for message in azure_ip_configs([nic.props], "networkInterface", "publicIPAddress"):
                    out.append((nic, f"{message.replace('networkInterface[0].', '')} on GPU node {vm.name}"))


def _gcp_addresses(stack: Stack, out: list[tuple[Resource, str]]) -> None:
    """Dual-stack or IPv6-only interfaces in a subnetwork whose IPv6 range is EXTERNAL get a
    globally reachable IPv6 address without any access config being written."""
    for node in stack.of(GCP_INSTANCE, GCP_FROM_TEMPLATE, *GCP_TEMPLATES):
        if not is_gpu(stack, node):
            continue
        for i, nic in enumerate(dicts(node.props.get("networkInterfaces"))):
            if as_text(nic.get("stackType")).upper() not in ("IPV4_IPV6", "IPV6_ONLY"):
                continue
            for subnet in stack.targets(node, "networkInterfaces", nic.get("subnetwork"), (GCP_SUBNETWORK,)):
                if as_text(subnet.props.get("ipv6AccessType")).upper() == "EXTERNAL":
                    out.append((node, f"networkInterfaces[{i}] is {nic.get('stackType')} in subnetwork {subnet.name}, "
                                      "whose IPv6 range is EXTERNAL"))


def _oci_addresses(stack: Stack, out: list[tuple[Resource, str]]) -> None:
    def gpu_instance(r: Resource, prop: str, value) -> list[Resource]:
        return [t for t in stack.targets(r, prop, value, (OCI_INSTANCE,)) if is_gpu(stack, t)]

    attached = {}
    for a in stack.of(OCI_VNIC_ATTACH):
        nodes = gpu_instance(a, "instanceId", a.props.get("instanceId"))
        attached[id(a)] = nodes
        if nodes:
            out += [(a, f"{m} on a secondary VNIC of GPU node {nodes[0].name}")
                    for m in oci_vnic_findings(a.props.get("createVnicDetails"), "createVnicDetails.")]
    for public in stack.of(OCI_PUBLIC_IP):
        nodes = []
        for private in stack.targets(public, "privateIpId", public.props.get("privateIpId"), (OCI_PRIVATE_IP,)):
            vnic = private.props.get("vnicId")
            nodes += gpu_instance(private, "vnicId", vnic)
            nodes += [n for a in stack.targets(private, "vnicId", vnic, (OCI_VNIC_ATTACH,)) for n in attached[id(a)]]
        if nodes:
            out.append((public, f"assigns a public IP to a private IP of GPU node {nodes[0].name}"))


def no_public_ip_on_node(rtype: str, props: Mapping) -> list[str]:
    """The public addresses a GPU node asks for on its own interfaces (any of them): refused
    before the resource is created."""
    kind = NODE_KINDS.get(rtype)
    return kind.public(props) if kind and is_gpu_node(rtype, props) else []


def no_public_ip(resources: list[Resource]) -> list[tuple[Resource, str]]:
    """GPU nodes live on private subnets; people reach them through a bastion or SSM.

    Beyond a node's own interfaces (:func:`no_public_ip_on_node`), every path to a public
    address counts: the subnet default an AWS interface leaves the choice to (an undeclared or
    public subnet, the default VPC), elastic IPs and interfaces attached by separate resources,
    Azure network interfaces and their public IP addresses, OCI secondary VNICs and reserved
    public IPs, and the interfaces of templates that are GPU nodes only through the node group
    that launches them. An IPv4 address counts whatever the routes say (routes change outside
    the stack); an AWS IPv6 address counts where its subnet routes to an internet gateway.
    """
    stack = Stack(resources)
    out: list[tuple[Resource, str]] = []
    for r in stack.resources:
        kind = NODE_KINDS.get(r.type)
        if kind is None or not is_gpu(stack, r):
            continue
        if not is_gpu_node(r.type, r.props):  # a GPU node through what launches it or what it launches
            out += [(r, m) for m in kind.public(r.props)]
        if r.type.startswith("aws:"):
            _aws_landing(stack, r, kind, out)
    _aws_addresses(stack, out)
    _azure_addresses(stack, out)
    _gcp_addresses(stack, out)
    _oci_addresses(stack, out)
    seen: set = set()  # a subnet finding reached through the node group and through its template
    return [(r, m) for r, m in out if not ((id(r), m) in seen or seen.add((id(r), m)))]


# --- no-open-admin-ports ---------------------------------------------------------------------

def open_admin_ports_here(rtype: str, props: Mapping) -> list[str]:
    """Rules whose own sources are the internet: refused before the resource is created."""
    if rtype not in INGRESS_KINDS:
        return []
    r = Resource(rtype, "", props)
    return [f"{g.where}{sources_text(g)} may reach {ports_text(g.ports)}"
            for g in INGRESS_KINDS[rtype](Stack([r]), r) if g.ports and g.literal_world]


def no_open_admin_ports(resources: list[Resource]) -> list[tuple[Resource, str]]:
    """No admin port (SSH, BMC/IPMI, management consoles) is open to the internet.

    Beyond rules whose own sources are the internet (:func:`open_admin_ports_here`), judged on
    the union of the sources of every allow rule of one provider that reaches the port,
    wherever the rule is written (inline, separate rule resources, several groups, lists or
    policies, managed prefix lists), since a node in several groups is reached through all of
    them. When only the union is the internet, the rules that together make it so are reported,
    widest first. The criterion is in :mod:`.addresses`.
    """
    found = grants(Stack(resources))
    blamed: dict[int, dict[int, str]] = defaultdict(dict)  # grant index -> port -> why
    by_port: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, g in enumerate(found):
        for port in g.ports:
            by_port[(provider_of(g.resource.type), port)].append(i)
    for (_, port), members in by_port.items():
        rest = []
        for i in members:
            if found[i].literal_world:
                continue  # refused on its own resource
            if found[i].world:
                blamed[i][port] = ""
            else:
                rest.append(i)
        union = public_size([n for i in rest for n in found[i].networks])
        if not is_internet(union):
            continue
        picked: list[int] = []
        for i in sorted(rest, key=lambda i: found[i].size, reverse=True):
            picked.append(i)
            if is_internet(public_size([n for j in picked for n in found[j].networks])):
                break
        for i in picked:
            others = ", ".join(f"{found[j].resource.name} {found[j].where}".strip() for j in picked if j != i)
            blamed[i][port] = f"; with {others} the sources reaching it cover {describe(union)}"
    out = []
    for i, ports in sorted(blamed.items()):
        g = found[i]
        whole = sorted(p for p, why in ports.items() if not why)
        if whole:
            out.append((g.resource, f"{g.where}{sources_text(g)} may reach {ports_text(whole)}"))
        out += [(g.resource, f"{g.where}{sources_text(g)} may reach {ports_text([port])}{why}")
                for port, why in sorted(ports.items()) if why]
    return out


# --- efa-security-group-self-rule ------------------------------------------------------------

def _all_traffic(protocol) -> bool:
    return as_text(protocol).lower() in ("-1", "all")


def _self_rules(stack: Stack, sg: Resource) -> set[str]:
    """Directions ('ingress', 'egress') in which ``sg`` allows all traffic from/to itself."""
    found = set()
    for direction in ("ingress", "egress"):
        for rule in dicts(sg.props.get(direction)):
            if _all_traffic(rule.get("protocol")) and is_true(rule.get("self")):
                found.add(direction)
    for r in stack.of(AWS_SG_RULE, AWS_INGRESS, AWS_EGRESS):
        if sg not in stack.targets(r, "securityGroupId", r.props.get("securityGroupId"), (AWS_SG,)):
            continue
        owner = r.props.get("securityGroupId")
        if r.type == AWS_SG_RULE and _all_traffic(r.props.get("protocol")) and (
                is_true(r.props.get("self")) or r.props.get("sourceSecurityGroupId") == owner):
            found.add(as_text(r.props.get("type")).lower())
        elif r.type in (AWS_INGRESS, AWS_EGRESS) and _all_traffic(r.props.get("ipProtocol")) and (
                r.props.get("referencedSecurityGroupId") == owner):
            found.add("ingress" if r.type == AWS_INGRESS else "egress")
    return found


def efa_self_rule(resources: list[Resource]) -> list[tuple[Resource, str]]:
    """EFA needs a security group that allows all traffic to and from itself, in and out
    (AWS EFA user guide, "Prepare an EFA-enabled security group"); without it NCCL hangs.
    Read on every EFA interface: a launch template's, or a network interface resource's."""
    stack = Stack(resources)
    out = []
    for r in stack.of(AWS_LT, AWS_NIC):
        if r.type == AWS_LT:
            nics = efa_interfaces(r.props)
            if not nics:
                continue
            ids = [g for nic in nics for g in as_list(nic.get("securityGroups"))]
            ids += as_list(r.props.get("vpcSecurityGroupIds"))
            used = stack.targets(r, "networkInterfaces", ids, (AWS_SG,))
            used += [g for g in stack.targets(r, "vpcSecurityGroupIds", ids, (AWS_SG,)) if g not in used]
        else:
            if r.props.get("interfaceType") not in ("efa", "efa-only"):
                continue
            used = stack.targets(r, "securityGroups", r.props.get("securityGroups"), (AWS_SG,))
        if not used:
            out.append((r, "EFA interfaces use no security group declared in this stack"))
            continue
        if not any(_self_rules(stack, g) >= {"ingress", "egress"} for g in used):
            names = ", ".join(g.name for g in used)
            out.append((r, f"none of its security groups ({names}) allows all traffic to and from itself "
                           "(ingress and egress self rules)"))
    return out


# --- launch-templates-in-stack ---------------------------------------------------------------

def templates_in_stack(resources: list[Resource]) -> list[tuple[Resource, str]]:
    """Node groups launch only templates declared in this stack: a launch template, launch
    configuration, instance template or instance configuration from elsewhere would launch
    nodes no rule of this pack has read."""
    stack = Stack(resources)
    out = []
    for r in stack.resources:
        kind = NODE_KINDS.get(r.type)
        for ref in kind.templates(r.props) if kind else ():
            if not stack.targets(r, ref.prop, ref.value, ref.types):
                out.append((r, f"{ref.where} {ref.value!r} is not declared in this stack: the guardrails cannot "
                               "read what it launches"))
    return out


RULES: tuple[Rule, ...] = (
    Rule("imdsv2-required", "EC2 nodes require IMDSv2 (httpTokens = required), whatever resource launches them",
         check=imdsv2, remediation="set metadata_options.http_tokens='required'"),
    Rule("encrypted-volumes", "Volumes are encrypted: an encrypted EBS root and EBS volumes, Azure encryption at "
         "host, OCI in-transit encryption", check=encrypted_volumes,
         remediation="declare an encrypted root volume; encrypt every block device; enable encryption at host / "
                     "in transit"),
    Rule("no-public-ip-on-gpu-nodes", "GPU nodes get no public IP address by any path",
         check=no_public_ip_on_node, stack_check=no_public_ip,
         remediation="put nodes on private subnets, refuse public addresses explicitly; reach them through a "
                     "bastion"),
    Rule("no-open-admin-ports", "No admin port (SSH, BMC/IPMI, management) is reachable from the internet, "
         "counting the union of every rule's sources", check=open_admin_ports_here, stack_check=no_open_admin_ports,
         remediation="allow only the spec's access.admin_cidrs"),
    Rule("required-tags", f"Compute resources carry non-blank {', '.join(REQUIRED_TAGS)} tags/labels",
         check=required_tags, remediation="pass the component's tags through to every child"),
    Rule("efa-security-group-self-rule", "EFA security groups allow all traffic to and from themselves",
         stack_check=efa_self_rule, remediation="add ingress and egress rules with self = true, protocol -1"),
    Rule("launch-templates-in-stack", "Node groups launch only templates declared in the same stack",
         stack_check=templates_in_stack, remediation="declare the launch template / instance template / instance "
                                                     "configuration in this stack"),
)
RULE_NAMES = tuple(r.name for r in RULES)


def evaluate(resources: Iterable) -> list[Violation]:
    """Every violation of every rule, for resources recorded offline (or converted from the SDK).

    ``resources`` holds :class:`Resource` objects, mappings or record objects with ``type``,
    ``name``, ``props`` (or ``inputs``) and optionally ``urn``, ``dependencies`` (URNs or
    names) and ``property_dependencies``. Ids are taken from ``props["id"]`` where recorded;
    otherwise references between resources are followed through the dependencies.
    """
    items = [as_resource(r) for r in resources]
    out = []
    for rule in RULES:
        if rule.check:
            for r in items:
                out += [Violation(rule.name, r.type, r.name, m, r.urn) for m in rule.check(r.type, r.props)]
        if rule.stack_check:
            out += [Violation(rule.name, r.type, r.name, m, r.urn) for r, m in rule.stack_check(items)]
    return out
