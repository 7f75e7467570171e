"""Slurm clusters of several sites: one slurm.conf, a partition per pool, and a topology that keeps
each site (and so each provider) a tree of its own; QoS and fair-share lines from the plan."""

from __future__ import annotations

from aifactory.plan.model import Plan
from aifactory.render import slurm
from tests.render.helpers import LOGIN_QOS_FAIRSHARE, STACKS, expand, nvl72_spec, planned, rendered

MULTICLOUD = STACKS / "multicloud" / "factory.yaml"


def _conf(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in text.splitlines() if line and not line.startswith("#")]


def _switches(topology: str) -> dict[str, dict[str, str]]:
    out = {}
    for key, line in ((k, f"{k}={v}") for k, v in _conf(topology)):
        if key == "SwitchName":
            fields = dict(part.split("=", 1) for part in line.split())
            out[fields["SwitchName"]] = fields
    return out


def _under(switches: dict[str, dict[str, str]], name: str) -> set[str]:
    """Every node below switch ``name``."""
    s = switches[name]
    nodes = set(expand(s["Nodes"])) if "Nodes" in s else set()
    for child in expand(s.get("Switches", "")):
        nodes |= _under(switches, child)
    return nodes


def _site_of(plan: Plan) -> dict[str, str]:
    return {n: p.site for p in plan.pools for n in p.host_names()}


def test_multicloud_is_one_slurm_conf_with_a_partition_per_pool():
    plan, _ = planned(MULTICLOUD)
    files = rendered(MULTICLOUD)
    confs = [rel for rel in files if rel.startswith("slurm/") and rel.endswith("/slurm.conf")]
    assert confs == ["slurm/global/slurm.conf"]
    settings = _conf(files["slurm/global/slurm.conf"])
    partitions = [v.split()[0] for k, v in settings if k == "PartitionName"]
    assert partitions == [p.name for p in plan.pools] == ["onprem", "aws", "gcp", "azure", "oci"]
    assert [v for k, v in settings if k == "SlurmctldHost"] == ["onprem-0001"]
    assert ("AccountingStorageHost", "onprem-0001") in settings
    assert ("ClusterName", "multicloud-global") in settings
    assert ("TopologyPlugin", "topology/tree") in settings
    nodes = [n for k, v in settings if k == "NodeName" for n in expand(v.split()[0])]
    assert sorted(nodes) == sorted(_site_of(plan))


def test_multicloud_topology_keeps_each_providers_fabric_a_tree_of_its_own():
    """Every node is under a switch, and no switch has nodes of two sites below it: Slurm places a
    job only under one switch, so never across providers."""
    plan, _ = planned(MULTICLOUD)
    switches = _switches(rendered(MULTICLOUD)["slurm/global/topology.conf"])
    site_of = _site_of(plan)
    provider_of = {p.site: p.provider for p in plan.pools}
    every = set()
    for name in switches:
        below = _under(switches, name)
        assert len({site_of[n] for n in below}) == 1, (name, {site_of[n] for n in below})
        assert len({provider_of[site_of[n]] for n in below}) == 1, name
        every |= below
    assert every == set(site_of)
    # The roots: one tree per site, none above them.
    children = {c for s in switches.values() for c in expand(s.get("Switches", ""))}
    roots = [n for n in switches if n not in children]
    assert sorted(site_of[next(iter(_under(switches, r)))] for r in roots) == sorted(s.name for s in plan.sites)
    # The on-prem fabric keeps the tree the planned fabric gives it; a cloud pool is a switch of its own.
    assert switches["dc1-ib-t1-0001"]["Nodes"] == "onprem-[0001-0032]"
    assert switches["aws-nodes"]["Nodes"] == "aws-[0001-0016]"


def test_nvl72_and_a_switch_fabric_at_two_sites_are_two_trees():
    """Two on-prem sites in one cluster: each site joins its own trees under a root of its own,
    and no switch joins the two sites."""
    spec = nvl72_spec(36, "debian-12").replace(
        "sites: [{name: hall, power_mw: 20, pue: 1.15, rack_kw: 140}]",
        "sites: [{name: hall, power_mw: 20, pue: 1.15, rack_kw: 140}, "
        "{name: east, power_mw: 5, pue: 1.3, rack_kw: 45}]")
    spec = spec.replace("pools: [", "pools: [{name: dgx, site: east, provider: onprem, system: dgx-h100, nodes: 40, "
                                     "fabric: ib2}, {name: eth, site: east, provider: onprem, system: dgx-h100, "
                                     "nodes: 4}, ")
    spec = spec.replace("fabrics: [", "fabrics: [{name: ib2, type: infiniband, switch: qm9700}, ")
    spec += "slurm:\n  clusters:\n    - {name: both, sites: [hall, east]}\n"
    plan, _ = planned(spec)
    files = slurm.files(plan, plan.catalog())
    assert list(files) == ["slurm/both/slurm.conf", "slurm/both/gres.conf", "slurm/both/cgroup.conf",
                           "slurm/both/topology.conf"]
    switches = _switches(files["slurm/both/topology.conf"])
    site_of = _site_of(plan)
    assert {n for n in switches if n.endswith("-root")} == {"east-root"}  # hall: one NVL72 pool, one root
    assert _under(switches, "east-root") == {n for n, s in site_of.items() if s == "east"}
    assert _under(switches, "rack-nvl") == {n for n, s in site_of.items() if s == "hall"}
    assert switches["eth-nodes"]["Nodes"] == "eth-[0001-0004]"  # no switch tree: a switch of its own


def test_a_pool_outside_the_tree_of_a_one_site_cluster_is_a_switch_of_its_own():
    """topology.conf(5): every node must be under a switch. Slurm 22.05 (no topology/block) gets a
    tree for the NVL72 pool; the HGX pool on an Ethernet fabric, which has no tree, is one switch."""
    plan, _ = planned(nvl72_spec(36, "debian-12", hgx=8, hgx_fabric="eth"))
    switches = _switches(slurm.files(plan, plan.catalog())["slurm/hall/topology.conf"])
    assert switches["hgx-nodes"]["Nodes"] == "hgx-[0001-0008]"
    assert sorted(expand(switches["hall-root"]["Switches"])) == ["hgx-nodes", "rack-nvl"]


def test_qos_and_fairshare_reach_slurm_conf():
    plan, _ = planned(nvl72_spec(36, "ubuntu-24.04", hgx=8) + LOGIN_QOS_FAIRSHARE)
    settings = dict(_conf(slurm.files(plan, plan.catalog())["slurm/hall/slurm.conf"]))
    assert settings["AccountingStorageEnforce"] == "associations,limits,qos"
    assert settings["PriorityType"] == "priority/multifactor"
    assert settings["PriorityDecayHalfLife"] == "14-0"
    assert (settings["PriorityWeightFairshare"], settings["PriorityWeightAge"], settings["PriorityWeightQOS"],
            settings["PriorityWeightJobSize"]) == ("10000", "1000", "5000", "100")
    # Without them: Slurm's defaults, and nothing enforced beyond them.
    plan, _ = planned(nvl72_spec(36, "ubuntu-24.04", hgx=8))
    settings = dict(_conf(slurm.files(plan, plan.catalog())["slurm/hall/slurm.conf"]))
    assert not {k for k in settings if k.startswith("Priority") or k == "AccountingStorageEnforce"}


def test_a_cluster_per_site_keeps_its_folder_and_name():
    text = MULTICLOUD.read_text()
    plan, _ = planned(text[:text.index("\nslurm:")] + "\n")
    files = slurm.files(plan, plan.catalog())
    assert sorted({rel.split("/")[1] for rel in files}) == sorted(s.name for s in plan.sites)
    assert "ClusterName=multicloud-dc1\n" in files["slurm/dc1/slurm.conf"]
    assert "slurm/aws-use1/topology.conf" not in files  # one cloud site: no tree to keep apart
