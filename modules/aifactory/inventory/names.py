"""Planned names for the instances of cloud node groups: the claim ``inventory --assign-names`` makes.

The plan names every node (``<pool>-0001`` ... :meth:`~aifactory.plan.model.PoolPlan.host_names`)
and slurm.conf lists those names, but an Auto Scaling group, managed instance group or cluster
network names its instances itself. So the controller hands out the planned names: every running
instance of a pool that carries no node-name claim (:data:`~aifactory.components.base.TAG_NODE`)
gets the lowest free planned name of its pool (instances in order of launch, then id; a name is
free when no running instance of the pool holds it), written on the instance through the cloud's
API. The node waits at boot for that value in its metadata service and takes it as its host name
before slurmd starts (the boot side is :mod:`aifactory.render.cloudinit`).

The controller's cost stays per pool: one listing, and one write per instance that has no name
yet (a second run writes nothing). A name once claimed is kept for the life of the instance and
never overwritten. What cannot be named is reported and left out of the inventory's groups: an
instance beyond its pool's planned count, a claim outside the plan (the pool shrank), a claim
two instances hold, and a value that is not a name at all (whoever may tag an instance wrote it;
it is never echoed).

Run it from one place (the GitOps job or one timer): two controllers assigning at the same moment
could hand one name to two instances, as the clouds offer no conditional tag write across
instances.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from ..components.base import TAG_FACTORY, TAG_POOL
from ..errors import AifactoryError
from .dynamic import Node, is_name
from .dynamic import build as build_nodes

LOG = logging.getLogger(__name__)

# Instance keys are shown in messages only when shaped like a cloud id (i-0abc, 1234, ocid1...).
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}")
# A value shaped like a host name of one label may be echoed back in a message; anything else
# is reported without its text.
_NODE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

Warn = Callable[[str], None]


@dataclass(frozen=True)
class Candidate:
    """One running instance as :func:`assign` needs it.

    ``node``: the instance as the provider module reports it (:class:`~.dynamic.Node`);
    ``launched``: its launch time, any value that orders (seconds since the epoch); None sorts last;
    ``claim``: the node-name value read back (untrusted; None when the instance has none);
    ``complete``: the claim is stored everywhere the provider keeps it (GCP keeps it as a label
    and as the instance metadata the node reads); an incomplete valid claim is written again;
    ``conflict``: why the stored values disagree (the instance is then left out, nothing written).
    """

    node: Node
    launched: Any
    claim: Any = None
    complete: bool = True
    conflict: Optional[str] = None


def _shown(key) -> str:
    return f"instance {key}" if isinstance(key, str) and _KEY.fullmatch(key) else "an instance"


def _planned(pool) -> Iterator[str]:
    """The pool's planned names in order, without listing them all (a pool may have millions)."""
    if pool.hosts:
        yield from (h.name for h in pool.hosts)
        return
    for index in range(1, pool.nodes + 1):
        yield pool.node_name(index)


def _order(candidate: Candidate):
    launched = candidate.launched
    return (launched is None, launched if launched is not None else 0, candidate.node.key)


@dataclass
class Claims:
    """The outcome of :func:`claim`: ``named`` (node, name) for the inventory, ``writes`` (node,
    name) the cloud must be told, ``warnings`` one line each."""

    named: list = dataclasses.field(default_factory=list)
    writes: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)


def claim(plan, provider: str, candidates: Iterable[Candidate]) -> Claims:
    """Decide every instance's name (pure: reads nothing, writes nothing)."""
    pools = {p.name: p for p in plan.pools if p.provider == provider}
    by_pool: dict[str, list[Candidate]] = {}
    out = Claims()
    for candidate in candidates:
        pool = candidate.node.tags.get(TAG_POOL)
        if isinstance(pool, str) and pool in pools:
            by_pool.setdefault(pool, []).append(candidate)
        else:
            where = f"pool {pool}" if is_name(pool) else "a pool tag that names no pool"
            out.warnings.append(f"{_shown(candidate.node.key)} ({where}): no {provider} pool of the plan "
                                "has that name; left out")
    for name in sorted(by_pool):
        _claim_pool(pools[name], sorted(by_pool[name], key=_order), out)
    return out


def _claim_pool(pool, candidates: list[Candidate], out: Claims) -> None:
    taken: dict[str, Candidate] = {}
    unnamed: list[Candidate] = []
    for c in candidates:
        who = _shown(c.node.key)
        value = c.claim
        if c.conflict:
            out.warnings.append(f"{who} of pool {pool.name}: {c.conflict}; left out")
        elif value is None:
            unnamed.append(c)
        elif not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
            out.warnings.append(f"{who} of pool {pool.name}: its node-name tag holds a value that is no "
                                "node name; left out, the tag left as it is")
        elif not pool.has_host(value):
            out.warnings.append(f"{who} of pool {pool.name} claims {value}, which is not a planned name of "
                                f"the pool ({pool.nodes} nodes); left out")
        elif value in taken:
            out.warnings.append(f"{who} of pool {pool.name} claims {value}, which "
                                f"{_shown(taken[value].node.key)} (launched earlier) holds; left out")
        else:
            taken[value] = c
            out.named.append((c.node, value))
            if not c.complete:
                out.writes.append((c.node, value))
    free = (n for n in _planned(pool) if n not in taken)
    for c in unnamed:
        name = next(free, None)
        if name is None:
            out.warnings.append(f"{_shown(c.node.key)} of pool {pool.name}: beyond the pool's {pool.nodes} "
                                "planned nodes; no name given, left out")
            continue
        taken[name] = c
        out.named.append((c.node, name))
        out.writes.append((c.node, name))


def assign(plan, provider: str, factory: str, candidates: Iterable[Candidate], write: Callable[[Node, str], None],
           *, warn: Optional[Warn] = None) -> dict:
    """Claim names for ``candidates`` (the running instances of ``factory``), ``write`` each new
    claim through the cloud's API, and return the inventory of the named instances under their
    planned names (``ansible_host``: the private address)."""
    if plan.name != factory:
        raise AifactoryError(f"inventory --assign-names: the plan is of factory {plan.name}, not {factory}")
    warn = warn or LOG.warning
    candidates = [c for c in candidates if c.node.tags.get(TAG_FACTORY) == factory]
    result = claim(plan, provider, candidates)
    for text in result.warnings:
        warn(text)
    for node, name in result.writes:
        write(node, name)
    # Listed in the order of their names (build orders by key), pool-0001 first.
    named = [dataclasses.replace(node, key=name, names=(name,)) for node, name in result.named]
    return build_nodes(named, factory)
