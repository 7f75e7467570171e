"""Templates and playbooks must be found when aifactory is installed from a wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest


@pytest.mark.slow
def test_wheel_carries_templates_and_playbooks(repo, tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(repo)], check=True)
    (wheel,) = tmp_path.glob("gpufactory-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "aifactory/catalog/data/v1/systems.csv" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for folder in ("templates", "playbooks"):
        shipped = {n for n in names if n.startswith(f"aifactory/_data/{folder}/")}
        tracked = subprocess.run(["git", "ls-files", folder], cwd=repo, capture_output=True, text=True,
                                 check=True).stdout.split()
        assert {f"aifactory/_data/{p}" for p in tracked if "__pycache__" not in p} <= shipped
    # and the installed package resolves them without the repository
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    code = ("import aifactory.resources as r; print(r.templates_dir()); print(r.playbooks_dir())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True)
    assert all(line.startswith(str(target)) for line in out.stdout.split())
