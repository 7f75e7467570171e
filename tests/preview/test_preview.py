"""`aifactory preview`: every example stack runs offline; JSON and table output; isolation; speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (REPO / "stacks").glob("*/Pulumi.yaml"))
AIFACTORY = [sys.executable, "-m", "aifactory"]


def cli(*args, env=None):
    return subprocess.run([*AIFACTORY, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_the_examples_include_the_five_factories():
    assert {"lab", "aws-p5", "multicloud", "superpod-h100", "campus-10gw"} <= set(EXAMPLES)


@pytest.mark.parametrize("stack", EXAMPLES)
def test_every_example_stack_previews(stack):
    from aifactory.preview import preview

    result = preview(REPO / "stacks" / stack)
    assert result.records[0].type == "pulumi:pulumi:Stack"
    names = {r.name for r in result.records}
    assert all(r.parent in names for r in result.records[1:])  # a tree rooted at the stack
    assert result.outputs["factory"] and set(result.outputs["inventory"]) == set(result.outputs["pools"])


def test_multicloud_json_via_the_cli():
    """The whole command (interpreter start, four provider SDKs, plan, program, JSON); its time
    target (< 10 s) is measured by `make bench` (bench/pulumi.py), not here."""
    out = cli("preview", "stacks/multicloud", "--format", "json")
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert all({"type", "name", "parent"} <= set(r) for r in records)
    types = {r["type"] for r in records}
    assert {"aifactory:aws:GpuPool", "aifactory:gcp:GpuPool", "aifactory:azure:GpuPool", "aifactory:oci:GpuPool",
            "aifactory:onprem:GpuPool"} <= types
    lt = next(r for r in records if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate")
    assert (lt["parent"], len(lt["inputs"]["networkInterfaces"])) == ("aws", 32)


def test_table_output_shows_type_name_parent_and_key_inputs():
    out = cli("preview", "stacks/aws-p5", "--format", "table", env={"COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    assert "aws:ec2/launchTemplate:LaunchTemplate" in out.stdout and "train-template" in out.stdout
    assert "networkInterfaces=32" in out.stdout and 'strategy="cluster"' in out.stdout
    assert "capacity-block without a reservation id" in out.stdout


def test_previews_are_isolated_from_each_other():
    from aifactory.preview import preview

    first = preview(REPO / "stacks" / "aws-p5")
    preview(REPO / "stacks" / "multicloud")
    again = preview(REPO / "stacks" / "aws-p5")
    assert [r.to_dict() for r in first.records] == [r.to_dict() for r in again.records]
    assert again.project == "aws-p5" and not any(r.name.startswith("gcp") for r in again.records)


def test_unknown_provider_function_raises(tmp_path):
    """A data source nobody mocked must fail the preview rather than return something made up."""
    from aifactory.preview import RecordingMocks, run_program

    program = tmp_path / "__main__.py"
    program.write_text("import pulumi_aws as aws\naws.ec2.get_ami(most_recent=True, owners=['amazon'])\n")
    with pytest.raises(Exception, match="aws:ec2/getAmi:getAmi is not mocked"):
        run_program(program, mocks=RecordingMocks())


def test_not_a_stack_folder_is_one_line(tmp_path):
    out = cli("preview", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "no Pulumi.yaml" in out.stderr and "Traceback" not in out.stderr


def test_bad_factory_in_a_stack_prints_findings_without_traceback(tmp_path):
    from tests.preview.harness import make_stack

    root = make_stack(tmp_path / "s", "name: x\nsites: [{name: s}]\npools: [{name: p, site: s, provider: aws, "
                                      "system: p5.48xlarge, nodes: 1, zones: [us-east-1a], bogus: 1}]\n")
    out = cli("preview", str(root))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "bogus" in out.stderr
