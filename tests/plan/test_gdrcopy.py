"""GDRCopy in the software lock: the spec's pin, resolved once against the catalog table gdrcopy,
carried by plan.json and versions.lock.json, and handed to the gdrcopy role by the inventory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from aifactory import plan as planning
from aifactory.errors import SpecError
from aifactory.inventory import build_files as inventory_files
from aifactory.plan.model import GdrcopyBuild, Plan
from aifactory.render.deployment import build_files
from aifactory.spec import load_string

ROLE = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "gdrcopy"


def _spec(os_id: str = "ubuntu-24.04", system: str = "dgx-h100", **software) -> dict:
    nodes = 18 if system.endswith("nvl72") else 2
    return {"name": "g", "software": {"os": os_id, **software},
            "sites": [{"name": "dc", "power_mw": 5, "rack_kw": 140}],
            "pools": [{"name": "gpu", "site": "dc", "provider": "onprem", "system": system, "nodes": nodes}]}


def _plan(os_id: str = "ubuntu-24.04", system: str = "dgx-h100", **software) -> Plan:
    return planning.build(load_string(yaml.safe_dump(_spec(os_id, system, **software)), "f.yaml"))


def _all_vars(plan: Plan) -> dict:
    return yaml.safe_load(inventory_files(plan)["inventory/group_vars/all.yml"].replace("!unsafe ", ""))


def test_a_pin_resolves_to_the_build_for_the_locked_cuda_major():
    assert _plan(gdrcopy="2.6").software.gdrcopy == GdrcopyBuild(version="2.6", revision=1, cuda_major=13)
    # YAML reads 2.6 as a number; it means the release.
    text = yaml.safe_dump(_spec(gdrcopy="2.6")).replace("gdrcopy: '2.6'", "gdrcopy: 2.6")
    assert "gdrcopy: 2.6\n" in text
    assert load_string(text, "f.yaml").factory.software.gdrcopy == "2.6"
    old = _plan(gdrcopy="2.5.1", driver_branch="570", cuda="12.8").software.gdrcopy
    assert old == GdrcopyBuild(version="2.5.1", revision=1, cuda_major=12)


def test_an_unknown_pin_leaves_the_lock_without_gdrcopy_and_fails_validation():
    # The check that names it: tests/plan/test_checks.py (gdrcopy).
    result = planning.validate(load_string(yaml.safe_dump(_spec(gdrcopy="2.4")), "f.yaml"))
    (error,) = [f for f in result.errors if f.check == "gdrcopy"]
    assert error.path == ("software", "gdrcopy") and "use one of 2.5.1, 2.6" in error.hint


@pytest.mark.parametrize("bad", ["2.6; rm -rf /", "2.6-1", "latest", "2"])
def test_the_pin_is_a_strict_version(bad):
    with pytest.raises(SpecError):
        load_string(yaml.safe_dump(_spec(gdrcopy=bad)), "f.yaml")


def test_without_a_pin_plan_and_lock_files_say_nothing_of_gdrcopy():
    plan = _plan()
    assert plan.software.gdrcopy is None
    files = build_files(plan)
    assert "gdrcopy" not in json.loads(files["plan.json"])["software"]
    lock = json.loads(files["versions.lock.json"])
    assert "gdrcopy" not in lock["software"] and not [p for p in lock["packages"] if "gdr" in p]
    assert not [k for k in _all_vars(plan) if k.startswith("gdrcopy")]


def test_the_lock_round_trips_and_lists_the_packages():
    plan = _plan("rhel-9", gdrcopy="2.6")
    files = build_files(plan)
    data = json.loads(files["plan.json"])
    assert data["software"]["gdrcopy"] == {"version": "2.6", "revision": 1, "cuda_major": 13}
    assert Plan.from_dict(data).software == plan.software
    lock = json.loads(files["versions.lock.json"])
    assert lock["software"]["gdrcopy"]["version"] == "2.6"
    assert {k: v for k, v in lock["packages"].items() if k.startswith("gdrcopy")} == {
        "gdrcopy": "2.6-1", "gdrcopy-devel": "2.6-1", "gdrcopy-kmod": "2.6-1"}


# The files NVIDIA's redist folder holds (https://developer.download.nvidia.com/compute/redist/gdrcopy/,
# checked 2026-12-03): the aarch64 and Ubuntu 20.04 x64 listings show the pattern every folder follows.
@pytest.mark.parametrize("os_id,system,arch,folder,files", [
    ("ubuntu-24.04", "dgx-h100", "x86_64", "CUDA%2013.0/ubuntu24_04/x64",
     ["gdrdrv-dkms_2.6-1_amd64.Ubuntu24_04.deb", "libgdrapi_2.6-1_amd64.Ubuntu24_04.deb",
      "gdrcopy-tests_2.6-1_amd64.Ubuntu24_04+cuda13.0.deb", "gdrcopy_2.6-1_amd64.Ubuntu24_04.deb"]),
    ("ubuntu-22.04", "gb200-nvl72", "aarch64", "CUDA%2013.0/ubuntu22_04/aarch64",
     ["gdrdrv-dkms_2.6-1_arm64.Ubuntu22_04.deb", "libgdrapi_2.6-1_arm64.Ubuntu22_04.deb",
      "gdrcopy-tests_2.6-1_arm64.Ubuntu22_04+cuda13.0.deb", "gdrcopy_2.6-1_arm64.Ubuntu22_04.deb"]),
    # Debian has no build of its own: the Ubuntu 22.04 one (see the gdrcopy role's README).
    ("debian-12", "dgx-h100", "x86_64", "CUDA%2013.0/ubuntu22_04/x64",
     ["gdrdrv-dkms_2.6-1_amd64.Ubuntu22_04.deb", "libgdrapi_2.6-1_amd64.Ubuntu22_04.deb",
      "gdrcopy-tests_2.6-1_amd64.Ubuntu22_04+cuda13.0.deb", "gdrcopy_2.6-1_amd64.Ubuntu22_04.deb"]),
    ("rhel-9", "dgx-h100", "x86_64", "CUDA%2013.0/rhel9/x64",
     ["gdrcopy-kmod-2.6-1dkms.el9.noarch.rpm", "gdrcopy-2.6-1.el9.x86_64.rpm", "gdrcopy-devel-2.6-1.el9.noarch.rpm"]),
])
def test_the_inventory_names_the_redist_files_of_the_lock(os_id, system, arch, folder, files):
    variables = _all_vars(_plan(os_id, system, gdrcopy="2.6"))
    assert variables["gdrcopy_version"] == "2.6" and variables["gdrcopy_package_version"] == "2.6-1"
    build = variables["gdrcopy_files"]
    assert list(build) == [arch]  # the architectures of the plan's NVIDIA pools, as Ansible's fact names them
    assert build[arch]["folder"] == folder
    assert [e["file"] for e in build[arch]["packages"] + build[arch]["tests"]] == files


def test_the_role_declares_every_variable_the_inventory_sets():
    specs = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    written = {k for k in _all_vars(_plan(gdrcopy="2.6")) if k.startswith("gdrcopy")}
    assert written == {"gdrcopy_version", "gdrcopy_package_version", "gdrcopy_files"}
    assert written <= set(specs)
    tasks = "".join(p.read_text() for p in (ROLE / "tasks").glob("*.yml"))
    assert all(name in tasks for name in written)
