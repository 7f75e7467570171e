"""Compliant building blocks for the policy test programs, with one knob per guardrail.

Each bad stack turns exactly one knob; the good stack turns none. The resources are the raw
provider SDK resources, so the policy sees what a real program would register.
"""

from __future__ import annotations

import pulumi_aws as aws
import pulumi_azure_native as azure
import pulumi_gcp as gcp
import pulumi_oci as oci

from aifactory.components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, TAG_SITE, label_key

TAGS = {TAG_FACTORY: "policy-test", TAG_SITE: "aws-use1", TAG_POOL: "train", TAG_ROLE: "node"}
LABELS = {label_key(k): v for k, v in TAGS.items()}
ADMIN = "10.20.0.0/16"


def aws_efa_pool(*, http_tokens="required", encrypted="true", public_ip="false", tags=TAGS, self_ingress=True,
                 self_egress=True, separate_rules=False, ssh_from=ADMIN, nics=4):
    """A p5 launch template with EFA interfaces and its security group."""
    ingress = [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": [ssh_from]}]
    egress = [{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}]
    if not separate_rules:
        if self_ingress:
            ingress.append({"protocol": "-1", "from_port": 0, "to_port": 0, "self": True})
        if self_egress:
            egress.append({"protocol": "-1", "from_port": 0, "to_port": 0, "self": True})
    sg = aws.ec2.SecurityGroup("efa", vpc_id="vpc-0123", description="EFA pool", ingress=ingress, egress=egress,
                               tags=TAGS)
    if separate_rules:
        if self_ingress:
            aws.vpc.SecurityGroupIngressRule("efa-self-in", security_group_id=sg.id, ip_protocol="-1",
                                             referenced_security_group_id=sg.id)
        if self_egress:
            aws.vpc.SecurityGroupEgressRule("efa-self-out", security_group_id=sg.id, ip_protocol="-1",
                                            referenced_security_group_id=sg.id)
    return aws.ec2.LaunchTemplate(
        "train", instance_type="p5.48xlarge", image_id="ami-0123",
        metadata_options={"http_tokens": http_tokens, "http_endpoint": "enabled", "http_put_response_hop_limit": 1},
        block_device_mappings=[{"device_name": "/dev/sda1",
                                "ebs": {"encrypted": encrypted, "volume_size": 512, "volume_type": "gp3"}}],
        network_interfaces=[{"device_index": 0 if i == 0 else 1, "network_card_index": i, "interface_type": "efa",
                             "security_groups": [sg.id], "subnet_id": "subnet-0123",
                             "associate_public_ip_address": public_ip} for i in range(nics)],
        tag_specifications=[{"resource_type": "instance", "tags": tags}],
        tags=tags)


def gcp_pool(*, access_configs=False, labels=LABELS, ssh_from=ADMIN):
    gcp.compute.Firewall("ssh", network="aifactory", direction="INGRESS", source_ranges=[ssh_from],
                         allows=[{"protocol": "tcp", "ports": ["22"]}])
    nic = {"network": "aifactory", "subnetwork": "gpu"}
    if access_configs:
        nic["access_configs"] = [{"network_tier": "PREMIUM"}]
    return gcp.compute.InstanceTemplate(
        "a3", machine_type="a3-megagpu-8g", labels=labels,
        disks=[{"source_image": "projects/debian-cloud/global/images/family/debian-12", "boot": True,
                "disk_size_gb": 512}],
        network_interfaces=[nic],
        scheduling={"on_host_maintenance": "TERMINATE"},
        shielded_instance_config={"enable_vtpm": True, "enable_integrity_monitoring": True})


def azure_pool(*, encryption_at_host=True, public_ip=False, ssh_from=ADMIN):
    azure.network.NetworkSecurityGroup(
        "nodes", resource_group_name="aifactory", location="eastus", tags=TAGS,
        security_rules=[{"name": "ssh-admin", "priority": 100, "direction": "Inbound", "access": "Allow",
                         "protocol": "Tcp", "source_address_prefix": ssh_from, "source_port_range": "*",
                         "destination_address_prefix": "*", "destination_port_range": "22"}])
    ip_config = {"name": "ipconfig", "subnet": {"id": "/subscriptions/0/resourceGroups/aifactory/providers/"
                                                      "Microsoft.Network/virtualNetworks/v/subnets/gpu"}}
    if public_ip:
        ip_config["public_ip_address_configuration"] = {"name": "pip"}
    return azure.compute.VirtualMachineScaleSet(
        "nd", resource_group_name="aifactory", location="eastus", tags=TAGS,
        sku={"name": "Standard_ND96isr_H100_v5", "capacity": 2, "tier": "Standard"},
        virtual_machine_profile={
            "security_profile": {"encryption_at_host": encryption_at_host},
            "network_profile": {"network_interface_configurations": [
                {"name": "nic", "primary": True, "ip_configurations": [ip_config]}]},
        })


def oci_pool(*, assign_public_ip="false", shape="BM.GPU.H100.8", in_transit=None, ssh_from=ADMIN):
    oci.core.SecurityList("nodes", compartment_id="ocid1.compartment.oc1..x", vcn_id="ocid1.vcn.oc1..x",
                          freeform_tags=LABELS,
                          ingress_security_rules=[{"protocol": "6", "source": ssh_from,
                                                   "tcp_options": {"min": 22, "max": 22}}])
    args = {}
    if in_transit is not None:
        args["is_pv_encryption_in_transit_enabled"] = in_transit
    return oci.core.Instance(
        "h100", compartment_id="ocid1.compartment.oc1..x", availability_domain="Uocm:US-ASHBURN-AD-1",
        shape=shape, freeform_tags=LABELS,
        create_vnic_details={"subnet_id": "ocid1.subnet.oc1..x", "assign_public_ip": assign_public_ip},
        source_details={"source_type": "image", "source_id": "ocid1.image.oc1..x"}, **args)
