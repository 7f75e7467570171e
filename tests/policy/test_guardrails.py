"""The guardrails: every deliberately bad stack fails on exactly its rule, good stacks pass.

Each program under ``bad_stacks/<rule>--<case>/`` and ``good_stacks/<case>/`` runs under
Pulumi's mocks (the resources the SDK really registers, with the engine's property names)
and is evaluated offline by ``aifactory.policy.evaluate``; the pulumi-policy wrappers are
checked to report the same violations through the policy SDK's own argument types.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.policy import PolicyResource, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from aifactory.policy import RULE_NAMES, evaluate
from aifactory.policy.pack import policies
from tests.policy.harness import run_program

HERE = Path(__file__).parent
REPO = HERE.parents[1]
BAD = sorted(p for p in (HERE / "bad_stacks").iterdir() if (p / "__main__.py").exists())
GOOD = sorted(p for p in (HERE / "good_stacks").iterdir() if (p / "__main__.py").exists())
EXAMPLES = sorted(p.parent for p in REPO.glob("stacks/*/__main__.py"))


def _violations(program_dir: Path):
    resources = run_program(program_dir / "__main__.py")
    assert resources, f"{program_dir.name} registered no resources"
    return resources, evaluate(resources)


@pytest.mark.parametrize("stack", BAD, ids=[p.name for p in BAD])
def test_bad_stack_fails_on_exactly_its_rule(stack):
    expected = stack.name.split("--")[0]
    assert expected in RULE_NAMES, f"directory {stack.name} must start with a rule name"
    _, violations = _violations(stack)
    assert violations, f"{stack.name}: no violation found"
    assert {v.rule for v in violations} == {expected}, [v.render() for v in violations]


def test_every_rule_has_a_bad_stack():
    assert {p.name.split("--")[0] for p in BAD} == set(RULE_NAMES)


@pytest.mark.parametrize("stack", GOOD, ids=[p.name for p in GOOD])
def test_compliant_stack_has_no_violation(stack):
    resources, violations = _violations(stack)
    assert violations == [], [v.render() for v in violations]


@pytest.mark.parametrize("stack", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_stacks_pass(stack):
    _, violations = _violations(stack)
    assert violations == [], [v.render() for v in violations]


def _through_policy_sdk(resources):
    """Report what the pulumi-policy wrappers report, fed through the SDK's own argument types.

    Properties are wrapped in the SDK's read-only proxies, exactly as its analyzer does."""
    opts = PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None,
                                 aliases=[], additional_secret_outputs=[], custom_timeouts=None)
    found = []
    stack_resources = [PolicyResource(r["type"], unknown_checking_proxy(r["props"]), r["urn"], r["name"], opts,
                                      None, None, [], {})
                       for r in resources]
    for policy in policies():
        assert policy.enforcement_level == EnforcementLevel.MANDATORY

        def report(message, urn=None, _name=policy.name):
            found.append(_name)

        if hasattr(policy, "remediate"):
            for r in resources:
                props = unknown_checking_proxy(r["props"])
                policy.validate(ResourceValidationArgs(r["type"], props, r["urn"], r["name"], opts, None), report)
        else:
            policy.validate(StackValidationArgs(stack_resources), report)
    return found


@pytest.mark.parametrize("stack", BAD + GOOD, ids=[p.name for p in BAD + GOOD])
def test_policy_pack_agrees_with_offline_evaluation(stack):
    resources, violations = _violations(stack)
    assert sorted(_through_policy_sdk(resources)) == sorted(v.rule for v in violations)


def test_unknown_values_during_preview_are_not_taken_as_compliant():
    """An unknown value must reach the SDK as UnknownValueError, never read as 'no violation'."""
    lt = {"instanceType": "p5.48xlarge", "metadataOptions": {"httpTokens": UNKNOWN_STRING_VALUE}}
    (imds,) = [p for p in policies() if p.name == "imdsv2-required"]
    opts = PolicyResourceOptions(False, [], None, [], [], None)
    with pytest.raises(UnknownValueError):
        imds.validate(ResourceValidationArgs("aws:ec2/launchTemplate:LaunchTemplate", unknown_checking_proxy(lt),
                                             "urn:x", "train", opts, None), lambda *a: None)


def _component_cases():
    """(stack, pool) for every example pool whose provider already has a component module."""
    import importlib.util

    from aifactory import spec

    cases = []
    for path in sorted(REPO.glob("stacks/*/factory.yaml")):
        for pool in spec.load(path).factory.pools:
            if importlib.util.find_spec(f"aifactory.components.{pool.provider}") is not None:
                cases.append((path.parent.name, pool.name, pool.provider))
    return cases


@pytest.mark.parametrize("stack,pool,provider", _component_cases())
def test_component_pools_of_the_examples_pass(stack, pool, provider):
    """The real GpuPool components, built from the example specs, register no violation."""
    import importlib

    import pulumi

    from aifactory import plan, spec
    from tests.policy.harness import Recorder

    loaded = spec.load(REPO / "stacks" / stack / "factory.yaml")
    planned = next(p for p in plan.build(loaded).pools if p.name == pool)
    component = importlib.import_module(f"aifactory.components.{provider}")
    recorder = Recorder(stack, "test")
    pulumi.runtime.set_mocks(recorder, project=stack, stack="test", preview=False)
    pulumi.runtime.test(lambda: component.GpuPool(pool, planned, loaded.factory) and None)()
    prefix = {"aws": "aws:", "gcp": "gcp:", "azure": "azure-native:", "oci": "oci:"}.get(provider)
    if prefix:  # on-prem pools may be inventory-only; cloud pools must build something to check
        assert any(r["type"].startswith(prefix) for r in recorder.resources), "no cloud resource registered"
    violations = evaluate(recorder.resources)
    assert violations == [], [v.render() for v in violations]
