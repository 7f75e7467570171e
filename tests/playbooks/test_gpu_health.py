"""gpu_health against a real GPU: run health.yml on this machine (a lent GPU machine, never CI)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from aifactory import configure

pytestmark = pytest.mark.gpu


def _gpus() -> tuple[int, str]:
    if shutil.which("nvidia-smi") is None:
        pytest.skip("no nvidia-smi: run on a machine with an NVIDIA GPU")
    proc = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip(f"nvidia-smi cannot reach a GPU: {proc.stdout}{proc.stderr}")
    lines = proc.stdout.split()
    return len(lines), lines[0]


def _health(tmp_path: Path, monkeypatch, **values):
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path / "facts"))
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_become": False,
            "ansible_python_interpreter": str(Path(__import__("sys").executable))}
    host.update(values)
    inventory.write_text(yaml.safe_dump({"all": {"children": {"nvidia": {"hosts": {"gpu-local": host}}}}}))
    console = Console(record=True, width=200)
    result = configure.run(inventory, "health.yml", console=console, tags="gpu")
    console.print(configure.summary_table(result))
    return result, console.export_text()


def test_health_gate_passes_on_this_gpu_machine(tmp_path, monkeypatch):
    count, driver = _gpus()
    report = tmp_path / "reports"
    report.mkdir()
    dcgm = 1 if shutil.which("dcgmi") else 0
    result, text = _health(tmp_path, monkeypatch, gpu_health_gpus=count, gpu_health_driver_version=driver,
                           gpu_health_dcgm_level=dcgm, gpu_health_nvlink=False, gpu_health_fabric_manager=False,
                           gpu_health_report_dir=str(report))
    print(text)
    assert result.ok and result.failed_hosts == [], text
    data = json.loads((report / "gpu-local.json").read_text())
    assert data["healthy"] is True
    assert data["found"]["gpus"] == count and data["found"]["drivers"] == [driver]


def test_health_gate_fails_when_gpus_are_missing_or_driver_drifted(tmp_path, monkeypatch):
    count, driver = _gpus()
    report = tmp_path / "reports"
    report.mkdir()
    result, text = _health(tmp_path, monkeypatch, gpu_health_gpus=count + 1, gpu_health_driver_version="1.2.3",
                           gpu_health_dcgm_level=0, gpu_health_report_dir=str(report))
    print(text)
    assert result.failed_hosts == ["gpu-local"], text
    data = json.loads((report / "gpu-local.json").read_text())
    assert f"expected {count + 1} GPUs, found {count}" in data["failures"]
    assert f"driver {driver} is not 1.2.3" in data["failures"]
