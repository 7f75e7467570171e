"""cloud-init user data for cloud nodes: the admin user, no password logins, and the node's
NCCL and DCGM files, so a node is configured the same way before Ansible first reaches it.

Nothing secret goes in: user data is readable from the instance metadata service by any
process on the node. SSH keys come from the provider's key mechanism, not from here.
"""

from __future__ import annotations

from .. import providers
from ..catalog import Catalog, with_plan_catalog
from ..plan.model import Plan, PoolPlan
from .environment import render



def user_data(plan: Plan, pool: PoolPlan, pool_files: dict[str, str]) -> str:
    """``#cloud-config`` for ``pool``; ``pool_files`` maps a node path to its rendered content."""
    config = {
        "users": [{
            "name": plan.access.ssh_user,
            "shell": "/bin/bash",
            "lock_passwd": True,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
        }],
        "ssh_pwauth": False,
        "disable_root": True,
        # Packages are pinned by the Ansible roles from the software lock; an unpinned upgrade at
        # boot is how the driver and Fabric Manager drift apart.
        "package_update": False,
        "package_upgrade": False,
        "write_files": [
            {"path": path, "owner": "root:root", "permissions": "0644", "content": content}
            for path, content in sorted(pool_files.items())
        ],
    }
    return render("cloud-init/user-data.yaml.j2", factory=plan.name, pool=pool, config=config)


def _node_files(pool: PoolPlan, rendered: dict[str, str]) -> dict[str, str]:
    """Node path -> content of the rendered files a node of ``pool`` receives at first boot."""
    node_files = {"/etc/nccl.conf": rendered[f"nccl/{pool.name}/nccl.conf"],
                  "/etc/profile.d/nccl.sh": rendered[f"nccl/{pool.name}/nccl.sh"]}
    if f"dcgm/{pool.name}/dcgm-exporter.csv" in rendered:
        node_files["/etc/dcgm-exporter/aifactory.csv"] = rendered[f"dcgm/{pool.name}/dcgm-exporter.csv"]
        node_files["/etc/default/dcgm-exporter"] = rendered[f"dcgm/{pool.name}/dcgm-exporter.env"]
    return node_files


def files(plan: Plan, catalog: Catalog, rendered: dict[str, str]) -> dict[str, str]:
    out = {}
    for pool in plan.pools:
        provider = providers.find(pool.provider)
        if provider is not None and provider.cloud_init:
            out[f"cloud-init/{pool.name}/user-data.yaml"] = user_data(plan, pool, _node_files(pool, rendered))
    return out


@with_plan_catalog
def user_data_for(plan: Plan, pool: PoolPlan, catalog: Catalog | None = None) -> str:
    """The user data of ``pool``, exactly as ``aifactory render`` writes it to
    ``cloud-init/<pool>/user-data.yaml``: what each cloud component hands its instances."""
    from ..catalog import load as load_catalog
    from . import dcgm, nccl

    catalog = catalog or load_catalog()
    rendered = {**nccl.files(plan), **dcgm.files(plan, catalog)}
    return user_data(plan, pool, _node_files(pool, rendered))
