"""A single GPU instance without metadata options (IMDSv1 stays on)."""
import pulumi_aws as aws

from tests.policy.stacklib import TAGS

aws.ec2.Instance("debug", instance_type="g6.xlarge", ami="ami-0123", subnet_id="subnet-0123", tags=TAGS,
                 associate_public_ip_address=False, root_block_device={"encrypted": True, "volume_size": 200})
