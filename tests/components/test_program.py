"""The stack program: dispatch by provider, lab and inventory-only pools, config, errors."""

from __future__ import annotations

import pytest

from aifactory.errors import AifactoryError, SpecError
from tests.preview.harness import run

LAB = """
name: lab1
sites: [{name: lab, power_mw: 0.05}]
pools: [{name: gpu, site: lab, provider: lab, system: hgx-h100, nodes: 2}]
"""


def test_lab_pool_is_a_component_without_cloud_resources(tmp_path):
    result = run(tmp_path, LAB)
    assert [(r.type, r.name) for r in result.resources] == [("aifactory:lab:GpuPool", "gpu")]
    inv = result.outputs["inventory"]["gpu"]
    assert (inv["provider"], inv["nodes"], inv["connection"]) == ("lab", 2, "chroot")
    assert result.outputs["pools"]["gpu"] == {"provider": "lab", "node_group_ids": [], "network_ids": []}


def test_campus_scale_onprem_pool_registers_no_per_node_resources(repo):
    from aifactory.preview import preview

    result = preview(repo / "stacks" / "campus-10gw")
    (pool,) = result.resources
    assert pool.type == "aifactory:onprem:GpuPool"
    assert result.outputs["inventory"]["nvl72"]["nodes"] > 1_000_000


def test_only_used_provider_sdks_are_imported(tmp_path):
    """A lab factory must not pay for the cloud SDKs (pulumi-azure-native alone is large)."""
    import subprocess
    import sys

    from tests.preview.harness import make_stack

    root = make_stack(tmp_path / "s", LAB)
    code = ("import sys; from aifactory.preview import preview; preview(sys.argv[1]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pulumi_aws', 'pulumi_gcp', 'pulumi_azure_native', 'pulumi_oci')))")
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_reservation_pool_in_config_is_named(tmp_path):
    with pytest.raises(AifactoryError, match="aifactory:reservations: no pool named nope"):
        run(tmp_path, LAB, config={"aifactory:reservations": {"nope": "cr-0123"}})


def test_invalid_factory_fails_with_located_findings(tmp_path):
    with pytest.raises(SpecError) as err:
        run(tmp_path, LAB.replace("hgx-h100", "hgx-h1000"))
    assert "factory.yaml:4" in str(err.value) and "system" in str(err.value)


def test_invalid_factory_under_the_engine_is_one_run_error(tmp_path):
    """Under `pulumi up` the engine prints the RunError's message, so it carries the findings too."""
    import pulumi

    from aifactory.preview import run_program
    from tests.preview.harness import make_stack

    root = make_stack(tmp_path / "s", LAB.replace("hgx-h100", "hgx-h1000"))
    with pytest.raises(pulumi.RunError) as err:
        run_program(root / "__main__.py", "t", "test")
    assert "is not a valid factory:" in str(err.value) and "factory.yaml:4" in str(err.value)


def test_component_class_dispatch():
    from aifactory.components import program

    assert program.component_class("aws").TYPE == "aifactory:aws:GpuPool"
    assert program.component_class("onprem", declared_hosts=1).TYPE == "aifactory:onprem:GpuPool"
    # Without declared hosts an on-prem pool creates nothing: the registry says so explicitly.
    assert program.component_class("onprem") is program.InventoryPool
    assert program.component_class("lab") is program.InventoryPool
    with pytest.raises(AifactoryError, match="no component for provider 'vmware'"):
        program.component_class("vmware")
