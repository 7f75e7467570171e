"""The resolved Plan: everything downstream (components, inventory, renderers, lab, reports) reads this.

It is a frozen pydantic model, and ``plan.json`` is its serialisation: :meth:`Plan.to_dict`
writes it and :meth:`Plan.from_dict` reads it back, so ``render``, ``inventory`` and ``preview``
can take a reviewed plan in place of the spec it came from and produce the same bytes.

A plan file is untrusted input like a spec: every field that reaches a file, a template, a host
name or an Ansible variable has the spec's strict type, and unknown fields are refused.
Quantities derived from the spec are computed once, when the plan is built (:mod:`.sizing`), or
by the methods here (host names, the name width), never again downstream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError,
                      model_validator)

from ..catalog import MIG_COMPUTE_SLICES, MIG_PROFILE_PATTERN
from ..errors import AifactoryError, format_path
from ..spec.models import (MAX_LOGIN_NODES, MAX_QOS, PRIORITY_MAX, QOS_PRIORITY_MAX, WALL_MAX_MINUTES,
                           GdrcopyVersion, SlurmPriorityWeights)
from ..fields import (
    CatalogId,
    Cidr,
    CudaVersion,
    DriverBranch,
    DriverVersion,
    Hostname,
    IpAddress,
    Mac,
    Name,
    NodeOs,
    PackageVersion,
    Prose,
    Region,
    ReservationId,
    TagKey,
    TagValue,
    Zone,
)

# 3: the Slurm release in the lock (software.slurm) and the Slurm clusters (slurm); their name, sites,
# login, qos, fairshare and federation are written only where set, so they need no new version.
PLAN_SCHEMA_VERSION = 3
Count = Field(ge=0, le=10**9)
Kw = Field(ge=0, le=1e9, allow_inf_nan=False)
PACKAGE_NAME = r"^[a-z0-9][a-z0-9.+-]{0,63}$"
# A Slurm release as major.minor, the way SchedMD numbers them: "22.05", "23.11".
SlurmRelease = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}\.[0-9]{2}$")]
# A warning line: one line, no control characters (plan files are untrusted too).
Line = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f\x85\u2028\u2029]*$", max_length=2000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GdrcopyBuild(_Frozen):
    """The GDRCopy build of the lock: the release, its package revision, and the CUDA major of
    NVIDIA's redist folder it comes from (``CUDA 13.0/``; catalog table gdrcopy)."""

    version: GdrcopyVersion
    revision: StrictInt = Field(ge=1, le=999)
    cuda_major: StrictInt = Field(ge=10, le=99)


class SoftwareLock(_Frozen):
    driver: Optional[DriverVersion] = None
    driver_branch: Optional[DriverBranch] = None
    cuda: Optional[CudaVersion] = None
    open_kernel_modules: bool = False
    fabric_manager: Optional[DriverVersion] = None
    fabric_manager_package: Optional[str] = Field(None, pattern=PACKAGE_NAME)
    libnvidia_nscq: Optional[DriverVersion] = None
    nvlsm: bool = False
    imex: bool = False
    dcgm_package: Optional[str] = Field(None, pattern=PACKAGE_NAME)
    dcgm_major: Optional[int] = Field(None, ge=1, le=99)
    nccl: Optional[PackageVersion] = None
    # Only where the spec pins software.gdrcopy; plan files of other factories leave it out (to_dict).
    gdrcopy: Optional[GdrcopyBuild] = None
    os: NodeOs
    # The Slurm release the OS ships in its own repository (plan.software.SLURM_BY_OS); None where
    # it has none (RHEL: EPEL's or a site build). Rendered Slurm files are written for it, and the
    # Slurm roles install that release. Required, so a plan file cannot leave it out by accident.
    slurm: Optional[SlurmRelease]

    @property
    def digest(self) -> str:
        """The lock's digest: sha256 of its canonical JSON (keys sorted, unset fields left out), the
        one value a node reports (``aifactory_lock_info{digest=...}``) and ``status`` compares."""
        import hashlib
        import json

        data = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @property
    def slurm_release(self) -> Optional[tuple[int, int]]:
        """``slurm`` as (major, minor) for comparisons, None where the release is not known."""
        if self.slurm is None:
            return None
        major, minor = self.slurm.split(".")
        return int(major), int(minor)


# A MIG profile as nvidia-smi names it; the spec's own type (spec.models.MigProfileName).
MigProfile = Annotated[str, StringConstraints(pattern=f"^{MIG_PROFILE_PATTERN}$")]


class MigInstances(_Frozen):
    """One profile of a pool's MIG layout: the instances on every GPU, and on every node (what
    the node's Slurm GRES line advertises as ``gpu:<profile>:<per_node>``)."""

    profile: MigProfile
    per_gpu: StrictInt = Field(ge=1, le=MIG_COMPUTE_SLICES)
    per_node: StrictInt = Field(ge=1, le=10**6)

    @property
    def compute_slices(self) -> int:
        """SM slices (of 7) one instance takes: the profile's leading number."""
        return int(self.profile[0])


class HostPlan(_Frozen):
    """A declared bare-metal host."""

    name: Name
    mac: Mac
    bmc: Hostname
    ip: Optional[IpAddress] = None


class PoolPlan(_Frozen):
    name: Name
    site: Name
    provider: Name
    region: Optional[Region] = None
    zones: list[Zone] = Field(default_factory=list, max_length=64)
    capacity: Literal["on-demand", "reservation", "capacity-block", "spot"] = "on-demand"
    reservation: Optional[ReservationId] = None
    system: CatalogId
    gpu: CatalogId
    architecture: Name
    cpu_arch: Literal["x86_64", "arm64"]
    nodes: int = Count
    gpus_per_node: int = Count
    gpus: int = Count
    nvlink_domain_gpus: int = Count
    nvlink_domains: int = Count
    racks: int = Count
    nodes_per_rack: int = Count
    node_kw: float = Kw
    it_kw: float = Kw
    fabric: Optional[Name] = None
    fabric_type: Optional[Name] = None
    compute_nics: int = Count
    fabric_manager: bool
    nvlsm: bool
    imex: bool
    scheduler: Literal["slurm", "kubernetes", "none"]
    filled: bool
    hosts: list[HostPlan] = Field(default_factory=list, max_length=1_000_000)
    # MIG instances on every GPU of the pool, resolved by plan.mig from the spec's `mig:` and
    # checked against the catalog by `mig-profiles`; empty (and left out of plan.json) without MIG.
    mig: list[MigInstances] = Field(default_factory=list, max_length=MIG_COMPUTE_SLICES)

    @model_validator(mode="after")
    def _mig_layout(self) -> "PoolPlan":
        """A plan file is untrusted: its MIG layout must be one GPU's worth, counted per node."""
        if not self.mig:
            return self
        if len({m.profile for m in self.mig}) != len(self.mig):
            raise ValueError(f"pool {self.name}: a MIG profile is listed twice")
        if sum(m.compute_slices * m.per_gpu for m in self.mig) > MIG_COMPUTE_SLICES:
            raise ValueError(f"pool {self.name}: the MIG layout takes more than {MIG_COMPUTE_SLICES} compute slices")
        for m in self.mig:
            if m.per_node != m.per_gpu * self.gpus_per_node:
                raise ValueError(f"pool {self.name}: MIG {m.profile} per node is not per GPU x GPUs per node")
        return self

    # -- node names: the one place they are made --
    @property
    def name_width(self) -> int:
        """Digits in generated node names: 4, wider when a pool has 10,000+ nodes."""
        return max(4, len(str(self.nodes)))

    def node_name(self, index: int) -> str:
        """The generated name of node ``index`` (1-based): ``<pool>-0001``."""
        return f"{self.name}-{index:0{self.name_width}d}"

    def host_names(self) -> list[str]:
        """The pool's declared hosts, else every generated name in order (O(nodes): for small pools,
        tests and the lab; large pools are written as :meth:`host_range`)."""
        if self.hosts:
            return [h.name for h in self.hosts]
        return [self.node_name(i) for i in range(1, self.nodes + 1)]

    def first_host(self) -> str:
        """The pool's first node: its first declared host, else ``<pool>-0001``."""
        return self.hosts[0].name if self.hosts else self.node_name(1)

    def has_host(self, name: str) -> bool:
        """Whether ``name`` is one of :meth:`host_names`, without listing them (O(1) for generated names)."""
        if self.hosts:
            return any(h.name == name for h in self.hosts)
        prefix, _, index = name.rpartition("-")
        return (prefix == self.name and index.isdigit() and len(index) == self.name_width
                and 1 <= int(index) <= self.nodes)

    def host_range(self, first: int = 1, last: Optional[int] = None) -> str:
        """Ansible's host-range pattern for generated names: ``gpu-[0001:0002]``."""
        last = self.nodes if last is None else last
        w = self.name_width
        return f"{self.name}-[{first:0{w}d}:{last:0{w}d}]"

    @property
    def nodes_per_domain(self) -> int:
        """Nodes that share one NVLink domain (18 compute trays of an NVL72 rack; 1 on HGX)."""
        return max(1, self.nvlink_domain_gpus // max(1, self.gpus_per_node))


class FabricPlan(_Frozen):
    name: Name
    type: Name
    site: Optional[Name] = None
    managed_by: Literal["factory", "provider"]  # we buy the switches, or the cloud runs the fabric
    switch: Optional[CatalogId] = None
    subnet_manager: Optional[Literal["ufm", "switch", "opensm"]] = None
    rail_optimized: bool = True
    # Nodes under one leaf (tier-1 switch): the scalable unit on a rail-optimized fabric, else the
    # nodes whose NICs fill half a leaf's ports. 0 where the factory sizes no switches.
    nodes_per_leaf: int = Count
    pools: list[Name]
    nodes: int = Count
    rails: int = Count
    scalable_units: int = Count
    endpoints: int = Count
    tiers: int = Count
    leaf_switches: int = Count
    spine_switches: int = Count
    core_switches: int = Count
    switches_by_tier: list[int] = Field(max_length=16)
    cables: int = Count
    cables_by_tier: list[int] = Field(max_length=16)  # [node-leaf, leaf-spine, spine-core, ...]
    power_kw: float = Kw


class SitePower(_Frozen):
    name: Name
    provider: Optional[Name] = None
    region: Optional[Region] = None
    budget_kw: Optional[float] = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    pue: float = Field(ge=1.0, le=3.0)
    it_kw: float = Kw
    facility_kw: float = Kw
    headroom_kw: Optional[float] = Field(None, ge=-1e9, le=1e9, allow_inf_nan=False)


class SlurmQosPlan(_Frozen):
    """A QoS as slurmdbd is to hold it; ``max_wall`` in minutes (sacctmgr's MaxWall unit)."""

    name: Name
    priority: StrictInt = Field(0, ge=0, le=QOS_PRIORITY_MAX)
    max_wall: Optional[StrictInt] = Field(None, ge=1, le=WALL_MAX_MINUTES)
    max_jobs_per_user: Optional[StrictInt] = Field(None, ge=1, le=1_000_000)
    max_gpus_per_user: Optional[StrictInt] = Field(None, ge=1, le=100_000_000)


class FairsharePlan(_Frozen):
    """priority/multifactor with fair-share: the decay half-life and the factor weights."""

    decay_half_life_days: StrictInt = Field(ge=1, le=365)
    weights: SlurmPriorityWeights

    @model_validator(mode="after")
    def _fits(self) -> "FairsharePlan":
        w = self.weights
        if w.fairshare + w.age + w.qos + w.job_size > PRIORITY_MAX:
            raise ValueError(f"the priority weights add up to more than {PRIORITY_MAX}")
        return self


class SlurmClusterPlan(_Frozen):
    """One Slurm cluster (the Slurm pools with nodes of its sites, a partition each): who runs
    slurmctld and slurmdbd, its login nodes, the partition jobs land in by default, its QoS and
    fair-share. Resolved from the spec's ``slurm`` section, or the defaults, by :mod:`.slurm`.

    ``name`` and ``sites`` default to ``site`` (a cluster per site, as plan files before them
    wrote it), and :meth:`Plan.to_dict` leaves out every field still at its default, so plans of
    factories that use none of them read as they did."""

    # The site of the primary controller; a per-site cluster's one site.
    site: Name
    # The cluster's name: inventory groups (slurm_controller_<name>), slurm/<name>/, ClusterName.
    name: Name
    # Every site whose Slurm pools the cluster schedules, in the order of the factory's sites.
    sites: list[Name] = Field(min_length=1, max_length=100_000)
    # SlurmctldHost lines in order: the primary, then an optional backup; planned node names.
    controllers: list[Hostname] = Field(min_length=1, max_length=2)
    # local: slurmdbd on the primary controller (the slurm_accounting role); external: one the site runs.
    accounting: Literal["local", "external"]
    accounting_host: Hostname
    accounting_port: StrictInt = Field(ge=1, le=65535)
    default_partition: Name
    # Login nodes: Slurm clients and munge, no daemon; planned node names.
    login: list[Hostname] = Field(default_factory=list, max_length=MAX_LOGIN_NODES)
    qos: list[SlurmQosPlan] = Field(default_factory=list, max_length=MAX_QOS)
    # None: no fair-share (FIFO order with backfill, Slurm's default priority settings).
    fairshare: Optional[FairsharePlan] = None
    # The Slurm federation the cluster joins through its slurmdbd (layout: federation).
    federation: Optional[Name] = None

    @model_validator(mode="before")
    @classmethod
    def _one_site(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("site"), str):
            data = dict(data)
            data.setdefault("name", data["site"])
            data.setdefault("sites", [data["site"]])
        return data

    def cluster_name(self, factory: str) -> str:
        """slurm.conf's ClusterName, the name slurmdbd and sacctmgr know the cluster by:
        ``<factory>-<name>``, unique among the factories that share a slurmdbd."""
        return f"{factory}-{self.name}"


class AccessPlan(_Frozen):
    admin_cidrs: list[Cidr] = Field(default_factory=list, max_length=256)
    ssh_user: Name = "aifactory"


def _first_repeat(values: list[str]) -> str:
    seen: set[str] = set()
    return next(v for v in values if v in seen or seen.add(v))


def _overlay(value):
    """A plan's catalog overlay must be one the catalog accepts, with the same checks as a spec's."""
    from ..catalog import CatalogError
    from ..catalog import load as load_catalog

    try:
        load_catalog(value)
    except CatalogError as exc:
        raise ValueError(f"catalog overlay: {exc}") from None
    return value


# (table, ((column, text), ...)) per row, in order: aifactory.catalog.Overlay, as the plan keeps it.
CatalogOverlay = Annotated[
    tuple[tuple[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,40}$")],
                tuple[tuple[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,40}$")],
                            Annotated[str, StringConstraints(max_length=400)]], ...]], ...],
    Field(max_length=100_000), AfterValidator(_overlay)]


class Plan(_Frozen):
    name: Name
    description: Optional[Prose] = None
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    access: AccessPlan = Field(default_factory=AccessPlan)
    pools: list[PoolPlan]
    fabrics: list[FabricPlan]
    sites: list[SitePower]
    software: SoftwareLock
    slurm: list[SlurmClusterPlan] = Field(max_length=100_000)
    warnings: list[Line] = Field(default_factory=list, max_length=10_000)
    catalog_overlay: CatalogOverlay = ()

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        names = {"pool": [p.name for p in self.pools], "fabric": [f.name for f in self.fabrics],
                 "site": [s.name for s in self.sites]}
        hosts = [h for p in self.pools for h in p.hosts]
        names.update({"host": [h.name for h in hosts], "host MAC": [h.mac for h in hosts],
                      "host IP": [h.ip for h in hosts if h.ip]})
        for kind, values in names.items():
            if len(set(values)) != len(values):
                dup = next(v for v in values if values.count(v) > 1)
                raise ValueError(f"duplicate {kind} {dup!r}")
        sites, fabrics = set(names["site"]), set(names["fabric"])
        for p in self.pools:
            if p.site not in sites or (p.fabric and p.fabric not in fabrics):
                raise ValueError(f"pool {p.name} names a site or fabric the plan does not have")
            if len(p.hosts) > p.nodes:
                raise ValueError(f"pool {p.name} declares {len(p.hosts)} hosts for {p.nodes} nodes")
        self._consistent_slurm()
        return self

    def _consistent_slurm(self) -> None:
        """Every site with Slurm nodes in exactly one Slurm cluster, whose controllers and login
        nodes are nodes of its sites' pools and whose default partition is one of its Slurm pools;
        the clusters of one federation share one slurmdbd (a plan file is untrusted)."""
        slurm_pools: dict[str, list[PoolPlan]] = {}
        login_pools: dict[str, list[PoolPlan]] = {}  # where a login node may be
        for p in self.pools:
            if p.scheduler == "slurm" and p.nodes > 0:
                slurm_pools.setdefault(p.site, []).append(p)
            if p.scheduler in ("slurm", "none"):
                login_pools.setdefault(p.site, []).append(p)
        names = [c.name for c in self.slurm]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate Slurm cluster {_first_repeat(names)!r}")
        listed = [s for c in self.slurm for s in c.sites]
        if len(set(listed)) != len(listed):
            raise ValueError(f"site {_first_repeat(listed)!r} is in two Slurm clusters")
        if set(listed) != set(slurm_pools):
            raise ValueError(f"the sites of the Slurm clusters {sorted(listed)} are not the sites with Slurm nodes "
                             f"{sorted(slurm_pools)}")
        for c in self.slurm:
            if c.site not in c.sites:
                raise ValueError(f"Slurm cluster {c.name}: site {c.site!r} is not one of its sites")
            pools = [p for s in c.sites for p in slurm_pools[s]]
            if c.default_partition not in {p.name for p in pools}:
                raise ValueError(f"Slurm cluster {c.name}: default partition {c.default_partition!r} is not a "
                                 "Slurm pool of its sites")
            if len(set(c.controllers)) != len(c.controllers):
                raise ValueError(f"Slurm cluster {c.name}: the backup controller is the primary")
            for name in c.controllers:
                if not any(p.has_host(name) for p in pools):
                    raise ValueError(f"Slurm cluster {c.name}: controller {name!r} is not a node of its Slurm pools")
            if not any(p.has_host(c.controllers[0]) for p in slurm_pools[c.site]):
                raise ValueError(f"Slurm cluster {c.name}: the primary controller is not at site {c.site}")
            hosts = [p for s in c.sites for p in login_pools.get(s, [])]
            for name in c.login:
                if not any(p.has_host(name) for p in hosts):
                    raise ValueError(f"Slurm cluster {c.name}: login node {name!r} is not a node of its sites")
            if len(set(c.login)) != len(c.login):
                raise ValueError(f"Slurm cluster {c.name}: a login node is listed twice")
            if len({q.name for q in c.qos}) != len(c.qos):
                raise ValueError(f"Slurm cluster {c.name}: a QoS is listed twice")
            if c.accounting == "local" and c.accounting_host != c.controllers[0]:
                raise ValueError(f"Slurm cluster {c.name}: local accounting runs on the primary controller")
        federations: dict[str, set] = {}
        for c in self.slurm:
            if c.federation:
                federations.setdefault(c.federation, set()).add((c.accounting_host, c.accounting_port))
        for name, dbds in federations.items():
            if len(dbds) > 1:
                raise ValueError(f"the clusters of federation {name} do not share one slurmdbd")

    def slurm_cluster(self, site: str) -> Optional[SlurmClusterPlan]:
        """The Slurm cluster that schedules ``site``'s Slurm pools; None where the site has no Slurm nodes."""
        return next((c for c in self.slurm if site in c.sites), None)

    def slurm_accounting_served(self, cluster: SlurmClusterPlan) -> list[SlurmClusterPlan]:
        """The clusters whose slurmdbd is ``cluster``'s local one: itself, then those that send it
        their records as external accounting (the other clusters of a federation), in plan order."""
        if cluster.accounting != "local":
            return []
        key = (cluster.accounting_host, cluster.accounting_port)
        return [c for c in self.slurm if c is cluster or (c.accounting == "external"
                                                          and (c.accounting_host, c.accounting_port) == key)]

    def catalog(self):
        """The catalog this plan was made with: the packaged tables and the plan's overlay."""
        from ..catalog import load as load_catalog

        return load_catalog(self.catalog_overlay)

    def pool(self, name: str) -> PoolPlan:
        return next(p for p in self.pools if p.name == name)

    def site(self, name: str) -> SitePower:
        return next(s for s in self.sites if s.name == name)

    def fabric(self, name: Optional[str]) -> Optional[FabricPlan]:
        return next((f for f in self.fabrics if f.name == name), None)

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
        }

    def to_dict(self) -> dict:
        """``plan.json``: the model, plus the totals and power that reports and diff read."""
        data: dict[str, Any] = {"schema_version": PLAN_SCHEMA_VERSION}
        data.update(self.model_dump(mode="json"))
        if not self.catalog_overlay:  # a plan made with the packaged catalog alone says nothing of it
            del data["catalog_overlay"]
        if data["software"]["gdrcopy"] is None:  # nor a lock without GDRCopy
            del data["software"]["gdrcopy"]
        for pool in data["pools"]:  # nor does a pool without MIG: plan files of such factories stay as they were
            if not pool["mig"]:
                del pool["mig"]
        for cluster in data["slurm"]:  # nor a cluster of one site without login nodes, QoS, fair-share or federation
            if cluster["name"] == cluster["site"]:
                del cluster["name"]
            if cluster["sites"] == [cluster["site"]]:
                del cluster["sites"]
            for key in ("login", "qos"):
                if not cluster[key]:
                    del cluster[key]
            for key in ("fairshare", "federation"):
                if cluster[key] is None:
                    del cluster[key]
        data["totals"] = self.totals
        data["power"] = self.power
        return data

    @classmethod
    def from_dict(cls, data: Any, file: str = "plan.json") -> "Plan":
        """The plan a ``plan.json`` holds; a one-line error naming the file and field otherwise."""
        if not isinstance(data, dict):
            raise AifactoryError(f"{file}: not a plan (expected a JSON object)")
        version = data.get("schema_version")
        if version != PLAN_SCHEMA_VERSION:
            raise AifactoryError(f"{file}: plan schema_version {version!r} is not {PLAN_SCHEMA_VERSION}; "
                                 "make the plan again with this version (`aifactory plan FILE -f json`)")
        body = {k: v for k, v in data.items() if k not in ("schema_version", "totals", "power")}
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            message = err["msg"].replace("Value error, ", "").replace("Input should be", "must be")
            if err["type"] == "string_pattern_mismatch":
                message = "invalid value"
            raise AifactoryError(f"{file}: {format_path(err['loc'])}: {message}") from None


def is_plan_file(path) -> bool:
    """Whether ``path`` holds a plan JSON rather than a factory spec (its first character is '{')."""
    from ..files import read_head

    return read_head(path, 4096).lstrip().startswith(b"{")


def load_plan(path) -> Plan:
    """A plan JSON file through the bounded reader."""
    from ..files import read_json

    return Plan.from_dict(read_json(path), str(path))
