"""SSH from 0.0.0.0/0 in the node security list."""
from tests.policy.stacklib import oci_pool

oci_pool(ssh_from="0.0.0.0/0")
