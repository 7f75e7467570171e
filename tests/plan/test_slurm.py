"""The Slurm control plane in the plan: one cluster per site, its controllers, accounting and
default partition, from the spec's ``slurm`` section or the defaults; and the same facts refused
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
from tests.plan.test_checks import DGX_HOSTS, TODAY, base


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
