"""AWS GPU pool: private VPC, EFA security group, cluster placement group, launch template with
every EFA interface the instance supports, and one Auto Scaling group carrying the node count.

References: EFA on multi-card instances and the P5 layout
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-acc-inst-types.html), the EFA security
group rule (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html#efa-start-security),
capacity blocks in Auto Scaling groups
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/launch-template-capacity-blocks.html).
"""

from __future__ import annotations

import json
from typing import Optional

import pulumi
import pulumi_aws as aws

from ..errors import AifactoryError
from . import base
from .pool import PoolComponent

PROVIDER = "aws"

# Root volume: the DLAMI needs ~100 GB; containers, checkpoints staging and NCCL tests want more.
ROOT_VOLUME_GB = 512


def efa_interfaces(efa_count: int, security_group_id) -> list[dict]:
    """Launch-template network interfaces giving ``efa_count`` EFA devices, one per network card.

    AWS's P5 layout (use case 1 in the guide above): the primary interface (network card 0,
    device index 0) is "efa" (EFA with ENA: the one IP address of the node); every other
    network card gets one "efa-only" interface at device index 1, which carries RDMA traffic
    without consuming an IP address or creating extra Linux routes. p5/p5e: 32 cards,
    p5en: 16, p6-b200: 8. No interface asks for a public address.
    """
    if efa_count < 1:
        raise AifactoryError("fabric: an EFA pool needs an instance type with at least one EFA interface")
    out = [{
        "network_card_index": 0, "device_index": 0, "interface_type": "efa",
        "security_groups": [security_group_id], "associate_public_ip_address": "false",
        "delete_on_termination": "true",
    }]
    for card in range(1, efa_count):
        out.append({
            "network_card_index": card, "device_index": 1, "interface_type": "efa-only",
            "security_groups": [security_group_id], "associate_public_ip_address": "false",
            "delete_on_termination": "true",
        })
    return out


class GpuPool(PoolComponent):
    TYPE = base.type_token(PROVIDER)

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(name, pool, plan, opts)
        self.require_zones()
        child, tags = self.child, self.tags

        cidr = base.network_cidr(plan, pool)
        vpc = aws.ec2.Vpc(base.child(name, "vpc"), cidr_block=cidr, enable_dns_support=True,
                          enable_dns_hostnames=True, tags={**tags("network"), "Name": base.child(name, "vpc")},
                          opts=child)
        # Private subnets only: nodes never get a public address; reach them through the admin
        # network (VPN/Direct Connect/peering) or SSM Session Manager.
        subnets = [
            aws.ec2.Subnet(base.child(name, f"subnet-{zone}"), vpc_id=vpc.id, availability_zone=zone,
                           cidr_block=base.subnet_cidr(cidr, i), map_public_ip_on_launch=False,
                           tags={**tags("network"), "Name": base.child(name, f"subnet-{zone}")}, opts=child)
            for i, zone in enumerate(pool.zones)
        ]

        sg = aws.ec2.SecurityGroup(base.child(name, "efa-sg"), vpc_id=vpc.id,
                                   description=f"aifactory {plan.name}/{pool.name}: EFA and admin SSH",
                                   tags={**tags("security"), "Name": base.child(name, "efa-sg")}, opts=child)
        sg_child = pulumi.ResourceOptions(parent=self, depends_on=[sg])
        # EFA's OS-bypass traffic is dropped unless the security group allows all traffic to and
        # from itself, in both directions.
        aws.vpc.SecurityGroupIngressRule(base.child(name, "efa-self-in"), security_group_id=sg.id,
                                         ip_protocol="-1", referenced_security_group_id=sg.id,
                                         description="EFA: all traffic from members of this group",
                                         tags=tags("security"), opts=sg_child)
        aws.vpc.SecurityGroupEgressRule(base.child(name, "efa-self-out"), security_group_id=sg.id,
                                        ip_protocol="-1", referenced_security_group_id=sg.id,
                                        description="EFA: all traffic to members of this group",
                                        tags=tags("security"), opts=sg_child)
        # Outbound HTTPS (package mirrors, SSM, container registries via NAT or endpoints).
        aws.vpc.SecurityGroupEgressRule(base.child(name, "https-out"), security_group_id=sg.id,
                                        ip_protocol="tcp", from_port=443, to_port=443, cidr_ipv4="0.0.0.0/0",
                                        description="HTTPS egress", tags=tags("security"), opts=sg_child)
        for i, admin in enumerate(plan.access.admin_cidrs):
            aws.vpc.SecurityGroupIngressRule(base.child(name, f"ssh-admin-{i}"), security_group_id=sg.id,
                                             ip_protocol="tcp", from_port=22, to_port=22, cidr_ipv4=admin,
                                             description="SSH from the declared admin network",
                                             tags=tags("security"), opts=sg_child)

        placement = aws.ec2.PlacementGroup(base.child(name, "placement"), strategy="cluster",
                                           tags=tags("placement"), opts=child)

        # Least privilege: the node may only register with SSM (shell access without SSH
        # exposure) — no S3, EC2 or IAM permissions.
        role = aws.iam.Role(base.child(name, "node-role"), assume_role_policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                           "Principal": {"Service": "ec2.amazonaws.com"}}],
        }), description=f"aifactory {plan.name}/{pool.name} GPU nodes", tags=tags("identity"), opts=child)
        aws.iam.RolePolicyAttachment(base.child(name, "node-ssm"), role=role.name,
                                     policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", opts=child)
        profile = aws.iam.InstanceProfile(base.child(name, "node-profile"), role=role.name, tags=tags("identity"),
                                          opts=child)

        reservation = pool.reservation
        desired = pool.nodes
        market, capacity_spec = None, None
        if pool.capacity == "spot":
            market = {"market_type": "spot"}
        elif pool.capacity in ("reservation", "capacity-block"):
            if reservation:
                capacity_spec = {"capacity_reservation_target": {"capacity_reservation_id": reservation}}
                if pool.capacity == "capacity-block":
                    market = {"market_type": "capacity-block"}
            elif pool.capacity == "reservation":
                # No id: launch into any matching open reservation first.
                capacity_spec = {"capacity_reservation_preference": "open"}
            else:
                # A capacity block is bought for a window and has an id only once purchased; until
                # it is set the node group exists with no nodes rather than falling back to
                # on-demand capacity that rarely exists for these instances.
                pulumi.log.warn(f"pool {pool.name}: capacity-block without a reservation id; the node group "
                                "is created with 0 nodes. Set pools[].reservation or the stack config "
                                f"aifactory:reservations.{pool.name} once the block is purchased.", resource=self)
                desired = 0

        node_tags = tags(base.ROLE_NODE)
        template = aws.ec2.LaunchTemplate(
            base.child(name, "template"),
            image_id="resolve:ssm:" + self.image(),
            instance_type=pool.system,
            user_data=self.user_data(encoded=True),  # EC2 takes launch template user data base64-encoded
            update_default_version=True,
            iam_instance_profile={"arn": profile.arn},
            # IMDSv2 only. One hop keeps containers from reaching the node's credentials; Kubernetes
            # nodes need two so that pods using the node role (CNI, device plugins) still work.
            # Tags in metadata: the node reads its claimed name (the aifactory:node tag) at boot
            # without credentials; EC2 then holds every tag key to letters, digits and + - = . , _ : @
            # (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/work-with-tags-in-IMDS.html,
            # checked 2026-12-03), which the aifactory keys and the spec's tag keys are.
            metadata_options={"http_endpoint": "enabled", "http_tokens": "required",
                              "http_put_response_hop_limit": 2 if pool.scheduler == "kubernetes" else 1,
                              "instance_metadata_tags": "enabled"},
            block_device_mappings=[{"device_name": "/dev/sda1", "ebs": {
                "volume_size": ROOT_VOLUME_GB, "volume_type": "gp3", "encrypted": "true",
                "delete_on_termination": "true"}}],
            network_interfaces=efa_interfaces(pool.compute_nics, sg.id),
            placement={"group_name": placement.name},
            instance_market_options=market,
            capacity_reservation_specification=capacity_spec,
            tag_specifications=[{"resource_type": kind, "tags": node_tags}
                                for kind in ("instance", "volume", "network-interface")],
            tags=tags("template"),
            opts=child,
        )
        group = aws.autoscaling.Group(
            base.child(name, "nodes"),
            desired_capacity=desired, min_size=0, max_size=pool.nodes,
            vpc_zone_identifiers=[s.id for s in subnets],
            placement_group=placement.name,
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            # GPU instances take many minutes to boot and capacity arrives in batches; do not
            # hold the deployment until every node is in service.
            wait_for_capacity_timeout="0",
            health_check_type="EC2",
            tags=[{"key": k, "value": v, "propagate_at_launch": False} for k, v in tags("node-group").items()],
            opts=child,
        )

        self.vpc_id = vpc.id
        self.security_group_id = sg.id
        self.placement_group = placement.name
        self.launch_template_id = template.id
        self.publish(
            pulumi.Output.all(group.name).apply(list), pulumi.Output.all(*[s.id for s in subnets]).apply(list),
            pulumi.Output.all(vpc.id, group.name, sg.id).apply(
                lambda v: {"vpc_id": v[0], "node_group": v[1], "security_group_id": v[2],
                           "zones": list(pool.zones), "efa_interfaces": pool.compute_nics}),
            vpc_id=self.vpc_id, security_group_id=self.security_group_id,
            placement_group=self.placement_group, launch_template_id=self.launch_template_id)
