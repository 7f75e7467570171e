"""Inventory from the plan, read back by Ansible's own inventory loader."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ansible.plugins.inventory import detect_range, expand_hostname_range

from aifactory import plan as planning
from aifactory import spec
from aifactory.inventory import build_files, host_names, host_range, write_files
from tests import ansible_data

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")



def _stack(name: str):
    loaded = spec.load(REPO / "stacks" / name / "factory.yaml")
    plan = planning.build(loaded)
    return plan, loaded.factory, build_files(plan)


def _ansible_list(tmp_path: Path, files: dict[str, str]) -> dict:
    write_files(files, tmp_path)
    proc = subprocess.run([ANSIBLE_INVENTORY, "-i", str(tmp_path / "inventory"), "--list"],
                          capture_output=True, text=True, check=True)
    data = ansible_data.load_json(proc.stdout)
    # Every string Ansible reads from the inventory is data, never a template.
    assert not ansible_data.plain_strings(data["_meta"]["hostvars"])
    return data


def test_multicloud_groups_and_vars_as_ansible_reads_them(tmp_path):
    plan, _, files = _stack("multicloud")
    assert sorted(files) == sorted(
        ["inventory/group_vars/all.yml", "inventory/group_vars/monitoring.yml", "inventory/hosts.yml"]
        + [f"inventory/group_vars/pool_{p.name}.yml" for p in plan.pools]
        + [f"inventory/group_vars/slurm_{role}_{c.name.replace('-', '_')}.yml" for c in plan.slurm
           for role in ("controller", "accounting")])
    data = _ansible_list(tmp_path, files)
    hostvars = data["_meta"]["hostvars"]
    assert len(hostvars) == plan.totals["nodes"] == 80

    def hosts(group: str) -> set[str]:
        out = set(data.get(group, {}).get("hosts", []))
        for child in data.get(group, {}).get("children", []):
            out |= hosts(child)
        return out

    assert hosts("pool_aws") == {f"aws-{i:04d}" for i in range(1, 17)}
    assert hosts("efa") == hosts("pool_aws")
    assert hosts("gpudirect_tcpxo") == hosts("pool_gcp")
    assert hosts("infiniband") == hosts("pool_onprem") | hosts("pool_azure")
    assert hosts("roce") == hosts("pool_oci")
    assert hosts("rdma") == hosts("infiniband") | hosts("roce")
    assert hosts("provider_gcp") == hosts("site_gcp_usc1") == hosts("pool_gcp")
    assert hosts("nvswitch") == hosts("nvidia") == set(hostvars)
    assert hosts("slurm") == set(hostvars)
    assert "nvl72" not in data and "imex" not in data
    # The software lock reaches every host as role variables; pool facts only their pool.
    lock = plan.software
    for host, values in hostvars.items():
        assert values["nvidia_driver_version"] == lock.driver
        assert values["nvidia_fabric_manager_version"] == lock.fabric_manager == lock.driver
        assert values["nvidia_fabric_nscq_version"] == lock.libnvidia_nscq
        assert values["dcgm_package"] == lock.dcgm_package
        assert values["cuda_toolkit_version"] == lock.cuda
        assert values["nccl_version"] == lock.nccl
        assert values["gpu_health_gpus"] == 8
    assert hostvars["aws-0001"]["rdma_fabric"] == "efa"
    assert hostvars["gcp-0016"]["rdma_fabric"] == "gpudirect-tcpxo"
    assert hostvars["aws-0001"]["aifactory_region"] == "us-east-1"
    # One Prometheus host, the first node of the first pool; only it carries the configuration.
    assert hosts("monitoring") == {f"{plan.pools[0].name}-0001"}
    assert [h for h, v in hostvars.items() if "prometheus_config_content" in v] == sorted(hosts("monitoring"))


def test_rendered_node_files_reach_their_hosts_byte_for_byte(tmp_path):
    """What Ansible hands the roles is exactly what `aifactory render` writes, for every host."""
    from aifactory.render.deployment import build_files as render_files

    plan, _, files = _stack("multicloud")
    rendered = render_files(plan)
    hostvars = _ansible_list(tmp_path, files)["_meta"]["hostvars"]
    for host, values in hostvars.items():
        pool = values["aifactory_pool"]
        assert values["dcgm_exporter_counters_content"] == rendered[f"dcgm/{pool}/dcgm-exporter.csv"]
        assert values["dcgm_exporter_environment_content"] == rendered[f"dcgm/{pool}/dcgm-exporter.env"]
        assert values["nccl_conf_content"] == rendered[f"nccl/{pool}/nccl.conf"]
    monitor = hostvars[f"{plan.pools[0].name}-0001"]
    assert monitor["prometheus_config_content"] == rendered["prometheus/prometheus.yml"]
    targets = {k: v for k, v in rendered.items() if k.startswith("prometheus/targets/")}
    assert targets and {f"prometheus/targets/{k}": v for k, v in monitor["prometheus_targets_content"].items()} == targets


def _members(data: dict, group: str) -> list[str]:
    """The hosts of ``group`` and its children, in the order Ansible lists them."""
    out = list(data.get(group, {}).get("hosts", []))
    for child in data.get(group, {}).get("children", []):
        out += [h for h in _members(data, child) if h not in out]
    return out


def test_slurm_control_plane_groups_and_vars_as_ansible_reads_them(tmp_path):
    """onprem-dgx names a primary and a backup controller: both in slurm_controller, in order,
    with the site's rendered files; slurmdbd on the primary; every node configless from both."""
    from aifactory.render.deployment import build_files as render_files

    plan, _, files = _stack("onprem-dgx")
    rendered = render_files(plan)
    data = _ansible_list(tmp_path, files)
    hostvars = data["_meta"]["hostvars"]
    assert _members(data, "slurm_controller") == _members(data, "slurm_controller_hall1") == ["dgx-001", "dgx-002"]
    assert _members(data, "slurm_accounting") == ["dgx-001"]
    for host in ("dgx-001", "dgx-002"):
        values = hostvars[host]
        assert values["slurm_controller_hosts"] == ["dgx-001", "dgx-002"]
        assert values["slurm_controller_accounting_host"] == "dgx-001"
        for name, var in (("slurm.conf", "slurm_controller_conf_content"),
                          ("cgroup.conf", "slurm_controller_cgroup_conf_content"),
                          ("gres.conf", "slurm_controller_gres_conf_content"),
                          ("topology.conf", "slurm_controller_topology_conf_content")):
            assert values[var] == rendered[f"slurm/hall1/{name}"], var
    assert "slurm_controller_conf_content" not in hostvars["dgx-003"]
    assert hostvars["dgx-001"]["slurm_accounting_dbd_port"] == 6819
    assert "slurm_accounting_dbd_port" not in hostvars["dgx-002"]
    for host, values in hostvars.items():
        assert values["slurm_client_configless_server"] == "dgx-001,dgx-002"
        # One Slurm release on the controller, slurmdbd and the nodes: the lock's.
        assert values["slurm_client_version"] == values["slurm_controller_version"] == \
            values["slurm_accounting_version"] == plan.software.slurm == "21.08"
        assert "munge_key" not in values and "slurm_accounting_storage_pass" not in values  # secrets: never here
    # Every group slurm.yml (run after site.yml) targets is one the inventory fills: slurm_login
    # where a cluster has login nodes (onprem-dgx has none; test_login_nodes_and_qos_... has).
    plays = yaml.safe_load((REPO / "playbooks/slurm.yml").read_text())
    assert {g for play in plays for g in play["hosts"].split(":")} == {"slurm_controller", "slurm_accounting",
                                                                       "slurm_login", "slurm"}
    assert all(_members(data, g) for g in ("slurm_controller", "slurm_accounting", "slurm"))


def test_multicloud_is_one_cluster_whose_controller_serves_every_site(tmp_path):
    """The example declares one cluster over its five sites: one controller group, one slurmdbd,
    every pool configless from the on-prem controller."""
    plan, _, files = _stack("multicloud")
    data = _ansible_list(tmp_path, files)
    hostvars = data["_meta"]["hostvars"]
    (cluster,) = plan.slurm
    assert cluster.name == "global" and cluster.sites == [s.name for s in plan.sites]
    assert _members(data, "slurm_controller") == _members(data, "slurm_controller_global") == ["onprem-0001"]
    assert _members(data, "slurm_accounting") == _members(data, "slurm_accounting_global") == ["onprem-0001"]
    assert "slurm_login" not in data  # no login node declared
    values = hostvars["onprem-0001"]
    assert values["slurm_accounting_cluster_name"] == "multicloud-global"
    assert values["slurm_accounting_qos"] == [] and values["slurm_accounting_federation"] is None
    assert "ClusterName=multicloud-global\n" in values["slurm_controller_conf_content"]
    for pool in plan.pools:
        assert hostvars[pool.first_host()]["slurm_client_configless_server"] == "onprem-0001"


def _per_site_multicloud() -> str:
    """The multicloud example without its slurm: section: a cluster per site."""
    text = (REPO / "stacks/multicloud/factory.yaml").read_text()
    return text[:text.index("\nslurm:")] + "\n"


def test_without_a_slurm_section_every_site_is_its_own_cluster_with_its_own_controller(tmp_path):
    plan = planning.build(spec.load_string(_per_site_multicloud()))
    files = build_files(plan)
    data = _ansible_list(tmp_path, files)
    hostvars = data["_meta"]["hostvars"]
    assert len(plan.slurm) == len({p.site for p in plan.pools}) > 1
    assert _members(data, "slurm_controller") == [c.controllers[0] for c in plan.slurm]
    for cluster in plan.slurm:
        (primary,) = cluster.controllers
        assert cluster.name == cluster.site and cluster.sites == [cluster.site]
        group = f"slurm_controller_{cluster.site.replace('-', '_')}"
        assert _members(data, group) == [primary]
        assert hostvars[primary]["slurm_controller_hosts"] == [primary]
        assert f"SlurmctldHost={primary}\n" in hostvars[primary]["slurm_controller_conf_content"]
        assert hostvars[primary]["slurm_accounting_cluster_name"] == f"multicloud-{cluster.site}"
        for pool in plan.pools:
            if pool.site == cluster.site:
                assert hostvars[pool.first_host()]["slurm_client_configless_server"] == primary


LOGIN_QOS = """
slurm:
  clusters:
    - site: lab
      login: [{pool: gpu}]
      qos:
        - {name: high, priority: 100, max_wall: 12h, max_gpus_per_user: 16}
        - {name: debug, max_wall: 30m, max_jobs_per_user: 2}
      fairshare: {decay_half_life_days: 14}
"""


def test_login_nodes_and_qos_as_ansible_reads_them(tmp_path):
    """The login group holds the declared login nodes with their controllers and the lock's Slurm;
    the accounting group the QoS slurmdbd is to hold, every key present (None where unset)."""
    from aifactory.render.deployment import build_files as render_files

    plan = planning.build(spec.load_string((REPO / "stacks/lab/factory.yaml").read_text() + LOGIN_QOS))
    files = build_files(plan)
    data = _ansible_list(tmp_path, files)
    hostvars = data["_meta"]["hostvars"]
    assert _members(data, "slurm_login") == _members(data, "slurm_login_lab") == ["gpu-0001"]
    login = ansible_data.load_yaml(files["inventory/group_vars/slurm_login_lab.yml"])
    # Debian 12's Slurm 22.05 has no sackd: login nodes get the controllers' slurm.conf itself.
    assert plan.software.slurm == "22.05"
    assert login == {"slurm_login_conf_servers": ["gpu-0001"], "slurm_login_slurm_version": "22.05",
                     "slurm_login_conf_content": render_files(plan)["slurm/lab/slurm.conf"]}
    values = hostvars["gpu-0001"]
    assert values["slurm_login_conf_servers"] == ["gpu-0001"]
    assert values["slurm_accounting_cluster_name"] == "lab-lab"
    assert values["slurm_accounting_qos"] == [
        {"name": "high", "priority": 100, "max_wall": 720, "max_jobs_per_user": None, "max_gpus_per_user": 16},
        {"name": "debug", "priority": 0, "max_wall": 30, "max_jobs_per_user": 2, "max_gpus_per_user": None}]
    assert values["slurm_accounting_federation"] is None
    assert "slurm_login_conf_servers" not in hostvars["gpu-0002"]
    # From 23.11 sackd fetches the configuration from the controllers: no copy to drift.
    text = (REPO / "stacks/lab/factory.yaml").read_text().replace("os: debian-12", "os: debian-13")
    plan = planning.build(spec.load_string(text + LOGIN_QOS))
    login = ansible_data.load_yaml(build_files(plan)["inventory/group_vars/slurm_login_lab.yml"])
    assert login == {"slurm_login_conf_servers": ["gpu-0001"], "slurm_login_slurm_version": "24.11"}


def test_a_federation_shares_the_first_clusters_slurmdbd(tmp_path):
    text = _per_site_multicloud() + """
slurm:
  layout: federation
  federation: gpus
  clusters:
    - {site: dc1, qos: [{name: high, priority: 10}]}
    - {site: aws-use1, qos: [{name: high, priority: 10}, {name: spot, max_wall: 2h}]}
"""
    plan = planning.build(spec.load_string(text))
    files = build_files(plan)
    data = _ansible_list(tmp_path, files)
    hostvars = data["_meta"]["hostvars"]
    names = [f"multicloud-{c.name}" for c in plan.slurm]
    assert len(names) == 5 and {c.federation for c in plan.slurm} == {"gpus"}
    # One slurmdbd, on the first cluster's controller: the others send it their records.
    assert _members(data, "slurm_accounting") == ["onprem-0001"]
    assert {(c.accounting_host, c.accounting_port) for c in plan.slurm} == {("onprem-0001", 6819)}
    values = hostvars["onprem-0001"]
    assert values["slurm_accounting_federation"] == {"name": "gpus", "clusters": names}
    assert [q["name"] for q in values["slurm_accounting_qos"]] == ["high", "spot"]
    assert hostvars["aws-0001"]["slurm_controller_accounting_host"] == "onprem-0001"
    assert "AccountingStorageHost=onprem-0001\nAccountingStoragePort=6819\n" in \
        hostvars["aws-0001"]["slurm_controller_conf_content"]


def test_external_accounting_has_no_accounting_host_in_the_inventory(tmp_path):
    text = (REPO / "stacks/lab/factory.yaml").read_text() + (
        "slurm:\n  clusters:\n    - {site: lab, accounting: {database: external, host: dbd.example.com, port: 7031}}\n")
    plan = planning.build(spec.load_string(text))
    files = build_files(plan)
    data = _ansible_list(tmp_path, files)
    assert "slurm_accounting" not in data and "inventory/group_vars/slurm_accounting_lab.yml" not in files
    controller = data["_meta"]["hostvars"]["gpu-0001"]
    assert controller["slurm_controller_accounting_host"] == "dbd.example.com"
    assert "AccountingStorageHost=dbd.example.com\nAccountingStoragePort=7031\n" in \
        controller["slurm_controller_conf_content"]


def test_monitoring_host_is_a_declared_host_where_the_first_pool_declares_them():
    plan, _, files = _stack("onprem-dgx")
    hosts = ansible_data.load_yaml(files["inventory/hosts.yml"])["all"]["children"]
    assert hosts["monitoring"] == {"hosts": {plan.pools[0].hosts[0].name: None}}


def test_large_pools_leave_their_target_file_out_of_the_inventory():
    """~20 bytes a node: a pool above the limit keeps its file in the deployment folder only."""
    from aifactory.inventory.plan import PROMETHEUS_TARGETS_MAX_NODES

    big = f"""
name: big
software: {{driver_branch: "580", cuda: "13.0"}}
sites: [{{name: dc, power_mw: 100, pue: 1.2, rack_kw: 42}}]
pools:
  - {{name: gpu, site: dc, provider: onprem, system: dgx-h100, nodes: 2}}
  - {{name: big, site: dc, provider: onprem, system: dgx-h100, nodes: {PROMETHEUS_TARGETS_MAX_NODES + 1}}}
"""
    files = build_files(planning.build(spec.load_string(big)))
    monitoring = ansible_data.load_yaml(files["inventory/group_vars/monitoring.yml"])
    assert sorted(monitoring["prometheus_targets_content"]) == ["gpu.json"]
    assert "targets/big.json" in monitoring["prometheus_config_content"]
    assert len(files["inventory/group_vars/monitoring.yml"]) < 30 * PROMETHEUS_TARGETS_MAX_NODES


def test_lab_host_subnet_manager_and_ssh_user(tmp_path):
    _, factory, files = _stack("lab")
    data = _ansible_list(tmp_path, files)
    hv = data["_meta"]["hostvars"]["gpu-0002"]
    assert hv["rdma_opensm"] is True  # the fabric's subnet_manager: opensm
    assert hv["ansible_user"] == factory.access.ssh_user
    assert hv["nvidia_fabric_manager"] is True and hv["nvidia_fabric_nvlsm"] is False


def test_declared_hosts_keep_their_names_addresses_and_bmcs(tmp_path):
    text = (REPO / "stacks/lab/factory.yaml").read_text().replace(
        "{name: gpu, site: lab, provider: lab, system: hgx-h100, nodes: 2, fabric: lab-ib}",
        "{name: gpu, site: lab, provider: onprem, system: hgx-h100, nodes: 2, fabric: lab-ib, hosts: ["
        "{name: node-a, mac: 'aa:bb:cc:00:00:01', bmc: bmc-a.lab, ip: 10.0.0.11},"
        "{name: node-b, mac: 'aa:bb:cc:00:00:02', bmc: bmc-b.lab}]}")
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    loaded = spec.load(path)
    plan = planning.build(loaded)
    data = _ansible_list(tmp_path / "out", build_files(plan))
    hv = data["_meta"]["hostvars"]
    assert set(hv) == {"node-a", "node-b"}
    assert hv["node-a"]["ansible_host"] == "10.0.0.11"
    assert hv["node-a"]["aifactory_mac"] == "aa:bb:cc:00:00:01"
    assert "ansible_host" not in hv["node-b"] and hv["node-b"]["aifactory_bmc"] == "bmc-b.lab"
    assert host_names(plan.pools[0]) == ["node-a", "node-b"]


@pytest.mark.parametrize("nodes,width", [(1, 4), (16, 4), (9999, 4), (10000, 5), (123456, 6)])
def test_host_range_expands_to_the_generated_names(nodes, width):
    lab = _stack("lab")[0].pools[0]
    pool = lab.model_copy(update={"name": "train-a", "nodes": nodes})
    pattern = host_range(pool)
    assert detect_range(pattern)
    expanded = expand_hostname_range(pattern)  # Ansible's own expansion
    assert expanded == host_names(pool)
    assert len(expanded) == nodes and expanded[0] == "train-a-" + "1".rjust(width, "0")


def test_deterministic_and_yaml_not_string_built():
    _, _, first = _stack("multicloud")
    _, _, again = _stack("multicloud")
    assert first == again
    for path, text in first.items():
        assert text.startswith("# Generated by `aifactory inventory`")
        assert ansible_data.load_yaml(text) is not None, path
    hosts = ansible_data.load_yaml(first["inventory/hosts.yml"])["all"]["children"]
    assert list(hosts) == sorted(hosts)


def test_a_million_node_factory_is_fast_and_small():
    plan, factory, _ = _stack("campus-10gw")
    assert plan.totals["nodes"] > 100_000
    start = time.perf_counter()
    files = build_files(plan)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, elapsed
    # No per-host lines or files. The controller carries the rendered topology.conf, one block per
    # NVLink domain (18 trays), as `aifactory render` writes it; everything else stays small.
    controller = ansible_data.load_yaml(files["inventory/group_vars/slurm_controller_campus.yml"])
    topology = controller["slurm_controller_topology_conf_content"]
    assert topology.count("\nBlockName=") > plan.totals["nodes"] // 18 - 18
    assert sum(len(t) for t in files.values()) - len(topology) < 200_000
    assert not any("/host_vars/" in p for p in files)


def test_pool_names_cannot_collide_with_role_groups(tmp_path):
    text = (REPO / "stacks/lab/factory.yaml").read_text().replace("{name: gpu,", "{name: efa,")
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    loaded = spec.load(path)
    files = build_files(planning.build(loaded))
    groups = ansible_data.load_yaml(files["inventory/hosts.yml"])["all"]["children"]
    assert "pool_efa" in groups and "efa" not in groups  # an InfiniBand pool is not in the EFA group


def test_write_files_removes_only_what_it_wrote(tmp_path):
    _, _, files = _stack("multicloud")
    write_files(files, tmp_path)
    (tmp_path / "inventory/group_vars/pool_mine.yml").write_text("mine: true\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    _, _, lab = _stack("lab")
    write_files(lab, tmp_path)
    # The multicloud pools' files were written by aifactory: gone. The hand-written ones stay.
    assert not (tmp_path / "inventory/group_vars/pool_aws.yml").exists()
    assert (tmp_path / "inventory/group_vars/pool_mine.yml").read_text() == "mine: true\n"
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".aifactory-inventory.json", "inventory", "notes.txt"]


def test_cli_inventory_writes_and_refuses_bad_specs(tmp_path):
    run = [sys.executable, "-m", "aifactory", "inventory"]
    ok = subprocess.run(run + [str(REPO / "stacks/aws-p5/factory.yaml"), "--out", str(tmp_path)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "16 hosts" in ok.stdout
    assert "train-[0001:0016]" in (tmp_path / "inventory/hosts.yml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsites: [{name: s}]\npools: [{name: p, site: s, provider: onprem, system: nope, nodes: 1}]\n")
    refused = subprocess.run(run + [str(bad), "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert refused.returncode == 1
    assert "pools[0].system" in refused.stderr or "pools.0.system" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "b").exists()
    neither = subprocess.run(run + ["--out", str(tmp_path / "c")], capture_output=True, text=True)
    assert neither.returncode == 1 and "give FILE --out DIR" in neither.stderr
