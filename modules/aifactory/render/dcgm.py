"""dcgm-exporter configuration per NVIDIA pool: the counters it exports and its environment.

What is watched depends only on the hardware (GPU generation, NVLink, NVSwitch), so the same
system gets byte-identical files on every provider; pool and provider appear only in the path.

This module is the only author of both files. They reach a node unchanged through the dcgm role
(the inventory hands it the bytes: ``dcgm_exporter_counters_content`` and
``dcgm_exporter_environment_content``) and, on cloud nodes, also through cloud-init, at the
node paths below. The role owns the exporter's unit; the unit reads the environment file.
"""

from __future__ import annotations

import csv
import io

from ..catalog import Catalog
from ..catalog import load as load_catalog
from ..plan.model import Plan, PoolPlan
from .environment import render

# The port every node's exporter listens on; the rendered Prometheus scrape config uses it too.
EXPORTER_PORT = 9400
# nv-hostengine's port (DCGM's default); the dcgm role's unit and the GPU Operator values use it.
HOSTENGINE_PORT = 5555
# Where a node keeps the rendered files (the dcgm role's vars/main.yml and cloud-init agree).
COUNTERS_PATH = "/etc/dcgm-exporter/aifactory.csv"
ENVIRONMENT_PATH = "/etc/default/dcgm-exporter"
# Row remapping replaced page retirement from Ampere on (NVIDIA memory error management guide).
ROW_REMAP_ARCHITECTURES = ("ampere", "hopper", "blackwell")


def counters(pool: PoolPlan) -> list:
    have = {"all"}
    if pool.nvlink_domain_gpus > 1:
        have.add("nvlink")
    if pool.architecture in ROW_REMAP_ARCHITECTURES:
        have.add("row_remap")
    return [c for c in load_catalog().dcgm_counters if c.requires in have]


def _counters_csv(pool: PoolPlan) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for c in counters(pool):
        writer.writerow([c.field, f" {c.type}", f" {c.help}"])
    return buf.getvalue().rstrip("\n")


def is_nvidia(pool: PoolPlan, catalog: Catalog) -> bool:
    return catalog.systems[pool.system].gpu.vendor == "nvidia"


def pool_files(plan: Plan, pool: PoolPlan) -> tuple[str, str]:
    """(counters CSV, environment file) of an NVIDIA ``pool``, as its nodes receive them."""
    ctx = {"factory": plan.name, "counters_csv": _counters_csv(pool), "exporter_port": EXPORTER_PORT,
           "counters_path": COUNTERS_PATH, "environment_path": ENVIRONMENT_PATH}
    return render("dcgm/dcgm-exporter.csv.j2", **ctx), render("dcgm/dcgm-exporter.env.j2", **ctx)


def files(plan: Plan, catalog: Catalog) -> dict[str, str]:
    out = {}
    for pool in plan.pools:
        if is_nvidia(pool, catalog):
            out[f"dcgm/{pool.name}/dcgm-exporter.csv"], out[f"dcgm/{pool.name}/dcgm-exporter.env"] = \
                pool_files(plan, pool)
    return out
