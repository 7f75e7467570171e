"""An Auto Scaling group of GPU nodes launched from a template no rule can read (not in the stack)."""
import pulumi_aws as aws

from tests.policy.stacklib import TAGS

aws.autoscaling.Group("nodes", min_size=0, max_size=4, vpc_zone_identifiers=["subnet-0123"],
                      launch_template={"id": "lt-0123456789abcdef0", "version": "$Latest"},
                      tags=[{"key": k, "value": v, "propagate_at_launch": True} for k, v in TAGS.items()])
