"""All traffic from ::/0 through a legacy security group rule."""
import pulumi_aws as aws

from tests.policy.stacklib import TAGS

sg = aws.ec2.SecurityGroup("mgmt", vpc_id="vpc-0123", description="management", tags=TAGS)
aws.ec2.SecurityGroupRule("any6", type="ingress", security_group_id=sg.id, protocol="-1", from_port=0,
                          to_port=0, ipv6_cidr_blocks=["::/0"])
