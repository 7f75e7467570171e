"""The launch template root volume is not encrypted."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(encrypted="false")
