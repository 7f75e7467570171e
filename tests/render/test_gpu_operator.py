"""GPU Operator values for Kubernetes pools whose hosts the roles already set up.

site.yml installs the driver and the container toolkit on every GPU node (the ``nvidia`` group),
so the operator must install neither (GPU Operator docs, "Pre-Installed NVIDIA GPU Drivers and
NVIDIA Container Toolkit": ``driver.enabled=false``, ``toolkit.enabled=false``).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.render.helpers import K8S, planned, rendered

REPO = Path(__file__).resolve().parents[2]



def _site_roles(group: str) -> set[str]:
    plays = yaml.safe_load((REPO / "playbooks" / "site.yml").read_text())
    return {r["role"] for play in plays if play.get("hosts") == group for r in play["roles"]}


def test_the_host_roles_own_the_driver_and_the_toolkit():
    assert {"nvidia_driver", "nvidia_container_toolkit"} <= _site_roles("nvidia")


def test_operator_installs_neither_driver_nor_toolkit():
    plan, _ = planned(K8S)
    (pool,) = plan.pools
    files = rendered(K8S)
    values = yaml.safe_load(files[f"kubernetes/{pool.name}/gpu-operator-values.yaml"])
    assert values["driver"]["enabled"] is False
    assert values["toolkit"]["enabled"] is False
    # The host's nv-hostengine stays the one DCGM; the operator only runs the exporter against it.
    assert values["dcgm"]["enabled"] is False
    assert values["daemonsets"]["nodeSelector"] == {"aifactory.dev/pool": "train"}
