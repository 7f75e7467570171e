"""The CLI contracts other tools rely on (run through the real console entry point)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.cli_helpers import BAD



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
    # The control plane a reviewer approves: one cluster over the five sites, run from on-prem.
    assert ("| multicloud-global | dc1, aws-use1, gcp-usc1, az-eus, oci-iad | onprem-0001 | local on onprem-0001 | "
            "- | onprem | - | no | - |") in md.stdout
    table = cli("plan", str(stacks / "lab" / "factory.yaml"))
    assert table.returncode == 0 and "535.261.03" in table.stdout  # the lab pins what Debian 12 ships
    assert "lab-lab" in table.stdout and "local on gpu-0001" in table.stdout


def test_missing_file_is_one_clear_line(tmp_path):
    out = cli("validate", str(tmp_path / "nope.yaml"))
    assert out.returncode == 1 and "cannot read file" in out.stderr and "Traceback" not in out.stderr


def test_catalog_listing():
    import csv
    import json

    from aifactory import catalog

    tables = json.loads(cli("catalog", "-f", "json").stdout)
    assert [t["table"] for t in tables] == list(catalog.TABLES) and all(t["rows"] > 0 for t in tables)
    out = cli("catalog", "instance_types", "-f", "json")
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert rows["p5.48xlarge"]["source"] and rows["p5.48xlarge"]["from"] == "packaged"
    # csv output is the table's own file format: it parses back against the schema
    text = cli("catalog", "systems", "-f", "csv").stdout
    parsed = catalog.parse_csv(catalog.TABLES["systems"], text, "out.csv")
    assert "gb200-nvl72" in {r.id for r in parsed} and list(csv.reader(text.splitlines()))[0] == catalog.TABLES["systems"].columns
    assert "gb200-nvl72" in cli("catalog", "systems").stdout
    bad = cli("catalog", "nope")
    assert bad.returncode == 1 and "unknown catalog table" in bad.stderr


def test_catalog_shows_what_a_spec_and_the_environment_add(tmp_path, stacks):
    """`--spec` and AIFACTORY_CATALOG rows appear marked as overlay; a bad overlay row is one
    located error, never a traceback."""
    import json
    import os
    import shutil

    import yaml

    spec = yaml.safe_load((stacks / "lab" / "factory.yaml").read_text())
    spec["catalog"] = {"gpus": [{"id": "h100-nvl", "name": "NVIDIA H100 NVL", "vendor": "nvidia",
                                 "architecture": "hopper", "compute_capability": "9.0", "memory_gb": 94,
                                 "tdp_w": 400, "nvlink_gbytes_s": 600, "open_modules_required": False, "first_cuda": None,
                                 "source": "NVIDIA H100 NVL product brief"}]}
    path = tmp_path / "factory.yaml"
    path.write_text(yaml.safe_dump(spec))
    rows = {r["id"]: r for r in json.loads(cli("catalog", "gpus", "-f", "json", "--spec", str(path)).stdout)}
    assert rows["h100-nvl"]["from"] == "overlay" and rows["h100-sxm"]["from"] == "packaged"
    spec["catalog"]["gpus"][0]["tdp_w"] = "lots"
    path.write_text(yaml.safe_dump(spec))
    bad = cli("catalog", "gpus", "--spec", str(path))
    assert bad.returncode == 1 and "catalog.gpus[0].tdp_w: expected int" in bad.stderr
    assert "Traceback" not in bad.stderr

    folder = tmp_path / "overlay"
    folder.mkdir()
    src = Path(__file__).resolve().parents[1] / "modules/aifactory/catalog/data/v1/switches.csv"
    lines = src.read_text().splitlines()
    (folder / "switches.csv").write_text(lines[0] + "\n" + lines[1].replace(lines[1].split(",")[0], "my-leaf", 1) + "\n")
    env = dict(os.environ, AIFACTORY_CATALOG=str(folder))
    out = subprocess.run([sys.executable, "-m", "aifactory", "catalog", "switches", "-f", "json"],
                         capture_output=True, text=True, env=env)
    assert {r["id"]: r["from"] for r in json.loads(out.stdout)}["my-leaf"] == "overlay"
    (folder / "switches.csv").write_text(lines[0] + "\n" + "my-leaf,x\n")
    out = subprocess.run([sys.executable, "-m", "aifactory", "catalog", "switches"], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "switches.csv:2: expected" in out.stderr and "Traceback" not in out.stderr
    shutil.rmtree(folder)
    (tmp_path / "overlay").mkdir()
    (folder / "switchs.csv").write_text(lines[0] + "\n")
    out = subprocess.run([sys.executable, "-m", "aifactory", "catalog"], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "no catalog table 'switchs'" in out.stderr


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


def test_version_help_and_completion():
    """`--version` names aifactory and the tools it drives (from metadata, importing no SDK);
    `-h` is `--help`; shell completion is offered."""
    import importlib.metadata

    from aifactory import __version__

    out = cli("--version")
    assert out.returncode == 0 and out.stdout.splitlines()[0].startswith(f"aifactory {__version__} (Python ")
    assert __version__ == importlib.metadata.version("gpufactory")
    for name in ("pulumi", "ansible-core", "pulumi-aws"):
        assert f"  {name} {importlib.metadata.version(name)}" in out.stdout
    assert cli("-V").stdout == out.stdout
    short, long = cli("validate", "-h"), cli("validate", "--help")
    assert short.returncode == 0 and short.stdout == long.stdout and "FILE:LINE" in short.stdout
    assert "--install-completion" in cli("-h").stdout
    # The exit codes are documented where users look first.
    assert "Exit codes: 0 ok, 1 error, 2 usage, 3 drift or changes" in " ".join(cli("-h").stdout.split())
    completion = cli("--show-completion", "bash")
    assert completion.returncode == 0 and "_aifactory_completion" in completion.stdout


def test_every_environment_variable_is_documented():
    """Each AIFACTORY_* variable the code reads has a row in the README's table."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    read = set()
    for path in (root / "modules" / "aifactory").rglob("*.py"):
        read |= set(re.findall(r"\"(AIFACTORY_[A-Z_]+)\"", path.read_text()))
    documented = set(re.findall(r"^\| `(AIFACTORY_[A-Z_]+)` \|", (root / "README.md").read_text(), re.M))
    assert read and read <= documented, sorted(read - documented)


def test_configure_takes_a_vars_file_by_path(tmp_path):
    """`-e @FILE` hands a variables file (the secrets of slurm.yml) to ansible-playbook by path:
    a missing one is a one-line error, and ansible-playbook itself reads the one given."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    missing = cli("configure", str(inventory), "--check", "-e", f"@{tmp_path / 'secrets.yml'}")
    assert missing.returncode == 1 and "secrets.yml does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("munge_key: [unclosed\n")
    run = cli("configure", str(inventory), "--check", "--tags", "nothing", "-e", f"@{broken}")
    assert run.returncode == 1 and "broken.yml" in run.stdout + run.stderr, run.stdout + run.stderr
