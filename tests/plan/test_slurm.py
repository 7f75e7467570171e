"""The Slurm clusters in the plan: which sites each schedules (a cluster per site by default, one
over several sites, a federation), their controllers, login nodes, accounting, default partition,
QoS and fair-share, from the spec's ``slurm`` section or the defaults; and the same facts refused
when a plan file read back does not hold together."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from aifactory.errors import AifactoryError
from aifactory.plan import validate
from aifactory.plan.model import Plan, SlurmClusterPlan
from aifactory.spec import load_string
from tests.plan.test_checks import DGX_HOSTS, TODAY, base, with_oci


def planned(spec: dict) -> Plan:
    result = validate(load_string(yaml.safe_dump(spec, sort_keys=False), "f.yaml"), today=TODAY)
    assert not result.errors, [f.render() for f in result.errors]
    return result.plan


def clusters(spec: dict) -> dict[str, SlurmClusterPlan]:
    return {c.site: c for c in planned(spec).slurm}


def test_without_a_slurm_section_every_site_gets_the_defaults():
    got = clusters(base())
    assert list(got) == ["dc1", "aws1"]  # one cluster per site, in the order of sites:
    # the first node of the site's first Slurm pool, local accounting there, that pool's partition
    assert got["dc1"] == SlurmClusterPlan(site="dc1", controllers=["dgx-0001"], accounting="local",
                                          accounting_host="dgx-0001", accounting_port=6819, default_partition="dgx")
    assert got["aws1"].controllers == ["p5-0001"] and got["aws1"].accounting_host == "p5-0001"


def test_a_cloud_pool_without_declared_names_hosts_the_controller_on_its_first_planned_node():
    spec = base()
    spec["pools"].insert(1, {"name": "p5b", "site": "aws1", "provider": "aws", "system": "p5.48xlarge",
                             "nodes": 12000, "fabric": "efa", "zones": ["us-east-1a"]})
    spec["slurm"] = {"clusters": [{"site": "aws1", "controller": {"pool": "p5"}, "backup": {"pool": "p5b"},
                                   "default_partition": "p5"}]}
    aws = clusters(spec)["aws1"]
    # p5b has 12,000 nodes: its names are five digits wide, and the plan says so once.
    assert aws.controllers == ["p5-0001", "p5b-00001"] and aws.default_partition == "p5"


def test_declared_hosts_backup_and_external_accounting():
    spec = base()
    spec["pools"][0]["hosts"] = DGX_HOSTS
    spec["slurm"] = {"clusters": [{"site": "dc1", "controller": {"host": "n2"}, "backup": {"pool": "dgx"},
                                   "accounting": {"database": "external", "host": "dbd.example.com"}}]}
    got = clusters(spec)
    assert got["dc1"] == SlurmClusterPlan(site="dc1", controllers=["n2", "n1"], accounting="external",
                                          accounting_host="dbd.example.com", accounting_port=6819,
                                          default_partition="dgx")
    assert got["aws1"].controllers == ["p5-0001"]  # the site not listed keeps the defaults
    spec["slurm"]["clusters"][0]["accounting"]["port"] = 7031
    assert clusters(spec)["dc1"].accounting_port == 7031


def test_the_default_partition_is_the_named_slurm_pool():
    spec = base()
    spec["pools"].insert(1, {"name": "dgx2", "site": "dc1", "provider": "onprem", "system": "dgx-h100",
                             "nodes": 2, "fabric": "ib"})
    spec["pools"].insert(0, {"name": "k8s", "site": "dc1", "provider": "onprem", "system": "dgx-h100",
                             "nodes": 2, "fabric": "ib", "scheduler": "kubernetes"})
    assert clusters(spec)["dc1"].default_partition == "dgx"  # Kubernetes pools have no partition
    assert clusters(spec)["dc1"].controllers == ["dgx-0001"]
    spec["slurm"] = {"clusters": [{"site": "dc1", "default_partition": "dgx2"}]}
    assert clusters(spec)["dc1"].default_partition == "dgx2"


def test_a_site_without_slurm_nodes_has_no_cluster():
    spec = base()
    spec["pools"][1]["scheduler"] = "none"
    assert [c.site for c in planned(spec).slurm] == ["dc1"]


def test_plan_json_round_trips_and_shows_the_control_plane():
    plan = planned(base())
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["schema_version"] == 3
    assert data["software"]["slurm"] == "23.11"  # ubuntu-24.04's own Slurm
    assert data["slurm"][0] == {"site": "dc1", "controllers": ["dgx-0001"], "accounting": "local",
                                "accounting_host": "dgx-0001", "accounting_port": 6819, "default_partition": "dgx"}
    assert Plan.from_dict(data) == plan


TAMPERED = {
    "a controller that is no node": (lambda d: d["slurm"][0].update(controllers=["dgx-0017"]),
                                     "controller 'dgx-0017' is not a node"),
    "a controller of another site": (lambda d: d["slurm"][0].update(controllers=["p5-0001"]), "is not a node"),
    "a controller name wider than planned": (lambda d: d["slurm"][0].update(controllers=["dgx-00001"]),
                                             "is not a node"),
    "a hostile controller": (lambda d: d["slurm"][0].update(controllers=["$(reboot)"]), "slurm[0].controllers[0]"),
    "the backup is the primary": (lambda d: d["slurm"][0].update(controllers=["dgx-0001", "dgx-0001"]),
                                  "backup controller is the primary"),
    "three controllers": (lambda d: d["slurm"][0].update(controllers=["dgx-0001", "dgx-0002", "dgx-0003"]),
                          "slurm[0].controllers"),
    "local accounting elsewhere": (lambda d: d["slurm"][0].update(accounting_host="dgx-0002"),
                                   "local accounting runs on the primary controller"),
    "a hostile accounting host": (lambda d: d["slurm"][0].update(accounting="external", accounting_host="a\nb"),
                                  "slurm[0].accounting_host"),
    "a port out of range": (lambda d: d["slurm"][0].update(accounting_port=70000), "slurm[0].accounting_port"),
    "a boolean port": (lambda d: d["slurm"][0].update(accounting_port=True), "slurm[0].accounting_port"),
    "a port as text": (lambda d: d["slurm"][0].update(accounting_port="6819"), "slurm[0].accounting_port"),
    "an unknown partition": (lambda d: d["slurm"][0].update(default_partition="p5"), "default partition 'p5'"),
    "a site left out": (lambda d: d["slurm"].pop(1), "are not the sites with Slurm nodes"),
    "a site twice": (lambda d: d["slurm"].append(d["slurm"][0]), "duplicate Slurm cluster 'dc1'"),
    "no slurm key": (lambda d: d.pop("slurm"), "slurm: Field required"),
    "an extra key": (lambda d: d["slurm"][0].update(munge_key="x"), "slurm[0].munge_key"),
    "a hostile release": (lambda d: d["software"].update(slurm="23.11\nx"), "software.slurm"),
    "no release": (lambda d: d["software"].pop("slurm"), "software.slurm: Field required"),
    "an older plan": (lambda d: d.update(schema_version=2), "is not 3"),
}


@pytest.mark.parametrize("what", TAMPERED)
def test_a_plan_file_whose_control_plane_does_not_hold_together_is_refused(what):
    mutate, says = TAMPERED[what]
    data = copy.deepcopy(planned(base()).to_dict())
    mutate(data)
    with pytest.raises(AifactoryError) as exc:
        Plan.from_dict(json.loads(json.dumps(data)), "p.json")
    message = str(exc.value)
    assert message.startswith("p.json: ") and says in message and "\n" not in message, message


def test_naming_a_planned_node_as_a_host_points_at_its_pool():
    spec = base()
    spec["slurm"] = {"clusters": [{"site": "aws1", "controller": {"host": "p5-0001"}}]}
    result = validate(load_string(yaml.safe_dump(spec, sort_keys=False), "f.yaml"), today=TODAY)
    (error,) = [f for f in result.errors if f.check == "slurm-controller"]
    assert "write {pool: p5} for its first node" in error.hint, error.render()


# -- clusters of several sites, the layouts, login nodes, QoS and fair-share --

def test_one_cluster_may_span_sites_and_providers():
    spec = base()
    spec["slurm"] = {"clusters": [{"name": "all", "sites": ["dc1", "aws1"], "controller": {"pool": "dgx"},
                                   "default_partition": "p5"}]}
    (cluster,) = planned(spec).slurm
    assert cluster.name == "all" and cluster.sites == ["dc1", "aws1"] and cluster.site == "dc1"
    assert cluster.controllers == ["dgx-0001"] and cluster.accounting_host == "dgx-0001"
    assert cluster.default_partition == "p5"
    assert cluster.cluster_name("t") == "t-all"


def test_the_controller_of_a_cluster_of_several_sites_may_run_at_any_of_them():
    spec = base()
    spec["slurm"] = {"clusters": [{"name": "all", "sites": ["dc1", "aws1"], "controller": {"pool": "p5"}}]}
    (cluster,) = planned(spec).slurm
    assert cluster.site == "aws1" and cluster.controllers == ["p5-0001"] and cluster.default_partition == "dgx"


@pytest.mark.parametrize("layout,names", [("per-site", ["dc1", "aws1"]), ("single", ["main"]),
                                          ("federation", ["dc1", "aws1"])])
def test_the_layout_groups_the_sites_no_entry_lists(layout, names):
    spec = base()
    spec["slurm"] = {"layout": layout}
    got = planned(spec).slurm
    assert [c.name for c in got] == names
    assert [s for c in got for s in c.sites] == ["dc1", "aws1"]
    if layout == "federation":
        assert {c.federation for c in got} == {"t"}  # the factory's name unless federation: names one
        # One slurmdbd for the federation: the first cluster's, local on its primary controller.
        assert [(c.accounting, c.accounting_host) for c in got] == [("local", "dgx-0001"), ("external", "dgx-0001")]
    else:
        assert {c.federation for c in got} == {None}


def test_an_entry_overrides_the_layout_for_its_sites():
    spec = base()
    with_oci(spec)
    spec["slurm"] = {"layout": "single", "clusters": [{"site": "aws1", "controller": {"pool": "p5"}}]}
    got = {c.name: c for c in planned(spec).slurm}
    assert list(got) == ["main", "aws1"]  # in the order of each cluster's first site
    assert got["main"].sites == ["dc1", "oci1"] and got["aws1"].sites == ["aws1"]


def test_login_qos_and_fairshare_are_planned():
    spec = base()
    spec["pools"][0]["hosts"] = DGX_HOSTS
    spec["slurm"] = {"clusters": [{
        "site": "dc1", "login": [{"host": "n2"}],
        "qos": [{"name": "high", "priority": 100, "max_wall": "2d", "max_gpus_per_user": 64}],
        "fairshare": {"decay_half_life_days": 14, "weights": {"qos": 5000}}}]}
    cluster = clusters(spec)["dc1"]
    assert cluster.login == ["n2"]
    (qos,) = cluster.qos
    assert (qos.name, qos.priority, qos.max_wall, qos.max_jobs_per_user, qos.max_gpus_per_user) == \
        ("high", 100, 2 * 24 * 60, None, 64)
    assert cluster.fairshare.decay_half_life_days == 14
    w = cluster.fairshare.weights
    assert (w.fairshare, w.age, w.qos, w.job_size) == (10_000, 1_000, 5_000, 0)
    spec["slurm"]["clusters"][0]["fairshare"]["enabled"] = False
    assert clusters(spec)["dc1"].fairshare is None


def test_a_login_node_may_be_a_pool_without_a_scheduler():
    spec = base()
    spec["pools"].append({"name": "login", "site": "dc1", "provider": "onprem", "system": "dgx-h100", "nodes": 1,
                          "fabric": "ib", "scheduler": "none"})
    spec["slurm"] = {"clusters": [{"site": "dc1", "login": [{"pool": "login"}]}]}
    assert clusters(spec)["dc1"].login == ["login-0001"]


def test_a_qos_priority_without_a_qos_weight_warns():
    spec = base()
    spec["slurm"] = {"clusters": [{"site": "dc1", "qos": [{"name": "high", "priority": 10}]}]}
    result = validate(load_string(yaml.safe_dump(spec, sort_keys=False), "f.yaml"), today=TODAY)
    (w,) = [f for f in result.findings if f.check == "slurm-qos"]
    assert w.severity == "warning" and "counts only in fair-share" in w.message
    spec["slurm"]["clusters"][0]["fairshare"] = {}
    result = validate(load_string(yaml.safe_dump(spec, sort_keys=False), "f.yaml"), today=TODAY)
    assert [f for f in result.findings if f.check == "slurm-qos"] == []


@pytest.mark.parametrize("value", ["1:30:00", 90, "90", "90s", "0m", "366d", True, "1.5h", "12 h"])
def test_a_qos_wall_time_needs_its_unit(value):
    spec = base()
    spec["slurm"] = {"clusters": [{"site": "dc1", "qos": [{"name": "high", "max_wall": value}]}]}
    text = yaml.safe_dump(spec, sort_keys=False)
    if value == "1:30:00":  # as a user writes it: YAML 1.1 reads the bare form as the number 5400
        text = text.replace("'1:30:00'", "1:30:00")
    from aifactory.errors import SpecError

    with pytest.raises(SpecError) as exc:
        load_string(text, "f.yaml")
    assert any(f.path[-1] == "max_wall" for f in exc.value.findings), [f.render() for f in exc.value.findings]


def test_a_plan_json_with_every_new_field_round_trips():
    spec = base()
    spec["slurm"] = {"layout": "federation", "federation": "gpus", "clusters": [{
        "site": "dc1", "login": [{"pool": "dgx"}], "qos": [{"name": "high", "max_wall": "12h"}],
        "fairshare": {}}]}
    plan = planned(spec)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["slurm"][0]["login"] == ["dgx-0001"] and data["slurm"][0]["federation"] == "gpus"
    assert data["slurm"][0]["qos"] == [{"name": "high", "priority": 0, "max_wall": 720, "max_jobs_per_user": None,
                                        "max_gpus_per_user": None}]
    assert "name" not in data["slurm"][0] and "sites" not in data["slurm"][0]  # a cluster per site, as before
    assert "login" not in data["slurm"][1] and "fairshare" not in data["slurm"][1]
    assert Plan.from_dict(data) == plan
    spec["slurm"] = {"clusters": [{"name": "all", "sites": ["dc1", "aws1"]}]}
    plan = planned(spec)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["slurm"][0]["name"] == "all" and data["slurm"][0]["sites"] == ["dc1", "aws1"]
    assert Plan.from_dict(data) == plan


TAMPERED_CLUSTERS = {
    "a site in two clusters": (lambda d: d["slurm"][0].update(sites=["dc1", "aws1"]), "in two Slurm clusters"),
    "a login node that is no node": (lambda d: d["slurm"][0].update(login=["dgx-0099"]), "login node 'dgx-0099'"),
    "a hostile login node": (lambda d: d["slurm"][0].update(login=["a\nb"]), "slurm[0].login[0]"),
    "seventeen login nodes": (lambda d: d["slurm"][0].update(login=[f"dgx-{i:04d}" for i in range(1, 18)]),
                              "slurm[0].login"),
    "a QoS twice": (lambda d: d["slurm"][0].update(qos=[{"name": "a"}, {"name": "a"}]), "a QoS is listed twice"),
    "a hostile QoS name": (lambda d: d["slurm"][0].update(qos=[{"name": "{{ x }}"}]), "slurm[0].qos[0].name"),
    "a wall time as text": (lambda d: d["slurm"][0].update(qos=[{"name": "a", "max_wall": "12h"}]),
                            "slurm[0].qos[0].max_wall"),
    "weights past 32 bits": (lambda d: d["slurm"][0].update(fairshare={"decay_half_life_days": 7, "weights": {
        "fairshare": 4_000_000_000, "age": 400_000_000, "qos": 0, "job_size": 0}}), "more than 4294967295"),
    "a federation of two slurmdbds": (lambda d: [c.update(federation="f") for c in d["slurm"]],
                                      "do not share one slurmdbd"),
    "the primary at another site": (lambda d: d["slurm"][0].update(site="aws1", name="dc1", sites=["dc1"]),
                                    "not one of its sites"),
    "a cluster name as a path": (lambda d: d["slurm"][0].update(name="../x"), "slurm[0].name"),
}


@pytest.mark.parametrize("what", TAMPERED_CLUSTERS)
def test_a_plan_file_whose_clusters_do_not_hold_together_is_refused(what):
    mutate, says = TAMPERED_CLUSTERS[what]
    data = copy.deepcopy(planned(base()).to_dict())
    mutate(data)
    with pytest.raises(AifactoryError) as exc:
        Plan.from_dict(json.loads(json.dumps(data)), "p.json")
    message = str(exc.value)
    assert message.startswith("p.json: ") and says in message and "\n" not in message, message
