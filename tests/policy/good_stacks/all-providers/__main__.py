"""Every provider's compliant GPU pool: the guardrails must find nothing here."""
from tests.policy.stacklib import aws_efa_pool, azure_pool, gcp_pool, oci_pool

aws_efa_pool()
gcp_pool()
azure_pool()
oci_pool()
