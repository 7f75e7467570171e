"""A VM GPU shape with in-transit encryption of its paravirtualized boot volume."""
from tests.policy.stacklib import oci_pool

oci_pool(shape="VM.GPU.A10.2", in_transit=True)
