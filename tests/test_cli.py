"""The CLI contracts other tools rely on (run through the real console entry point)."""

from __future__ import annotations

import re
import subprocess
import sys

BAD = """\
name: bad
sites:
  - {name: dc1, power_mw: 1}
pools:
  - {name: a, site: dc1, provider: onprem, system: dgx-h100, nodes: 500}
  - {name: b, site: dc9, provider: onprem, system: dgx-h100, nodes: 1}
"""


def cli(*args):
    return subprocess.run([sys.executable, "-m", "aifactory", *args], capture_output=True, text=True)


def test_validate_ok(stacks):
    out = cli("validate", str(stacks / "superpod-h100" / "factory.yaml"))
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout and "1,016 GPUs" in out.stdout


def test_validate_errors_are_file_line_path_message(tmp_path):
    f = tmp_path / "factory.yaml"
    f.write_text(BAD)
    out = cli("validate", str(f))
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = [l for l in out.stderr.splitlines() if l.startswith(str(f))]
    assert any(re.match(rf"^{re.escape(str(f))}:6: pools\[1\]\.site: unknown site 'dc9'", l) for l in lines), lines


def test_capacity_errors_after_refs_are_fixed(tmp_path):
    f = tmp_path / "factory.yaml"
    f.write_text(BAD.replace("dc9", "dc1"))
    out = cli("plan", str(f), "--format", "json")
    assert out.returncode == 1 and out.stdout == ""
    assert f"{f}:3: sites[0].power_mw: site dc1 needs" in out.stderr


def test_plan_markdown_and_table(stacks):
    md = cli("plan", str(stacks / "multicloud" / "factory.yaml"), "--format", "markdown")
    assert md.returncode == 0 and md.stdout.startswith("### aifactory plan: `multicloud`")
    assert "| pool | provider |" in md.stdout and "Software lock" in md.stdout
    table = cli("plan", str(stacks / "lab" / "factory.yaml"))
    assert table.returncode == 0 and "535.261.03" in table.stdout  # the lab pins what Debian 12 ships


def test_missing_file_is_one_clear_line(tmp_path):
    out = cli("validate", str(tmp_path / "nope.yaml"))
    assert out.returncode == 1 and "cannot read file" in out.stderr and "Traceback" not in out.stderr


def test_catalog_listing():
    out = cli("catalog", "systems")
    assert out.returncode == 0 and "p5.48xlarge" in out.stdout and "gb200-nvl72" in out.stdout
    bad = cli("catalog", "nope")
    assert bad.returncode == 1 and "unknown catalog table" in bad.stderr


def test_cloud_sdk_errors_are_one_line(stacks, tmp_path):
    """No AWS credentials: preflight says so in one line, never a botocore traceback."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "aifactory", "preflight", str(stacks / "aws-p5" / "factory.yaml")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "aifactory: AWS: Unable to locate credentials" in out.stderr
