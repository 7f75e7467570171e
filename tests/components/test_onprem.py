"""The on-prem GpuPool under the Pulumi mocks: the example stack, secrets, config errors, a 1,000-node pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import aifactory.preview as preview_mod
from tests.conftest import STACKS

NODE = "pulumi-python:dynamic/redfish:Node"
POOL = "aifactory:onprem:GpuPool"
PLANTED = "Planted-BMC-pw-41c9e0"
PROGRAM = "from aifactory.components.program import run\nrun(__file__)\n"


def _stack(tmp: Path, factory: dict) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "factory.yaml").write_text(yaml.safe_dump(factory, sort_keys=False))
    (tmp / "__main__.py").write_text(PROGRAM)
    return tmp / "__main__.py"


def _factory(hosts: list[dict], nodes: int | None = None) -> dict:
    return {
        "name": "hall", "software": {"driver_branch": "580", "cuda": "13.0", "os": "ubuntu-22.04"},
        "sites": [{"name": "dc1", "power_mw": 20, "pue": 1.3, "rack_kw": 42}],
        "fabrics": [{"name": "ib", "type": "infiniband", "switch": "qm9700"}],
        "pools": [{"name": "dgx", "site": "dc1", "provider": "onprem", "system": "dgx-h100",
                   "nodes": nodes or max(len(hosts), 1), "fabric": "ib", "hosts": hosts}],
    }


def _hosts(count: int) -> list[dict]:
    return [{"name": f"dgx-{i:04d}", "mac": "5c:ff:35:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255),
             "bmc": f"10.21.{i // 250}.{i % 250 + 1}", "ip": f"10.20.{i // 250}.{i % 250 + 1}"} for i in range(count)]


def test_example_stack_previews_with_one_redfish_node_per_host():
    result = preview_mod.preview(STACKS / "onprem-dgx")
    (pool,) = result.of_type(POOL)
    nodes = result.of_type(NODE)
    spec = yaml.safe_load((STACKS / "onprem-dgx" / "factory.yaml").read_text())["pools"][0]["hosts"]
    assert sorted(n.name for n in nodes) == sorted(f"dgx-{h['name']}" for h in spec)
    assert all(n.parent == pool.name and n.custom for n in nodes)
    by_name = {n.name: n.inputs for n in nodes}
    first = by_name["dgx-dgx-001"]
    assert first["endpoint"] == "https://10.20.1.11" and first["expected_mac"] == "5c:ff:35:a0:00:01"
    assert first["boot_target"] == "Pxe" and first["power_state"] == "On" and first["verify_tls"] is True
    assert first["bmc_password"] == preview_mod.mocks.SECRET and first["bmc_username"] == preview_mod.mocks.SECRET
    # No password in the stack config: the preview warns, and names the command that fixes it.
    assert any("pulumi config set --secret aifactory:bmcPassword" in w for w in result.warnings)
    inv = result.outputs["inventory"]["dgx"]
    assert inv["managed"] == "redfish" and [h["name"] for h in inv["hosts"]] == [h["name"] for h in spec]
    assert result.outputs["pools"]["dgx"]["node_group_ids"] == [f"dgx-{h['name']}-id" for h in spec]
    assert result.outputs["pools"]["dgx"]["network_ids"] == []


def test_example_stack_previews_through_the_cli():
    from typer.testing import CliRunner

    from aifactory.cli import app

    out = CliRunner().invoke(app, ["preview", str(STACKS / "onprem-dgx")])
    assert out.exit_code == 0, out.output
    assert "onprem-dgx/dev: 5 resources" in out.output and "bmcPassword" in out.output


def test_planted_password_never_appears_in_preview_output_or_stack_outputs(tmp_path):
    program = _stack(tmp_path, _factory(_hosts(3)))
    result = preview_mod.run_program(program, "hall", "dev", {"aifactory:bmcPassword": PLANTED,
                                                               "aifactory:bmcUsername": "ops"})
    assert len(result.of_type(NODE)) == 3
    assert not result.warnings
    rendered = preview_mod.to_json(result) + json.dumps(result.outputs, default=str)
    assert PLANTED not in rendered and '"ops"' not in rendered
    assert all(r.inputs["bmc_password"] == preview_mod.mocks.SECRET for r in result.of_type(NODE))


def test_component_follows_the_gpupool_shape(tmp_path):
    from aifactory.components import base, onprem

    assert onprem.GpuPool.TYPE == base.type_token("onprem") == POOL
    program = _stack(tmp_path, _factory(_hosts(1)))
    result = preview_mod.run_program(program, "hall", "dev", {"aifactory:bmcPassword": PLANTED})
    (pool,) = result.of_type(POOL)
    assert set(result.outputs["pools"]["dgx"]) == {"provider", "node_group_ids", "network_ids"}
    assert set(result.outputs) >= {"pools", "inventory"} and pool.name == "dgx"
    inv = result.outputs["inventory"]["dgx"]
    assert inv["selector"][base.TAG_POOL] == "dgx" and inv["hosts"][0]["bmc"] == "10.21.0.1"


def test_nodes_without_hosts_entries_stay_inventory_only(tmp_path):
    program = _stack(tmp_path, _factory(_hosts(2), nodes=16))
    result = preview_mod.run_program(program, "hall", "dev", {"aifactory:bmcPassword": PLANTED})
    assert len(result.of_type(NODE)) == 2
    assert result.outputs["inventory"]["dgx"]["nodes"] == 16


@pytest.mark.parametrize("key, value, message", [
    ("aifactory:bmcScheme", "ftp", "aifactory:bmcScheme: must be https or http"),
    ("aifactory:bootTarget", "Hdd", "aifactory:bootTarget: must be Pxe or UefiHttp"),
    ("aifactory:bmcRetry", {"attempts": 0}, "aifactory:bmcRetry: RetryPolicy.attempts must be positive"),
    ("aifactory:bmcRetry", {"tries": 3}, "aifactory:bmcRetry: unknown field(s) tries"),
])
def test_bad_stack_config_is_a_clear_error(tmp_path, key, value, message):
    import pulumi

    program = _stack(tmp_path, _factory(_hosts(1)))
    with pytest.raises(pulumi.RunError) as err:
        preview_mod.run_program(program, "hall", "dev", {key: value, "aifactory:bmcPassword": PLANTED})
    assert message in str(err.value)


def test_retry_config_reaches_the_pickled_provider(tmp_path):
    import base64

    import dill

    program = _stack(tmp_path, _factory(_hosts(1)))
    mocks = preview_mod.RecordingMocks()
    seen = []
    original = mocks.new_resource

    def new_resource(args):
        if args.typ == NODE:
            from pulumi.runtime import rpc

            seen.append(dill.loads(base64.b64decode(rpc.unwrap_rpc_secret(args.inputs["__provider"]))))
        return original(args)

    mocks.new_resource = new_resource
    preview_mod.run_program(program, "hall", "dev", {"aifactory:bmcPassword": PLANTED,
                                                      "aifactory:bmcRetry": {"attempts": 7, "power_timeout_s": 42}},
                            mocks=mocks)
    (provider,) = seen
    assert provider.policy.attempts == 7 and provider.policy.power_timeout_s == 42


@pytest.mark.slow  # a scale case: 1,001 resources under the mocks
def test_thousand_node_pool_registers_every_node(tmp_path):
    # pulumi.dynamic alone cannot register this many dynamic resources in one program (its
    # serializer nests one pickle wrapper per resource until RecursionError); see redfish.py.
    program = _stack(tmp_path, _factory(_hosts(1000)))
    result = preview_mod.run_program(program, "hall", "dev", {"aifactory:bmcPassword": PLANTED})
    nodes = result.of_type(NODE)
    assert len(nodes) == 1000 and len(result.resources) == 1001  # 1,000 nodes + the pool component
    assert len({n.inputs["expected_mac"] for n in nodes}) == 1000
