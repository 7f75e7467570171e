"""DCGM and dcgm-exporter configuration per NVIDIA pool.

What is watched depends only on the hardware (GPU generation, NVLink, NVSwitch), so the same
system gets byte-identical files on every provider; pool and provider appear only in the path.
"""

from __future__ import annotations

import csv
import io

from ..catalog import Catalog
from ..catalog import load as load_catalog
from ..plan.model import Plan, PoolPlan
from .environment import render

EXPORTER_PORT = 9400
HOSTENGINE_PORT = 5555
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


def health(pool: PoolPlan, catalog: Catalog) -> dict:
    system = catalog.systems[pool.system]
    watches = ["pcie", "memory", "inforom", "thermal", "power", "driver"]
    if pool.nvlink_domain_gpus > 1:
        watches.append("nvlink")
    if system.nvswitch:
        watches.append("nvswitch")
    return {
        "gpu": pool.gpu,
        "gpus_per_node": pool.gpus_per_node,
        "nvlink": pool.nvlink_domain_gpus > 1,
        "fabric_manager": pool.fabric_manager,
        "imex": pool.imex,
        "health_watches": watches,
        # Level 2 (medium, ~2 min) after provisioning; level 3 takes ~30 min and runs on demand.
        "diag_level": 2,
    }


def files(plan: Plan, catalog: Catalog) -> dict[str, str]:
    out = {}
    for pool in plan.pools:
        if catalog.systems[pool.system].gpu.vendor != "nvidia":
            continue
        ctx = {"factory": plan.name, "counters_csv": _counters_csv(pool), "health": health(pool, catalog),
               "exporter_port": EXPORTER_PORT, "hostengine_port": HOSTENGINE_PORT,
               "dcgm_package": plan.software.dcgm_package}
        out[f"dcgm/{pool.name}/dcgm-exporter.csv"] = render("dcgm/dcgm-exporter.csv.j2", **ctx)
        out[f"dcgm/{pool.name}/dcgm-exporter.env"] = render("dcgm/dcgm-exporter.env.j2", **ctx)
        out[f"dcgm/{pool.name}/health.yaml"] = render("dcgm/health.yaml.j2", **ctx)
    return out
