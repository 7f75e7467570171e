"""The node table: for every resource type that defines or launches compute nodes, where the
rules find its machine type, tags, metadata options, disks, addresses and the templates it
launches. A spot request, a fleet, an instance configuration or a managed node pool meets the
same rules as a launch template because the rules read this table, never a provider's shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from ..components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, label_key
from .model import (
    AWS_ASG, AWS_EKS_NODES, AWS_FLEET, AWS_INSTANCE, AWS_LAUNCH_CONFIG, AWS_LT, AWS_SPOT_FLEET, AWS_SPOT_INSTANCE,
    AZ_AKS, AZ_AKS_POOL, AZ_VM, AZ_VMSS, GCP_FROM_TEMPLATE, GCP_INSTANCE, GCP_MIGS, GCP_TEMPLATES,
    OCI_CLUSTER_NETWORK, OCI_CONFIG, OCI_INSTANCE, OCI_POOL, Resource, Stack, as_dict, as_list, as_text, count_of,
    dicts, dig, flat, is_false, is_true,
)

# Tag keys every compute resource carries: inventories select nodes by them and cost reports
# group by them. The components write them (components/base.py); AWS and Azure take them as
# they are (aifactory:pool), GCP labels and OCI freeform tags in label form (aifactory-pool).
REQUIRED_TAGS = (TAG_FACTORY, TAG_POOL, TAG_ROLE)

# Machine types that carry GPUs or other accelerators: AWS p/g/gr/trn/inf/dl families, GCP
# a2/a3/a4/a4x/g2, Azure N-series, OCI *.GPU. Case-insensitive: Azure accepts any case.
_GPU_TYPES = re.compile(r"^(p|g|gr|trn|inf|dl)[0-9][a-z0-9-]*\.|^(a[0-9]+x?|g[0-9]+)-|^standard_n|^(bm|vm)\.gpu",
                        re.IGNORECASE)

# Device names AMIs use for their root volume: a launch template that maps neither leaves the
# root volume, and its encryption, to the image.
ROOT_DEVICES = ("/dev/sda1", "/dev/xvda")


def _label_form(rtype: str) -> bool:
    return rtype.startswith(("gcp:", "oci:"))


def required_keys(rtype: str) -> tuple[str, ...]:
    return tuple(label_key(k) for k in REQUIRED_TAGS) if _label_form(rtype) else REQUIRED_TAGS


def _pool_tag(rtype: str) -> str:
    return label_key(TAG_POOL) if _label_form(rtype) else TAG_POOL


# --- the node table ---------------------------------------------------------------------------

TagSet = tuple[str, Mapping]          # (where, tags)
Ref = tuple[str, object]              # (top-level property, value naming another resource)


@dataclass(frozen=True)
class TemplateRef:
    prop: str       # top-level property that holds the reference
    value: object   # the id/name/self link written there
    types: tuple    # resource types it must name
    where: str      # how a message names it


def _none(props: Mapping) -> list:
    return []


@dataclass(frozen=True)
class NodeKind:
    """How the rules read one resource type that defines or launches compute nodes.

    Every reader takes the resource's properties and returns a list; an empty list means
    nothing to report (or, for ``None`` readers, that the aspect does not apply to the type).
    """

    machines: Callable[[Mapping], list[str]] = _none          # instance/machine types, VM sizes, shapes
    accelerated: Callable[[Mapping], bool] = lambda props: False  # declared accelerators or EFA
    tags: Optional[Callable[[Mapping], list[TagSet]]] = None  # tag sets that must each carry REQUIRED_TAGS
    imds: Optional[Callable[[Mapping], list[str]]] = None     # IMDSv2 findings (AWS)
    disks: Optional[Callable[[Mapping], list[str]]] = None    # encryption findings
    public: Callable[[Mapping], list[str]] = _none            # public addresses the node asks for itself
    ipv6: Callable[[Mapping], list[str]] = _none              # AWS IPv6 addresses: public where routed to an IGW
    unrefused: Callable[[Mapping], list[str]] = _none         # AWS interfaces that leave a public IPv4 to the subnet
    subnets: Callable[[Mapping], list[Ref]] = _none           # subnets the resource itself names
    templates: Callable[[Mapping], list[TemplateRef]] = _none  # templates it launches
    nics: Callable[[Mapping], list[Ref]] = _none              # network interface resources it attaches
    template: bool = False                                    # launched by another resource, never alone


# AWS ----------------------------------------------------------------------------------------

def _aws_imds(options, where: str = "") -> list[str]:
    options = as_dict(options)
    if options.get("httpEndpoint") == "disabled":
        return []
    if options.get("httpTokens") != "required":
        return [f"{where}metadataOptions.httpTokens is {options.get('httpTokens')!r}; set it to 'required' (IMDSv2)"]
    return []


def _aws_ebs_list(devices, where: str) -> list[str]:
    return [f"{where}[{i}] ({d.get('deviceName')}) is not encrypted"
            for i, d in enumerate(dicts(devices)) if not is_true(d.get("encrypted"))]


def _aws_instance_disks(props: Mapping) -> list[str]:
    out = [] if is_true(dig(props, "rootBlockDevice", "encrypted")) else ["rootBlockDevice.encrypted is not true"]
    return out + _aws_ebs_list(props.get("ebsBlockDevices"), "ebsBlockDevices")


def _aws_lt_disks(props: Mapping) -> list[str]:
    out, root = [], False
    for i, m in enumerate(dicts(props.get("blockDeviceMappings"))):
        ebs = m.get("ebs")
        if not isinstance(ebs, Mapping):
            continue  # instance store (virtualName) or a suppressed device
        if not is_true(ebs.get("encrypted")):
            out.append(f"blockDeviceMappings[{i}] ({m.get('deviceName')}) is not encrypted")
        elif as_text(m.get("deviceName")) in ROOT_DEVICES and not as_text(m.get("noDevice")):
            root = True
    if not root:
        out.append("no encrypted EBS root volume is declared (blockDeviceMappings with ebs.encrypted = true on "
                   f"{' or '.join(ROOT_DEVICES)}): the root volume's encryption is left to the AMI")
    return out


def _aws_instance_public(props: Mapping) -> list[str]:
    return ["associatePublicIpAddress is true"] if is_true(props.get("associatePublicIpAddress")) else []


def _aws_instance_ipv6(props: Mapping) -> list[str]:
    out = []
    if count_of(props.get("ipv6AddressCount")) > 0 or as_list(props.get("ipv6Addresses")):
        out.append("asks for IPv6 addresses (ipv6AddressCount/ipv6Addresses)")
    if is_true(props.get("enablePrimaryIpv6")):
        out.append("enablePrimaryIpv6 is true")
    return out


def _aws_instance_unrefused(props: Mapping) -> list[str]:
    # Attached interfaces (networkInterfaces, primaryNetworkInterface) never get an automatic
    # public address; a new primary interface takes the subnet's default unless told no.
    if as_list(props.get("networkInterfaces")) or props.get("primaryNetworkInterface"):
        return []
    return [] if is_false(props.get("associatePublicIpAddress")) else ["associatePublicIpAddress"]


def _aws_launch_template_ref(props: Mapping) -> list[TemplateRef]:
    spec = as_dict(props.get("launchTemplate"))
    value = spec.get("id") or spec.get("name")
    return [TemplateRef("launchTemplate", value, (AWS_LT,), "launchTemplate")] if value else []


def _aws_lt_nics(props: Mapping) -> list[Mapping]:
    return dicts(props.get("networkInterfaces"))


def _aws_lt_public(props: Mapping) -> list[str]:
    out = []
    for i, nic in enumerate(_aws_lt_nics(props)):
        if is_true(nic.get("associatePublicIpAddress")):
            out.append(f"networkInterfaces[{i}].associatePublicIpAddress is true")
        if is_true(nic.get("associateCarrierIpAddress")):
            out.append(f"networkInterfaces[{i}].associateCarrierIpAddress is true (a carrier-routable address)")
    return out


def _aws_lt_ipv6(props: Mapping) -> list[str]:
    out = []
    for i, nic in enumerate(_aws_lt_nics(props)):
        if (count_of(nic.get("ipv6AddressCount")) > 0 or as_list(nic.get("ipv6Addresses"))
                or count_of(nic.get("ipv6PrefixCount")) > 0 or as_list(nic.get("ipv6Prefixes"))
                or is_true(nic.get("primaryIpv6"))):
            out.append(f"networkInterfaces[{i}] asks for IPv6 addresses")
    return out


def _aws_lt_unrefused(props: Mapping) -> list[str]:
    nics = _aws_lt_nics(props)
    if not nics:
        return ["networkInterfaces (none declared)"]
    return [f"networkInterfaces[{i}]" for i, nic in enumerate(nics)
            if nic.get("interfaceType") != "efa-only"  # EFA-only interfaces carry no IP address
            and not nic.get("networkInterfaceId")      # an existing interface gets no automatic address
            and not is_false(nic.get("associatePublicIpAddress"))]


def _aws_tag_specs(props: Mapping, kind: str) -> Mapping:
    merged: dict = {}
    for spec in dicts(props.get("tagSpecifications")):
        if spec.get("resourceType") == kind:
            merged.update(as_dict(spec.get("tags")))
    return merged


def efa_interfaces(props: Mapping) -> list[Mapping]:
    return [n for n in dicts(props.get("networkInterfaces")) if n.get("interfaceType") in ("efa", "efa-only")]


def _spot_specs(props: Mapping) -> list[tuple[str, Mapping]]:
    return [(f"launchSpecifications[{i}].", s) for i, s in enumerate(dicts(props.get("launchSpecifications")))]


def _spot_fleet_disks(props: Mapping) -> list[str]:
    out = []
    for where, spec in _spot_specs(props):
        roots = dicts(spec.get("rootBlockDevices"))
        if not roots:
            out.append(f"{where}rootBlockDevices is empty: the root volume's encryption is left to the AMI")
        out += _aws_ebs_list(roots, f"{where}rootBlockDevices")
        out += _aws_ebs_list(spec.get("ebsBlockDevices"), f"{where}ebsBlockDevices")
    return out


def _fleet_templates(props: Mapping, id_key: str, name_key: str) -> list[TemplateRef]:
    out = []
    for i, config in enumerate(dicts(props.get("launchTemplateConfigs"))):
        spec = as_dict(config.get("launchTemplateSpecification"))
        value = spec.get(id_key) or spec.get(name_key)
        if value:
            out.append(TemplateRef("launchTemplateConfigs", value, (AWS_LT,),
                                   f"launchTemplateConfigs[{i}].launchTemplateSpecification"))
    return out


def _fleet_overrides(props: Mapping) -> list[Mapping]:
    return [o for config in dicts(props.get("launchTemplateConfigs")) for o in dicts(config.get("overrides"))]


def _asg_templates(props: Mapping) -> list[TemplateRef]:
    out = _aws_launch_template_ref(props)
    mixed = as_dict(dig(props, "mixedInstancesPolicy", "launchTemplate"))
    where = "mixedInstancesPolicy.launchTemplate"
    specs = [(f"{where}.launchTemplateSpecification", mixed.get("launchTemplateSpecification"))]
    specs += [(f"{where}.overrides[{i}].launchTemplateSpecification",
               o.get("launchTemplateSpecification")) for i, o in enumerate(dicts(mixed.get("overrides")))]
    for where, spec in specs:
        spec = as_dict(spec)
        value = spec.get("launchTemplateId") or spec.get("launchTemplateName")
        if value:
            out.append(TemplateRef("mixedInstancesPolicy", value, (AWS_LT,), where))
    if props.get("launchConfiguration"):
        out.append(TemplateRef("launchConfiguration", props.get("launchConfiguration"), (AWS_LAUNCH_CONFIG,),
                               "launchConfiguration"))
    return out


def _asg_machines(props: Mapping) -> list[str]:
    mixed = as_dict(dig(props, "mixedInstancesPolicy", "launchTemplate"))
    return [as_text(o.get("instanceType")) for o in dicts(mixed.get("overrides"))]


def _eks_no_template(message: str) -> Callable[[Mapping], list[str]]:
    def read(props: Mapping) -> list[str]:
        return [] if _aws_launch_template_ref(props) else [message]
    return read


def _aws_instance_kind(tags: bool = True) -> NodeKind:
    return NodeKind(
        machines=lambda p: [as_text(p.get("instanceType"))],
        tags=(lambda p: [("tags", as_dict(p.get("tags")))]) if tags else None,
        imds=lambda p: _aws_imds(p.get("metadataOptions")),
        disks=_aws_instance_disks,
        public=_aws_instance_public,
        ipv6=_aws_instance_ipv6,
        unrefused=_aws_instance_unrefused,
        subnets=lambda p: [("subnetId", p.get("subnetId"))] if p.get("subnetId") else [],
        templates=_aws_launch_template_ref,
        nics=lambda p: [("networkInterfaces", n.get("networkInterfaceId")) for n in dicts(p.get("networkInterfaces"))]
        + [("primaryNetworkInterface", dig(p, "primaryNetworkInterface", "networkInterfaceId"))],
    )


# GCP ----------------------------------------------------------------------------------------

def _gcp_public(props: Mapping) -> list[str]:
    out = []
    for i, nic in enumerate(dicts(props.get("networkInterfaces"))):
        for key in ("accessConfigs", "ipv6AccessConfigs"):
            if as_list(nic.get(key)):
                out.append(f"networkInterfaces[{i}].{key} gives the node an external IP")
        if as_text(nic.get("ipv6AccessType")).upper() == "EXTERNAL":
            out.append(f"networkInterfaces[{i}].ipv6AccessType is EXTERNAL")
    return out


def _gcp_kind(*, inherits: bool = False) -> NodeKind:
    # An instance from a template inherits every field it does not set: only what it sets is read
    # here; the template itself is read as its own resource (launch-templates-in-stack).
    return NodeKind(
        machines=lambda p: [as_text(p.get("machineType"))],
        accelerated=lambda p: bool(as_list(p.get("guestAccelerators"))),
        tags=(lambda p: [("labels", as_dict(p.get("labels")))] if not inherits or "labels" in p else []),
        public=_gcp_public,
        templates=(lambda p: [TemplateRef("sourceInstanceTemplate", p.get("sourceInstanceTemplate"), GCP_TEMPLATES,
                                          "sourceInstanceTemplate")]) if inherits else _none,
    )


def _gcp_mig_templates(props: Mapping) -> list[TemplateRef]:
    return [TemplateRef("versions", v.get("instanceTemplate"), GCP_TEMPLATES, f"versions[{i}].instanceTemplate")
            for i, v in enumerate(dicts(props.get("versions"))) if v.get("instanceTemplate")]


def _gcp_mig_public(props: Mapping) -> list[str]:
    return ["statefulExternalIps gives every instance a stateful external IP"] if as_list(
        props.get("statefulExternalIps")) else []


# Azure --------------------------------------------------------------------------------------

def azure_ip_configs(configs, where: str, public_key: str) -> list[str]:
    out = []
    for i, nic in enumerate(as_list(configs)):
        for j, ip in enumerate(as_list(flat(nic).get("ipConfigurations"))):
            ip = flat(ip)
            here = f"{where}[{i}].ipConfigurations[{j}]"
            if ip.get(public_key):
                out.append(f"{here} has a {public_key}")
            for nat in ("loadBalancerInboundNatPools", "loadBalancerInboundNatRules"):
                if as_list(ip.get(nat)):
                    out.append(f"{here}.{nat} forwards load balancer frontend ports to the node")
    return out


def _az_encryption(flag) -> list[str]:
    if is_true(flag):
        return []
    return ["securityProfile.encryptionAtHost is not true (temp disk and caches stay unencrypted)"]


def _az_aks_profiles(props: Mapping) -> list[tuple[str, Mapping]]:
    return [(f"agentPoolProfiles[{i}].", p) for i, p in enumerate(dicts(props.get("agentPoolProfiles")))]


def _az_aks_disks(pools: list[tuple[str, Mapping]]) -> list[str]:
    return [f"{w}enableEncryptionAtHost is not true (temp disk and caches stay unencrypted)"
            for w, p in pools if not is_true(p.get("enableEncryptionAtHost"))]


def _az_aks_public(pools: list[tuple[str, Mapping]]) -> list[str]:
    return [f"{w}enableNodePublicIP is true" for w, p in pools if is_true(p.get("enableNodePublicIP"))]


# OCI ----------------------------------------------------------------------------------------

def _oci_launches(props: Mapping) -> list[tuple[str, Mapping, list]]:
    """(where, launch details, secondary VNICs) of an instance configuration, one per option."""
    details = as_dict(props.get("instanceDetails"))
    out = [("instanceDetails.launchDetails.", as_dict(details.get("launchDetails")),
            as_list(details.get("secondaryVnics")))]
    for i, option in enumerate(dicts(details.get("options"))):
        out.append((f"instanceDetails.options[{i}].launchDetails.", as_dict(option.get("launchDetails")),
                    as_list(option.get("secondaryVnics"))))
    # An options-only configuration has no top-level launch details; it is judged by its options.
    return out[1:] if len(out) > 1 and not details.get("launchDetails") else out


def oci_vnic_findings(vnic, where: str) -> list[str]:
    vnic = as_dict(vnic)
    out = []
    # OCI assigns a public IP by default on a public subnet: it must be refused explicitly.
    if not is_false(vnic.get("assignPublicIp")):
        out.append(f"{where}assignPublicIp is not false")
    if is_true(vnic.get("assignIpv6ip")):
        out.append(f"{where}assignIpv6ip is true (a globally routable IPv6 address)")
    return out


def _oci_encryption(details: Mapping, where: str) -> list[str]:
    shape = as_text(details.get("shape"))
    flags = [details.get("isPvEncryptionInTransitEnabled"),
             dig(details, "launchOptions", "isPvEncryptionInTransitEnabled")]
    # OCI encrypts every boot and block volume at rest. In-transit encryption applies to
    # paravirtualized attachments, which VM shapes use; bare metal attaches boot volumes over
    # iSCSI, so there it must only not be switched off explicitly.
    if shape.upper().startswith("BM."):
        return [f"{where}isPvEncryptionInTransitEnabled is explicitly false"] if any(is_false(f) for f in flags) else []
    if not any(is_true(f) for f in flags):
        return [f"{where}isPvEncryptionInTransitEnabled is not true (boot volume traffic unencrypted)"]
    return []


def _oci_config_public(props: Mapping) -> list[str]:
    out = []
    for where, details, secondary in _oci_launches(props):
        out += oci_vnic_findings(details.get("createVnicDetails"), f"{where}createVnicDetails.")
        for i, vnic in enumerate(dicts(secondary)):
            prefix = where.removesuffix("launchDetails.")
            out += oci_vnic_findings(vnic.get("createVnicDetails"), f"{prefix}secondaryVnics[{i}].createVnicDetails.")
    return out


def _oci_pool_public(props: Mapping, placements) -> list[str]:
    return [f"{w}secondaryVnicSubnets[{j}].isAssignIpv6ip is true"
            for w, placement in placements
            for j, s in enumerate(dicts(as_dict(placement).get("secondaryVnicSubnets")))
            if is_true(s.get("isAssignIpv6ip"))]


NODE_KINDS: dict[str, NodeKind] = {
    AWS_LT: NodeKind(
        machines=lambda p: [as_text(p.get("instanceType"))],
        accelerated=lambda p: bool(efa_interfaces(p)),
        tags=lambda p: [("tags", as_dict(p.get("tags"))),
                        ("tagSpecifications for instances", _aws_tag_specs(p, "instance"))],
        imds=lambda p: _aws_imds(p.get("metadataOptions")),
        disks=_aws_lt_disks,
        public=_aws_lt_public,
        ipv6=_aws_lt_ipv6,
        unrefused=_aws_lt_unrefused,
        subnets=lambda p: [("networkInterfaces", n.get("subnetId")) for n in _aws_lt_nics(p) if n.get("subnetId")],
        nics=lambda p: [("networkInterfaces", n.get("networkInterfaceId")) for n in _aws_lt_nics(p)],
        template=True,
    ),
    AWS_INSTANCE: _aws_instance_kind(),
    # A spot request takes the instance's arguments. Its tags are the request's (AWS does not
    # copy them to the instance it launches); they are what this stack can require of it.
    AWS_SPOT_INSTANCE: _aws_instance_kind(),
    # Launch configurations cannot carry tags: instances take the Auto Scaling group's.
    AWS_LAUNCH_CONFIG: NodeKind(
        machines=lambda p: [as_text(p.get("instanceType"))],
        imds=lambda p: _aws_imds(p.get("metadataOptions")),
        disks=_aws_instance_disks,
        public=_aws_instance_public,
        unrefused=lambda p: [] if is_false(p.get("associatePublicIpAddress")) else ["associatePublicIpAddress"],
        template=True,
    ),
    AWS_SPOT_FLEET: NodeKind(
        machines=lambda p: [as_text(s.get("instanceType")) for _, s in _spot_specs(p)]
        + [as_text(o.get("instanceType")) for o in _fleet_overrides(p)],
        tags=lambda p: [(f"{w}tags", as_dict(s.get("tags"))) for w, s in _spot_specs(p)],
        imds=lambda p: [f"{w[:-1]} cannot require IMDSv2 (no metadata options); launch from a launch template "
                        "(launchTemplateConfigs) that sets httpTokens = 'required'" for w, _ in _spot_specs(p)],
        disks=_spot_fleet_disks,
        public=lambda p: [f"{w}associatePublicIpAddress is true" for w, s in _spot_specs(p)
                          if is_true(s.get("associatePublicIpAddress"))],
        unrefused=lambda p: [f"{w}associatePublicIpAddress" for w, s in _spot_specs(p)
                             if not is_false(s.get("associatePublicIpAddress"))],
        subnets=lambda p: [("launchSpecifications", s.get("subnetId")) for _, s in _spot_specs(p) if s.get("subnetId")]
        + [("launchTemplateConfigs", o.get("subnetId")) for o in _fleet_overrides(p) if o.get("subnetId")],
        templates=lambda p: _fleet_templates(p, "id", "name"),
    ),
    AWS_FLEET: NodeKind(
        machines=lambda p: [as_text(o.get("instanceType")) for o in _fleet_overrides(p)],
        subnets=lambda p: [("launchTemplateConfigs", o.get("subnetId")) for o in _fleet_overrides(p)
                           if o.get("subnetId")],
        templates=lambda p: _fleet_templates(p, "launchTemplateId", "launchTemplateName"),
    ),
    AWS_ASG: NodeKind(
        machines=_asg_machines,
        tags=lambda p: [("tags", {t.get("key"): t.get("value") for t in dicts(p.get("tags"))})],
        subnets=lambda p: [("vpcZoneIdentifiers", s) for s in as_list(p.get("vpcZoneIdentifiers"))],
        templates=_asg_templates,
    ),
    # EKS managed node groups: without a launch template EKS builds one that neither requires
    # IMDSv2 nor declares an encrypted root volume.
    AWS_EKS_NODES: NodeKind(
        machines=lambda p: [as_text(t) for t in as_list(p.get("instanceTypes"))],
        tags=lambda p: [("tags", as_dict(p.get("tags")))],
        imds=_eks_no_template("no launchTemplate: EKS's default launch template does not require IMDSv2"),
        disks=_eks_no_template("no launchTemplate: the root volume's encryption is left to the account default"),
        unrefused=lambda p: [] if _aws_launch_template_ref(p) else ["subnetIds (no launch template)"],
        subnets=lambda p: [("subnetIds", s) for s in as_list(p.get("subnetIds"))],
        templates=_aws_launch_template_ref,
    ),
    GCP_INSTANCE: _gcp_kind(),
    GCP_TEMPLATES[0]: _gcp_kind(),
    GCP_TEMPLATES[1]: _gcp_kind(),
    GCP_FROM_TEMPLATE: _gcp_kind(inherits=True),
    **{mig: NodeKind(public=_gcp_mig_public, templates=_gcp_mig_templates) for mig in GCP_MIGS},
    AZ_VMSS: NodeKind(
        machines=lambda p: [as_text(dig(p, "sku", "name"))],
        tags=lambda p: [("tags", as_dict(p.get("tags")))],
        disks=lambda p: _az_encryption(dig(p, "virtualMachineProfile", "securityProfile", "encryptionAtHost")),
        public=lambda p: azure_ip_configs(
            dig(p, "virtualMachineProfile", "networkProfile", "networkInterfaceConfigurations"),
            "networkInterfaceConfigurations", "publicIPAddressConfiguration"),
    ),
    AZ_VM: NodeKind(
        machines=lambda p: [as_text(dig(p, "hardwareProfile", "vmSize"))],
        tags=lambda p: [("tags", as_dict(p.get("tags")))],
        disks=lambda p: _az_encryption(dig(p, "securityProfile", "encryptionAtHost")),
        public=lambda p: azure_ip_configs(dig(p, "networkProfile", "networkInterfaceConfigurations"),
                                        "networkInterfaceConfigurations", "publicIPAddressConfiguration"),
        nics=lambda p: [("networkProfile", as_dict(n).get("id"))
                        for n in as_list(dig(p, "networkProfile", "networkInterfaces"))],
    ),
    AZ_AKS_POOL: NodeKind(
        machines=lambda p: [as_text(p.get("vmSize"))],
        tags=lambda p: [("tags", as_dict(p.get("tags")))],
        disks=lambda p: _az_aks_disks([("", p)]),
        public=lambda p: _az_aks_public([("", p)]),
    ),
    AZ_AKS: NodeKind(
        machines=lambda p: [as_text(pool.get("vmSize")) for _, pool in _az_aks_profiles(p)],
        tags=lambda p: [(f"{w}tags", as_dict(pool.get("tags"))) for w, pool in _az_aks_profiles(p)],
        disks=lambda p: _az_aks_disks(_az_aks_profiles(p)),
        public=lambda p: _az_aks_public(_az_aks_profiles(p)),
    ),
    OCI_INSTANCE: NodeKind(
        machines=lambda p: [as_text(p.get("shape"))],
        tags=lambda p: [("freeformTags", as_dict(p.get("freeformTags")))],
        disks=lambda p: _oci_encryption(p, ""),
        public=lambda p: oci_vnic_findings(p.get("createVnicDetails"), "createVnicDetails."),
    ),
    # The configuration's own tags name the template; the launch details' tags the nodes.
    OCI_CONFIG: NodeKind(
        machines=lambda p: [as_text(d.get("shape")) for _, d, _ in _oci_launches(p)],
        tags=lambda p: [("freeformTags", as_dict(p.get("freeformTags")))]
        + [(f"{w}freeformTags", as_dict(d.get("freeformTags"))) for w, d, _ in _oci_launches(p)],
        disks=lambda p: [m for w, d, _ in _oci_launches(p) for m in _oci_encryption(d, w)],
        public=_oci_config_public,
        template=True,
    ),
    OCI_POOL: NodeKind(
        public=lambda p: _oci_pool_public(p, [(f"placementConfigurations[{i}].", c)
                                              for i, c in enumerate(as_list(p.get("placementConfigurations")))]),
        templates=lambda p: [TemplateRef("instanceConfigurationId", p.get("instanceConfigurationId"), (OCI_CONFIG,),
                                         "instanceConfigurationId")] if p.get("instanceConfigurationId") else [],
    ),
    OCI_CLUSTER_NETWORK: NodeKind(
        public=lambda p: _oci_pool_public(p, [("placementConfiguration.", p.get("placementConfiguration"))]),
        templates=lambda p: [TemplateRef("instancePools", pool.get("instanceConfigurationId"), (OCI_CONFIG,),
                                         f"instancePools[{i}].instanceConfigurationId")
                             for i, pool in enumerate(dicts(p.get("instancePools")))
                             if pool.get("instanceConfigurationId")],
    ),
}

COMPUTE_TYPES = tuple(NODE_KINDS)


def tag_sets(rtype: str, props: Mapping) -> list[TagSet]:
    kind = NODE_KINDS.get(rtype)
    return kind.tags(props) if kind and kind.tags else []


def is_gpu_node(rtype: str, props: Mapping) -> bool:
    """A resource that runs GPU nodes by itself: a GPU machine type, declared accelerators or
    EFA interfaces, or a pool tag. Node groups are GPU nodes also by what they launch (see
    :func:`is_gpu`)."""
    kind = NODE_KINDS.get(rtype)
    if kind is None:
        return False
    if any(_GPU_TYPES.search(m) for m in kind.machines(props) if m) or kind.accelerated(props):
        return True
    pool = _pool_tag(rtype)
    return any(pool in tags for _, tags in tag_sets(rtype, props))


def launchers(stack: Stack, template: Resource) -> list[tuple[Resource, TemplateRef]]:
    """The resources in this stack that launch ``template``."""
    out = []
    for r in stack.resources:
        kind = NODE_KINDS.get(r.type)
        if kind is None or r is template:
            continue
        for ref in kind.templates(r.props):
            if template.type in ref.types and template in stack.targets(r, ref.prop, ref.value, ref.types):
                out.append((r, ref))
    return out


def is_gpu(stack: Stack, r: Resource) -> bool:
    """A GPU node by itself, or a node group launching a GPU template, or a template a GPU
    node group launches (an override may turn a CPU template into GPU nodes)."""
    if "gpu" not in stack.memo:
        gpu = {id(x) for x in stack.resources if is_gpu_node(x.type, x.props)}
        changed = True
        while changed:
            changed = False
            for x in stack.resources:
                kind = NODE_KINDS.get(x.type)
                if kind is None:
                    continue
                for ref in kind.templates(x.props):
                    for t in stack.targets(x, ref.prop, ref.value, ref.types):
                        if (id(t) in gpu) != (id(x) in gpu):
                            gpu.update((id(t), id(x)))
                            changed = True
        stack.memo["gpu"] = gpu
    return id(r) in stack.memo["gpu"]
