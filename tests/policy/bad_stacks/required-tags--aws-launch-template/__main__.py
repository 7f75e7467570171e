"""A launch template without the pool tag."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(tags={"aifactory-factory": "policy-test"})
