"""Runs one case of ``tests/policy/cases.py``, named by the stack config ``policy-test:case``."""
import pulumi

from tests.policy.cases import BY_ID

BY_ID[pulumi.Config().require("case")].build()
