"""EFA interfaces in a security group with no self rules: NCCL would hang."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(self_ingress=False, self_egress=False)
