"""SSH from any source on the node NSG."""
from tests.policy.stacklib import azure_pool

azure_pool(ssh_from="*")
