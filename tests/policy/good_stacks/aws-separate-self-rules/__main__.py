"""EFA self rules as separate ingress/egress rule resources instead of inline blocks."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(separate_rules=True)
