"""A bare-metal H100 node with a public IP on its primary VNIC."""
from tests.policy.stacklib import oci_pool

oci_pool(assign_public_ip="true")
