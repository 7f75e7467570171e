"""SSH from 0.0.0.0/0 on the GPU network."""
from tests.policy.stacklib import gcp_pool

gcp_pool(ssh_from="0.0.0.0/0")
