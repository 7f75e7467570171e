"""A scratch EBS volume created without encryption."""
import pulumi_aws as aws

from tests.policy.stacklib import TAGS

aws.ebs.Volume("scratch", availability_zone="us-east-1a", size=2048, type="gp3", tags=TAGS)
