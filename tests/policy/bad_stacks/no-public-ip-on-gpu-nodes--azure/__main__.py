"""ND scale set instances with a public IP configuration."""
from tests.policy.stacklib import azure_pool

azure_pool(public_ip=True)
