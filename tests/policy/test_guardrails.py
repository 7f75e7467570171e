"""The guardrails: every deliberately bad stack fails on exactly its rule, good stacks pass.

Each program under ``bad_stacks/<rule>--<case>/`` and ``good_stacks/<case>/``, and every
example stack, runs under the offline preview harness (``aifactory.preview``: Pulumi's mocks,
the resources the SDK really registers, with the engine's property names) and is evaluated by
``aifactory.policy.evaluate``; the pulumi-policy wrappers are checked to report the same
violations through the policy SDK's own argument types.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi_policy import ResourceValidationArgs
from pulumi_policy.policy import PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from aifactory.policy import RULE_NAMES, evaluate
from aifactory.policy.pack import policies
from aifactory import preview
from tests.policy.harness import records, through_policy_sdk

HERE = Path(__file__).parent
REPO = HERE.parents[1]
BAD = sorted(p for p in (HERE / "bad_stacks").iterdir() if (p / "__main__.py").exists())
GOOD = sorted(p for p in (HERE / "good_stacks").iterdir() if (p / "__main__.py").exists())
EXAMPLES = sorted(p.parent for p in REPO.glob("stacks/*/__main__.py"))


def _violations(program_dir: Path):
    resources = records(preview.run_program(program_dir / "__main__.py", project="policy-test", stack="test"))
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
    """Every example stack, as `aifactory preview` runs it (its own Pulumi.<stack>.yaml config)."""
    resources = records(preview.preview(stack))
    violations = evaluate(resources)
    assert violations == [], [v.render() for v in violations]


@pytest.mark.parametrize("stack", BAD + GOOD, ids=[p.name for p in BAD + GOOD])
def test_policy_pack_agrees_with_offline_evaluation(stack):
    resources, violations = _violations(stack)
    assert sorted(through_policy_sdk(resources)) == sorted((v.rule, v.name) for v in violations)


def test_unknown_values_during_preview_are_not_taken_as_compliant():
    """An unknown value must reach the SDK as UnknownValueError, never read as 'no violation'."""
    lt = {"instanceType": "p5.48xlarge", "metadataOptions": {"httpTokens": UNKNOWN_STRING_VALUE}}
    (imds,) = [p for p in policies() if p.name == "imdsv2-required"]
    opts = PolicyResourceOptions(False, [], None, [], [], None)
    with pytest.raises(UnknownValueError):
        imds.validate(ResourceValidationArgs("aws:ec2/launchTemplate:LaunchTemplate", unknown_checking_proxy(lt),
                                             "urn:x", "train", opts, None), lambda *a: None)



def test_preview_policy_option_passes_an_example_and_refuses_a_bad_stack(tmp_path):
    """`aifactory preview --policy`: exit 0 on an example, exit 1 naming the rule on a bad stack."""
    import shutil

    from typer.testing import CliRunner

    from aifactory.cli import app

    runner = CliRunner()
    good = runner.invoke(app, ["preview", str(REPO / "stacks" / "aws-p5"), "--format", "json", "--policy"])
    assert good.exit_code == 0, good.stderr
    assert "no violation" in good.stderr

    stack = tmp_path / "bad"
    shutil.copytree(HERE / "bad_stacks" / "no-open-admin-ports--aws-ssh", stack)
    (stack / "Pulumi.yaml").write_text("name: bad\nruntime: python\n")
    (stack / "Pulumi.test.yaml").write_text("config: {}\n")
    bad = runner.invoke(app, ["preview", str(stack), "--format", "json", "--policy"])
    assert bad.exit_code == 1, bad.stderr
    lines = [line for line in bad.stderr.splitlines() if ": policy: " in line]
    assert lines and all("[no-open-admin-ports]" in line for line in lines), bad.stderr
    assert ": 1 policy violation" in bad.stderr
