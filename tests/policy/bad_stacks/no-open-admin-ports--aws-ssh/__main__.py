"""SSH open to the internet on the node security group."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(ssh_from="0.0.0.0/0")
