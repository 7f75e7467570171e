"""NCCL settings per pool: ``/etc/nccl.conf`` and an environment profile for shells and jobs.

The values live in ``templates/nccl/nccl_env.csv`` with their sources; a pool gets the rows of
its fabric type, then its provider, then provider+fabric, then its exact system, a later scope
replacing a variable set by an earlier one.
"""

from __future__ import annotations

import shlex

from ..plan.model import Plan, PoolPlan
from .environment import render
from .tables import nccl_vars


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
        for row in nccl_vars():
            if row.scope == scope and row.key == keys[scope]:
                chosen[row.variable] = {"variable": row.variable, "value": row.value, "source": row.source}
    return [chosen[k] for k in sorted(chosen)]


def files(plan: Plan) -> dict[str, str]:
    out = {}
    for pool in plan.pools:
        env = settings(pool)
        ctx = {"factory": plan.name, "pool": pool, "settings": env,
               "exports": [f"export {s['variable']}={shlex.quote(s['value'])}" for s in env]}
        out[f"nccl/{pool.name}/nccl.conf"] = render("nccl/nccl.conf.j2", **ctx)
        out[f"nccl/{pool.name}/nccl.sh"] = render("nccl/nccl.sh.j2", **ctx)
    return out
