"""The MIG layout of each pool: the spec's ``mig:`` (profile -> instances per GPU), applied to
every GPU of the pool, counted once per node.

The ``mig-profiles`` check has refused, before this runs, every layout the catalog's
``mig_profiles`` table says the pool's GPU cannot hold: a GPU without MIG, a profile the GPU does
not have, more instances of a profile than one GPU holds, or a combination that takes more than
the 7 compute slices or 8 memory slices of a GPU (NVIDIA MIG User Guide, "Supported MIG
Profiles": https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html).
What reads the layout (Slurm's Gres= lines, the ``nvidia_mig`` role's variables) reads it from
the plan, never from the spec.
"""

from __future__ import annotations

from ..spec.models import Factory, Pool
from .model import MigInstances, PoolPlan


def layout(pool: Pool, gpus_per_node: int) -> list[MigInstances]:
    """The pool's MIG instances, in the order the spec lists the profiles."""
    return [MigInstances(profile=profile, per_gpu=count, per_node=count * gpus_per_node)
            for profile, count in pool.mig.items()]


def apply(factory: Factory, pools: list[PoolPlan]) -> list[PoolPlan]:
    """``pools`` with each pool's MIG layout; pools without ``mig:`` are returned as they are."""
    spec = {p.name: p for p in factory.pools}
    out = []
    for plan in pools:
        pool = spec[plan.name]
        if pool.mig:
            plan = PoolPlan.model_validate({**plan.model_dump(), "mig": layout(pool, plan.gpus_per_node)})
        out.append(plan)
    return out
