"""An A3 template with an external access config."""
from tests.policy.stacklib import gcp_pool

gcp_pool(access_configs=True)
