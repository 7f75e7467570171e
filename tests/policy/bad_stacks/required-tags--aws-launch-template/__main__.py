"""A launch template (and the instances it launches) without the pool and role tags."""
from aifactory.components.base import TAG_FACTORY
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(tags={TAG_FACTORY: "policy-test"})
