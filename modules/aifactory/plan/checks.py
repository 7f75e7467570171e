"""Named validation checks, run before anything is built.

Each check is a function of a :class:`Context` that yields :class:`Issue` tuples. Checks are
grouped in phases: ``refs`` must pass before sizing is possible; ``software`` and
``capacity`` run on the resolved lock and the sized plan. ``aifactory validate`` runs them
all; tests call :func:`run` with one name.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Optional

from ..catalog import MIG_COMPUTE_SLICES, MIG_MEMORY_SLICES, ONPREM_FABRICS, Catalog, CatalogError, System, overlay_from_spec, version_key
from ..catalog import load as load_catalog
from ..errors import Finding
from ..text import a_fabric, fabric_name
from ..spec import Document, Factory
from .model import FabricPlan, PoolPlan, SitePower, SlurmClusterPlan, SoftwareLock
from . import slurm as slurm_plan
from ..spec.models import PRIORITY_MAX
from .. import providers
from ..providers import on_site
from .sizing import rack_kw


class Issue(NamedTuple):
    path: tuple
    message: str
    hint: str = ""
    severity: str = "error"


@dataclass
class Context:
    factory: Factory
    doc: Document
    catalog: Catalog
    lock: Optional[SoftwareLock] = None
    pools: Optional[list[PoolPlan]] = None
    fabrics: Optional[list[FabricPlan]] = None
    sites: Optional[list[SitePower]] = None
    slurm: Optional[list[SlurmClusterPlan]] = None  # the planned Slurm clusters, for the capacity phase
    today: _dt.date = field(default_factory=_dt.date.today)

    def system(self, pool) -> System | None:
        return self.catalog.system(pool.system)

    def nvidia_pools(self):
        for i, pool in enumerate(self.factory.pools):
            system = self.system(pool)
            if system and system.gpu.vendor == "nvidia":
                yield i, pool, system


CheckFn = Callable[[Context], Iterable[Issue]]
CHECKS: dict[str, tuple[str, CheckFn]] = {}
PHASES = ("refs", "software", "capacity")
SEVERITIES = ("error", "warning", "both")


@dataclass(frozen=True)
class CheckInfo:
    """What `aifactory checks` lists: the id, when it runs, what it can raise and why it exists."""

    name: str
    phase: str
    severity: str  # error, warning or both
    rationale: str
    providers: tuple[str, ...] = ()  # empty: every provider


REGISTRY: dict[str, CheckInfo] = {}


def check(name: str, phase: str, severity: str, rationale: str, providers: tuple[str, ...] = ()):
    assert phase in PHASES and severity in SEVERITIES, (name, phase, severity)

    def register(fn: CheckFn) -> CheckFn:
        CHECKS[name] = (phase, fn)
        REGISTRY[name] = CheckInfo(name, phase, severity, rationale, providers)
        fn.check_name = name
        return fn
    return register


def run(ctx: Context, names: Iterable[str]) -> list[Finding]:
    out = []
    for name in names:
        _, fn = CHECKS[name]
        declared = REGISTRY[name].severity
        for issue in fn(ctx):
            if declared != "both" and issue.severity != declared:
                raise AssertionError(f"check {name} is registered as {declared} but raised {issue.severity}")
            out.append(ctx.doc.finding(issue.path, issue.message, issue.hint, severity=issue.severity, check=name))
    return out


def phase(name: str) -> list[str]:
    return [n for n, (p, _) in CHECKS.items() if p == name]


# --- refs ------------------------------------------------------------------------------

@check("catalog-overlay", "refs", "error",
       "rows a spec adds to the catalog must fit the table's schema; every later check reads them")
def catalog_overlay(ctx: Context):
    """Runs first: on success every later check, the sizing and the plan use the catalog with
    the spec's rows (``ctx.catalog`` is replaced); on failure nothing else runs."""
    if not ctx.factory.catalog:
        return
    try:
        overlay = ctx.catalog.overlay + overlay_from_spec(ctx.factory.catalog)
        ctx.catalog = load_catalog(overlay)
    except CatalogError as exc:
        yield Issue(exc.path or ("catalog",), exc.problem,
                    "see `aifactory catalog TABLE` for the columns and an example row")


@check("unique-names", "refs", "error",
       "names become host names, groups and resource names; a second host with one MAC or IP takes the first one's lease")
def unique_names(ctx: Context):
    f = ctx.factory
    for field, items in (("sites", f.sites), ("fabrics", f.fabrics), ("pools", f.pools)):
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.name in seen:
                yield Issue((field, i, "name"), f"duplicate name {item.name!r} (also {field}[{seen[item.name]}])",
                            "names must be unique: they become hostnames, groups and resource names")
            seen.setdefault(item.name, i)
    # A second host with the same IP would take the first one's DHCP lease and inventory address:
    # refused like a duplicate name. (A BMC may manage several nodes of one chassis.)
    seen_host: dict[str, dict] = {"name": {}, "mac": {}, "ip": {}}
    for i, pool in enumerate(f.pools):
        for j, host in enumerate(pool.hosts):
            for attr, table in seen_host.items():
                key = getattr(host, attr)
                if key is None:
                    continue
                key = key.lower()
                if key in table:
                    a, b = table[key]
                    yield Issue(("pools", i, "hosts", j, attr),
                                f"duplicate host {attr} {key!r} (also pools[{a}].hosts[{b}])",
                                "every host needs its own name, boot MAC and IP address")
                table.setdefault(key, (i, j))


@check("slurm-names", "refs", "error",
       "Slurm reserves PartitionName=DEFAULT for the defaults of every partition")
def slurm_names(ctx: Context):
    for i, pool in enumerate(ctx.factory.pools):
        if pool.scheduler == "slurm" and pool.name == "default":
            yield Issue(("pools", i, "name"), "'default' is reserved by Slurm: PartitionName=DEFAULT sets the "
                        "defaults of every partition, so this pool would get no partition of its own",
                        "rename the pool")


@check("slurm-hardware", "refs", "error",
       "Slurm node lines need each system's sockets, cores and memory")
def slurm_hardware(ctx: Context):
    rows = ctx.catalog.node_hardware
    for i, pool in enumerate(ctx.factory.pools):
        if pool.scheduler == "slurm" and ctx.system(pool) is not None and pool.system not in rows:
            yield Issue(("pools", i, "system"), f"{pool.system} has no row in the catalog table node_hardware: "
                        "Slurm node lines need its sockets, cores and memory",
                        "add the row, or use scheduler: kubernetes or none for this pool")


def _slurm_entries(ctx: Context):
    """(index, entry, its sites, their Slurm pools in spec order) for each ``slurm.clusters`` entry
    that forms a cluster: every site it names is declared, has Slurm pools and is in no earlier
    entry, and it has a name (``slurm-clusters`` and ``slurm-naming`` report the others)."""
    for m in slurm_plan.memberships(ctx.factory):
        if m.entry is None or set(m.sites) != set(m.entry.site_names):
            continue
        pools = [p for p in ctx.factory.pools if p.site in m.sites and p.scheduler == "slurm"]
        yield m.index, m.entry, list(m.sites), pools


def _declared(ctx: Context, name: str):
    """(pool, host) of the first declared host called ``name``; (None, None) when none is."""
    for pool in ctx.factory.pools:
        for host in pool.hosts:
            if host.name == name:
                return pool, host
    return None, None


def _site_paths(entry) -> list[tuple[tuple, str]]:
    """(path, site) for each site an entry names, in either form."""
    if entry.sites is not None:
        return [(("sites", j), s) for j, s in enumerate(entry.sites)]
    return [(("site",), entry.site)] if entry.site is not None else []


@check("slurm-clusters", "refs", "error",
       "each site with Slurm pools belongs to exactly one Slurm cluster: an entry of slurm.clusters or the layout's")
def slurm_clusters(ctx: Context):
    sites = [s.name for s in ctx.factory.sites]
    seen: dict[str, int] = {}
    for i, entry in enumerate(ctx.factory.slurm.clusters):
        if entry.site is not None and entry.sites is not None:
            yield Issue(("slurm", "clusters", i, "site"), "give site: (one site) or sites: (several), not both",
                        "write sites: [a, b] for a cluster that spans several sites")
            continue
        if entry.site is None and entry.sites is None:
            yield Issue(("slurm", "clusters", i), "a cluster needs its site: or sites:",
                        "e.g. site: dc1, or sites: [dc1, aws-use1] for one cluster across both")
            continue
        mine: set[str] = set()
        for path, site in _site_paths(entry):
            where = ("slurm", "clusters", i) + path
            if site not in sites:
                close = ctx.catalog.suggest(sites, site)
                yield Issue(where, f"unknown site {site!r}", f"did you mean {close!r}?" if close else
                            f"name a site declared under sites: ({', '.join(sites)})")
            elif site in mine:
                yield Issue(where, f"site {site} is listed twice in this cluster", "list each site once")
            elif site in seen:
                yield Issue(where, f"site {site} is listed twice (also slurm.clusters[{seen[site]}])",
                            "a site belongs to exactly one Slurm cluster: keep it in one entry")
            elif not any(p.site == site and p.scheduler == "slurm" for p in ctx.factory.pools):
                yield Issue(where, f"site {site} has no Slurm pool, so it has no Slurm cluster to configure",
                            "remove it, or give one of the site's pools scheduler: slurm")
            mine.add(site)
        for site in mine:
            seen.setdefault(site, i)


@check("slurm-naming", "refs", "error",
       "a cluster's name becomes its inventory groups, its rendered folder and its ClusterName: one per cluster")
def slurm_cluster_names(ctx: Context):
    clusters = slurm_plan.memberships(ctx.factory)
    for i, entry in enumerate(ctx.factory.slurm.clusters):
        if entry.name is None and len(set(entry.site_names)) > 1:
            yield Issue(("slurm", "clusters", i), "a cluster of several sites needs a name:",
                        "e.g. name: global; it names the inventory groups, slurm/<name>/ and the ClusterName")
            continue
        name = slurm_plan.entry_name(entry)
        if name is None:
            continue
        others = [m for m in clusters if m.name == name and m.index != i]
        if others:
            other = others[0]
            what = (f"slurm.clusters[{other.index}]" if other.entry is not None else
                    f"the cluster layout: {ctx.factory.slurm.layout} makes for site(s) {', '.join(other.sites)}")
            yield Issue(("slurm", "clusters", i) + (("name",) if entry.name else _site_paths(entry)[0][0]),
                        f"cluster name {name!r} is taken (also {what})",
                        "give the cluster a name: of its own")


def _controller_issue(ctx: Context, ref, sites: list[str], where: tuple, role: str = "controller",
                      schedulers: tuple[str, ...] = ("slurm",)):
    """What is wrong with one host reference (``{pool: ...}`` or ``{host: ...}``) of a cluster at
    ``sites``, or None. ``role`` says what runs there; ``schedulers``, which pools may hold it."""
    if (ref.pool is None) == (ref.host is None):
        return Issue(where, "give pool: or host:, not both" if ref.pool else
                     "give pool: (the pool's first node) or host: (a declared host)",
                     "e.g. {pool: gpu} or {host: dgx-001}")
    here = sites[0] if len(sites) == 1 else f"one of {', '.join(sites)}"
    if ref.pool is not None:
        pool = next((p for p in ctx.factory.pools if p.name == ref.pool), None)
        if pool is None:
            names = [p.name for p in ctx.factory.pools]
            close = ctx.catalog.suggest(names, ref.pool)
            return Issue(where + ("pool",), f"unknown pool {ref.pool!r}",
                         f"did you mean {close!r}?" if close else f"name a Slurm pool at {here}")
        what, field = f"pool {pool.name}", "pool"
    else:
        pool, _ = _declared(ctx, ref.host)
        if pool is None:
            guess = next((p for p in ctx.factory.pools if p.site in sites and p.scheduler in schedulers
                          and not p.hosts and ref.host.startswith(f"{p.name}-")), None)
            hint = (f"pool {guess.name}'s nodes are named when they are planned: write {{pool: {guess.name}}} for "
                    "its first node" if guess else
                    "name a host declared under a Slurm pool's hosts:, or {pool: <name>} for a pool's first node")
            return Issue(where + ("host",), f"no declared host {ref.host!r}", hint)
        what, field = f"host {ref.host} (pool {pool.name})", "host"
    if pool.site not in sites:
        return Issue(where + (field,), f"{what} is at site {pool.site}, not {here}",
                     f"a {role} runs at its cluster's sites: name a Slurm pool or host there")
    if pool.scheduler not in schedulers:
        return Issue(where + (field,), f"{what} is scheduled by {pool.scheduler}, not Slurm",
                     f"a {role} runs on a node of one of the cluster's Slurm pools")
    return None


def _node_of(ctx: Context, ref) -> tuple:
    """The node a valid host reference resolves to, comparable across both forms: a declared
    host by name, a pool without declared hosts by its first planned node."""
    if ref.host is not None:
        return ("host", ref.host)
    pool = next(p for p in ctx.factory.pools if p.name == ref.pool)
    return ("host", pool.hosts[0].name) if pool.hosts else ("first", pool.name)


@check("slurm-controller", "refs", "error",
       "slurmctld runs on a node of one of its cluster's Slurm pools, and a backup on another node")
def slurm_controller(ctx: Context):
    for i, entry, sites, pools in _slurm_entries(ctx):
        resolved = {}
        for role in ("controller", "backup"):
            ref = getattr(entry, role)
            if ref is None:
                continue
            issue = _controller_issue(ctx, ref, sites, ("slurm", "clusters", i, role))
            if issue:
                yield issue
            else:
                resolved[role] = _node_of(ctx, ref)
        if "backup" not in resolved or (entry.controller is not None and "controller" not in resolved):
            continue
        primary = resolved.get("controller") or (("host", pools[0].hosts[0].name) if pools[0].hosts
                                                  else ("first", pools[0].name))
        if resolved["backup"] == primary:
            kind, name = primary
            node = name if kind == "host" else f"the first node of pool {name}"
            yield Issue(("slurm", "clusters", i, "backup"), f"the backup is the primary controller ({node})",
                        "a backup takes over only from another host: name a different declared host or "
                        "another pool's first node" + ("" if entry.controller else
                                                       " (the primary is the cluster's first Slurm pool's first node)"))


@check("slurm-login", "refs", "error",
       "a login node is a node of one of its cluster's Slurm pools (or a pool with no scheduler) at its sites, "
       "listed once")
def slurm_login(ctx: Context):
    for i, entry, sites, _ in _slurm_entries(ctx):
        seen: dict[tuple, int] = {}
        for j, ref in enumerate(entry.login):
            where = ("slurm", "clusters", i, "login", j)
            issue = _controller_issue(ctx, ref, sites, where, "login node", ("slurm", "none"))
            if issue:
                yield issue
                continue
            node = _node_of(ctx, ref)
            if node in seen:
                yield Issue(where, f"login[{j}] is the same node as login[{seen[node]}]", "list each login node once")
            seen.setdefault(node, j)


def _loopback(host: str) -> str:
    """Why ``host`` cannot be a slurmdbd that slurmctld reaches from the controller, or ''."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or name == "localhost.localdomain":
        return f"{host} is the controller itself"
    labels = name.split(".")
    if all(label.isdigit() for label in labels):
        try:
            addr = ipaddress.IPv4Address(name)
        except ValueError:
            return f"{host} is neither a host name (its labels are all digits) nor an IPv4 address"
        if addr.is_loopback:
            return f"{host} is the controller itself"
        if addr.is_unspecified or addr.is_multicast or addr.is_reserved or addr == ipaddress.IPv4Address(
                "255.255.255.255"):
            return f"{host} is not a host's address (unspecified, multicast or reserved)"
    return ""


@check("slurm-accounting", "refs", "error",
       "slurmctld sends job records to slurmdbd: on the primary controller (local) or at a host the site runs")
def slurm_accounting(ctx: Context):
    for i, entry, _, _ in _slurm_entries(ctx):
        acct = entry.accounting
        where = ("slurm", "clusters", i, "accounting")
        if acct.database == "external" and acct.host is None:
            yield Issue(where, "external accounting needs the slurmdbd's host",
                        "add host: (and port: when it is not 6819), or use database: local")
        elif acct.database == "local" and (acct.host is not None or acct.port is not None):
            field = "host" if acct.host is not None else "port"
            yield Issue(where + (field,), "local accounting runs slurmdbd on the primary controller; host and port "
                        "are for database: external", f"remove {field}:, or set database: external")
        elif acct.host is not None and (why := _loopback(acct.host)):
            yield Issue(where + ("host",), f"{why}: slurmctld could not reach an external slurmdbd there",
                        "give the slurmdbd host's name or address, or use database: local")


@check("slurm-partition", "refs", "error",
       "the default partition is one of the cluster's own Slurm pools")
def slurm_partition(ctx: Context):
    for i, entry, sites, pools in _slurm_entries(ctx):
        name = entry.default_partition
        if name is None or name in {p.name for p in pools}:
            continue
        where = ("slurm", "clusters", i, "default_partition")
        pool = next((p for p in ctx.factory.pools if p.name == name), None)
        if pool is None:
            close = ctx.catalog.suggest([p.name for p in ctx.factory.pools], name)
            yield Issue(where, f"unknown pool {name!r}",
                        f"did you mean {close!r}?" if close else f"name one of {', '.join(p.name for p in pools)}")
        elif pool.site not in sites:
            here = sites[0] if len(sites) == 1 else f"one of {', '.join(sites)}"
            yield Issue(where, f"pool {name} is at site {pool.site}, not {here}: it is in another Slurm cluster",
                        f"name one of {', '.join(p.name for p in pools)}, or add site {pool.site} to this cluster")
        else:
            yield Issue(where, f"pool {name} is scheduled by {pool.scheduler}, so it has no Slurm partition",
                        f"name one of {', '.join(p.name for p in pools)}")


def _qos_settings(qos) -> tuple:
    return (qos.priority, qos.max_wall, qos.max_jobs_per_user, qos.max_gpus_per_user)


@check("slurm-qos", "refs", "both",
       "a QoS is one record of slurmdbd: one name per cluster, one definition per shared slurmdbd, and a "
       "priority only counts with fair-share's QoS weight")
def slurm_qos(ctx: Context):
    federated = slurm_plan.federation_name(ctx.factory) is not None
    shared: dict[str, tuple[int, int, tuple]] = {}  # a federation's one slurmdbd: name -> (entry, index, settings)
    for i, entry, _, _ in _slurm_entries(ctx):
        seen: dict[str, int] = {}
        share = entry.fairshare
        weighted = share is not None and share.enabled and share.weights.qos > 0
        for j, qos in enumerate(entry.qos):
            where = ("slurm", "clusters", i, "qos", j)
            if qos.name in seen:
                yield Issue(where + ("name",), f"QoS {qos.name} is listed twice (also qos[{seen[qos.name]}])",
                            "merge the two entries: slurmdbd holds one QoS of a name")
                continue
            seen[qos.name] = j
            if federated and qos.name in shared and shared[qos.name][2] != _qos_settings(qos):
                a, b, _ = shared[qos.name]
                yield Issue(where + ("name",), f"QoS {qos.name} differs from slurm.clusters[{a}].qos[{b}]: the "
                            "clusters of a federation share one slurmdbd, which holds one QoS of a name",
                            "give both the same settings, or another name")
            shared.setdefault(qos.name, (i, j, _qos_settings(qos)))
            if qos.priority and not weighted:
                yield Issue(where + ("priority",), f"QoS {qos.name}'s priority counts only in fair-share's "
                            "multifactor priority with a QoS weight, which this cluster does not have",
                            "add fairshare: {} (weights.qos defaults to 10000), or leave priority out", "warning")


@check("slurm-fairshare", "refs", "error",
       "Slurm's job priority is a 32-bit number: the fair-share weights must add up to no more")
def slurm_fairshare(ctx: Context):
    for i, entry, _, _ in _slurm_entries(ctx):
        share = entry.fairshare
        if share is None or not share.enabled:
            continue
        w = share.weights
        total = w.fairshare + w.age + w.qos + w.job_size
        if total > PRIORITY_MAX:
            yield Issue(("slurm", "clusters", i, "fairshare", "weights"),
                        f"the weights add up to {total:,}, more than a job priority holds ({PRIORITY_MAX:,})",
                        "scale every weight down by the same factor: only their ratios matter")


@check("slurm-federation", "refs", "error",
       "a Slurm federation is the clusters of one slurmdbd: layout: federation names it, and its first "
       "cluster's accounting is every member's")
def slurm_federation(ctx: Context):
    slurm = ctx.factory.slurm
    if slurm.layout != "federation":
        if slurm.federation is not None:
            yield Issue(("slurm", "federation"), f"a federation name needs layout: federation (not {slurm.layout})",
                        "set layout: federation, or remove federation:")
        return
    clusters = slurm_plan.memberships(ctx.factory)
    if not clusters:
        return
    first = clusters[0]
    for i, entry, _, _ in _slurm_entries(ctx):
        if i != first.index and "accounting" in entry.model_fields_set:
            owner = (f"slurm.clusters[{first.index}]" if first.entry is not None else
                     f"the cluster of site {first.sites[0]}")
            yield Issue(("slurm", "clusters", i, "accounting"),
                        f"the clusters of a federation share one slurmdbd: the first cluster's ({first.name}), "
                        "so this one's accounting is set there",
                        f"remove accounting: here, and set it on {owner}")


@check("host-addresses", "refs", "warning",
       "PXE leases and IMEX peer lists need each declared host's address")
def host_addresses(ctx: Context):
    for i, pool in enumerate(ctx.factory.pools):
        missing = [j for j, host in enumerate(pool.hosts) if host.ip is None]
        if missing:
            j = missing[0]
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            yield Issue(("pools", i, "hosts", j), f"host {pool.hosts[j].name}{more} has no ip: `aifactory pxe` "
                        "cannot give it a static lease, and Ansible and IMEX can reach it only by name",
                        "add ip: with its address on the boot network", "warning")


@check("references", "refs", "error",
       "pools name their site and fabric; a typo must not create a new one")
def references(ctx: Context):
    sites = [s.name for s in ctx.factory.sites]
    fabrics = [f.name for f in ctx.factory.fabrics]
    for i, pool in enumerate(ctx.factory.pools):
        if pool.site not in sites:
            close = ctx.catalog.suggest(sites, pool.site)
            yield Issue(("pools", i, "site"), f"unknown site {pool.site!r}",
                        f"did you mean {close!r}?" if close else f"declare it under sites: (known: {', '.join(sites)})")
        if pool.fabric and pool.fabric not in fabrics:
            close = ctx.catalog.suggest(fabrics, pool.fabric)
            yield Issue(("pools", i, "fabric"), f"unknown fabric {pool.fabric!r}",
                        f"did you mean {close!r}?" if close else "declare it under fabrics:")


@check("catalog-ids", "refs", "error",
       "systems and switches come from the catalog, which holds their power, GPUs and ports")
def catalog_ids(ctx: Context):
    for i, pool in enumerate(ctx.factory.pools):
        if ctx.system(pool) is None:
            close = ctx.catalog.suggest(ctx.catalog.systems, pool.system)
            yield Issue(("pools", i, "system"), f"unknown system {pool.system!r}",
                        f"did you mean {close!r}?" if close else "run `aifactory catalog systems` for the list")
    for i, fabric in enumerate(ctx.factory.fabrics):
        if fabric.switch and fabric.switch not in ctx.catalog.switches:
            close = ctx.catalog.suggest(ctx.catalog.switches, fabric.switch)
            yield Issue(("fabrics", i, "switch"), f"unknown switch {fabric.switch!r}",
                        f"did you mean {close!r}?" if close else f"known: {', '.join(ctx.catalog.switches)}")


@check("mig-profiles", "refs", "error",
       "a pool's MIG layout must be one its GPU can hold: MIG on that GPU, profiles it has, at most 7 compute "
       "and 8 memory slices and each profile's instance limit per GPU")
def mig_profiles(ctx: Context):
    """Profiles, slices and limits per GPU are the catalog's ``mig_profiles`` table (NVIDIA MIG
    User Guide, "Supported MIG Profiles"). The check counts slices; where a fitting combination
    still has no placement on the GPU, nvidia-smi refuses it when the nvidia_mig role applies it."""
    for i, pool in enumerate(ctx.factory.pools):
        system = ctx.system(pool)
        if not pool.mig or system is None:
            continue
        where = ("pools", i, "mig")
        gpu = system.gpu
        profiles = ctx.catalog.mig_profiles.get(gpu.id)
        if not profiles:
            capable = ", ".join(sorted(ctx.catalog.mig_profiles)) or "none"
            yield Issue(where, f"pool {pool.name}: {gpu.name} ({gpu.id}) has no MIG profiles in the catalog, so "
                        "it cannot be partitioned", f"remove mig:, or use a system whose GPU has MIG ({capable}); "
                        "a GPU the catalog lacks gets its profiles under catalog: mig_profiles")
            continue
        known = ", ".join(profiles)
        bad = False
        for profile, count in pool.mig.items():
            row = profiles.get(profile)
            if row is None:
                close = ctx.catalog.suggest(profiles, profile)
                yield Issue(where + (profile,), f"pool {pool.name}: {gpu.id} has no MIG profile {profile!r}",
                            (f"did you mean {close!r}? " if close else "") + f"{gpu.id} profiles: {known}")
                bad = True
            elif count > row.max_instances:
                yield Issue(where + (profile,), f"pool {pool.name}: one {gpu.id} holds at most {row.max_instances} "
                            f"{profile} instance{'s' if row.max_instances > 1 else ''}, not {count}",
                            f"lower the count to {row.max_instances} or less")
                bad = True
        if bad:
            continue
        shadowed = [p for p in pool.mig if p.endswith("+me") and p[:-3] in pool.mig]
        if shadowed and pool.scheduler == "slurm":
            # Slurm types a MIG instance by a substring of the profile NVML reports
            # (https://slurm.schedmd.com/gres.html#MIG_Management, checked 2026-12-03): a type
            # 1g.10gb would also match 1g.10gb+me instances, and the counts per type would not hold.
            yield Issue(where, f"pool {pool.name}: {shadowed[0][:-3]} and {shadowed[0]} on one GPU cannot be told "
                        "apart by Slurm, which matches a MIG type as a substring of the profile name",
                        f"use {shadowed[0][:-3]} only, or another profile beside {shadowed[0]}")
            continue
        rows = [(profiles[p], n) for p, n in pool.mig.items()]
        compute = sum(r.compute_slices * n for r, n in rows)
        memory = sum(r.memory_slices * n for r, n in rows)
        layout = ", ".join(f"{n} x {r.profile}" for r, n in rows)
        if compute > MIG_COMPUTE_SLICES:
            yield Issue(where, f"pool {pool.name}: {layout} takes {compute} compute slices; a {gpu.id} in MIG mode "
                        f"has {MIG_COMPUTE_SLICES}", "use fewer or smaller instances per GPU")
        elif memory > MIG_MEMORY_SLICES:
            yield Issue(where, f"pool {pool.name}: {layout} takes {memory} memory slices; a {gpu.id} in MIG mode has "
                        f"{MIG_MEMORY_SLICES}", "use fewer instances, or profiles with less memory per instance")


@check("provider-system", "refs", "error",
       "an instance type exists on one cloud only, and a cloud pool needs its region")
def provider_system(ctx: Context):
    sites = {s.name: s for s in ctx.factory.sites}
    for i, pool in enumerate(ctx.factory.pools):
        system = ctx.system(pool)
        expected = providers.get(pool.provider).systems_from  # the spec accepts known providers only
        if system and system.provider != expected:
            yield Issue(("pools", i, "system"), f"{pool.system} is a {system.provider} system, not {pool.provider}",
                        f"set provider: {system.provider}, or pick a {pool.provider} system")
        site = sites.get(pool.site)
        if site and site.provider and site.provider != pool.provider:
            yield Issue(("pools", i, "provider"), f"site {site.name} is a {site.provider} site",
                        "a pool's provider must match its site's provider")
        if not on_site(pool.provider) and not (pool.region or (site and site.region)):
            yield Issue(("pools", i, "region"), "a cloud pool needs a region",
                        "set region on the pool or on its site")
        if not on_site(pool.provider) and pool.hosts:
            yield Issue(("pools", i, "hosts"), "hosts (MAC/BMC) apply to on-prem pools only",
                        "cloud nodes are created by the provider")
        if on_site(pool.provider) and pool.nodes != "fill" and len(pool.hosts) > pool.nodes:
            yield Issue(("pools", i, "hosts"), f"{len(pool.hosts)} hosts listed for {pool.nodes} nodes",
                        "raise nodes or remove hosts")


@check("provider-zones", "refs", "error",
       "a cloud node group with a placement group or zonal GPU networks lives in one zone the pool names",
       providers=providers.where(lambda p: p.zone_required is not None))
def provider_zones(ctx: Context):
    for i, pool in enumerate(ctx.factory.pools):
        provider = providers.find(pool.provider)
        why = provider.zone_required if provider else None
        if why and not pool.zones:
            yield Issue(("pools", i, "zones"), f"{pool.provider} pools need a zone: {why}",
                        "add zones: [<zone of the pool's region>]")


@check("stack-region", "refs", "error",
       "a cloud pool is built in its Pulumi stack's region: a site in another region would be built in the wrong "
       "place, or fail on its zones", providers=providers.where(lambda p: p.region_key is not None))
def stack_region(ctx: Context):
    """For a spec inside a Pulumi project folder (stacks/<name>/factory.yaml), every stack config
    beside it must set each used cloud's region to the region of that cloud's sites."""
    from pathlib import Path

    from ..errors import AifactoryError, SpecError
    from ..stackfiles import read_stack, valid_stack_name

    folder = Path(ctx.doc.file).parent
    if not ctx.doc.file or not (folder / "Pulumi.yaml").is_file():
        return
    sites = {s.name: s for s in ctx.factory.sites}
    for path in sorted(folder.glob("Pulumi.*.yaml")):
        stack = path.name[len("Pulumi."):-len(".yaml")]
        if not valid_stack_name(stack):
            continue
        try:
            files = read_stack(folder, stack, plain_only=False)
        except (AifactoryError, SpecError):
            continue  # `aifactory preview` reports a malformed stack file with its line
        for i, pool in enumerate(ctx.factory.pools):
            provider = providers.find(pool.provider)
            key = provider.region_key if provider else None
            site = sites.get(pool.site)
            wanted = pool.region or (site.region if site else None)
            have = files.config.get(key) if key else None
            if wanted is None or not isinstance(have, str) or have.lower() == wanted.lower():
                continue
            line = files.key_lines.get(key)
            where = f"{path.name}:{line}" if line else path.name
            yield Issue(("pools", i, "region") if pool.region else ("sites", list(sites).index(pool.site), "region"),
                        f"pool {pool.name} is in {wanted}, but stack {stack} builds {pool.provider} resources in "
                        f"{have} ({key} in {where})",
                        f"set {key} to {wanted} in {path.name}, or put the pool in a site of {have}")
            break  # one finding per stack file is enough to show it


@check("provider-images", "refs", "error",
       "each cloud boots nodes from an image for the locked OS and the system's CPU architecture",
       providers=providers.where(lambda p: p.images is not None))
def provider_images(ctx: Context):
    os_name = ctx.factory.software.os
    for i, pool in enumerate(ctx.factory.pools):
        system = ctx.system(pool)
        provider = providers.find(pool.provider)
        if system is None or provider is None or provider.image(os_name, system.cpu_arch):
            continue
        offered = provider.os_names(system.cpu_arch)
        hint = (f"pick an OS {pool.provider} publishes for {system.cpu_arch} nodes: {', '.join(offered)}" if offered
                else f"{pool.provider} has no image for {system.cpu_arch} nodes; use a system of another architecture")
        yield Issue(("software", "os"), f"{pool.provider} has no {os_name} image for {system.cpu_arch} "
                    f"nodes (pool {pool.name}, {pool.system})", hint)
    for i, pool in enumerate(ctx.factory.pools):
        if pool.provider == "oci" and not pool.system.startswith("BM.GPU"):
            yield Issue(("pools", i, "system"), f"{pool.system}: OCI cluster networks take bare-metal BM.GPU "
                        "shapes only", "use a BM.GPU shape such as BM.GPU.H100.8")


@check("fabric-compat", "refs", "error",
       "a system joins only the fabrics it has NICs for; an on-prem fabric needs a switch to be sized")
def fabric_compat(ctx: Context):
    fabrics = {f.name: (i, f) for i, f in enumerate(ctx.factory.fabrics)}
    members: dict[str, list] = {}
    for i, pool in enumerate(ctx.factory.pools):
        system = ctx.system(pool)
        if not pool.fabric or pool.fabric not in fabrics or system is None:
            continue
        _, fabric = fabrics[pool.fabric]
        members.setdefault(fabric.name, []).append(pool)
        if fabric.type not in system.fabrics:
            if system.provider == "onprem":
                hint = f"on-prem systems join {', '.join(ONPREM_FABRICS)} fabrics"
            else:
                hint = f"{pool.system} supports {' or '.join(system.fabrics)}"
            if fabric.type == "efa" and system.provider == "aws":
                hint = f"{pool.system} has no EFA interfaces; use an EFA instance type such as p5.48xlarge"
            yield Issue(("pools", i, "fabric"), f"{pool.system} cannot use {a_fabric(fabric.type)} fabric", hint)
    for name, pools in members.items():
        idx, fabric = fabrics[name]
        if len({p.site for p in pools}) > 1:
            yield Issue(("fabrics", idx, "name"), f"fabric {name} spans sites {sorted({p.site for p in pools})}",
                        "a compute fabric cannot span sites; declare one fabric per site")
        if len({p.provider for p in pools}) > 1:
            yield Issue(("fabrics", idx, "name"), f"fabric {name} mixes providers",
                        "declare one fabric per provider")
        onsite = all(on_site(p.provider) for p in pools)
        if onsite and fabric.type in ONPREM_FABRICS and not fabric.switch:
            yield Issue(("fabrics", idx, "type"), f"on-prem {fabric_name(fabric.type)} fabric {name} needs a switch model",
                        f"set switch: (known: {', '.join(ctx.catalog.switches)})")
    for idx, fabric in enumerate(ctx.factory.fabrics):
        switch = ctx.catalog.switches.get(fabric.switch or "")
        if switch is None:
            continue
        want = "infiniband" if fabric.type == "infiniband" else "ethernet"
        if fabric.type in ONPREM_FABRICS and switch.fabric != want:
            yield Issue(("fabrics", idx, "switch"), f"{switch.id} is {a_fabric(switch.fabric)} switch, not {fabric_name(want)}",
                        "pick a switch of the fabric's kind")
        su = fabric.su_nodes or switch.ports // 2
        if 2 * su > switch.ports:
            yield Issue(("fabrics", idx, "su_nodes"), f"{su} node slots per SU exceed half of {switch.id}'s "
                        f"{switch.ports} ports", f"at most {switch.ports // 2} for a non-blocking leaf")
        if fabric.subnet_manager and fabric.type != "infiniband":
            yield Issue(("fabrics", idx, "subnet_manager"), "a subnet manager applies to InfiniBand only",
                        "remove subnet_manager")


@check("admin-access", "refs", "error",
       "admin ports open to the whole internet are the first thing scanned")
def admin_access(ctx: Context):
    for i, cidr in enumerate(ctx.factory.access.admin_cidrs):
        if cidr.endswith("/0"):
            yield Issue(("access", "admin_cidrs", i), f"{cidr} opens SSH to the whole internet",
                        "list the admin networks or a bastion's address; nodes never take public SSH")


@check("fill", "refs", "error",
       "nodes: fill sizes a pool to the power its site has left, so it needs an on-site budget")
def fill(ctx: Context):
    sites = {s.name: s for s in ctx.factory.sites}
    per_site = Counter()
    for i, pool in enumerate(ctx.factory.pools):
        if pool.nodes != "fill":
            continue
        per_site[pool.site] += 1
        site = sites.get(pool.site)
        if not on_site(pool.provider):
            yield Issue(("pools", i, "nodes"), "nodes: fill needs a power budget; cloud pools have none",
                        "give a node count")
        elif site and site.power_mw is None:
            yield Issue(("pools", i, "nodes"), f"site {site.name} has no power_mw to fill", "set power_mw on the site")
        if per_site[pool.site] == 2:
            yield Issue(("pools", i, "nodes"), f"a second 'fill' pool at site {pool.site}",
                        "only one pool per site can fill the remaining power")


# --- software ---------------------------------------------------------------------------

def _sw(ctx: Context, field: str) -> tuple:
    return ("software", field) if field in ctx.factory.software.model_fields_set else ("software",)


@check("driver-branch", "software", "both",
       "a driver branch must be catalogued, with a release, and warns past its end of life")
def driver_branch(ctx: Context):
    lock, sw = ctx.lock, ctx.factory.software
    if lock is None or lock.driver_branch is None:
        return
    row = ctx.catalog.branches.get(lock.driver_branch)
    if sw.driver and sw.driver_branch and sw.driver.split(".")[0] != sw.driver_branch:
        yield Issue(("software", "driver"), f"driver {sw.driver} is not on branch {sw.driver_branch}",
                    "drop one of driver / driver_branch, or make them agree")
    if row is None:
        yield Issue(_sw(ctx, "driver_branch"), f"unknown driver branch {lock.driver_branch}",
                    f"known branches: {', '.join(ctx.catalog.branches)}")
        return
    if lock.driver is None:
        yield Issue(_sw(ctx, "driver_branch"), f"branch {row.branch} has no catalogued release",
                    "pin the exact version with software.driver")
    supported = sorted((b for b in ctx.catalog.branches.values() if b.kind == "LTSB" and b.status == "supported"
                        and b.latest and not (b.eol and _dt.date.fromisoformat(b.eol) < ctx.today)),
                       key=lambda b: int(b.branch))
    hint = f"move to a supported LTSB such as R{supported[-1].branch}" if supported else "move to a supported branch"
    if row.eol and _dt.date.fromisoformat(row.eol) < ctx.today:
        yield Issue(_sw(ctx, "driver_branch"), f"driver branch R{row.branch} reached end of life on {row.eol}",
                    hint, "warning")
    elif not row.eol and row.status != "supported":  # new-feature branches end with no date published
        yield Issue(_sw(ctx, "driver_branch"), f"driver branch R{row.branch} is no longer supported by NVIDIA "
                    f"({row.status})", hint, "warning")


@check("cuda-driver", "software", "both",
       "each CUDA release needs a minimum driver; minor-version compatibility is a warning")
def cuda_driver(ctx: Context):
    lock = ctx.lock
    if lock is None or lock.cuda is None:
        return
    cuda = ctx.catalog.cuda_release(lock.cuda)
    if cuda is None:
        yield Issue(_sw(ctx, "cuda"), f"unknown CUDA release {lock.cuda}",
                    f"known: {', '.join(ctx.catalog.cuda)}")
        return
    if lock.driver is None:
        return
    driver = version_key(lock.driver)
    if driver < version_key(cuda.compat_min_driver):
        yield Issue(_sw(ctx, "cuda"), f"CUDA {cuda.cuda} needs driver >= {cuda.compat_min_driver} (its own "
                    f"minimum is {cuda.min_driver}); the lock has {lock.driver}",
                    f"raise driver_branch, or use a CUDA release the driver supports")
    elif driver < version_key(cuda.min_driver):
        yield Issue(_sw(ctx, "cuda"), f"CUDA {cuda.cuda} runs on driver {lock.driver} only through minor-version "
                    f"compatibility (no PTX JIT of newer code); its own minimum is {cuda.min_driver}",
                    "raise the driver for full support", "warning")


@check("arch-minimum", "software", "error",
       "Blackwell and later need a driver branch that knows them")
def arch_minimum(ctx: Context):
    lock = ctx.lock
    if lock is None or lock.driver is None or lock.cuda is None:
        return
    for i, pool, system in ctx.nvidia_pools():
        arch = ctx.catalog.architectures[system.gpu.architecture]
        if arch.min_driver and version_key(lock.driver) < version_key(arch.min_driver):
            yield Issue(("pools", i, "system"), f"{system.gpu.name} ({arch.architecture}) needs driver >= "
                        f"{arch.min_driver}; the lock has {lock.driver}", "set software.driver_branch to 580")
        first = max((c for c in (arch.first_cuda, system.gpu.first_cuda) if c), key=version_key, default=None)
        if first and version_key(lock.cuda) < version_key(first):
            target = f"compute capability {system.gpu.compute_capability}" if first == system.gpu.first_cuda \
                and first != arch.first_cuda else arch.architecture
            yield Issue(("pools", i, "system"), f"{system.gpu.name} ({target}) needs CUDA >= "
                        f"{first}; the lock has {lock.cuda}", "raise software.cuda")


@check("open-modules", "software", "error",
       "Blackwell and GH200 run only on the open GPU kernel modules")
def open_modules(ctx: Context):
    lock = ctx.lock
    if lock is None or lock.driver is None:
        return
    for i, pool, system in ctx.nvidia_pools():
        if system.gpu.open_modules_required and not lock.open_kernel_modules:
            yield Issue(_sw(ctx, "open_kernel_modules") if ctx.factory.software.open_kernel_modules is not None
                        else ("pools", i, "system"),
                        f"{system.gpu.name} is supported only by the open GPU kernel modules",
                        "set software.open_kernel_modules: true (nvidia-open / *-open packages)")


@check("fabric-manager", "software", "error",
       "fabric manager must equal the driver version exactly, or it refuses to start")
def fabric_manager(ctx: Context):
    lock, sw = ctx.lock, ctx.factory.software
    if lock is None or lock.driver is None:
        return
    needs = [(i, s) for i, _, s in ctx.nvidia_pools() if s.fabric_manager]
    if sw.fabric_manager and needs and sw.fabric_manager != lock.driver:
        yield Issue(("software", "fabric_manager"),
                    f"nvidia-fabricmanager {sw.fabric_manager} does not match driver {lock.driver}",
                    "fabric manager and libnvidia-nscq must equal the driver version exactly, or FM refuses "
                    "to start and CUDA fails with error 802; remove the pin to follow the driver")
    if sw.fabric_manager and not needs:
        imex = [i for i, _, s in ctx.nvidia_pools() if s.imex]
        if imex:
            yield Issue(("software", "fabric_manager"), "NVL72 compute trays run IMEX, not a node-local fabric "
                        "manager (the NVLink switch trays' NMX controller manages the fabric)",
                        "remove software.fabric_manager; set imex: true or leave it unset")
        else:
            yield Issue(("software", "fabric_manager"), "no pool has NVSwitch; fabric manager is not installed",
                        "remove software.fabric_manager", "warning")


def _required_daemon(ctx: Context, field: str, needed: str, unneeded: str):
    """A daemon that some systems require (``System.<field>``) and the spec may switch off or on."""
    wanted = getattr(ctx.factory.software, field)
    needs = [(i, s) for i, _, s in ctx.nvidia_pools() if getattr(s, field)]
    if needs and wanted is False:
        i, system = needs[0]
        yield Issue(("software", field), f"{system.id} (pools[{i}]) {needed}", f"remove {field}: false")
    if wanted and not needs:
        yield Issue(("software", field), unneeded, f"remove {field}: true", "warning")


@check("nvlsm", "software", "both",
       "HGX B200 and later need the NVLink subnet manager next to fabric manager")
def nvlsm(ctx: Context):
    return _required_daemon(ctx, "nvlsm", "needs NVLSM, the NVLink subnet manager started with the fabric "
                            "manager on HGX B200 and later", "no pool needs NVLSM (HGX/DGX B200 and later only)")


@check("imex", "software", "both",
       "NVL72 compute trays share GPU memory across the rack through IMEX")
def imex(ctx: Context):
    return _required_daemon(ctx, "imex", "is an NVLink multi-node system; its compute trays need nvidia-imex",
                            "no pool spans an NVLink multi-node domain; IMEX has nothing to do")


@check("packages", "software", "error",
       "every package of the lock must have a name in the catalog table packages for the node OS and branch")
def package_names(ctx: Context):
    lock = ctx.lock
    if lock is None or lock.driver is None:
        return
    from . import software  # the one source of package names (render, inventory and roles use it)

    try:
        software.packages(lock, ctx.catalog)
    except CatalogError as exc:
        component = next((c for c in ("imex", "fabric_manager", "nscq", "nvlsm", "nccl", "cuda_toolkit")
                          if f" {c} " in f" {exc} "), None)
        field = component if component and component in ctx.factory.software.model_fields_set else "driver_branch"
        yield Issue(_sw(ctx, field), f"{exc} (R{lock.driver_branch} on {lock.os})",
                    "choose a driver branch the table covers for this OS (aifactory catalog packages), "
                    "or add the row as a catalog overlay")


@check("dcgm", "software", "error",
       "DCGM 4 is packaged per CUDA major the driver reports; DCGM 3 does not work with R580")
def dcgm(ctx: Context):
    lock, sw = ctx.lock, ctx.factory.software
    if lock is None or lock.cuda is None or lock.driver is None:
        return
    major = int(lock.cuda.split(".")[0])
    row = ctx.catalog.dcgm_for(lock.dcgm_major, major)
    if row is None:
        yield Issue(_sw(ctx, "dcgm"), f"DCGM {lock.dcgm_major} has no build for CUDA {major}",
                    "use dcgm: 4 (datacenter-gpu-manager-4-cuda<MAJOR>)")
        return
    if row.below_driver and version_key(lock.driver) >= version_key(row.below_driver):
        yield Issue(_sw(ctx, "dcgm"), f"DCGM {row.dcgm_major} does not work with driver {lock.driver} "
                    f"(>= {row.below_driver})", "use dcgm: 4; purge datacenter-gpu-manager (3.x) first")
    if sw.dcgm_package and sw.dcgm_package != row.package:
        yield Issue(("software", "dcgm_package"), f"{sw.dcgm_package} does not match CUDA {lock.cuda}",
                    f"use {row.package} (DCGM {row.dcgm_major} package for CUDA {major})")
    if version_key(lock.driver) < version_key(row.min_driver):
        yield Issue(_sw(ctx, "dcgm"), f"{row.package} needs driver >= {row.min_driver}", "raise the driver")


@check("gdrcopy", "software", "error",
       "a pinned GDRCopy release must be published in NVIDIA's redist folder for the lock's CUDA major")
def gdrcopy(ctx: Context):
    lock, pin = ctx.lock, ctx.factory.software.gdrcopy
    if lock is None or lock.driver is None or not pin or lock.gdrcopy is not None:
        return
    if not lock.cuda:
        yield Issue(("software", "gdrcopy"), f"GDRCopy {pin} is published per CUDA major, and the lock has no CUDA",
                    "pin software.cuda")
        return
    major = int(lock.cuda.split(".")[0])
    known = sorted((r.version for r in ctx.catalog.rows["gdrcopy"] if r.cuda_major == major), key=version_key)
    yield Issue(("software", "gdrcopy"), f"the catalog has no GDRCopy {pin} for CUDA {major} (table gdrcopy)",
                f"use one of {', '.join(known)}" if known else
                f"the catalog has no GDRCopy for CUDA {major}; lock another CUDA or add the row as a catalog overlay")


@check("non-nvidia", "software", "warning",
       "the NVIDIA software lock does not apply to other vendors' GPUs")
def non_nvidia(ctx: Context):
    for i, pool in enumerate(ctx.factory.pools):
        system = ctx.system(pool)
        if system and system.gpu.vendor != "nvidia":
            yield Issue(("pools", i, "system"), f"{system.gpu.name} is not an NVIDIA GPU; the NVIDIA software "
                        "lock (driver, CUDA, DCGM, NCCL) is not applied to this pool",
                        "manage ROCm for this pool separately", "warning")


@check("nccl-build", "software", "warning",
       "libnccl2 is built per CUDA minor; a build for a newer minor than the lock outruns its driver")
def nccl_build(ctx: Context):
    lock = ctx.lock
    if lock is None or lock.driver is None or not lock.cuda or lock.nccl or ctx.factory.software.nccl:
        return
    yield Issue(_sw(ctx, "cuda"), f"the catalog has no libnccl2 build at or below CUDA {lock.cuda}, so NCCL is "
                "not pinned", "set software.nccl to a build for this CUDA minor, or lock a newer CUDA", "warning")


# --- capacity ---------------------------------------------------------------------------

@check("site-power", "capacity", "error",
       "IT load times PUE must fit the site's power budget")
def site_power(ctx: Context):
    index = {s.name: i for i, s in enumerate(ctx.factory.sites)}
    for power in ctx.sites or []:
        if power.budget_kw is not None and power.facility_kw > power.budget_kw:
            yield Issue(("sites", index[power.name], "power_mw"),
                        f"site {power.name} needs {power.facility_kw / 1000:,.2f} MW (IT {power.it_kw / 1000:,.2f} MW "
                        f"x PUE {power.pue}) but its budget is {power.budget_kw / 1000:,.2f} MW",
                        "reduce nodes, raise power_mw, or use nodes: fill")
    for i, pool in enumerate(ctx.factory.pools):
        planned = next((p for p in ctx.pools or [] if p.name == pool.name), None)
        if pool.nodes == "fill" and planned is not None and planned.nodes == 0:
            yield Issue(("pools", i, "nodes"), f"no power left at site {pool.site} for even one "
                        f"{'rack' if ctx.system(pool).rack_scale else 'node'} of {pool.system}",
                        "raise the site's power_mw or shrink the other pools")
        elif pool.nodes == "fill" and planned is not None and len(pool.hosts) > planned.nodes:
            yield Issue(("pools", i, "hosts"), f"the site's power fills {planned.nodes:,} nodes, fewer than the "
                        f"{len(pool.hosts)} hosts declared", "raise the site's power_mw, or give nodes as a number")


# topology.conf(5) per release (SchedMD/slurm src/plugins/topology/block); the release itself is
# the lock's (SoftwareLock.slurm, from plan.software.SLURM_BY_OS):
BLOCK_TOPOLOGY_FROM = (23, 11)  # topology/block; BlockLevels, every block the same node count (fatal otherwise)
BLOCK_SIZES_FROM = (24, 5)  # BlockSizes replaces BlockLevels; a block below the base size is fatal
SHORT_BLOCK_FROM = (25, 5)  # a block below the base size is accepted and counted as a whole one
NVL72_DOMAIN_GPUS = 72
IMEX_MAX_NODES = 18  # nodes per IMEX domain on GB200/GB300 (k8s-dra-driver-gpu defaultMaxNodesPerIMEXDomain)


def slurm_name(release: tuple[int, int]) -> str:
    return f"{release[0]}.{release[1]:02d}"


def is_nvl72(pool: PoolPlan) -> bool:
    return pool.nvlink_domain_gpus >= NVL72_DOMAIN_GPUS


def has_switch_tree(fabric: Optional[FabricPlan]) -> bool:
    """A fabric the factory builds and sizes, whose switches Slurm's topology/tree can describe."""
    return (fabric is not None and fabric.managed_by == "factory" and fabric.type in ("infiniband", "roce")
            and bool(fabric.switch))


class SlurmTopology(NamedTuple):
    """Whether one Slurm cluster (the Slurm pools of one site) gets topology/block.

    ``reason`` says why not: ``unknown`` (no known Slurm release), ``release`` (before 23.11),
    ``mixed`` (other pools there have a switch tree, named in ``pools``), ``sizes`` (NVLink
    domains of different node counts), ``short`` (no whole NVLink domain before 25.05).
    """

    block: bool
    reason: str = ""
    pools: tuple[str, ...] = ()


def slurm_topology_of(pools: list[PoolPlan], fabrics: list[FabricPlan],
                      release: Optional[tuple[int, int]]) -> SlurmTopology:
    """The topology plugin of the cluster holding ``pools``, decided once for render and check.

    A cluster loads one topology plugin from topology.conf (only 25.05's topology.yaml gives
    each partition its own, and one topology.conf serves every release). A cluster that mixes
    NVL72 pools with pools on a factory-built switch fabric therefore stays on topology/tree,
    where each NVLink domain is a leaf switch of its own: the other pools keep their switch
    tree, and jobs of the NVL72 pools still fit in one NVLink domain first. The same tree
    serves every release without topology/block.
    """
    nvl = [p for p in pools if is_nvl72(p) and p.nodes > 0]
    if not nvl:
        return SlurmTopology(False)
    if release is None:
        return SlurmTopology(False, "unknown")
    if release < BLOCK_TOPOLOGY_FROM:
        return SlurmTopology(False, "release")
    by_name = {f.name: f for f in fabrics}
    treed = tuple(p.name for p in pools if not is_nvl72(p) and p.nodes > 0 and p.fabric
                  and has_switch_tree(by_name.get(p.fabric)))
    if treed:
        return SlurmTopology(False, "mixed", treed)
    if len({p.nodes_per_domain for p in nvl}) > 1:
        return SlurmTopology(False, "sizes", tuple(p.name for p in nvl))
    if release < SHORT_BLOCK_FROM and all(p.nodes < p.nodes_per_domain for p in nvl):
        return SlurmTopology(False, "short", tuple(p.name for p in nvl))
    return SlurmTopology(True)


@check("slurm-topology", "capacity", "warning",
       "NVL72 pools get topology/block only where the cluster's Slurm (23.11+) and its other pools allow it, "
       "and a short NVLink domain is left out of the blocks before Slurm 25.05")
def slurm_topology(ctx: Context):
    """Says what render/slurm.py writes to topology.conf for NVL72 pools when it is not one
    block per NVLink domain: topology/tree instead, or a short domain left out of the blocks."""
    if ctx.lock is None:
        return
    os_name = ctx.lock.os
    release = ctx.lock.slurm_release
    index = {p.name: i for i, p in enumerate(ctx.factory.pools)}
    pools = [p for p in ctx.pools or [] if p.scheduler == "slurm" and p.nodes > 0]
    warned_os = False
    for cluster in ctx.slurm or []:
        here = [p for p in pools if p.site in cluster.sites]
        # What the messages call the cluster: its site, as a cluster per site always was.
        site = (f"site {cluster.sites[0]}" if len(cluster.sites) == 1 else
                f"cluster {cluster.name} (sites {', '.join(cluster.sites)})")
        nvl = [p for p in here if is_nvl72(p)]
        if not nvl:
            continue
        first = nvl[0]
        choice = slurm_topology_of(here, ctx.fabrics or [], release)
        if choice.reason in ("unknown", "release"):
            if not warned_os:
                warned_os = True
                ships = (f"ships Slurm {slurm_name(release)}, which has no topology/block" if release else
                         "has no Slurm of its own (EPEL's or a site build: the release is not known)")
                yield Issue(("software", "os"), f"{os_name} {ships}: NVL72 pool {first.name} gets topology/tree, "
                            "one leaf switch per NVLink domain, which every Slurm release loads",
                            "use ubuntu-24.04 (Slurm 23.11) or newer for topology/block", "warning")
            continue
        where = ("pools", index[first.name], "site")
        if choice.reason == "mixed":
            yield Issue(where, f"{site} mixes NVL72 pool {first.name} with {', '.join(choice.pools)} on a "
                        "switch fabric: a Slurm cluster loads one topology plugin from topology.conf, so the site "
                        "keeps topology/tree (each NVLink domain a leaf switch) instead of topology/block",
                        "give NVL72 pools a site of their own for topology/block", "warning")
            continue
        if choice.reason == "sizes":
            yield Issue(where, f"NVL72 pools {', '.join(choice.pools)} at {site} have NVLink domains of "
                        "different node counts, which one topology/block cannot hold: the site gets topology/tree",
                        "put pools of different rack systems at different sites for topology/block", "warning")
            continue
        for pool in nvl:
            per = pool.nodes_per_domain
            short = pool.nodes % per
            if not short:
                continue
            if choice.block and release >= SHORT_BLOCK_FROM:
                what = f"Slurm {slurm_name(release)} takes its short block but counts it as a whole one"
            elif choice.block:
                what = (f"Slurm {slurm_name(release)} refuses a block smaller than the others, so those trays are "
                        f"left out of topology/block and jobs of partition {pool.name} are not placed on them")
            else:
                what = (f"Slurm {slurm_name(release)} refuses a block smaller than the others, and with no whole "
                        f"domain the site gets topology/tree")
            yield Issue(("pools", index[pool.name], "nodes"),
                        f"{pool.nodes} nodes leave the last NVLink domain with {short} of {per} trays: {what}",
                        f"use a multiple of {per} nodes (whole racks)", "warning")


@check("imex-domain", "capacity", "warning",
       "an IMEX domain holds at most 18 nodes on GB200/GB300")
def imex_domain(ctx: Context):
    index = {p.name: i for i, p in enumerate(ctx.factory.pools)}
    for pool in ctx.pools or []:
        per = pool.nvlink_domain_gpus // max(1, pool.gpus_per_node)
        if pool.imex and per > IMEX_MAX_NODES:
            yield Issue(("pools", index[pool.name], "system"),
                        f"{pool.system} puts {per} nodes in one NVLink domain; an IMEX domain holds at most "
                        f"{IMEX_MAX_NODES} nodes, so IMEX peers cannot span the domain",
                        "split the domain into IMEX domains of at most 18 nodes (catalog nvlink_domain_gpus)",
                        "warning")


@check("rack-power", "capacity", "error",
       "a rack position takes only so many kW and rack units")
def rack_power(ctx: Context):
    sites = {s.name: (i, s) for i, s in enumerate(ctx.factory.sites)}
    for i, pool in enumerate(ctx.factory.pools):
        system = ctx.system(pool)
        if not on_site(pool.provider) or system is None or pool.site not in sites:
            continue
        si, site = sites[pool.site]
        need = rack_kw(system, site) if system.rack_scale else system.node_kw
        if need > site.rack_kw:
            what = f"a {system.id} rack draws {need:,.0f} kW" if system.rack_scale else \
                f"one {system.id} draws {need:,.1f} kW"
            yield Issue(("pools", i, "system"), f"{what}, over site {site.name}'s {site.rack_kw:g} kW per rack",
                        "raise rack_kw (liquid-cooled hall) or pick a smaller system; air cooling is impractical "
                        "above ~40 kW per rack")
        elif not system.rack_scale and site.rack_units < system.rack_units:
            yield Issue(("pools", i, "system"), f"{system.id} is {system.rack_units}U, taller than the site's "
                        f"{site.rack_units}U racks", "raise rack_units")
