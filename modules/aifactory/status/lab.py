"""The live side of a running lab: Slurm from the lab's controller, and from each node's tree its
lock digest file (what node_exporter would serve) and the installed versions against the lock.

Slurm 22.05 (Debian 12) answers ``sinfo --json``; its ``scontrol`` has no ``--json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import AifactoryError
from ..files import ReadError, read_text
from .prometheus import textfile_digests
from .slurm import SlurmNodes, parse

# Where the node_exporter role writes the digest on Debian (its vars/Debian.yml).
LOCK_FILE = "var/lib/prometheus/node-exporter/aifactory_lock.prom"


def read(stack_dir: Path, plan) -> tuple[Optional[SlurmNodes], dict[str, set[str]], dict[str, list[str]]]:
    """``(slurm, digests, failures)`` of the running lab of ``stack_dir``: failures per node tree
    present (an empty list when the read-back agrees with the lock); absent nodes are left out."""
    from .. import lab
    from ..inventory.plan import pool_vars

    state = lab.state_dir(stack_dir)
    catalog = plan.catalog()
    digests: dict[str, set[str]] = {}
    failures: dict[str, list[str]] = {}
    for node in lab.lab_nodes(plan, state):
        if not (node.root / "usr").is_dir():
            continue
        try:
            digests[node.name] = textfile_digests(read_text(node.root / LOCK_FILE, 64 * 1024))
        except ReadError:
            digests[node.name] = set()
        report = lab.check_node(node, plan.software, pool_vars(plan.pool(node.pool), plan, catalog))
        failures[node.name] = list(report.failures)
    slurm = None
    if plan.slurm and failures:
        controller = plan.slurm[0].controllers[0]
        done = lab.exec_on(stack_dir, controller, ["sinfo", "--json"])
        if done.returncode != 0:
            raise AifactoryError(f"{stack_dir}: `sinfo --json` on {controller} failed: "
                                 + " ".join(done.stderr.split())[:200])
        slurm = parse(done.stdout, f"sinfo --json on {controller}")
    return slurm, digests, failures
