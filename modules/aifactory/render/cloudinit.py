"""cloud-init user data for cloud nodes: the admin user, no password logins, the node's NCCL and
DCGM files, and on AWS, GCP and OCI the wait for the node's planned name, so a node is configured
the same way before Ansible first reaches it.

Nothing secret goes in: user data is readable from the instance metadata service by any
process on the node. SSH keys come from the provider's key mechanism, not from here.

Node names: a node group names its instances itself, but slurm.conf lists the plan's names
(``<pool>-0001``). ``aifactory inventory --assign-names`` claims a planned name for each instance
(:mod:`aifactory.inventory.names`); this user data installs a small program (Python standard
library), its data (provider, pool, digits) and a unit that runs it at every boot: it waits, up to
30 minutes, for the claim in the metadata service (no credentials), takes it only when it is a
planned name of its own pool, and sets the host name. A drop-in makes slurmd require that unit and
start after it. cloud-init writes these files in its network stage, which runs before
sysinit.target and so before any ordinary service starts
(https://docs.cloud-init.io/en/latest/explanation/boot.html, checked 2026-12-03); but on the very
first boot systemd has read its units already, so runcmd reloads them, starts the unit and
restarts an enabled slurmd (which, started under the provider's name, found no NodeName and exited).
"""

from __future__ import annotations

import json

from .. import providers
from ..catalog import Catalog, with_plan_catalog
from ..plan.model import Plan, PoolPlan
from .environment import render

# Providers whose instances get a node-name claim and read it back at boot; the program knows
# each one's metadata service. Azure pools are Uniform scale sets, whose VMs hold no tags of
# their own (see aifactory.inventory.dynamic.NO_NAME_CLAIMS).
NAME_CLAIM_PROVIDERS = ("aws", "gcp", "oci")
NODE_NAME_PROGRAM = "/usr/local/sbin/aifactory-node-name"
NODE_NAME_CONFIG = "/etc/aifactory/node-name.json"
NODE_NAME_UNIT = "aifactory-node-name.service"


def claims_names(pool: PoolPlan) -> bool:
    """Whether nodes of ``pool`` wait at boot for a claimed planned name."""
    return pool.provider in NAME_CLAIM_PROVIDERS


def node_name_files(pool: PoolPlan) -> list[dict]:
    """The write_files entries of the boot-time name claim: program, its data, unit, slurmd drop-in."""
    data = {"provider": pool.provider, "pool": pool.name, "width": pool.name_width}
    out = [
        {"path": NODE_NAME_PROGRAM, "owner": "root:root", "permissions": "0755",
         "content": render("cloud-init/aifactory-node-name.py.j2")},
        {"path": NODE_NAME_CONFIG, "owner": "root:root", "permissions": "0644",
         "content": json.dumps(data, sort_keys=True) + "\n"},
        {"path": f"/etc/systemd/system/{NODE_NAME_UNIT}", "owner": "root:root", "permissions": "0644",
         "content": render("cloud-init/aifactory-node-name.service.j2", program=NODE_NAME_PROGRAM,
                           config=NODE_NAME_CONFIG)},
    ]
    if pool.scheduler == "slurm":
        out.append({"path": "/etc/systemd/system/slurmd.service.d/aifactory-node-name.conf", "owner": "root:root",
                    "permissions": "0644", "content": render("cloud-init/slurmd-node-name.conf.j2",
                                                             unit=NODE_NAME_UNIT)})
    return out


def node_name_commands(pool: PoolPlan) -> list[list[str]]:
    """runcmd of the first boot (argument lists; the one shell line is fixed text)."""
    commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", NODE_NAME_UNIT],
                ["systemctl", "start", "--no-block", NODE_NAME_UNIT]]
    if pool.scheduler == "slurm":
        commands.append(["sh", "-c", "if systemctl -q is-enabled slurmd.service; then "
                                     "systemctl --no-block restart slurmd.service; fi"])
    return commands


def user_data(plan: Plan, pool: PoolPlan, pool_files: dict[str, str]) -> str:
    """``#cloud-config`` for ``pool``; ``pool_files`` maps a node path to its rendered content."""
    written = [{"path": path, "owner": "root:root", "permissions": "0644", "content": content}
               for path, content in pool_files.items()]
    if claims_names(pool):
        written += node_name_files(pool)
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
        "write_files": sorted(written, key=lambda f: f["path"]),
    }
    if claims_names(pool):
        config["runcmd"] = node_name_commands(pool)
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
