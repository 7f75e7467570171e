"""What the guardrails read: resources, references between them, and the engine's property forms.

Properties use the engine's names (camelCase, as pulumi-policy and the mock monitor see them).
Booleans may arrive as strings ("true"): several bridged providers type them so, and both forms
are handled. References between resources are followed by id or name where recorded, else
through the dependencies the engine records for every output passed as an input (per property
where the engine says which property).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

# The resource types (Pulumi type tokens) the rules read.
AWS_LT = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_SPOT_INSTANCE = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
AWS_LAUNCH_CONFIG = "aws:ec2/launchConfiguration:LaunchConfiguration"
AWS_SPOT_FLEET = "aws:ec2/spotFleetRequest:SpotFleetRequest"
AWS_FLEET = "aws:ec2/fleet:Fleet"
AWS_ASG = "aws:autoscaling/group:Group"
AWS_EKS_NODES = "aws:eks/nodeGroup:NodeGroup"
AWS_VOLUME = "aws:ebs/volume:Volume"
AWS_SG = "aws:ec2/securityGroup:SecurityGroup"
AWS_DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
AWS_SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
AWS_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
AWS_EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
AWS_PREFIX_LIST = "aws:ec2/managedPrefixList:ManagedPrefixList"
AWS_PREFIX_ENTRY = "aws:ec2/managedPrefixListEntry:ManagedPrefixListEntry"
AWS_SUBNET = "aws:ec2/subnet:Subnet"
AWS_DEFAULT_SUBNET = "aws:ec2/defaultSubnet:DefaultSubnet"
AWS_VPC = "aws:ec2/vpc:Vpc"
AWS_ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
AWS_DEFAULT_ROUTE_TABLE = "aws:ec2/defaultRouteTable:DefaultRouteTable"
AWS_ROUTE = "aws:ec2/route:Route"
AWS_ROUTE_ASSOC = "aws:ec2/routeTableAssociation:RouteTableAssociation"
AWS_MAIN_ROUTE_ASSOC = "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation"
AWS_IGW = "aws:ec2/internetGateway:InternetGateway"
AWS_EIP = "aws:ec2/eip:Eip"
AWS_EIP_ASSOC = "aws:ec2/eipAssociation:EipAssociation"
AWS_NIC = "aws:ec2/networkInterface:NetworkInterface"
AWS_NIC_ATTACH = "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"
GCP_TEMPLATES = ("gcp:compute/instanceTemplate:InstanceTemplate",
                 "gcp:compute/regionInstanceTemplate:RegionInstanceTemplate")
GCP_INSTANCE = "gcp:compute/instance:Instance"
GCP_FROM_TEMPLATE = "gcp:compute/instanceFromTemplate:InstanceFromTemplate"
GCP_MIGS = ("gcp:compute/instanceGroupManager:InstanceGroupManager",
            "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager")
GCP_SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"
GCP_FIREWALL = "gcp:compute/firewall:Firewall"
GCP_POLICY_RULES = ("gcp:compute/firewallPolicyRule:FirewallPolicyRule",
                    "gcp:compute/networkFirewallPolicyRule:NetworkFirewallPolicyRule",
                    "gcp:compute/regionNetworkFirewallPolicyRule:RegionNetworkFirewallPolicyRule")
GCP_POLICY_WITH_RULES = ("gcp:compute/networkFirewallPolicyWithRules:NetworkFirewallPolicyWithRules",
                         "gcp:compute/regionNetworkFirewallPolicyWithRules:RegionNetworkFirewallPolicyWithRules")
AZ_VMSS = "azure-native:compute:VirtualMachineScaleSet"
AZ_VM = "azure-native:compute:VirtualMachine"
AZ_NIC = "azure-native:network:NetworkInterface"
AZ_NSG = "azure-native:network:NetworkSecurityGroup"
AZ_RULE = "azure-native:network:SecurityRule"
AZ_AKS_POOL = "azure-native:containerservice:AgentPool"
AZ_AKS = "azure-native:containerservice:ManagedCluster"
AZ_CLASSIC_NSG = "azure:network/networkSecurityGroup:NetworkSecurityGroup"
AZ_CLASSIC_RULE = "azure:network/networkSecurityRule:NetworkSecurityRule"
OCI_INSTANCE = "oci:Core/instance:Instance"
OCI_CONFIG = "oci:Core/instanceConfiguration:InstanceConfiguration"
OCI_POOL = "oci:Core/instancePool:InstancePool"
OCI_CLUSTER_NETWORK = "oci:Core/clusterNetwork:ClusterNetwork"
OCI_VNIC_ATTACH = "oci:Core/vnicAttachment:VnicAttachment"
OCI_PRIVATE_IP = "oci:Core/privateIp:PrivateIp"
OCI_PUBLIC_IP = "oci:Core/publicIp:PublicIp"
OCI_VOLUME_ATTACH = "oci:Core/volumeAttachment:VolumeAttachment"
OCI_SECLIST = "oci:Core/securityList:SecurityList"
OCI_DEFAULT_SECLIST = "oci:Core/defaultSecurityList:DefaultSecurityList"
OCI_NSG_RULE = "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule"


@dataclass(frozen=True)
class Resource:
    """One registered resource: what the mock harness records and what the policy SDK passes."""

    type: str
    name: str
    props: Mapping
    urn: str = ""
    dependencies: tuple = ()  # URNs (or names) of the resources it depends on
    # top-level property -> URNs (or names) its value came from, where the engine says so
    property_dependencies: Mapping = field(default_factory=dict, compare=False)

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
    """One guardrail. ``check`` reads one resource (in the pack a resource policy, decided before
    the resource is created); ``stack_check`` reads them all, for what only references between
    resources reveal (a stack policy). A rule with both reports each finding from one of them."""

    name: str
    description: str
    check: Callable[[str, Mapping], list[str]] | None = None  # per resource
    stack_check: Callable[[list[Resource]], list[tuple[Resource, str]]] | None = None  # whole stack
    remediation: str = ""
    types: tuple = field(default=())


# --- property forms ----------------------------------------------------------------------------

def is_true(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def is_false(value) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def as_list(value) -> list:
    # Sequence, not list: the policy SDK hands rules read-only proxies (Sequence and Mapping).
    return list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else []


def as_dict(value) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def dicts(value) -> list[Mapping]:
    return [as_dict(v) for v in as_list(value)]


def values_of(value) -> list:
    """A field that holds one value or a list of them, as a list."""
    if value is None:
        return []
    return as_list(value) if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else [value]


def dig(props: Mapping, *path):
    cur = props
    for part in path:
        cur = as_dict(cur).get(part)
    return cur


def as_text(value) -> str:
    return "" if value is None else str(value).strip()


def flat(value) -> Mapping:
    """An Azure object in either shape: flattened, or with its fields under ``properties``."""
    value = as_dict(value)
    inner = as_dict(value.get("properties"))
    return {**value, **inner} if inner else value


def count_of(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 1  # unreadable: assume it asks for addresses


def provider_of(rtype: str) -> str:
    return rtype.split(":", 1)[0].replace("-native", "")


# --- the stack: references between resources ---------------------------------------------------

class Stack:
    """Every resource of a stack, indexed by type, with references followed between them."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self.resources = list(resources)
        self._by_type: dict[str, list[Resource]] = defaultdict(list)
        for r in self.resources:
            self._by_type[r.type].append(r)
        self.memo: dict = {}  # what rules derive once per stack

    def of(self, *types: str) -> list[Resource]:
        return [r for t in types for r in self._by_type.get(t, ())]

    def targets(self, r: Resource, prop: str, value, types: Sequence[str]) -> list[Resource]:
        """The resources of ``types`` that ``value`` (written in ``r``'s property ``prop``) names.

        By id or name where the target's are recorded; otherwise through the dependencies the
        engine records for ``prop`` (or, without per-property dependencies, for ``r``)."""
        values = [v for v in values_of(value) if v not in (None, "")]
        if not values:
            return []
        # Per-property dependencies where the engine gives them: a literal id written next to an
        # unrelated depends_on then names nothing.
        deps = r.property_dependencies.get(prop, ()) if r.property_dependencies else r.dependencies
        out = []
        for t in self.of(*types):
            if t is r:
                continue
            names = [n for n in (t.id, t.props.get("name")) if n is not None]
            if names and any(v in names for v in values):
                out.append(t)
            elif t.id is None and ((t.urn and t.urn in deps) or t.name in deps):
                out.append(t)
        return out


def as_resource(r) -> Resource:
    if isinstance(r, Resource):
        return r
    if not isinstance(r, Mapping):  # a recorder's record object (aifactory.preview)
        r = {**r.to_dict(), "urn": getattr(r, "urn", "")} if hasattr(r, "to_dict") else vars(r)
    props = r.get("props")
    return Resource(type=r["type"], name=r["name"], props=props if props is not None else r.get("inputs") or {},
                    urn=r.get("urn") or "", dependencies=tuple(r.get("dependencies") or ()),
                    property_dependencies={k: tuple(v) for k, v in as_dict(r.get("property_dependencies")).items()})
