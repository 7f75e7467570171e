"""IMDSv1 left on: any SSRF on a node reads its role credentials."""
from tests.policy.stacklib import aws_efa_pool

aws_efa_pool(http_tokens="optional")
