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


# --- building blocks for the case table (cases.py): each compliant on its own ---------------------

AMI = "ami-0123"
ROOT = [{"device_name": "/dev/sda1", "ebs": {"encrypted": "true", "volume_size": 512, "volume_type": "gp3"}}]
IMDS = {"http_tokens": "required", "http_endpoint": "enabled"}
PRIVATE_NIC = {"device_index": 0, "associate_public_ip_address": "false"}
ASG_TAGS = [{"key": k, "value": v, "propagate_at_launch": False} for k, v in TAGS.items()]
COMPARTMENT = "ocid1.compartment.oc1..x"
AD = "Uocm:US-ASHBURN-AD-1"
RG = "aifactory"
AZ_SUBNET = "/subscriptions/0/resourceGroups/aifactory/providers/Microsoft.Network/virtualNetworks/v/subnets/gpu"


def aws_subnet(name: str = "net", *, public: bool = False, ipv6: bool = False, vpc=None):
    """A subnet of its own VPC (or of ``vpc``), private unless told otherwise."""
    vpc = vpc or aws.ec2.Vpc(f"{name}-vpc", cidr_block="10.30.0.0/16", tags=TAGS)
    return aws.ec2.Subnet(f"{name}-subnet", vpc_id=vpc.id, cidr_block="10.30.0.0/20", map_public_ip_on_launch=public,
                          assign_ipv6_address_on_creation=ipv6, tags=TAGS)


def aws_template(name: str = "lt", *, nics=(PRIVATE_NIC,), mappings=ROOT, metadata=IMDS, tags=TAGS,
                 instance_tags=TAGS, instance_type: str = "p5.48xlarge", **extra):
    args = dict(instance_type=instance_type, image_id=AMI, metadata_options=metadata,
                block_device_mappings=list(mappings) if mappings is not None else None,
                network_interfaces=list(nics) if nics is not None else None, tags=tags, **extra)
    if instance_tags is not None:
        args["tag_specifications"] = [{"resource_type": "instance", "tags": instance_tags}]
    return aws.ec2.LaunchTemplate(name, **args)


def aws_group(name: str = "nodes", template=None, subnets=None, tags=ASG_TAGS):
    """An Auto Scaling group of GPU nodes from ``template`` (a compliant one by default)."""
    template = template or aws_template(f"{name}-lt")
    subnets = [aws_subnet(f"{name}-net")] if subnets is None else subnets
    return aws.autoscaling.Group(name, min_size=0, max_size=4, vpc_zone_identifiers=[s.id for s in subnets],
                                 launch_template={"id": template.id, "version": "$Latest"}, tags=tags)


def aws_instance(name: str = "node", *, kind=aws.ec2.Instance, subnet="private", **overrides):
    """A GPU instance (or spot request, with ``kind``): IMDSv2, encrypted root, private, tagged."""
    if subnet == "private":
        subnet = aws_subnet(f"{name}-net")
    args = dict(instance_type="g6.xlarge", ami=AMI, metadata_options=IMDS,
                root_block_device={"encrypted": True, "volume_size": 200}, associate_public_ip_address=False,
                tags=TAGS, subnet_id=subnet.id if subnet is not None else None)
    args.update(overrides)
    return kind(name, **{k: v for k, v in args.items() if v is not None})


def aws_spot_fleet(name: str = "spot", *, spec=None, **extra):
    subnet = aws_subnet(f"{name}-net")
    launch = {"instance_type": "p4d.24xlarge", "ami": AMI, "subnet_id": subnet.id,
              "associate_public_ip_address": False, "root_block_devices": [{"encrypted": True, "volume_size": 512}],
              "tags": TAGS}
    launch.update(spec or {})
    return aws.ec2.SpotFleetRequest(name, iam_fleet_role="arn:aws:iam::0:role/fleet", target_capacity=2,
                                    launch_specifications=[launch], **extra)


def gcp_instance(name: str = "a3", *, kind=gcp.compute.Instance, nics=None, labels=LABELS, **extra):
    nics = [{"subnetwork": "gpu"}] if nics is None else nics
    args = dict(machine_type="a3-highgpu-8g", labels=labels, network_interfaces=nics, **extra)
    if kind is gcp.compute.Instance:
        args.update(zone="us-central1-a", boot_disk={"initialize_params": {"image": "debian-12"}})
    elif kind is gcp.compute.InstanceTemplate:
        args.update(disks=[{"source_image": "debian-12", "boot": True}])
    return kind(name, **args)


def azure_vm(name: str = "nd", *, nics=None, encryption_at_host=True, tags=TAGS, **extra):
    """An ND VM attached to network interface resources (a private one by default)."""
    if nics is None:
        nics = [azure.network.NetworkInterface(f"{name}-nic", resource_group_name=RG, tags=TAGS,
                                               ip_configurations=[{"name": "ipv4", "subnet": {"id": AZ_SUBNET}}])]
    return azure.compute.VirtualMachine(
        name, resource_group_name=RG, tags=tags, hardware_profile={"vm_size": "Standard_ND96isr_H100_v5"},
        security_profile={"encryption_at_host": encryption_at_host},
        network_profile={"network_interfaces": [{"id": n.id, "primary": i == 0} for i, n in enumerate(nics)]},
        **extra)


def azure_vmss(name: str = "ndss", *, ip_configs=None, tags=TAGS):
    ip_configs = ip_configs or [{"name": "ipv4", "subnet": {"id": AZ_SUBNET}}]
    return azure.compute.VirtualMachineScaleSet(
        name, resource_group_name=RG, tags=tags, sku={"name": "Standard_ND96isr_H100_v5", "capacity": 2},
        virtual_machine_profile={"security_profile": {"encryption_at_host": True}, "network_profile": {
            "network_interface_configurations": [{"name": "nic", "primary": True, "ip_configurations": ip_configs}]}})


def azure_rule(name: str, source, ports="22", *, access="Allow", protocol="Tcp", many=False):
    prefix = {"source_address_prefixes": source} if many else {"source_address_prefix": source}
    return azure.network.SecurityRule(name, resource_group_name=RG, network_security_group_name="nodes",
                                      priority=100, direction="Inbound", access=access, protocol=protocol,
                                      source_port_range="*", destination_address_prefix="*",
                                      destination_port_range=ports, **prefix)


def oci_instance(name: str = "h100", *, vnic=None, shape: str = "BM.GPU.H100.8", tags=LABELS, **extra):
    vnic = {"subnet_id": "ocid1.subnet.oc1..x", "assign_public_ip": "false"} if vnic is None else vnic
    return oci.core.Instance(name, compartment_id=COMPARTMENT, availability_domain=AD, shape=shape,
                             freeform_tags=tags, create_vnic_details=vnic,
                             source_details={"source_type": "image", "source_id": "ocid1.image.oc1..x"}, **extra)


def oci_config(name: str = "config", *, launch=None, tags=LABELS, secondary=None):
    details = {"compartment_id": COMPARTMENT, "shape": "BM.GPU.H100.8", "freeform_tags": LABELS,
               "create_vnic_details": {"subnet_id": "ocid1.subnet.oc1..x", "assign_public_ip": False}}
    details.update(launch or {})
    instance = {"instance_type": "compute", "launch_details": details}
    if secondary is not None:
        instance["secondary_vnics"] = secondary
    return oci.core.InstanceConfiguration(name, compartment_id=COMPARTMENT, freeform_tags=tags,
                                          instance_details=instance)


def oci_seclist(name: str, rules):
    return oci.core.SecurityList(name, compartment_id=COMPARTMENT, vcn_id="ocid1.vcn.oc1..x", freeform_tags=LABELS,
                                 ingress_security_rules=rules)
