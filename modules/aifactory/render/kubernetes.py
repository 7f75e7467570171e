"""NVIDIA GPU Operator Helm values for pools that Kubernetes schedules.

The driver, the container toolkit, Fabric Manager and the DCGM host engine are installed on the
host by the Ansible roles (site.yml runs nvidia_driver and nvidia_container_toolkit on every GPU
node) at the versions of the software lock, so the operator is told not to install its own: two
owners of one driver or one containerd runtime configuration is the drift the lock exists to
prevent. GPU Operator docs, "Pre-Installed NVIDIA GPU Drivers and NVIDIA Container Toolkit":
``driver.enabled=false`` and ``toolkit.enabled=false``.
"""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog
from ..plan.model import Plan, PoolPlan
from .dcgm import HOSTENGINE_PORT
from .environment import render

POOL_LABEL = "aifactory.dev/pool"


def values(plan: Plan, pool: PoolPlan) -> dict[str, Any]:
    return {
        "daemonsets": {"nodeSelector": {POOL_LABEL: pool.name}},
        "driver": {"enabled": False},
        "toolkit": {"enabled": False},
        "devicePlugin": {"enabled": True},
        "gfd": {"enabled": True},
        "nfd": {"enabled": True},
        "cdi": {"enabled": True},
        "migManager": {"enabled": False},
        "dcgm": {"enabled": False},
        "dcgmExporter": {
            "enabled": True,
            "env": [{"name": "DCGM_REMOTE_HOSTENGINE_INFO", "value": f"localhost:{HOSTENGINE_PORT}"}],
            "serviceMonitor": {"enabled": True},
        },
        "operator": {"defaultRuntime": "containerd"},
        "validator": {"driver": {"env": [{"name": "DISABLE_DEV_CHAR_SYMLINK_CREATION", "value": "false"}]}},
    }


def files(plan: Plan, catalog: Catalog) -> dict[str, str]:
    out = {}
    for pool in plan.pools:
        if pool.scheduler != "kubernetes" or catalog.systems[pool.system].gpu.vendor != "nvidia":
            continue
        out[f"kubernetes/{pool.name}/gpu-operator-values.yaml"] = render(
            "kubernetes/gpu-operator-values.yaml.j2", factory=plan.name, pool=pool, values=values(plan, pool),
            driver=plan.software.driver)
    return out
