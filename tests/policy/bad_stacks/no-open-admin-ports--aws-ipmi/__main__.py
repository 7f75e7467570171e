"""IPMI (UDP 623) to the BMC network from anywhere, as a separate rule."""
import pulumi_aws as aws

from tests.policy.stacklib import TAGS

bmc = aws.ec2.SecurityGroup("bmc", vpc_id="vpc-0123", description="BMC network", tags=TAGS)
aws.vpc.SecurityGroupIngressRule("ipmi", security_group_id=bmc.id, ip_protocol="udp", from_port=623,
                                 to_port=623, cidr_ipv4="0.0.0.0/0")
