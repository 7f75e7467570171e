"""One Prometheus scrape configuration for the whole factory.

Each pool has a dcgm-exporter job and a node-exporter job. AWS pools are discovered from EC2
by the pool tag the Pulumi components set (instances get private addresses, not our names);
every other pool reads a file_sd target file of its planned host names, written once per pool
and shared by both jobs through relabelling, so a 100,000-node pool costs one list, not two.

This module is the only author of ``prometheus.yml`` and the target files. They reach the
monitoring host (the inventory's ``monitoring`` group) through the prometheus role, which
installs the bytes the inventory hands it as ``/etc/prometheus/prometheus.yml`` and
``/etc/prometheus/targets/<pool>.json``. The node_exporter role runs the exporter on every node
at :data:`NODE_EXPORTER_PORT`, the dcgm role dcgm-exporter on every NVIDIA node at
:data:`aifactory.render.dcgm.EXPORTER_PORT` (the port its rendered environment file sets).
"""

from __future__ import annotations

from typing import Any

from ..catalog import Catalog
from ..plan.model import Plan
from . import hostlist as hl
from .dcgm import EXPORTER_PORT
from .environment import render

# node_exporter's own default listen port, which the node_exporter role leaves as packaged.
NODE_EXPORTER_PORT = 9100
POOL_TAG = "aifactory:pool"  # aifactory.components.base.TAG_POOL; not imported to keep pulumi out


def _jobs(pool, nvidia: bool) -> list[dict[str, Any]]:
    jobs = []
    ports = [("node", NODE_EXPORTER_PORT)] + ([("dcgm", EXPORTER_PORT)] if nvidia else [])
    for kind, port in ports:
        job: dict[str, Any] = {"job_name": f"{kind}-{pool.name}", "scrape_interval": "30s"}
        labels = [
            {"target_label": "pool", "replacement": pool.name},
            {"target_label": "site", "replacement": pool.site},
            {"target_label": "provider", "replacement": pool.provider},
        ]
        if pool.provider == "aws":
            job["ec2_sd_configs"] = [{
                "region": pool.region, "port": port,
                "filters": [{"name": f"tag:{POOL_TAG}", "values": [pool.name]},
                            {"name": "instance-state-name", "values": ["running"]}],
            }]
            labels.append({"source_labels": ["__meta_ec2_tag_Name"], "target_label": "node"})
        else:
            job["file_sd_configs"] = [{"files": [f"targets/{pool.name}.json"], "refresh_interval": "5m"}]
            # The target file lists bare host names; add this job's port.
            labels.insert(0, {"source_labels": ["__address__"], "regex": "(.+)",
                              "target_label": "__address__", "replacement": f"${{1}}:{port}"})
            labels.append({"source_labels": ["__address__"], "regex": "([^:]+):.*",
                           "target_label": "node", "replacement": "${1}"})
        job["relabel_configs"] = labels
        jobs.append(job)
    return jobs


def has_targets_file(pool) -> bool:
    """Whether ``pool``'s nodes are listed in a file_sd target file (AWS pools are discovered)."""
    return pool.provider != "aws"


def targets_file(pool) -> str:
    """``targets/<pool>.json``: the pool's planned host names, for both of its jobs."""
    nodes = hl.PoolNodes.of(pool)
    targets = [{"labels": {"pool": pool.name}, "targets": [nodes.name(i) for i in range(nodes.count)]}]
    return render("prometheus/targets.json.j2", targets=targets)


def config_file(plan: Plan, catalog: Catalog) -> str:
    """``prometheus.yml``: one dcgm-exporter and one node-exporter job per pool."""
    jobs = []
    for pool in plan.pools:
        jobs += _jobs(pool, catalog.systems[pool.system].gpu.vendor == "nvidia")
    config = {
        "global": {"scrape_interval": "30s", "evaluation_interval": "30s",
                   "external_labels": {"factory": plan.name}},
        "scrape_configs": jobs,
    }
    return render("prometheus/prometheus.yml.j2", factory=plan.name, config=config)


def files(plan: Plan, catalog: Catalog) -> dict[str, str]:
    out = {f"prometheus/targets/{pool.name}.json": targets_file(pool) for pool in plan.pools if has_targets_file(pool)}
    out["prometheus/prometheus.yml"] = config_file(plan, catalog)
    return out
