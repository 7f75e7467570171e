"""NCCL settings per pool: ``/etc/nccl.conf`` and an environment profile for shells and jobs.

The values live in the catalog table ``nccl_env`` with their sources; a pool gets the rows of
its fabric type, then its provider, then provider+fabric, then its exact system, a later scope
replacing a variable set by an earlier one.
"""

from __future__ import annotations

import shlex

from ..plan.model import Plan, PoolPlan
from .environment import render
from ..catalog import load as load_catalog


def settings(pool: PoolPlan) -> list[dict]:
    """``[{variable, value, source}]`` for ``pool``, sorted by variable."""
    keys = {
        "fabric": pool.fabric_type,
        "provider": pool.provider,
        "provider-fabric": f"{pool.provider}/{pool.fabric_type}",
        "system": pool.system,
    }
    chosen: dict[str, dict] = {}
    for scope in ("fabric", "provider", "provider-fabric", "system"):
        for row in load_catalog().nccl_env:
            if row.scope == scope and row.key == keys[scope]:
                chosen[row.variable] = {"variable": row.variable, "value": row.value, "source": row.source}
    return [chosen[k] for k in sorted(chosen)]


def pool_files(plan: Plan, pool: PoolPlan) -> tuple[str, str]:
    """(``/etc/nccl.conf``, ``/etc/profile.d/nccl.sh``) of ``pool``: the only author of both,
    whether they reach a node through cloud-init, the nccl role or the deployment folder."""
    env = settings(pool)
    ctx = {"factory": plan.name, "pool": pool, "settings": env,
           "exports": [f"export {s['variable']}={shlex.quote(s['value'])}" for s in env]}
    return render("nccl/nccl.conf.j2", **ctx), render("nccl/nccl.sh.j2", **ctx)


def files(plan: Plan) -> dict[str, str]:
    out = {}
    for pool in plan.pools:
        out[f"nccl/{pool.name}/nccl.conf"], out[f"nccl/{pool.name}/nccl.sh"] = pool_files(plan, pool)
    return out
