"""The rules as pulumi-policy policies, every one mandatory.

Importing this module starts nothing; ``policy/__main__.py`` hands :func:`policies` to a
``PolicyPack``, whose constructor serves them to the Pulumi engine. A rule's per-resource check
becomes a resource policy (decided before the resource is created) and its cross-resource
check a stack policy; a rule with both gets the stack policy under ``<rule>`` +
:data:`STACK_SUFFIX`, since names are unique in a pack.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from .rules import RULES, Resource, Rule

PACK_NAME = "aifactory-guardrails"
STACK_SUFFIX = "-across-resources"


def rule_name(policy_name: str) -> str:
    """The rule a policy of this pack belongs to."""
    return policy_name.removesuffix(STACK_SUFFIX)


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY,
                                    remediation_steps=rule.remediation)


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(type=r.resource_type, name=r.name, props=r.props, urn=r.urn,
                              dependencies=tuple(d.urn for d in r.dependencies or ()),
                              property_dependencies={k: tuple(d.urn for d in v or ())
                                                     for k, v in (r.property_dependencies or {}).items()})
                     for r in args.resources]
        for resource, message in rule.stack_check(resources):
            report_violation(message, resource.urn or None)

    name = rule.name + STACK_SUFFIX if rule.check else rule.name
    return StackValidationPolicy(name=name, description=rule.description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY, remediation_steps=rule.remediation)


def policies() -> list:
    out = []
    for rule in RULES:
        if rule.check:
            out.append(_resource_policy(rule))
        if rule.stack_check:
            out.append(_stack_policy(rule))
    return out
