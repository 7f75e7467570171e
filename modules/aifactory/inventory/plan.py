"""The Ansible inventory of a planned factory: hosts, groups and group_vars.

Every host is listed exactly once, in its pool's group (generated names as one Ansible host
range per pool, declared bare-metal hosts one by one), or, for an NVL72 pool whose IMEX peers
are listed, in one child group of the pool per NVLink domain; all other groups (site, provider,
fabric, NVSwitch, NVL72, scheduler) are unions of pool groups through ``children``. Role
variables live in group_vars (one file for the factory, one per pool, one per such NVLink
domain), never per host, so a 100,000-node factory is a hosts file of a few lines per pool and
a handful of small files.

Group names carry a prefix (``pool_``, ``site_``, ``provider_``) so that a pool called ``efa``
or ``all`` can never collide with a role group or one of Ansible's own; ``-`` becomes ``_``
because Ansible warns on group names that are not Python identifiers (the spec's name pattern
has no ``_``, so the mapping is one-to-one).

Files that ``aifactory render`` writes for nodes reach them through these variables, never
through a second template in a role: the nccl role installs the pool's NCCL files, the dcgm role
its dcgm-exporter counters and environment, the prometheus role (``monitoring`` group) the
factory's Prometheus configuration and target files.

The control plane of each Slurm cluster (``Plan.slurm``; a cluster per site is named after its
site) gets up to three groups, children of the role groups the Slurm plays target:
``slurm_controller_<cluster>`` (the primary controller, then the backup) under
``slurm_controller``, ``slurm_accounting_<cluster>`` (the primary controller, where accounting is
local) under ``slurm_accounting``, and ``slurm_login_<cluster>`` (its login nodes, where it has
any) under ``slurm_login``. These hosts are already members of their pool groups; they are named
again, without variables, in these groups. The controller group's variables carry the cluster's
rendered slurm.conf, cgroup.conf, gres.conf and topology.conf, the controllers in order and the
slurmdbd host, which the slurm_controller role checks the rendered slurm.conf against; each Slurm
pool learns its cluster's controllers as ``slurm_client_configless_server``, and the login group
as ``slurm_login_conf_servers`` (with the rendered slurm.conf where the lock's Slurm predates sackd). The accounting group's variables carry what slurmdbd holds for
the clusters it serves: their QoS, the ClusterName and the federation to create. No secret is
written here: ``munge_key`` and ``slurm_accounting_storage_pass`` come from the operator's
secret store (README, "Slurm control plane").

The ``monitoring`` group holds the host that runs Prometheus. The spec has no field for it, so
it is the first host of the first pool: every factory gets a Prometheus that scrapes every
node, the lab included. To run it elsewhere, add that host to ``monitoring`` from a second
inventory source (``-i deploy/inventory -i monitoring.yml``); it gets the same group_vars.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..catalog import Catalog
from ..catalog import load as load_catalog
from ..catalog import with_plan_catalog
from ..plan import software
from ..plan.model import Plan, PoolPlan, SlurmClusterPlan, SoftwareLock

try:  # the C emitter writes the 100,000-host file in a fraction of the pure-Python time
    _BaseDumper = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _BaseDumper = yaml.SafeDumper


class Unsafe(str):
    """A string Ansible must take as data, never as a template: written as ``!unsafe '...'``.

    Ansible templates inventory variables (``ansible_host`` included) on the controller, so a
    value holding ``{{ lookup('pipe', ...) }}`` would run a command there. The spec's strict
    types already refuse such values; marking every string value keeps that true for any value
    a later change lets through.
    """


class InOrder(dict):
    """A mapping written in its own order, not sorted like every other: the hosts of a group whose
    order means something to Ansible (``slurm_controller``: the primary, then the backup)."""


class _Dumper(_BaseDumper):
    pass


def _represent_unsafe(dumper, value: Unsafe):
    # ansible-core 2.19 resolves an !unsafe scalar's type again as if it were plain, so
    # `!unsafe '13.0'` would reach the roles as the float 13.0. A string that YAML reads as a
    # number, boolean or null holds no template syntax ({{, {%, {#), so it is written as a
    # quoted plain string instead.
    text = str(value)
    if dumper.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
        return dumper.represent_str(text)
    # Whole files (a pool's rendered nccl.conf) read best as literal blocks.
    return dumper.represent_scalar("!unsafe", text, style="|" if "\n" in text else None)


_Dumper.add_representer(Unsafe, _represent_unsafe)
# represent_mapping sorts what has .items(); a list of pairs is written as it is.
_Dumper.add_representer(InOrder, lambda dumper, value: dumper.represent_mapping("tag:yaml.org,2002:map",
                                                                               list(value.items())))


def unsafe(data: Any) -> Any:
    """``data`` with every string value (not mapping key) marked :class:`Unsafe`."""
    if isinstance(data, str):
        return Unsafe(data)
    if isinstance(data, InOrder):
        return InOrder((k, unsafe(v)) for k, v in data.items())
    if isinstance(data, dict):
        return {k: unsafe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [unsafe(v) for v in data]
    return data

HEADER = "# Generated by `aifactory inventory` from the factory plan; edits are overwritten.\n"

# Role groups: the playbooks target these, so their names are part of the playbook contract.
FABRIC_GROUPS = {
    "infiniband": "infiniband",
    "roce": "roce",
    "ethernet": "ethernet",
    "efa": "efa",
    "gpudirect-tcpx": "gpudirect_tcpx",
    "gpudirect-tcpxo": "gpudirect_tcpxo",
}
RDMA_FABRICS = ("infiniband", "roce")
NVL72_DOMAIN_GPUS = 72
# IMEX peers (nodes_config.cfg) are listed per NVLink domain only where that is cheap: pools with
# declared hosts (already listed one by one) and generated pools up to this many nodes (64 NVL72
# racks: at most 64 small group_vars files). A larger generated pool gets no peers, and the
# nvidia_fabric role stops on a running node until nvidia_fabric_imex_peers is set for it.
IMEX_PEERS_MAX_GENERATED_NODES = 64 * 18
# The Ansible group of the Prometheus host (see the module docstring).
MONITORING_GROUP = "monitoring"
# The role groups of the Slurm control plane; each holds one child group per cluster.
SLURM_CONTROLLER_GROUP = "slurm_controller"
SLURM_ACCOUNTING_GROUP = "slurm_accounting"
SLURM_LOGIN_GROUP = "slurm_login"
# slurm/<cluster>/<file> as `aifactory render` writes it -> the slurm_controller role variable that installs it.
SLURM_CONTROLLER_FILES = {
    "slurm.conf": "slurm_controller_conf_content",
    "cgroup.conf": "slurm_controller_cgroup_conf_content",
    "gres.conf": "slurm_controller_gres_conf_content",
    "topology.conf": "slurm_controller_topology_conf_content",
}
# A pool's rendered Prometheus target file (~20 bytes a node) goes into the inventory only up to
# this many nodes, so the inventory stays a few kilobytes per pool. A larger pool's file is copied
# from the deployment folder (prometheus/targets/<pool>.json) to /etc/prometheus/targets/ on the
# monitoring host; the prometheus role stops until it is there.
PROMETHEUS_TARGETS_MAX_NODES = 2048


def group_name(kind: str, name: str) -> str:
    return f"{kind}_{name.replace('-', '_')}"


def host_names(pool: PoolPlan) -> list[str]:
    """The pool's declared hosts, else ``<pool>-0001`` … (the plan's one naming rule)."""
    return pool.host_names()


def host_range(pool: PoolPlan) -> str:
    """Ansible's host-range pattern for the generated names: ``gpu-[0001:0002]``.

    Ansible expands it when it reads the inventory, so a 100,000-node pool is one line here
    and exactly the names :func:`host_names` returns.
    """
    return pool.host_range()


def _dump(data: Any) -> str:
    return HEADER + yaml.dump(unsafe(data), Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                              allow_unicode=False, width=1000)


# The role variables that carry each package of software.packages: its name and, where the role
# pins it to the lock, its version. The nvidia_driver role installs the headless part of the
# driver metapackage (nvidia_driver_packages, nvidia_driver_kernel_package) and, on RHEL, enables
# the module stream; NCCL's two packages go to nccl_packages together.
PACKAGE_VARS = {
    "driver_stream": ("nvidia_driver_module_stream", None),
    "fabric_manager": ("nvidia_fabric_manager_package", "nvidia_fabric_manager_version"),
    "nscq": ("nvidia_fabric_nscq_package", "nvidia_fabric_nscq_version"),
    "imex": ("nvidia_fabric_imex_package", "nvidia_fabric_imex_version"),
    "nvlsm": ("nvidia_fabric_nvlsm_package", None),
    "cuda_toolkit": ("cuda_toolkit_package", None),
    "dcgm": ("dcgm_package", None),
}


# GDRCopy comes as plain package files in NVIDIA's redist folder, one per OS and architecture:
# <base>/CUDA%20<major>.0/<os folder>/<arch folder>/ (folder layout and file names as
# https://developer.download.nvidia.com/compute/redist/gdrcopy/ lists them and NVIDIA/gdrcopy's
# packages/build-deb-packages.sh and build-rpm-packages.sh name them; checked 2026-12-03).
# Debian has no build: Debian 12 and 13 take the Ubuntu 22.04 one, whose binaries need glibc 2.35
# (Debian 12 has 2.36, Debian 13 2.41) and whose kernel module DKMS builds on the node itself.
GDRCOPY_OS = {"ubuntu-22.04": ("ubuntu22_04", "Ubuntu22_04"), "ubuntu-24.04": ("ubuntu24_04", "Ubuntu24_04"),
              "debian-12": ("ubuntu22_04", "Ubuntu22_04"), "debian-13": ("ubuntu22_04", "Ubuntu22_04"),
              "rhel-9": ("rhel9", "el9")}
# The plan's CPU architecture -> (Ansible's architecture fact, redist folder, deb arch, rpm arch).
GDRCOPY_ARCH = {"x86_64": ("x86_64", "x64", "amd64", "x86_64"), "arm64": ("aarch64", "aarch64", "arm64", "aarch64")}


def gdrcopy_files(lock: SoftwareLock, cpu_arch: str) -> dict[str, Any]:
    """The redist folder (relative to the gdrcopy role's base URL) and the files of the lock's GDRCopy
    build for ``cpu_arch``, each with the package it holds: ``packages`` always, ``tests`` where the
    role installs the tests (on Debian and Ubuntu the ``gdrcopy`` metapackage requires them; RHEL's
    ``gdrcopy`` package carries them). The one place these names are made."""
    build = lock.gdrcopy
    folder, platform = GDRCOPY_OS[lock.os]
    _, arch_folder, deb_arch, rpm_arch = GDRCOPY_ARCH[cpu_arch]
    full = f"{build.version}-{build.revision}"
    if software.os_family(lock.os) == "redhat":
        packages = [("gdrcopy-kmod", f"gdrcopy-kmod-{full}dkms.{platform}.noarch.rpm"),
                    ("gdrcopy", f"gdrcopy-{full}.{platform}.{rpm_arch}.rpm"),
                    ("gdrcopy-devel", f"gdrcopy-devel-{full}.{platform}.noarch.rpm")]
        tests = []
    else:
        packages = [(name, f"{name}_{full}_{deb_arch}.{platform}.deb") for name in ("gdrdrv-dkms", "libgdrapi")]
        tests = [("gdrcopy-tests", f"gdrcopy-tests_{full}_{deb_arch}.{platform}+cuda{build.cuda_major}.0.deb"),
                 ("gdrcopy", f"gdrcopy_{full}_{deb_arch}.{platform}.deb")]
    return {"folder": f"CUDA%20{build.cuda_major}.0/{folder}/{arch_folder}",
            "packages": [{"name": n, "file": f} for n, f in packages],
            "tests": [{"name": n, "file": f} for n, f in tests]}


def _software_vars(plan: Plan, catalog: Catalog) -> dict[str, Any]:
    lock = plan.software
    out: dict[str, Any] = {
        "aifactory_factory": plan.name,
        "aifactory_os": lock.os,
        "ansible_user": plan.access.ssh_user,
        # What every node reports to Prometheus through node_exporter's textfile collector, so
        # `aifactory status` tells a node on the lock from one that drifted without logging in.
        "node_exporter_lock_digest": lock.digest,
    }
    if plan.slurm and lock.slurm:
        # Every Slurm daemon of the factory from the lock's release (apt pins `slurmd=22.05*`): the
        # release the rendered files are written for, on the controller, slurmdbd and the nodes alike.
        out.update({f"{role}_version": lock.slurm for role in ("slurm_client", "slurm_controller",
                                                                 "slurm_accounting")})
    if lock.driver is None:  # no NVIDIA pool: the NVIDIA roles have nothing pinned to install
        return out
    out.update({
        # How NICs reach GPU memory: DMA-BUF needs the open kernel modules (NVIDIA recommends it over
        # nvidia-peermem: https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/latest/gpu-operator-rdma.html,
        # checked 2026-12-03); with the proprietary modules only nvidia-peermem works.
        "rdma_gpudirect": "dmabuf" if lock.open_kernel_modules else "peermem",
        "nvidia_driver_branch": lock.driver_branch,
        "nvidia_driver_version": lock.driver,
        "nvidia_driver_open_kernel_modules": lock.open_kernel_modules,
        "gpu_health_driver_version": lock.driver,
    })
    if lock.cuda:
        out["cuda_toolkit_version"] = lock.cuda
    # The names versions.lock.json lists, for the lock's OS family (catalog table packages).
    packages = software.packages(lock, catalog)
    for component, (name_var, version_var) in PACKAGE_VARS.items():
        if component in packages:  # IMEX follows the driver also on NVL72 pools, which have no fabric manager
            out[name_var] = packages[component].name
            if version_var:
                out[version_var] = packages[component].version
    if "nccl" in packages:
        out["nccl_packages"] = [packages["nccl"].name, packages["nccl_dev"].name]
    # The headless driver from NVIDIA's repository; the role pins each to nvidia_driver_version.
    out["nvidia_driver_packages"] = [packages[c].name for c in ("driver_utils", "driver_persistenced", "driver_libs")]
    out["nvidia_driver_kernel_package"] = packages["driver_kernel"].name
    # Other branches' names of the same packages: a node still holding them is released first.
    out["nvidia_driver_replaces"] = software.replaced(lock, catalog, "driver")
    out["nvidia_fabric_replaces"] = software.replaced(lock, catalog, "fabric")
    if lock.dcgm_package:
        out["dcgm_major"] = lock.dcgm_major
    if lock.nccl:
        out["nccl_version"] = lock.nccl
    if lock.gdrcopy:
        arches = sorted({p.cpu_arch for p in plan.pools if catalog.systems[p.system].gpu.vendor == "nvidia"})
        out["gdrcopy_version"] = lock.gdrcopy.version
        out["gdrcopy_package_version"] = f"{lock.gdrcopy.version}-{lock.gdrcopy.revision}"
        out["gdrcopy_files"] = {GDRCOPY_ARCH[a][0]: gdrcopy_files(lock, a) for a in arches}
    return out


def nccl_busbw_floor(pool: PoolPlan, catalog: Catalog) -> int:
    """The all_reduce bus bandwidth in GB/s a run across the pool's nodes must reach: the node's
    scale-out line rate (compute NICs x NIC speed / 8) times the catalog's share for the pool's
    fabric type (table nccl_busbw), rounded down; 0, meaning no floor, for a pool on no fabric or
    on a fabric type without a row. The floor holds where the run stays inside one NVLink domain
    too (NVL72): NVLink is faster than the NICs, so it is then a loose floor, never a false one."""
    share = catalog.nccl_busbw.get(pool.fabric_type or "")
    if share is None:
        return 0
    system = catalog.systems[pool.system]
    return int(system.compute_nics * system.nic_gbps / 8 * share.efficiency)


def pool_vars(pool: PoolPlan, plan: Plan, catalog: Catalog) -> dict[str, Any]:
    """The role variables of one pool (its group_vars file)."""
    system = catalog.systems[pool.system]
    fabric = plan.fabric(pool.fabric)
    nvidia = system.gpu.vendor == "nvidia"
    out: dict[str, Any] = {
        "aifactory_pool": pool.name,
        "aifactory_site": pool.site,
        "aifactory_provider": pool.provider,
        "aifactory_system": pool.system,
        "aifactory_gpu": pool.gpu,
        "aifactory_cpu_arch": pool.cpu_arch,
        "rdma_fabric": pool.fabric_type or "none",
        "rdma_opensm": bool(fabric and fabric.subnet_manager == "opensm"),
    }
    if pool.provider == "gcp" and pool.fabric_type == "roce":
        # A3 Ultra, A4, A4X: RoCE through Google's gIB NCCL plugin, which the rdma role installs.
        out["rdma_gcp_gib"] = True
    if pool.region:
        out["aifactory_region"] = pool.region
    cluster = plan.slurm_cluster(pool.site) if pool.scheduler == "slurm" else None
    if cluster is not None:
        # Configless slurmd: the configuration comes from the cluster's controllers, primary first.
        out["slurm_client_configless_server"] = ",".join(cluster.controllers)
    if nvidia:
        # The one author of a node's NCCL and dcgm-exporter files is render/; the roles install its bytes.
        from ..render import dcgm, nccl

        conf, profile = nccl.pool_files(plan, pool)
        counters, environment = dcgm.pool_files(plan, pool)
        out.update({
            "nccl_conf_content": conf,
            "nccl_profile_content": profile,
            "dcgm_exporter_counters_content": counters,
            "dcgm_exporter_environment_content": environment,
            "nvidia_fabric_manager": pool.fabric_manager,
            "nvidia_fabric_nvlsm": pool.nvlsm,
            "nvidia_fabric_imex": pool.imex,
            "gpu_health_gpus": pool.gpus_per_node,
            "gpu_health_nvlink": pool.nvlink_domain_gpus > 1,
            "gpu_health_fabric_manager": pool.fabric_manager,
            # The multi-node checks: one all_reduce per pool, through the pool's Slurm partition
            # (render/slurm names it after the pool), and every node's view of its IMEX domain.
            "gpu_health_pool": pool.name,
            "gpu_health_slurm_partition": pool.name if cluster is not None else "",
            "gpu_health_nccl_multinode_min_busbw": nccl_busbw_floor(pool, catalog),
            "gpu_health_imex": pool.imex,
        })
    if pool.mig:
        # The plan's layout for every GPU, in the order the nvidia_mig role creates the instances.
        out["nvidia_mig_layout"] = [{"profile": m.profile, "count": m.per_gpu} for m in pool.mig]
    return out


def monitoring_host(plan: Plan) -> str | None:
    """The host the ``monitoring`` group holds: the first host of the first pool with nodes."""
    for pool in plan.pools:
        if pool.hosts or pool.nodes > 0:
            return pool.first_host()
    return None


def slurm_controller_vars(cluster: SlurmClusterPlan, rendered: dict[str, str]) -> dict[str, Any]:
    """The slurm_controller role's variables for one cluster: its rendered Slurm files (from
    ``rendered``, the output of :func:`aifactory.render.slurm.files`), the controllers in
    SlurmctldHost order and the slurmdbd host the rendered slurm.conf must name."""
    out: dict[str, Any] = {
        "slurm_controller_hosts": list(cluster.controllers),
        "slurm_controller_accounting_host": cluster.accounting_host,
    }
    for name, var in SLURM_CONTROLLER_FILES.items():
        text = rendered.get(f"slurm/{cluster.name}/{name}")
        if text is not None:  # topology.conf only where the cluster has a topology
            out[var] = text
    return out


def slurm_accounting_vars(plan: Plan, cluster: SlurmClusterPlan) -> dict[str, Any]:
    """The slurm_accounting role's variables for the slurmdbd on ``cluster``'s primary controller:
    its port, the cluster's ClusterName, the QoS of every cluster it serves (each key present,
    None where unset; ``max_wall`` in minutes, sacctmgr's MaxWall unit) and the federation to
    create (``sacctmgr add federation <name> clusters=<ClusterName>,...``), or None."""
    served = plan.slurm_accounting_served(cluster)
    qos: dict[str, dict[str, Any]] = {}
    for c in served:  # one QoS of a name per slurmdbd: the checks refuse two definitions
        for q in c.qos:
            qos.setdefault(q.name, q.model_dump(mode="json"))
    members = [c.cluster_name(plan.name) for c in plan.slurm
               if cluster.federation and c.federation == cluster.federation]
    return {
        "slurm_accounting_dbd_port": cluster.accounting_port,
        "slurm_accounting_cluster_name": cluster.cluster_name(plan.name),
        "slurm_accounting_qos": list(qos.values()),
        "slurm_accounting_federation": ({"name": cluster.federation, "clusters": members}
                                        if cluster.federation else None),
    }


# sackd, which fetches a login node's configuration from slurmctld, is in Slurm from 23.11
# (https://slurm.schedmd.com/configless_slurm.html); before, login nodes need slurm.conf itself.
SACKD_FROM = (23, 11)


def slurm_login_vars(plan: Plan, cluster: SlurmClusterPlan, rendered: dict[str, str]) -> dict[str, Any]:
    """The slurm_login role's variables for one cluster's login nodes: the controllers its clients
    fetch the configuration from (configless, primary first), the lock's Slurm release where the
    OS ships one (as the other Slurm roles' ``*_version``), and, where that release has no sackd
    or is not known, the cluster's rendered slurm.conf (the controllers' bytes) to install."""
    out: dict[str, Any] = {"slurm_login_conf_servers": list(cluster.controllers)}
    if plan.software.slurm:
        out["slurm_login_slurm_version"] = plan.software.slurm
    release = plan.software.slurm_release
    if release is None or release < SACKD_FROM:
        out["slurm_login_conf_content"] = rendered[f"slurm/{cluster.name}/slurm.conf"]
    return out


def monitoring_vars(plan: Plan, catalog: Catalog) -> dict[str, Any]:
    """The prometheus role's variables: the rendered configuration and the target files of the
    pools up to :data:`PROMETHEUS_TARGETS_MAX_NODES` nodes, by file name under ``targets/``."""
    from ..render import monitoring

    targets = {f"{pool.name}.json": monitoring.targets_file(pool) for pool in plan.pools
               if monitoring.has_targets_file(pool) and pool.nodes <= PROMETHEUS_TARGETS_MAX_NODES}
    return {"prometheus_config_content": monitoring.config_file(plan, catalog),
            "prometheus_targets_content": targets}


def _role_groups(pool: PoolPlan, catalog: Catalog) -> list[str]:
    system = catalog.systems[pool.system]
    groups = []
    if system.gpu.vendor == "nvidia":
        groups.append("nvidia")
    if system.nvswitch:
        groups.append("nvswitch")
    if pool.fabric_manager:
        groups.append("fabric_manager")
    if pool.nvlsm:
        groups.append("nvlsm")
    if pool.imex:
        groups.append("imex")
    if pool.nvlink_domain_gpus >= NVL72_DOMAIN_GPUS:
        groups.append("nvl72")
    if pool.mig:
        groups.append("mig")  # the nvidia_mig role; the layout is in the pool's group_vars
    if pool.fabric_type:
        groups.append(FABRIC_GROUPS[pool.fabric_type])
        if pool.fabric_type in RDMA_FABRICS:
            groups.append("rdma")
    if pool.scheduler != "none":
        groups.append(pool.scheduler)
    return groups


def _imex_domains(pool: PoolPlan) -> list[list[tuple[str, str]]]:
    """(host, IMEX peer address) per NVLink domain: consecutive compute trays in host order, as
    Slurm's blocks; empty where peers are not listed (see IMEX_PEERS_MAX_GENERATED_NODES)."""
    declared = bool(pool.hosts)
    if not pool.imex or pool.nvlink_domain_gpus < NVL72_DOMAIN_GPUS or (
            not declared and pool.nodes > IMEX_PEERS_MAX_GENERATED_NODES):
        return []
    if declared:
        members = [(h.name, h.ip or h.name) for h in pool.hosts]
    else:
        members = [(n, n) for n in pool.host_names()]
    per = pool.nodes_per_domain
    return [members[i:i + per] for i in range(0, len(members), per)]


def _domain_hosts(pool: PoolPlan, domain: list[tuple[str, str]]) -> list[str]:
    """The domain's hosts as hosts.yml lists them: declared hosts one by one, generated ones as a range."""
    if pool.hosts or len(domain) == 1:
        return [name for name, _ in domain]
    first, last = (int(domain[0][0].rsplit("-", 1)[1]), int(domain[-1][0].rsplit("-", 1)[1]))
    return [pool.host_range(first, last)]


@with_plan_catalog
def build_files(plan: Plan, catalog: Catalog | None = None,
                slurm_files: dict[str, str] | None = None) -> dict[str, str]:
    """Relative path -> file content for ``inventory/`` (hosts.yml and group_vars); deterministic.
    ``slurm_files``: what :func:`aifactory.render.slurm.files` returns for the plan, where the
    caller has it already (``aifactory render``); rendered here otherwise."""
    catalog = catalog or load_catalog()
    children: dict[str, dict] = {}
    files: dict[str, str] = {}

    def member(group: str, pool_group: str) -> None:
        children.setdefault(group, {"children": {}})["children"][pool_group] = None

    for pool in plan.pools:
        pg = group_name("pool", pool.name)
        hosts: dict[str, Any] = {}
        if pool.hosts:
            for host in pool.hosts:
                hv: dict[str, Any] = {"aifactory_bmc": host.bmc, "aifactory_mac": host.mac}
                if host.ip:
                    hv["ansible_host"] = host.ip
                hosts[host.name] = hv
        else:
            hosts[host_range(pool)] = None
        domains = _imex_domains(pool)
        if domains:  # the pool's hosts move into one child group per NVLink domain
            width = max(4, len(str(len(domains))))
            children[pg] = {"children": {}}
            for i, domain in enumerate(domains, start=1):
                dg = group_name("nvlink", f"{pool.name}-nvl{i:0{width}d}")  # Slurm's BlockName
                children[pg]["children"][dg] = None
                children[dg] = {"hosts": {n: hosts.get(n) for n in _domain_hosts(pool, domain)}}
                files[f"inventory/group_vars/{dg}.yml"] = _dump(
                    {"nvidia_fabric_imex_peers": [peer for _, peer in domain]})
        else:
            children[pg] = {"hosts": hosts}
        member(group_name("site", pool.site), pg)
        member(group_name("provider", pool.provider), pg)
        for role_group in _role_groups(pool, catalog):
            member(role_group, pg)
        files[f"inventory/group_vars/{pg}.yml"] = _dump(pool_vars(pool, plan, catalog))

    rendered = slurm_files
    for cluster in plan.slurm:
        if rendered is None:
            from ..render import slurm

            rendered = slurm.files(plan, catalog)
        cg = group_name(SLURM_CONTROLLER_GROUP, cluster.name)
        children[cg] = {"hosts": InOrder((host, None) for host in cluster.controllers)}  # primary, then backup
        # Clusters in plan order too: groups['slurm_controller'] starts with the first cluster's primary.
        children.setdefault(SLURM_CONTROLLER_GROUP, {"children": InOrder()})["children"][cg] = None
        files[f"inventory/group_vars/{cg}.yml"] = _dump(slurm_controller_vars(cluster, rendered))
        if cluster.accounting == "local":
            ag = group_name(SLURM_ACCOUNTING_GROUP, cluster.name)
            children[ag] = {"hosts": {cluster.accounting_host: None}}
            member(SLURM_ACCOUNTING_GROUP, ag)
            files[f"inventory/group_vars/{ag}.yml"] = _dump(slurm_accounting_vars(plan, cluster))
        if cluster.login:
            lg = group_name(SLURM_LOGIN_GROUP, cluster.name)
            children[lg] = {"hosts": InOrder((host, None) for host in cluster.login)}
            member(SLURM_LOGIN_GROUP, lg)
            files[f"inventory/group_vars/{lg}.yml"] = _dump(slurm_login_vars(plan, cluster, rendered))

    first = monitoring_host(plan)
    if first is not None:
        children[MONITORING_GROUP] = {"hosts": {first: None}}
        files[f"inventory/group_vars/{MONITORING_GROUP}.yml"] = _dump(monitoring_vars(plan, catalog))

    files["inventory/hosts.yml"] = _dump({"all": {"children": children}})
    files["inventory/group_vars/all.yml"] = _dump(_software_vars(plan, catalog))
    return dict(sorted(files.items()))
