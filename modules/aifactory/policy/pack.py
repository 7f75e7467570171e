"""The rules as pulumi-policy policies, every one mandatory.

Importing this module starts nothing; ``policy/__main__.py`` hands :func:`policies` to a
``PolicyPack``, whose constructor serves them to the Pulumi engine.
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
                              dependencies=tuple(d.urn for d in r.dependencies or ()))
                     for r in args.resources]
        for resource, message in rule.stack_check(resources):
            report_violation(message, resource.urn or None)

    return StackValidationPolicy(name=rule.name, description=rule.description, validate=validate,
                                 enforcement_level=EnforcementLevel.MANDATORY, remediation_steps=rule.remediation)


def policies() -> list:
    return [_resource_policy(r) if r.check else _stack_policy(r) for r in RULES]
