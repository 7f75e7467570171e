"""aifactory guardrails as a Pulumi policy pack: ``pulumi up --policy-pack policy``.

The rules live in ``aifactory.policy`` so that ``aifactory preview --policy`` evaluates the very
same functions offline over the resources a stack registers under the mock engine.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from aifactory.policy.pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
