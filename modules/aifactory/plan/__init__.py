"""Planning: a pure function of the spec and the catalog.

``build(spec)`` runs the named checks around sizing and returns a :class:`Plan` with its
warnings, or raises :class:`SpecError` holding every error (and warning) found.
"""

from __future__ import annotations

import datetime as _dt
from typing import NamedTuple

from pydantic import ValidationError

from ..catalog import Catalog
from ..catalog import load as load_catalog
from ..errors import Finding, SpecError
from ..spec import LoadedSpec
from . import checks, mig, sizing, slurm, software
from .model import AccessPlan, FabricPlan, Plan, PoolPlan, SitePower, SlurmClusterPlan, SoftwareLock

__all__ = ["FabricPlan", "Plan", "PlanResult", "PoolPlan", "SitePower", "SlurmClusterPlan", "SoftwareLock", "build",
           "load", "validate"]


class PlanResult(NamedTuple):
    plan: Plan | None
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


def validate(spec: LoadedSpec, catalog: Catalog | None = None, today: _dt.date | None = None) -> PlanResult:
    """Run every check and size the factory; never raises for a bad spec."""
    catalog = catalog or load_catalog()
    ctx = checks.Context(spec.factory, spec.doc, catalog, today=today or _dt.date.today())
    findings = checks.run(ctx, ["catalog-overlay"])
    if findings:
        return PlanResult(None, findings)
    catalog = ctx.catalog  # with the spec's own rows, if it adds any
    findings = checks.run(ctx, [n for n in checks.phase("refs") if n != "catalog-overlay"])
    if any(f.severity == "error" for f in findings):
        return PlanResult(None, findings)
    systems = [catalog.systems[p.system] for p in spec.factory.pools]
    ctx.lock = software.resolve(catalog, spec.factory.software, systems)
    ctx.pools, ctx.fabrics, ctx.sites = sizing.size(spec.factory, catalog)
    ctx.pools = mig.apply(spec.factory, ctx.pools)
    f = spec.factory
    ctx.slurm = slurm.clusters(f, ctx.pools)  # derived once: the capacity checks read it, the plan holds it
    findings += checks.run(ctx, checks.phase("software") + checks.phase("capacity"))
    try:
        plan = Plan(
            name=f.name, description=f.description, tags=dict(f.tags),
            access=AccessPlan(admin_cidrs=list(f.access.admin_cidrs), ssh_user=f.access.ssh_user),
            pools=ctx.pools, fabrics=ctx.fabrics, sites=ctx.sites, software=ctx.lock,
            slurm=ctx.slurm,
            warnings=[w.render() for w in findings if w.severity == "warning"],
            catalog_overlay=catalog.overlay,
        )
    except ValidationError:
        if any(x.severity == "error" for x in findings):  # the checks already said what is wrong
            return PlanResult(None, findings)
        raise  # a plan the checks let through but the model refuses: a defect, not a user error
    return PlanResult(plan, findings)


def load(path) -> Plan:
    """The plan in ``path``: a reviewed ``plan.json`` read back as it is, or a factory spec,
    checked and planned. Raises :class:`SpecError` with located findings for a bad spec and
    :class:`~aifactory.errors.AifactoryError` (one line) for a bad plan file."""
    from .. import spec as specs
    from .model import is_plan_file, load_plan

    if is_plan_file(path):
        return load_plan(path)
    return build(specs.load(path))


def build(spec: LoadedSpec, catalog: Catalog | None = None) -> Plan:
    """The plan of a valid spec; :class:`SpecError` listing every finding otherwise."""
    result = validate(spec, catalog)
    if result.errors:
        raise SpecError(result.findings)
    return result.plan
