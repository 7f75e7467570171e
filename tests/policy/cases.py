"""The policy cases: for every rule, stacks that try to slip past it and stacks that comply.

Each case is a small Pulumi program written with the providers' own SDKs (so the policy sees the
property names a real program registers), run offline by ``case_program/__main__.py``. A
*bypass* must be refused by its rule alone, on the resources it names; a *compliant* case must
raise no violation at all. ``covers`` names the kind of attack a bypass stands for, so that the
suite can check that every kind has a case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pulumi_aws as aws
import pulumi_azure_native as azure
import pulumi_gcp as gcp
import pulumi_oci as oci

from aifactory.components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, label_key
from tests.policy.stacklib import (
    AD, ADMIN, AMI, ASG_TAGS, AZ_SUBNET, COMPARTMENT, LABELS, PRIVATE_NIC, RG, ROOT, TAGS, aws_group,
    aws_instance, aws_spot_fleet, aws_subnet, aws_template, azure_rule, azure_vm, azure_vmss, gcp_instance,
    oci_config, oci_instance, oci_seclist,
)

BYPASS, COMPLIANT = "bypass", "compliant"
SPOT_SCHEDULING = {"provisioning_model": "SPOT", "preemptible": True}
PREEMPTIBLE = {"preemption_action": {"type": "TERMINATE", "preserve_boot_volume": False}}

IMDS_RULE = "imdsv2-required"
DISKS = "encrypted-volumes"
PUBLIC = "no-public-ip-on-gpu-nodes"
PORTS = "no-open-admin-ports"
TAGS_RULE = "required-tags"
EFA = "efa-security-group-self-rule"
TEMPLATES = "launch-templates-in-stack"


@dataclass(frozen=True)
class Case:
    rule: str
    id: str
    verdict: str
    on: tuple[str, ...]     # resources the rule must report (bypass)
    covers: frozenset       # attack kinds the bypass stands for
    build: Callable[[], None]
    also: tuple[str, ...] = ()  # rules the same stack cannot help breaking too (said why in the case)

    def __str__(self) -> str:
        return f"{self.rule}--{self.verdict}--{self.id}"


CASES: list[Case] = []


def case(rule: str, verdict: str, on=(), covers=(), also=()):
    def register(build):
        CASES.append(Case(rule, build.__name__.replace("_", "-"), verdict, tuple(on), frozenset(covers), build,
                          tuple(also)))
        return build
    return register


def _ssh(cidrs, name="admin", **rule):
    return aws.ec2.SecurityGroup(name, vpc_id="vpc-0123", description="admin", tags=TAGS, ingress=[
        {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": cidrs, **rule}])


def _lt_spot_fleet(name, template, subnet):
    return aws.ec2.SpotFleetRequest(name, iam_fleet_role="arn:aws:iam::0:role/fleet", target_capacity=2,
                                    launch_template_configs=[{"launch_template_specification": {
                                        "id": template.id, "version": "1"}, "overrides": [{"subnet_id": subnet.id}]}])


# === imdsv2-required =============================================================================

@case(IMDS_RULE, BYPASS, on=["lt"])
def aws_launch_template_tokens_optional():
    aws_group("nodes", aws_template("lt", metadata={"http_tokens": "optional", "http_endpoint": "enabled"}))


@case(IMDS_RULE, BYPASS, on=["node"])
def aws_instance_without_metadata_options():
    aws_instance("node", metadata_options=None)


@case(IMDS_RULE, BYPASS, on=["spot"], covers={"spot-request"})
def aws_spot_instance_request_tokens_optional():
    aws_instance("spot", kind=aws.ec2.SpotInstanceRequest, spot_price="12.0",
                 metadata_options={"http_tokens": "optional"})


@case(IMDS_RULE, BYPASS, on=["spot"], covers={"spot-fleet"})
def aws_spot_fleet_inline_launch_specification():
    """Spot fleet launch specifications have no metadata options at all: IMDSv1 stays on."""
    aws_spot_fleet("spot")


@case(IMDS_RULE, BYPASS, on=["lc"])
def aws_launch_configuration_without_metadata_options():
    lc = aws.ec2.LaunchConfiguration("lc", image_id=AMI, instance_type="p4d.24xlarge",
                                     associate_public_ip_address=False, root_block_device={"encrypted": True})
    aws.autoscaling.Group("nodes", min_size=0, max_size=2, launch_configuration=lc.id, tags=ASG_TAGS,
                          vpc_zone_identifiers=[aws_subnet("nodes").id])


@case(IMDS_RULE, COMPLIANT)
def aws_launch_template_and_group():
    aws_group("nodes")


@case(IMDS_RULE, COMPLIANT)
def aws_instance_metadata_endpoint_disabled():
    aws_instance("node", metadata_options={"http_endpoint": "disabled"})


@case(IMDS_RULE, COMPLIANT)
def aws_spot_instance_request_required():
    aws_instance("spot", kind=aws.ec2.SpotInstanceRequest, spot_price="12.0")


@case(IMDS_RULE, COMPLIANT)
def aws_spot_fleet_from_launch_template():
    _lt_spot_fleet("spot", aws_template("lt"), aws_subnet("spot"))


# === encrypted-volumes ===========================================================================

@case(DISKS, BYPASS, on=["lt"], covers={"ephemeral-only-root"})
def aws_launch_template_ephemeral_only():
    """Only an instance-store device is mapped: the root volume comes unencrypted from the AMI."""
    aws_group("nodes", aws_template("lt", mappings=[{"device_name": "/dev/sdb", "virtual_name": "ephemeral0"}]))


@case(DISKS, BYPASS, on=["lt"], covers={"ephemeral-only-root"})
def aws_launch_template_only_a_data_volume_encrypted():
    aws_group("nodes", aws_template("lt", mappings=[
        {"device_name": "/dev/sdf", "ebs": {"encrypted": "true", "volume_size": 100}},
        {"device_name": "/dev/sdg", "virtual_name": "ephemeral1"}]))


@case(DISKS, BYPASS, on=["lt"])
def aws_launch_template_without_mappings():
    aws_group("nodes", aws_template("lt", mappings=None))


@case(DISKS, BYPASS, on=["node"])
def aws_instance_root_encrypted_false_string():
    aws_instance("node", root_block_device={"encrypted": "False", "volume_size": 200})


@case(DISKS, BYPASS, on=["spot"], covers={"spot-request"})
def aws_spot_instance_request_without_root_device():
    aws_instance("spot", kind=aws.ec2.SpotInstanceRequest, root_block_device=None)


# Inline spot fleet launch specifications cannot require IMDSv2, so every stack with one also
# breaks imdsv2-required; the cases below check that the other node rules read them too.
_SPOT_SPECS = (IMDS_RULE,)


@case(DISKS, BYPASS, on=["spot"], covers={"spot-fleet"}, also=_SPOT_SPECS)
def aws_spot_fleet_without_root_devices():
    aws.ec2.SpotFleetRequest("spot", iam_fleet_role="arn:aws:iam::0:role/fleet", target_capacity=1,
                             launch_specifications=[{
                                 "instance_type": "p4d.24xlarge", "ami": AMI, "subnet_id": aws_subnet("spot").id,
                                 "associate_public_ip_address": False, "tags": TAGS,
                                 "ebs_block_devices": [{"device_name": "/dev/sdf", "encrypted": True}]}],
                             launch_template_configs=[])


@case(DISKS, BYPASS, on=["scratch"])
def aws_ebs_volume_unencrypted():
    aws.ebs.Volume("scratch", availability_zone="us-east-1a", size=2048, encrypted=False, tags=TAGS)


@case(DISKS, BYPASS, on=["nd"], covers={"spot-vm"})
def azure_spot_vm_without_encryption_at_host():
    azure_vm("nd", encryption_at_host=False, priority="Spot", eviction_policy="Delete")


@case(DISKS, BYPASS, on=["pool"])
def azure_aks_gpu_pool_without_encryption_at_host():
    azure.containerservice.AgentPool("pool", resource_group_name=RG, resource_name_="aks", tags=TAGS,
                                     vm_size="Standard_ND96isr_H100_v5", count=2)


@case(DISKS, BYPASS, on=["a10"], covers={"spot-vm"})
def oci_preemptible_vm_without_in_transit_encryption():
    oci_instance("a10", shape="VM.GPU.A10.2",
                 preemptible_instance_config=PREEMPTIBLE)


@case(DISKS, BYPASS, on=["config"])
def oci_configuration_bare_metal_in_transit_switched_off():
    oci_config("config", launch={"launch_options": {"is_pv_encryption_in_transit_enabled": False}})


@case(DISKS, BYPASS, on=["data"])
def oci_paravirtualized_volume_attachment_in_clear():
    node = oci_instance("a10", shape="VM.GPU.A10.2", is_pv_encryption_in_transit_enabled=True)
    oci.core.VolumeAttachment("data", attachment_type="paravirtualized", instance_id=node.id,
                              volume_id="ocid1.volume.oc1..x")


@case(DISKS, COMPLIANT)
def aws_launch_template_encrypted_root_and_instance_store():
    aws_group("nodes", aws_template("lt", mappings=[*ROOT, {"device_name": "/dev/sdb", "virtual_name": "ephemeral0"}]))


@case(DISKS, COMPLIANT)
def aws_launch_template_xvda_root():
    aws_group("nodes", aws_template("lt", mappings=[{"device_name": "/dev/xvda", "ebs": {"encrypted": True}}]))


@case(DISKS, COMPLIANT)
def aws_instance_encrypted_root_and_data():
    aws_instance("node", ebs_block_devices=[{"device_name": "/dev/sdf", "encrypted": True, "volume_size": 100}])
    aws.ebs.Volume("scratch", availability_zone="us-east-1a", size=2048, encrypted=True, tags=TAGS)


@case(DISKS, COMPLIANT)
def azure_vm_encryption_at_host():
    azure_vm("nd")


@case(DISKS, COMPLIANT)
def oci_vm_in_transit_through_launch_options():
    oci_instance("a10", shape="VM.GPU.A10.2", launch_options={"is_pv_encryption_in_transit_enabled": True})


@case(DISKS, COMPLIANT)
def gcp_instance_disks_always_encrypted():
    gcp_instance("a3")


# === no-public-ip-on-gpu-nodes ===================================================================

@case(PUBLIC, BYPASS, on=["nodes"], covers={"public-subnet"})
def aws_group_in_public_subnet_leaves_address_to_subnet():
    """The template does not refuse a public address, and the group lands in a public subnet."""
    aws_group("nodes", aws_template("lt", nics=[{"device_index": 0}]), [aws_subnet("pub", public=True)])


@case(PUBLIC, BYPASS, on=["nodes"], covers={"public-subnet"})
def aws_group_in_undeclared_subnet_leaves_address_to_subnet():
    lt = aws_template("lt", nics=None)
    aws.autoscaling.Group("nodes", min_size=0, max_size=2, vpc_zone_identifiers=["subnet-0123"], tags=ASG_TAGS,
                          launch_template={"id": lt.id, "version": "1"})


@case(PUBLIC, BYPASS, on=["lt"], covers={"several-interfaces"})
def aws_launch_template_second_interface_public():
    aws_group("nodes", aws_template("lt", nics=[
        PRIVATE_NIC, {"device_index": 1, "network_card_index": 1, "associate_public_ip_address": "true"}]))


@case(PUBLIC, BYPASS, on=["node"], covers={"public-subnet"})
def aws_instance_in_default_vpc():
    """No subnet and no refusal: the instance lands in the default VPC, whose subnets assign public IPs."""
    aws_instance("node", subnet=None, associate_public_ip_address=None)


@case(PUBLIC, BYPASS, on=["node"], covers={"public-subnet"})
def aws_instance_in_adopted_default_subnet():
    subnet = aws.ec2.DefaultSubnet("default", availability_zone="us-east-1a")
    aws_instance("node", subnet=subnet, associate_public_ip_address=None)


@case(PUBLIC, BYPASS, on=["ip"], covers={"elastic-ip"})
def aws_elastic_ip_on_gpu_instance():
    node = aws_instance("node")
    aws.ec2.Eip("ip", instance=node.id, domain="vpc")


@case(PUBLIC, BYPASS, on=["assoc"], covers={"elastic-ip"})
def aws_eip_association_to_interface_attached_to_gpu_instance():
    node = aws_instance("node")
    nic = aws.ec2.NetworkInterface("nic", subnet_id=aws_subnet("extra").id, tags=TAGS)
    aws.ec2.NetworkInterfaceAttachment("attach", instance_id=node.id, network_interface_id=nic.id, device_index=1)
    eip = aws.ec2.Eip("ip", domain="vpc")
    aws.ec2.EipAssociation("assoc", allocation_id=eip.id, network_interface_id=nic.id)


@case(PUBLIC, BYPASS, on=["spot"], covers={"spot-request"})
def aws_spot_instance_request_public():
    aws_instance("spot", kind=aws.ec2.SpotInstanceRequest, associate_public_ip_address="True")


@case(PUBLIC, BYPASS, on=["spot"], covers={"spot-fleet"}, also=_SPOT_SPECS)
def aws_spot_fleet_specification_public():
    aws_spot_fleet("spot", spec={"associate_public_ip_address": True})


@case(PUBLIC, BYPASS, on=["fleet"], covers={"spot-fleet"})
def aws_ec2_fleet_override_into_public_subnet():
    lt = aws_template("lt", nics=None)
    aws.ec2.Fleet("fleet", target_capacity_specification={"default_target_capacity_type": "spot",
                                                          "total_target_capacity": 2},
                  launch_template_configs=[{"launch_template_specification": {"launch_template_id": lt.id,
                                                                              "version": "1"},
                                            "overrides": [{"subnet_id": aws_subnet("pub", public=True).id}]}])


@case(PUBLIC, BYPASS, on=["nodes"], covers={"ipv6"})
def aws_ipv6_interfaces_in_subnet_routed_to_internet_gateway():
    vpc = aws.ec2.Vpc("v6-vpc", cidr_block="10.30.0.0/16", assign_generated_ipv6_cidr_block=True, tags=TAGS)
    subnet = aws_subnet("v6", vpc=vpc)
    igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id)
    table = aws.ec2.RouteTable("routes", vpc_id=vpc.id)
    aws.ec2.Route("default6", route_table_id=table.id, destination_ipv6_cidr_block="::/0", gateway_id=igw.id)
    aws.ec2.RouteTableAssociation("assoc", subnet_id=subnet.id, route_table_id=table.id)
    aws_group("nodes", aws_template("lt", nics=[{**PRIVATE_NIC, "ipv6_address_count": 1}]), [subnet])


@case(PUBLIC, BYPASS, on=["a3"], covers={"several-interfaces", "spot-vm"})
def gcp_spot_template_access_config_on_second_interface():
    tpl = gcp_instance("a3", kind=gcp.compute.InstanceTemplate, scheduling=SPOT_SCHEDULING,
                       nics=[{"subnetwork": "host"}, {"subnetwork": "gpu-0", "access_configs": [{}]}])
    gcp.compute.InstanceGroupManager("nodes", base_instance_name="a3", zone="us-central1-a", target_size=2,
                                     versions=[{"instance_template": tpl.id, "name": "primary"}])


@case(PUBLIC, BYPASS, on=["a3"], covers={"ipv6"})
def gcp_instance_external_ipv6():
    gcp_instance("a3", nics=[{"subnetwork": "gpu", "stack_type": "IPV4_IPV6",
                              "ipv6_access_configs": [{"network_tier": "PREMIUM"}]}])


@case(PUBLIC, BYPASS, on=["a3"], covers={"ipv6"})
def gcp_dual_stack_template_in_external_ipv6_subnetwork():
    subnet = gcp.compute.Subnetwork("gpu", network="aifactory", region="us-central1", ip_cidr_range="10.40.0.0/20",
                                    stack_type="IPV4_IPV6", ipv6_access_type="EXTERNAL")
    gcp_instance("a3", kind=gcp.compute.InstanceTemplate, nics=[{"subnetwork": subnet.id, "stack_type": "IPV4_IPV6"}])


@case(PUBLIC, BYPASS, on=["a3-1"])
def gcp_instance_from_private_template_adds_access_config():
    tpl = gcp_instance("a3", kind=gcp.compute.InstanceTemplate)
    gcp.compute.InstanceFromTemplate("a3-1", zone="us-central1-a", source_instance_template=tpl.id,
                                     network_interfaces=[{"subnetwork": "gpu", "access_configs": [{}]}])


@case(PUBLIC, BYPASS, on=["nodes"])
def gcp_group_with_stateful_external_ips():
    tpl = gcp_instance("a3", kind=gcp.compute.InstanceTemplate)
    gcp.compute.InstanceGroupManager("nodes", base_instance_name="a3", zone="us-central1-a", target_size=2,
                                     versions=[{"instance_template": tpl.id, "name": "primary"}],
                                     stateful_external_ips=[{"interface_name": "nic0", "delete_rule": "NEVER"}])


@case(PUBLIC, BYPASS, on=["nd-nic"], covers={"azure-public-ip-resource", "spot-vm"})
def azure_spot_vm_nic_with_public_ip_address_resource():
    pip = azure.network.PublicIPAddress("pip", resource_group_name=RG, public_ip_allocation_method="Static",
                                        sku={"name": "Standard"}, tags=TAGS)
    nic = azure.network.NetworkInterface("nd-nic", resource_group_name=RG, tags=TAGS, ip_configurations=[
        {"name": "ipv4", "subnet": {"id": AZ_SUBNET}, "public_ip_address": {"id": pip.id}}])
    azure_vm("nd", nics=[nic], priority="Spot", eviction_policy="Delete")


@case(PUBLIC, BYPASS, on=["ndss"], covers={"several-interfaces"})
def azure_scale_set_second_ip_configuration_public():
    azure_vmss("ndss", ip_configs=[{"name": "ipv4", "subnet": {"id": AZ_SUBNET}},
                                   {"name": "extra", "subnet": {"id": AZ_SUBNET},
                                    "public_ip_address_configuration": {"name": "pip"}}])


@case(PUBLIC, BYPASS, on=["ndss"])
def azure_scale_set_inbound_nat_pool():
    azure_vmss("ndss", ip_configs=[{"name": "ipv4", "subnet": {"id": AZ_SUBNET},
                                    "load_balancer_inbound_nat_pools": [{"id": "/subscriptions/0/lb/natpool"}]}])


@case(PUBLIC, BYPASS, on=["pool"])
def azure_aks_gpu_pool_node_public_ip():
    azure.containerservice.AgentPool("pool", resource_group_name=RG, resource_name_="aks", tags=TAGS, count=2,
                                     vm_size="Standard_ND96isr_H100_v5", enable_encryption_at_host=True,
                                     enable_node_public_ip=True)


@case(PUBLIC, BYPASS, on=["h100"], covers={"oci-vnic"})
def oci_instance_public_ip_left_to_subnet():
    oci_instance("h100", vnic={"subnet_id": "ocid1.subnet.oc1..x"})


@case(PUBLIC, BYPASS, on=["config"], covers={"oci-vnic"})
def oci_configuration_secondary_vnic_public():
    oci_config("config", secondary=[{"create_vnic_details": {"subnet_id": "ocid1.subnet.oc1..x",
                                                             "assign_public_ip": True}}])


@case(PUBLIC, BYPASS, on=["vnic"], covers={"oci-vnic"})
def oci_secondary_vnic_attachment_public():
    node = oci_instance("h100")
    oci.core.VnicAttachment("vnic", instance_id=node.id, create_vnic_details={"subnet_id": "ocid1.subnet.oc1..y"})


@case(PUBLIC, BYPASS, on=["reserved"], covers={"oci-vnic"})
def oci_reserved_public_ip_on_private_ip_of_gpu_node():
    node = oci_instance("h100")
    vnic = oci.core.VnicAttachment("vnic", instance_id=node.id,
                                   create_vnic_details={"subnet_id": "ocid1.subnet.oc1..y", "assign_public_ip": False})
    # The mock engine computes no vnicId; the provider would return the attached VNIC's id.
    private = oci.core.PrivateIp("private", vnic_id=vnic.id.apply(lambda _: "ocid1.vnic.oc1..attached"))
    oci.core.PublicIp("reserved", compartment_id=COMPARTMENT, lifetime="RESERVED", private_ip_id=private.id)


@case(PUBLIC, COMPLIANT)
def aws_group_template_refuses_public_addresses():
    aws_group("nodes", aws_template("lt"), [aws_subnet("pub", public=True)])


@case(PUBLIC, COMPLIANT)
def aws_group_private_subnet_decides():
    aws_group("nodes", aws_template("lt", nics=[{"device_index": 0}]))


@case(PUBLIC, COMPLIANT)
def aws_nat_gateway_elastic_ip_and_private_instance():
    aws_instance("node")
    eip = aws.ec2.Eip("nat-ip", domain="vpc", tags=TAGS)
    aws.ec2.NatGateway("nat", allocation_id=eip.id, subnet_id=aws_subnet("pub", public=True).id, tags=TAGS)


@case(PUBLIC, COMPLIANT)
def aws_ipv6_behind_egress_only_gateway():
    vpc = aws.ec2.Vpc("v6-vpc", cidr_block="10.30.0.0/16", assign_generated_ipv6_cidr_block=True, tags=TAGS)
    subnet = aws_subnet("v6", vpc=vpc, ipv6=True)
    eigw = aws.ec2.EgressOnlyInternetGateway("eigw", vpc_id=vpc.id)
    table = aws.ec2.RouteTable("routes", vpc_id=vpc.id)
    aws.ec2.Route("default6", route_table_id=table.id, destination_ipv6_cidr_block="::/0",
                  egress_only_gateway_id=eigw.id)
    aws.ec2.RouteTableAssociation("assoc", subnet_id=subnet.id, route_table_id=table.id)
    aws_group("nodes", aws_template("lt", nics=[{**PRIVATE_NIC, "ipv6_address_count": 1}]), [subnet])


@case(PUBLIC, COMPLIANT)
def gcp_private_template_and_spot_instance():
    tpl = gcp_instance("a3", kind=gcp.compute.InstanceTemplate, nics=[{"subnetwork": "host"}, {"subnetwork": "gpu-0"}])
    gcp.compute.InstanceGroupManager("nodes", base_instance_name="a3", zone="us-central1-a", target_size=2,
                                     versions=[{"instance_template": tpl.id, "name": "primary"}])
    gcp_instance("a3-spot", scheduling=SPOT_SCHEDULING)


@case(PUBLIC, COMPLIANT)
def gcp_dual_stack_template_in_internal_ipv6_subnetwork():
    subnet = gcp.compute.Subnetwork("gpu", network="aifactory", region="us-central1", ip_cidr_range="10.40.0.0/20",
                                    stack_type="IPV4_IPV6", ipv6_access_type="INTERNAL")
    gcp_instance("a3", kind=gcp.compute.InstanceTemplate, nics=[{"subnetwork": subnet.id, "stack_type": "IPV4_IPV6"}])


@case(PUBLIC, COMPLIANT)
def azure_private_vm_and_scale_set():
    azure_vm("nd")
    azure_vmss("ndss")


@case(PUBLIC, COMPLIANT)
def oci_instance_and_secondary_vnic_refuse_public_ips():
    node = oci_instance("h100")
    oci.core.VnicAttachment("vnic", instance_id=node.id,
                            create_vnic_details={"subnet_id": "ocid1.subnet.oc1..y", "assign_public_ip": "false"})
    oci_config("config", secondary=[{"create_vnic_details": {"subnet_id": "ocid1.subnet.oc1..y",
                                                             "assign_public_ip": False}}])


# === no-open-admin-ports =========================================================================

@case(PORTS, BYPASS, on=["admin"], covers={"half-ranges"})
def aws_ssh_from_two_half_ranges():
    _ssh(["0.0.0.0/1", "128.0.0.0/1"])


@case(PORTS, BYPASS, on=["admin", "other-half"], covers={"half-ranges", "separate-rules"})
def aws_half_ranges_split_across_inline_and_separate_rule():
    sg = _ssh(["0.0.0.0/1"])
    aws.vpc.SecurityGroupIngressRule("other-half", security_group_id=sg.id, ip_protocol="tcp", from_port=22,
                                     to_port=22, cidr_ipv4="128.0.0.0/1")


@case(PORTS, BYPASS, on=["a", "b"], covers={"half-ranges", "separate-rules"})
def aws_half_ranges_on_two_security_groups():
    _ssh(["0.0.0.0/1"], name="a")
    _ssh(["128.0.0.0/1"], name="b")


@case(PORTS, BYPASS, on=["quarters"], covers={"union-covers-internet"})
def gcp_internet_cut_into_sixteen_pieces():
    gcp.compute.Firewall("quarters", network="aifactory", direction="INGRESS",
                         source_ranges=[f"{i * 16}.0.0.0/4" for i in range(16)],
                         allows=[{"protocol": "tcp", "ports": ["20-30"]}])


@case(PORTS, BYPASS, on=["office-a", "office-b"], covers={"union-covers-internet", "separate-rules"})
def aws_two_public_slash_eights_together():
    """Each /8 is one holder's and passes alone; together they are more public space than any holder has."""
    sg = aws.ec2.SecurityGroup("mgmt", vpc_id="vpc-0123", description="management", tags=TAGS)
    for name, cidr in (("office-a", "17.0.0.0/8"), ("office-b", "18.0.0.0/8")):
        aws.vpc.SecurityGroupIngressRule(name, security_group_id=sg.id, ip_protocol="tcp", from_port=22, to_port=22,
                                         cidr_ipv4=cidr)


@case(PORTS, BYPASS, on=["wide"], covers={"large-public-prefix"})
def aws_single_public_slash_seven():
    _ssh(["2.0.0.0/7"], name="wide")


@case(PORTS, BYPASS, on=["any6"], covers={"ipv6"})
def aws_ipv6_half_space():
    sg = aws.ec2.SecurityGroup("mgmt", vpc_id="vpc-0123", description="management", tags=TAGS)
    aws.vpc.SecurityGroupIngressRule("any6", security_group_id=sg.id, ip_protocol="tcp", from_port=22, to_port=22,
                                     cidr_ipv6="::/1")


@case(PORTS, BYPASS, on=["global"], covers={"ipv6"})
def aws_ipv6_global_unicast_space():
    _ssh([], name="global", ipv6_cidr_blocks=["2000::/3"])


@case(PORTS, BYPASS, on=["mapped"], covers={"ipv4-mapped-ipv6"})
def aws_ipv4_mapped_ipv6_range():
    sg = aws.ec2.SecurityGroup("mgmt", vpc_id="vpc-0123", description="management", tags=TAGS)
    aws.ec2.SecurityGroupRule("mapped", type="ingress", security_group_id=sg.id, protocol="tcp", from_port=443,
                              to_port=443, ipv6_cidr_blocks=["::ffff:0:0/96"])


@case(PORTS, BYPASS, on=["bmc"])
def aws_prefix_list_declared_with_the_internet():
    plist = aws.ec2.ManagedPrefixList("admins", name="admins", address_family="IPv4", max_entries=4,
                                      entries=[{"cidr": ADMIN}, {"cidr": "0.0.0.0/0"}])
    sg = aws.ec2.SecurityGroup("mgmt", vpc_id="vpc-0123", description="management", tags=TAGS)
    aws.ec2.SecurityGroupRule("bmc", type="ingress", security_group_id=sg.id, protocol="udp", from_port=623,
                              to_port=623, prefix_list_ids=[plist.id])


@case(PORTS, BYPASS, on=["nodes"])
def aws_eks_ssh_key_without_source_groups():
    lt = aws_template("lt")
    aws.eks.NodeGroup("nodes", cluster_name="gpu", node_role_arn="arn:aws:iam::0:role/nodes", tags=TAGS,
                      subnet_ids=[aws_subnet("eks").id], instance_types=["p5.48xlarge"],
                      scaling_config={"desired_size": 1, "max_size": 2, "min_size": 0},
                      launch_template={"id": lt.id, "version": "1"}, remote_access={"ec2_ssh_key": "admin"})


@case(PORTS, BYPASS, on=["ssh"], covers={"lowercase-keyword"})
def azure_lowercase_internet_tag():
    azure_rule("ssh", "internet")


@case(PORTS, BYPASS, on=["rdp"], covers={"lowercase-keyword"})
def azure_any_source_any_port():
    azure_rule("rdp", "any", "*", protocol="*")


@case(PORTS, BYPASS, on=["ssh"], covers={"service-tag"})
def azure_cloud_service_tag():
    """AzureCloud is every Azure public address: any tenant's VM."""
    azure_rule("ssh", "AzureCloud")


@case(PORTS, BYPASS, on=["nodes"], covers={"half-ranges"})
def azure_nsg_half_ranges_in_prefix_list():
    azure.network.NetworkSecurityGroup("nodes", resource_group_name=RG, tags=TAGS, security_rules=[{
        "name": "ssh", "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
        "source_address_prefixes": ["0.0.0.0/1", "128.0.0.0/1"], "source_port_range": "*",
        "destination_address_prefix": "*", "destination_port_ranges": ["22", "6443"]}])


@case(PORTS, BYPASS, on=["ssh"], covers={"whitespace"})
def gcp_world_with_surrounding_whitespace():
    gcp.compute.Firewall("ssh", network="aifactory", direction="INGRESS", source_ranges=[" 0.0.0.0/0 "],
                         allows=[{"protocol": "tcp", "ports": ["22"]}])


@case(PORTS, BYPASS, on=["ssh"])
def gcp_firewall_without_any_source():
    """GCP applies 0.0.0.0/0 to an ingress rule with no source ranges, tags or accounts."""
    gcp.compute.Firewall("ssh", network="aifactory", direction="INGRESS", allows=[{"protocol": "tcp", "ports": ["22"]}])


@case(PORTS, BYPASS, on=["geo"])
def gcp_network_policy_rule_by_country():
    gcp.compute.NetworkFirewallPolicyRule("geo", firewall_policy="nodes", priority=100, action="allow",
                                          direction="INGRESS", match={"src_region_codes": ["US"], "layer4_configs": [
                                              {"ip_protocol": "tcp", "ports": ["22"]}]})


@case(PORTS, BYPASS, on=["nodes"], covers={"half-ranges"})
def oci_security_list_half_ranges():
    oci_seclist("nodes", [{"protocol": "6", "source": s, "tcp_options": {"min": 22, "max": 22}}
                          for s in ("0.0.0.0/1", "128.0.0.0/1")])


@case(PORTS, BYPASS, on=["ssh6"], covers={"ipv6"})
def oci_nsg_rule_from_all_ipv6():
    oci.core.NetworkSecurityGroupSecurityRule("ssh6", network_security_group_id="ocid1.nsg.oc1..x",
                                              direction="INGRESS", protocol="6", source="::/0",
                                              source_type="CIDR_BLOCK",
                                              tcp_options={"destination_port_range": {"min": 22, "max": 22}})


@case(PORTS, COMPLIANT)
def aws_ssh_from_every_private_range():
    _ssh(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"], ipv6_cidr_blocks=["fd00::/8"])


@case(PORTS, COMPLIANT)
def aws_ssh_from_public_admin_networks():
    sg = _ssh(["17.0.0.0/8"])  # a whole /8 is one holder's: at the limit, not over it
    aws.vpc.SecurityGroupIngressRule("office", security_group_id=sg.id, ip_protocol="tcp", from_port=443,
                                     to_port=443, cidr_ipv4="52.94.76.0/22")
    aws.vpc.SecurityGroupIngressRule("office6", security_group_id=sg.id, ip_protocol="tcp", from_port=22, to_port=22,
                                     cidr_ipv6="2600:1f00::/40")


@case(PORTS, COMPLIANT)
def aws_world_only_on_non_admin_ports_and_egress():
    aws.ec2.SecurityGroup("web", vpc_id="vpc-0123", description="inference", tags=TAGS,
                          ingress=[{"protocol": "tcp", "from_port": 8000, "to_port": 8080,
                                    "cidr_blocks": ["0.0.0.0/0"]},
                                   {"protocol": "udp", "from_port": 22, "to_port": 22, "cidr_blocks": ["0.0.0.0/0"]}],
                          egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}])


@case(PORTS, COMPLIANT)
def azure_virtual_network_tag_and_deny_internet():
    azure_rule("ssh", "VirtualNetwork")
    azure_rule("deny", "Internet", "*", access="Deny", protocol="*")


@case(PORTS, COMPLIANT)
def gcp_source_tags_and_egress_rule():
    gcp.compute.Firewall("ssh", network="aifactory", direction="INGRESS", source_tags=["bastion"],
                         allows=[{"protocol": "tcp", "ports": ["22"]}])
    gcp.compute.Firewall("out", network="aifactory", direction="EGRESS", destination_ranges=["0.0.0.0/0"],
                         allows=[{"protocol": "all"}])


@case(PORTS, COMPLIANT)
def oci_service_network_and_nsg_sources():
    oci_seclist("nodes", [{"protocol": "6", "source": "all-iad-services-in-oracle-services-network",
                           "source_type": "SERVICE_CIDR_BLOCK", "tcp_options": {"min": 443, "max": 443}},
                          {"protocol": "6", "source": ADMIN, "tcp_options": {"min": 22, "max": 22}}])
    oci.core.NetworkSecurityGroupSecurityRule("peers", network_security_group_id="ocid1.nsg.oc1..x",
                                              direction="INGRESS", protocol="all", source="ocid1.nsg.oc1..x",
                                              source_type="NETWORK_SECURITY_GROUP")


# === required-tags ===============================================================================

_BLANK_POOL = {**TAGS, TAG_POOL: "   "}


@case(TAGS_RULE, BYPASS, on=["lt"], covers={"blank-tag"})
def aws_launch_template_whitespace_pool_tag():
    aws_group("nodes", aws_template("lt", tags=_BLANK_POOL, instance_tags=_BLANK_POOL))


@case(TAGS_RULE, BYPASS, on=["lt"], covers={"blank-tag"})
def aws_launch_template_empty_role_on_instances():
    aws_group("nodes", aws_template("lt", instance_tags={**TAGS, TAG_ROLE: ""}))


@case(TAGS_RULE, BYPASS, on=["lt"], covers={"tags-in-one-place"})
def aws_launch_template_tags_only_on_the_template():
    aws_group("nodes", aws_template("lt", instance_tags=None))


@case(TAGS_RULE, BYPASS, on=["lt"], covers={"tags-in-one-place"})
def aws_launch_template_tags_only_in_tag_specifications():
    aws_group("nodes", aws_template("lt", tags=None))


@case(TAGS_RULE, BYPASS, on=["nodes"], covers={"blank-tag"})
def aws_group_blank_factory_tag():
    aws_group("nodes", tags=[{**t, "value": " "} if t["key"] == TAG_FACTORY else t for t in ASG_TAGS])


@case(TAGS_RULE, BYPASS, on=["spot"], covers={"spot-request"})
def aws_spot_instance_request_untagged():
    aws_instance("spot", kind=aws.ec2.SpotInstanceRequest, tags={"Name": "spot"})


@case(TAGS_RULE, BYPASS, on=["spot"], covers={"spot-fleet"}, also=_SPOT_SPECS)
def aws_spot_fleet_specification_untagged():
    aws_spot_fleet("spot", spec={"tags": None})


@case(TAGS_RULE, BYPASS, on=["a3"], covers={"blank-tag", "spot-vm"})
def gcp_spot_instance_empty_pool_label():
    gcp_instance("a3", labels={**LABELS, label_key(TAG_POOL): ""},
                 scheduling=SPOT_SCHEDULING)


@case(TAGS_RULE, BYPASS, on=["nd"], covers={"spot-vm"})
def azure_spot_vm_without_role_tag():
    azure_vm("nd", tags={k: v for k, v in TAGS.items() if k != TAG_ROLE}, priority="Spot", eviction_policy="Delete")


@case(TAGS_RULE, BYPASS, on=["config"], covers={"tags-in-one-place"})
def oci_configuration_tags_only_on_the_configuration():
    oci_config("config", launch={"freeform_tags": {}})


@case(TAGS_RULE, BYPASS, on=["h100"], covers={"blank-tag", "spot-vm"})
def oci_preemptible_instance_blank_tags():
    oci_instance("h100", tags={k: "\t" for k in LABELS},
                 preemptible_instance_config=PREEMPTIBLE)


@case(TAGS_RULE, COMPLIANT)
def aws_group_and_spot_instance_tagged():
    aws_group("nodes")
    aws_instance("spot", kind=aws.ec2.SpotInstanceRequest)


@case(TAGS_RULE, COMPLIANT)
def gcp_template_labelled():
    gcp_instance("a3", kind=gcp.compute.InstanceTemplate)


@case(TAGS_RULE, COMPLIANT)
def azure_scale_set_tagged():
    azure_vmss("ndss")


@case(TAGS_RULE, COMPLIANT)
def oci_configuration_tagged_at_both_levels():
    oci_config("config")


# === efa-security-group-self-rule ================================================================

def _efa_template(sg, name="lt"):
    return aws_template(name, nics=[{"device_index": 0 if i == 0 else 1, "network_card_index": i,
                                     "interface_type": "efa" if i == 0 else "efa-only", "security_groups": [sg.id],
                                     "associate_public_ip_address": "false"} for i in range(4)])


def _efa_group(name="efa", **rules):
    return aws.ec2.SecurityGroup(name, vpc_id="vpc-0123", description="EFA", tags=TAGS, **rules)


_SELF = {"protocol": "-1", "from_port": 0, "to_port": 0, "self": True}


@case(EFA, BYPASS, on=["lt"])
def aws_efa_self_rules_tcp_only():
    tcp = {**_SELF, "protocol": "tcp", "to_port": 65535}
    aws_group("nodes", _efa_template(_efa_group(ingress=[tcp], egress=[tcp])))


@case(EFA, BYPASS, on=["lt"])
def aws_efa_self_rules_on_another_group():
    _efa_group("other", ingress=[_SELF], egress=[_SELF])
    aws_group("nodes", _efa_template(_efa_group()))


@case(EFA, BYPASS, on=["lt"])
def aws_efa_egress_self_rule_missing():
    aws_group("nodes", _efa_template(_efa_group(ingress=[_SELF])))


@case(EFA, BYPASS, on=["efa0"])
def aws_efa_interface_resource_without_self_rules():
    sg = _efa_group()
    aws.ec2.NetworkInterface("efa0", subnet_id=aws_subnet("efa").id, interface_type="efa",
                             security_groups=[sg.id], tags=TAGS)


@case(EFA, COMPLIANT)
def aws_efa_inline_self_rules():
    aws_group("nodes", _efa_template(_efa_group(ingress=[_SELF], egress=[_SELF])))


@case(EFA, COMPLIANT)
def aws_efa_legacy_rule_resources():
    sg = _efa_group()
    for kind in ("ingress", "egress"):
        aws.ec2.SecurityGroupRule(f"self-{kind}", type=kind, security_group_id=sg.id, protocol="-1", from_port=0,
                                  to_port=0, self=True)
    aws_group("nodes", _efa_template(sg))


@case(EFA, COMPLIANT)
def aws_efa_interface_resource_with_separate_rules():
    sg = _efa_group()
    aws.vpc.SecurityGroupIngressRule("self-in", security_group_id=sg.id, ip_protocol="-1",
                                     referenced_security_group_id=sg.id)
    aws.vpc.SecurityGroupEgressRule("self-out", security_group_id=sg.id, ip_protocol="-1",
                                    referenced_security_group_id=sg.id)
    aws.ec2.NetworkInterface("efa0", subnet_id=aws_subnet("efa").id, interface_type="efa",
                             security_groups=[sg.id], tags=TAGS)


# === launch-templates-in-stack ===================================================================

@case(TEMPLATES, BYPASS, on=["nodes"])
def aws_group_mixed_instances_from_outside_template():
    aws.autoscaling.Group("nodes", min_size=0, max_size=2, vpc_zone_identifiers=[aws_subnet("nodes").id],
                          tags=ASG_TAGS, mixed_instances_policy={"launch_template": {
                              "launch_template_specification": {"launch_template_name": "someone-elses"},
                              "overrides": [{"instance_type": "p5.48xlarge"}]}})


@case(TEMPLATES, BYPASS, on=["fleet"], covers={"spot-fleet"})
def aws_ec2_fleet_from_outside_template():
    aws.ec2.Fleet("fleet", target_capacity_specification={"default_target_capacity_type": "spot",
                                                          "total_target_capacity": 2},
                  launch_template_configs=[{"launch_template_specification": {
                      "launch_template_id": "lt-0123456789abcdef0", "version": "1"}}])


@case(TEMPLATES, BYPASS, on=["spot"], covers={"spot-fleet"})
def aws_spot_fleet_from_outside_template():
    aws.ec2.SpotFleetRequest("spot", iam_fleet_role="arn:aws:iam::0:role/fleet", target_capacity=2,
                             launch_template_configs=[{"launch_template_specification": {
                                 "id": "lt-0123456789abcdef0", "version": "1"}}])


@case(TEMPLATES, BYPASS, on=["nodes"])
def gcp_group_from_outside_template():
    gcp.compute.InstanceGroupManager("nodes", base_instance_name="a3", zone="us-central1-a", target_size=2,
                                     versions=[{"name": "primary", "instance_template":
                                                "projects/other/global/instanceTemplates/public-a3"}])


@case(TEMPLATES, BYPASS, on=["pool"])
def oci_instance_pool_from_outside_configuration():
    oci.core.InstancePool("pool", compartment_id=COMPARTMENT, size=2,
                          instance_configuration_id="ocid1.instanceconfiguration.oc1..other",
                          placement_configurations=[{"availability_domain": AD,
                                                     "primary_subnet_id": "ocid1.subnet.oc1..x"}])


@case(TEMPLATES, COMPLIANT)
def aws_group_fleet_and_spot_fleet_from_stack_templates():
    lt = aws_template("lt")
    subnet = aws_subnet("nodes")
    aws_group("nodes", lt, [subnet])
    aws.ec2.Fleet("fleet", target_capacity_specification={"default_target_capacity_type": "spot",
                                                          "total_target_capacity": 2},
                  launch_template_configs=[{"launch_template_specification": {"launch_template_id": lt.id,
                                                                              "version": "1"},
                                            "overrides": [{"subnet_id": subnet.id}]}])
    _lt_spot_fleet("spot", lt, subnet)


@case(TEMPLATES, COMPLIANT)
def gcp_group_and_instance_from_stack_template():
    tpl = gcp_instance("a3", kind=gcp.compute.InstanceTemplate)
    gcp.compute.InstanceGroupManager("nodes", base_instance_name="a3", zone="us-central1-a", target_size=2,
                                     versions=[{"instance_template": tpl.id, "name": "primary"}])
    gcp.compute.InstanceFromTemplate("a3-1", zone="us-central1-a", source_instance_template=tpl.id)


@case(TEMPLATES, COMPLIANT)
def oci_cluster_network_and_pool_from_stack_configuration():
    config = oci_config("config")
    oci.core.ClusterNetwork("nodes", compartment_id=COMPARTMENT, freeform_tags=LABELS,
                            instance_pools=[{"instance_configuration_id": config.id, "size": 2}],
                            placement_configuration={"availability_domain": AD,
                                                     "primary_subnet_id": "ocid1.subnet.oc1..x"})
    oci.core.InstancePool("pool", compartment_id=COMPARTMENT, size=2, instance_configuration_id=config.id,
                          placement_configurations=[{"availability_domain": AD,
                                                     "primary_subnet_id": "ocid1.subnet.oc1..x"}])


BY_ID = {str(c): c for c in CASES}
assert len(BY_ID) == len(CASES), "case names must be unique"
