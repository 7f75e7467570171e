"""The nvidia_mig role: its boot unit read by systemd, and the program that applies the layout
checked on `nvidia-smi mig -lgi` output captured in NVIDIA's MIG User Guide ("Getting Started with
MIG", A100-SXM4-40GB examples, checked 2026-12-03:
https://docs.nvidia.com/datacenter/tesla/mig-user-guide/getting-started-with-mig.html) and
against a stand-in nvidia-smi that records every argument vector it is given."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "playbooks" / "roles" / "nvidia_mig"
PROGRAM = ROLE / "files" / "aifactory-mig-apply"
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "playbooks" / "ansible.cfg"), ANSIBLE_NOCOLOR="1", NO_COLOR="1")

# `nvidia-smi mig -lgi` after `nvidia-smi mig -cgi 9,3g.20gb -C` (the guide's first example).
LGI_TWO_3G = """\
+----------------------------------------------------+
| GPU instances:                                     |
| GPU   Name          Profile  Instance   Placement  |
|                       ID       ID       Start:Size |
|====================================================|
|   0  MIG 3g.20gb       9        1          4:4     |
+----------------------------------------------------+
|   0  MIG 3g.20gb       9        2          0:4     |
+----------------------------------------------------+
"""
# After `nvidia-smi mig -cgi 9,19,14,19` (Example 2: the 3-2-1-1 geometry).
LGI_3_2_1_1 = """\
+----------------------------------------------------+
| GPU instances:                                     |
| GPU   Name          Profile  Instance   Placement  |
|                       ID       ID       Start:Size |
|====================================================|
|   0  MIG 1g.5gb       19        7          0:1     |
+----------------------------------------------------+
|   0  MIG 1g.5gb       19        8          1:1     |
+----------------------------------------------------+
|   0  MIG 2g.10gb      14        4          2:2     |
+----------------------------------------------------+
|   0  MIG 3g.20gb       9        2          4:4     |
+----------------------------------------------------+
"""


def _program():
    loader = importlib.machinery.SourceFileLoader("aifactory_mig_apply", str(PROGRAM))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


mig = _program()


def test_the_guides_lgi_output_is_read_per_gpu_and_profile():
    assert mig.parse_lgi(LGI_TWO_3G) == {0: Counter({"3g.20gb": 2})}
    assert mig.parse_lgi(LGI_3_2_1_1) == {0: Counter({"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1})}
    assert mig.parse_lgi("No GPU instances found: Not Found\n") == {}


def test_a_gpu_that_holds_the_layout_is_left_alone():
    layout = Counter({"3g.20gb": 2})
    assert mig.commands("nvidia-smi", [0], mig.parse_lgi(LGI_TWO_3G), layout) == {}
    layout = mig.load_layout(json.dumps([{"profile": "1g.5gb", "count": 2}, {"profile": "2g.10gb", "count": 1},
                                         {"profile": "3g.20gb", "count": 1}]))
    assert mig.commands("nvidia-smi", [0], mig.parse_lgi(LGI_3_2_1_1), layout) == {}


def test_a_gpu_that_differs_is_emptied_and_given_the_layout_largest_profile_first():
    layout = Counter({"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1})
    # GPU 0 holds two 3g.20gb instances; GPU 1 none: both change, argument vectors only.
    got = mig.commands("nvidia-smi", [0, 1], mig.parse_lgi(LGI_TWO_3G), layout)
    create = ["-cgi", "3g.20gb,2g.10gb,1g.5gb,1g.5gb", "-C"]  # the guide: 3g first, or "Insufficient Resources"
    assert got == {
        0: [["nvidia-smi", "mig", "-i", "0", "-dci"], ["nvidia-smi", "mig", "-i", "0", "-dgi"],
            ["nvidia-smi", "mig", "-i", "0", *create]],
        1: [["nvidia-smi", "mig", "-i", "1", *create]],
    }


@pytest.mark.parametrize("layout", [[], [{"profile": "3g.20gb; reboot", "count": 1}],
                                     [{"profile": "3g.20gb", "count": True}], [{"profile": "3g.20gb", "count": 8}],
                                     {"profile": "3g.20gb"}])
def test_a_layout_file_holds_profiles_and_counts_only(layout):
    with pytest.raises(ValueError):
        mig.load_layout(json.dumps(layout))


def _fake_smi(tmp_path: Path, lgi: str, mode: str = "Enabled") -> Path:
    """A stand-in nvidia-smi: answers the MIG mode query and `mig -lgi`, records every argv."""
    log = tmp_path / "calls.jsonl"
    (tmp_path / "lgi.txt").write_text(lgi)
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
open({str(log)!r}, "a").write(json.dumps(args) + "\\n")
if args and args[0].startswith("--query-gpu"):
    print("0, {mode}, {mode}")
elif args == ["mig", "-lgi"]:
    print(open({str(tmp_path / "lgi.txt")!r}).read(), end="")
""")
    smi.chmod(0o755)
    return smi


def _calls(tmp_path: Path) -> list[list[str]]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


def _apply(tmp_path, monkeypatch, capsys, smi: Path, layout: list[dict], device: bool = True) -> tuple[int, dict]:
    (tmp_path / "layout.json").write_text(json.dumps(layout))
    monkeypatch.setattr(mig, "DEVICE", str(smi) if device else str(tmp_path / "absent"))
    code = mig.main(["--nvidia-smi", str(smi), str(tmp_path / "layout.json")])
    return code, json.loads(capsys.readouterr().out.splitlines()[-1])


def test_applying_the_layout_a_gpu_holds_changes_nothing(tmp_path, monkeypatch, capsys):
    smi = _fake_smi(tmp_path, LGI_TWO_3G)
    code, report = _apply(tmp_path, monkeypatch, capsys, smi, [{"profile": "3g.20gb", "count": 2}])
    assert code == 0 and report["changed"] is False and not report["skipped"]
    assert not any("-cgi" in c or "-dgi" in c for c in _calls(tmp_path))


def test_applying_another_layout_recreates_the_instances(tmp_path, monkeypatch, capsys):
    smi = _fake_smi(tmp_path, LGI_TWO_3G)
    code, report = _apply(tmp_path, monkeypatch, capsys, smi, [{"profile": "1g.5gb", "count": 7}])
    assert code == 0 and report == {"changed": True, "skipped": False, "gpus": [0],
                                    "message": "MIG layout applied to GPUs [0]"}
    assert _calls(tmp_path)[-3:] == [["mig", "-i", "0", "-dci"], ["mig", "-i", "0", "-dgi"],
                                     ["mig", "-i", "0", "-cgi", ",".join(["1g.5gb"] * 7), "-C"]]


def test_mig_mode_is_enabled_first_and_a_pending_mode_is_reported(tmp_path, monkeypatch, capsys):
    smi = _fake_smi(tmp_path, "", mode="Disabled")
    code, report = _apply(tmp_path, monkeypatch, capsys, smi, [{"profile": "3g.20gb", "count": 2}])
    assert ["-i", "0", "-mig", "1"] in _calls(tmp_path)
    assert code == 2 and report["changed"] and "pending" in report["message"]


def test_without_a_gpu_nothing_is_changed_and_the_message_says_why(tmp_path, monkeypatch, capsys):
    smi = _fake_smi(tmp_path, LGI_TWO_3G)
    code, report = _apply(tmp_path, monkeypatch, capsys, smi, [{"profile": "3g.20gb", "count": 2}], device=False)
    assert code == 0 and report["skipped"] and not report["changed"]
    assert "chroot" in report["message"] and not (tmp_path / "calls.jsonl").exists()


@pytest.mark.slow
def test_the_boot_unit_passes_systemd_analyze_verify(tmp_path):
    """The unit as the role renders it (ansible-playbook, template module), with the program at
    a path systemd can check, ordered before the daemons that open the GPUs."""
    analyze = require_tool("systemd-analyze", "systemd")
    program = tmp_path / "aifactory-mig-apply"
    program.write_bytes(PROGRAM.read_bytes())
    program.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars_files": [str(ROLE / "defaults/main.yml")],
        "tasks": [{"name": "Render the unit", "vars": {
            "nvidia_mig_apply_path": str(program), "nvidia_mig_layout_path": str(tmp_path / "layout.json")},
            "ansible.builtin.template": {
            "src": str(ROLE / "templates/aifactory-mig.service.j2"), "dest": str(units / "aifactory-mig.service"),
            "mode": "0644"}}]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play),
                           "-e", f"ansible_python_interpreter={sys.executable}"],
                          capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unit = units / "aifactory-mig.service"
    text = unit.read_text()
    assert "Type=oneshot" in text and "RemainAfterExit=yes" in text
    before = next(ln for ln in text.splitlines() if ln.startswith("Before=")).split("=", 1)[1].split()
    assert {"nvidia-persistenced.service", "slurmd.service"} <= set(before)
    assert f'ExecStart="{program}" --nvidia-smi "/usr/bin/nvidia-smi" "{tmp_path / "layout.json"}"' in text
    proc = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          env=dict(os.environ, SYSTEMD_UNIT_PATH=f"{units}:", SYSTEMD_LOG_LEVEL="notice"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "aifactory-mig.service" not in proc.stderr, proc.stderr


def test_the_inventory_puts_mig_pools_in_the_mig_group_with_their_layout():
    from aifactory import inventory, plan, spec

    built = plan.build(spec.load_string("""
name: m
sites: [{name: hall, power_mw: 2, pue: 1.2, rack_kw: 60}]
pools:
  - {name: infer, site: hall, provider: onprem, system: dgx-h100, nodes: 2, mig: {"3g.40gb": 2}}
  - {name: train, site: hall, provider: onprem, system: dgx-h100, nodes: 2}
"""))
    files = inventory.build_files(built)
    hosts = yaml.safe_load(files["inventory/hosts.yml"])
    assert list(hosts["all"]["children"]["mig"]["children"]) == ["pool_infer"]
    infer = yaml.safe_load(files["inventory/group_vars/pool_infer.yml"].replace("!unsafe ", ""))
    train = yaml.safe_load(files["inventory/group_vars/pool_train.yml"].replace("!unsafe ", ""))
    assert infer["nvidia_mig_layout"] == [{"profile": "3g.40gb", "count": 2}]
    assert "nvidia_mig_layout" not in train
