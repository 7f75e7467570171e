"""A self rule inbound but not outbound (EFA needs both)."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(self_egress=False, separate_rules=True)
