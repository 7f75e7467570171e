"""`aifactory inventory --from aws --assign-names PLAN`: planned node names claimed for the instances
of node groups, on moto's EC2 (in process, and its threaded server for the console entry point),
and the claim rules on their own (order, lowest free name, stability, overflow, hostile values)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from aifactory.components.base import TAG_FACTORY, TAG_NODE, TAG_POOL, TAG_ROLE, TAG_SITE
from aifactory.errors import AifactoryError
from aifactory.inventory import aws, names
from aifactory.inventory.dynamic import Node, from_cloud
from tests import ansible_data
from tests.inventory import fake_cloud, names_plan

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "{{ lookup('pipe', 'touch %s') }}" % fake_cloud.CANARY
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# --- the rules, on their own ------------------------------------------------------------------

def _node(key, pool="train", factory="f1"):
    return Node(key=key, names=(f"provider-{key}",), address="10.0.0.%d" % (len(key) + 1),
                tags={TAG_FACTORY: factory, TAG_POOL: pool, TAG_SITE: "aws-use1", TAG_ROLE: "node"})


def _cand(key, launched, claim=None, pool="train"):
    return names.Candidate(_node(key, pool), launched, claim)


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    return names_plan.plan(tmp_path_factory.mktemp("plan"), "aws")


def test_unnamed_instances_get_the_lowest_free_names_in_launch_order_then_id(plan):
    got = names.claim(plan, "aws", [_cand("i-c", 30), _cand("i-b", 10), _cand("i-a", 10, "train-0001")])
    assert [(n.key, name) for n, name in got.named] == [("i-a", "train-0001"), ("i-b", "train-0002"),
                                                        ("i-c", "train-0003")]
    assert [(n.key, name) for n, name in got.writes] == [("i-b", "train-0002"), ("i-c", "train-0003")]
    assert got.warnings == []


def test_a_freed_name_is_reused_and_claimed_names_never_move(plan):
    # train-0001's instance is gone: the next new instance takes it; train-0003 stays where it is.
    got = names.claim(plan, "aws", [_cand("i-z", 50), _cand("i-b", 10, "train-0003")])
    assert sorted((n.key, name) for n, name in got.named) == [("i-b", "train-0003"), ("i-z", "train-0001")]
    assert [(n.key, name) for n, name in got.writes] == [("i-z", "train-0001")]


def test_beyond_the_planned_count_no_name_is_given(plan):
    got = names.claim(plan, "aws", [_cand(f"i-{k}", k) for k in range(5)])
    assert [name for _, name in got.named] == ["train-0001", "train-0002", "train-0003"]
    assert len(got.warnings) == 2 and all("beyond the pool's 3 planned nodes" in w for w in got.warnings)


def test_claims_outside_the_plan_twice_held_or_not_names_are_reported_and_never_rewritten(plan):
    got = names.claim(plan, "aws", [
        _cand("i-a", 1, "train-0002"), _cand("i-b", 2, "train-0002"),   # the later one is left out
        _cand("i-c", 3, "train-0009"),                                  # the pool shrank to 3
        _cand("i-d", 4, HOSTILE), _cand("i-e", 5, "train-0001\n"),      # whoever may tag wrote these
        _cand("i-f", 6, "infer-a-0001"),                                # another pool's name
        _cand("i-g", 7, None, pool="gone"),                             # a pool the plan no longer has
    ])
    assert [(n.key, name) for n, name in got.named] == [("i-a", "train-0002")]
    assert got.writes == []
    text = "\n".join(got.warnings)
    assert "instance i-b of pool train claims train-0002, which instance i-a (launched earlier) holds" in text
    assert "instance i-c of pool train claims train-0009, which is not a planned name of the pool (3 nodes)" in text
    assert "instance i-f of pool train claims infer-a-0001" in text
    assert "instance i-g (pool gone): no aws pool of the plan has that name" in text
    assert sum("holds a value that is no node name" in w for w in got.warnings) == 2
    assert "lookup" not in text and "\n" not in "".join(got.warnings)  # hostile values are never echoed


def test_assign_refuses_a_plan_of_another_factory(plan):
    with pytest.raises(AifactoryError, match="the plan is of factory f1, not f2"):
        names.assign(plan, "aws", "f2", [], lambda node, name: None)


def test_azure_has_nowhere_to_keep_a_claim(plan):
    with pytest.raises(AifactoryError, match="--assign-names is not available: Azure pools are Uniform scale sets"):
        from_cloud("azure", "f1", subscription="00000000-1111-2222-3333-444444444444", plan=plan)


# --- moto's EC2 -------------------------------------------------------------------------------

class Ec2:
    """moto's EC2 in process: launch tagged instances, read tags back, count CreateTags calls."""

    def __init__(self):
        self.session = boto3.Session(region_name="us-east-1", **CREDS)
        self.writes: list = []
        self.session.events.register("provide-client-params.ec2.CreateTags",
                                     lambda params, **kw: self.writes.append(dict(params)))
        self.client = self.session.client("ec2")
        self.image = self.client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(self, count, pool="train", node=None, factory="f1"):
        tags = [{"Key": TAG_FACTORY, "Value": factory}, {"Key": TAG_POOL, "Value": pool},
                {"Key": TAG_SITE, "Value": "aws-use1"}, {"Key": TAG_ROLE, "Value": "node"}]
        if node is not None:
            tags.append({"Key": TAG_NODE, "Value": node})
        out = self.client.run_instances(ImageId=self.image, MinCount=count, MaxCount=count, InstanceType="p5.48xlarge",
                                        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        return sorted(i["InstanceId"] for i in out["Instances"])

    def claims(self) -> dict:
        found = {}
        for r in self.client.describe_instances()["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] == "running":
                    found[i["InstanceId"]] = {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get(TAG_NODE)
        return found

    def assign(self, plan, warnings=None):
        self.writes.clear()
        return aws.inventory("f1", session=self.session, plan=plan,
                             warn=(warnings.append if warnings is not None else None))


@pytest.fixture
def ec2():
    with mock_aws():
        yield Ec2()


def test_tags_are_written_and_hosts_listed_by_their_planned_names(ec2, plan):
    first = ec2.launch(2)
    infer = ec2.launch(1, pool="infer-a")
    ec2.launch(1, factory="other")
    inv = ec2.assign(plan)
    claims = ec2.claims()
    assert [claims[i] for i in first] == ["train-0001", "train-0002"] and claims[infer[0]] == "infer-a-0001"
    assert inv["pool_train"]["hosts"] == ["train-0001", "train-0002"]
    assert inv["pool_infer_a"]["hosts"] == ["infer-a-0001"]
    assert len(ec2.writes) == 3  # one tag write per instance; the other factory's is not touched
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert not ansible_data.plain_strings(hostvars)
    node = hostvars["train-0001"]
    assert node["ec2_instance_id"] == first[0] and node["aifactory_pool"] == "train"
    private = ec2.client.describe_instances(InstanceIds=[first[0]])["Reservations"][0]["Instances"][0]
    assert node["ansible_host"] == private["PrivateIpAddress"]


def test_a_second_run_writes_nothing_and_names_stay(ec2, plan):
    ec2.launch(3)
    first = ec2.assign(plan)
    assert len(ec2.writes) == 3
    again = ec2.assign(plan)
    assert ec2.writes == [] and again == first


def test_replacements_take_the_lowest_free_names_and_overflow_is_reported(ec2, plan):
    a, b, c = ec2.launch(3)
    ec2.assign(plan)
    ec2.client.terminate_instances(InstanceIds=[a])  # the group replaces train-0001's instance
    d, e = ec2.launch(2)
    warnings: list = []
    inv = ec2.assign(plan, warnings)
    claims = ec2.claims()
    assert (claims[b], claims[c]) == ("train-0002", "train-0003")  # kept
    # Two new instances, one free name: the earlier launch, then the lower id, gets it.
    assert (claims[d], claims[e]) == ("train-0001", None)
    assert inv["pool_train"]["hosts"] == ["train-0001", "train-0002", "train-0003"]
    assert warnings == [f"instance {e} of pool train: beyond the pool's 3 planned nodes; no name given, left out"]
    assert ec2.writes == [{"Resources": [d], "Tags": [{"Key": TAG_NODE, "Value": "train-0001"}]}]


def test_hostile_and_out_of_plan_tags_are_reported_left_alone_and_left_out(ec2, plan, tmp_path):
    (hostile,) = ec2.launch(1, node=HOSTILE)
    (shrunk,) = ec2.launch(1, node="train-0004")
    (taken,) = ec2.launch(1, node="train-0002")
    (fresh,) = ec2.launch(1)
    warnings: list = []
    inv = ec2.assign(plan, warnings)
    claims = ec2.claims()
    assert claims[hostile] == HOSTILE and claims[shrunk] == "train-0004"  # never overwritten
    assert claims[fresh] == "train-0001" and claims[taken] == "train-0002"
    assert inv["pool_train"]["hosts"] == ["train-0001", "train-0002"]
    assert set(inv["_meta"]["hostvars"]) == {"train-0001", "train-0002"}
    assert len(warnings) == 2 and not any("lookup" in w for w in warnings)
    assert any(f"instance {shrunk} of pool train claims train-0004, which is not a planned name" in w
               for w in warnings)
    used = fake_cloud.ansible_debug(inv, tmp_path)
    assert not fake_cloud.CANARY.exists() and "train" in used


def test_cli_assigns_names_from_a_factory_spec(tmp_path):
    """The console entry point against moto's server: JSON on stdout, one warning line on stderr."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client("ec2", region_name="us-east-1", endpoint_url=url, **CREDS)
        image = client.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        tags = [{"Key": TAG_FACTORY, "Value": "f1"}, {"Key": TAG_POOL, "Value": "infer-a"}]
        client.run_instances(ImageId=image, MinCount=2, MaxCount=2, InstanceType="p5.48xlarge",
                             TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}
        args = [sys.executable, "-m", "aifactory", "inventory", "--from", "aws", "--endpoint-url", url,
                "--assign-names", str(names_plan.spec_file(tmp_path, "aws"))]
        out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["pool_infer_a"]["hosts"] == ["infer-a-0001"]
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("inventory: instance i-") and "beyond the pool's 1 planned nodes" in line
        again = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
        assert again.returncode == 0 and again.stdout == out.stdout
    finally:
        server.stop()
