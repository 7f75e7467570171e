"""Running policy test programs offline and feeding their resources to both entry points.

``evaluate`` is the offline entry point; :func:`through_policy_sdk` reports what the
pulumi-policy wrappers report, fed through the SDK's own argument types and read-only proxies,
exactly as its analyzer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pulumi_policy import EnforcementLevel, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.policy import PolicyResource, PolicyResourceOptions
from pulumi_policy.proxy import unknown_checking_proxy

from aifactory import preview
from aifactory.policy.pack import policies, rule_name

PROJECT = "policy-test"


def records(result) -> list[dict]:
    return [{**r.to_dict(), "urn": r.urn} for r in result.resources]


def run(program: Path, config: Optional[dict] = None) -> list[dict]:
    """The resources ``program`` registers under the recording mocks, as ``evaluate`` takes them."""
    return records(preview.run_program(program, project=PROJECT, stack="test", config=config))


def through_policy_sdk(resources: list[dict]) -> list[tuple[str, str]]:
    """(rule, resource name) for every violation the pulumi-policy wrappers report."""
    opts = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None,
                                 aliases=[], additional_secret_outputs=[], custom_timeouts=None)
    found = []
    stack_resources = [PolicyResource(r["type"], unknown_checking_proxy(r["inputs"]), r["urn"], r["name"], opts,
                                      None, None, [], {})
                       for r in resources]
    by_name = {r.name: r for r in stack_resources}
    by_urn = {r.urn: r for r in stack_resources}
    for r, recorded in zip(stack_resources, resources):  # the engine hands dependencies as resources
        r.dependencies = [by_name[d] for d in recorded["dependencies"] if d in by_name]
    for policy in policies():
        assert policy.enforcement_level == EnforcementLevel.MANDATORY

        if hasattr(policy, "remediate"):
            for r in resources:
                def report(message, urn=None, _name=rule_name(policy.name), _r=r["name"]):
                    found.append((_name, _r))

                props = unknown_checking_proxy(r["inputs"])
                policy.validate(ResourceValidationArgs(r["type"], props, r["urn"], r["name"], opts, None), report)
        else:
            def report(message, urn=None, _name=rule_name(policy.name)):
                found.append((_name, by_urn[urn].name if urn in by_urn else ""))

            policy.validate(StackValidationArgs(stack_resources), report)
    return found
