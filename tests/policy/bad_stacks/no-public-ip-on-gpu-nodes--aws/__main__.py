"""EFA nodes with public addresses."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(public_ip="true")
