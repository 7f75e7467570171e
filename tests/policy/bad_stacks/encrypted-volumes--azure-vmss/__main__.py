"""ND H100 v5 scale set without encryption at host (temp disk in clear)."""
from tests.policy.stacklib import azure_pool

azure_pool(encryption_at_host=False)
