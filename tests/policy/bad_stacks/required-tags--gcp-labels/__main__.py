"""An A3 template without any aifactory labels."""
from tests.policy.stacklib import gcp_pool

gcp_pool(labels={"team": "research"})
