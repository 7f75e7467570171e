"""The Plan: everything downstream (components, inventory, renderers, reports) reads this."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

PLAN_SCHEMA_VERSION = 1


@dataclass
class SoftwareLock:
    driver: Optional[str]
    driver_branch: Optional[str]
    cuda: Optional[str]
    open_kernel_modules: bool
    fabric_manager: Optional[str]
    fabric_manager_package: Optional[str]
    libnvidia_nscq: Optional[str]
    nvlsm: bool
    imex: bool
    dcgm_package: Optional[str]
    dcgm_major: Optional[int]
    nccl: Optional[str]
    os: str


@dataclass
class PoolPlan:
    name: str
    site: str
    provider: str
    region: Optional[str]
    system: str
    gpu: str
    architecture: str
    cpu_arch: str
    nodes: int
    gpus_per_node: int
    gpus: int
    nvlink_domain_gpus: int
    nvlink_domains: int
    racks: int
    nodes_per_rack: int
    node_kw: float
    it_kw: float
    fabric: Optional[str]
    fabric_type: Optional[str]
    compute_nics: int
    fabric_manager: bool
    nvlsm: bool
    imex: bool
    scheduler: str
    filled: bool


@dataclass
class FabricPlan:
    name: str
    type: str
    site: Optional[str]
    managed_by: str  # "factory" (we buy the switches) or "provider" (cloud fabric)
    switch: Optional[str]
    pools: list[str]
    nodes: int
    rails: int
    scalable_units: int
    endpoints: int
    tiers: int
    leaf_switches: int
    spine_switches: int
    core_switches: int
    switches_by_tier: list[int]
    cables: int
    cables_by_tier: list[int]  # [node-leaf, leaf-spine, spine-core, ...]
    power_kw: float


@dataclass
class SitePower:
    name: str
    budget_kw: Optional[float]
    pue: float
    it_kw: float
    facility_kw: float
    headroom_kw: Optional[float]


@dataclass
class Plan:
    name: str
    pools: list[PoolPlan]
    fabrics: list[FabricPlan]
    sites: list[SitePower]
    software: SoftwareLock
    warnings: list[str] = field(default_factory=list)

    def pool(self, name: str) -> PoolPlan:
        return next(p for p in self.pools if p.name == name)

    @property
    def totals(self) -> dict:
        return {
            "gpus": sum(p.gpus for p in self.pools),
            "nodes": sum(p.nodes for p in self.pools),
            "racks": sum(p.racks for p in self.pools),
            "nvlink_domains": sum(p.nvlink_domains for p in self.pools),
            "switches": sum(sum(f.switches_by_tier) for f in self.fabrics),
            "cables": sum(f.cables for f in self.fabrics),
        }

    @property
    def power(self) -> dict:
        return {
            "it_kw": round(sum(s.it_kw for s in self.sites), 1),
            "facility_kw": round(sum(s.facility_kw for s in self.sites), 1),
            "sites": [dataclasses.asdict(s) for s in self.sites],
        }

    def to_dict(self) -> dict:
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "name": self.name,
            "totals": self.totals,
            "power": self.power,
            "fabrics": [dataclasses.asdict(f) for f in self.fabrics],
            "pools": [dataclasses.asdict(p) for p in self.pools],
            "software": dataclasses.asdict(self.software),
            "warnings": list(self.warnings),
        }
