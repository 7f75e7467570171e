"""A VM GPU shape whose boot volume traffic is not encrypted in transit."""
from tests.policy.stacklib import oci_pool

oci_pool(shape="VM.GPU.A10.2")
