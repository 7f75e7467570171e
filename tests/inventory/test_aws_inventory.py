"""`aifactory inventory --from aws` against moto's threaded server (a real HTTP endpoint)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from aifactory.components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, TAG_SITE
from aifactory.inventory import aws as inventory
from tests import ansible_data

REPO = Path(__file__).resolve().parents[2]
CANARY = Path("/tmp/aifactory-aws-tag-canary")
HOSTILE = "{{ lookup('pipe', 'touch %s') }}" % CANARY
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=url, **_creds())
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]

    def launch(count, factory, pool, site, role="node", region="us-east-1"):
        client = boto3.client("ec2", region_name=region, endpoint_url=url, **_creds())
        tags = [{"Key": TAG_FACTORY, "Value": factory}, {"Key": TAG_POOL, "Value": pool},
                {"Key": TAG_SITE, "Value": site}, {"Key": TAG_ROLE, "Value": role}]
        out = client.run_instances(ImageId=image, MinCount=count, MaxCount=count, InstanceType="p5.48xlarge",
                                   TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        return [i["InstanceId"] for i in out["Instances"]]

    launch(3, "f1", "train", "aws-use1")
    launch(1, "f1", "infer-a", "aws-use1")
    stopped = launch(1, "f1", "train", "aws-use1")
    ec2.stop_instances(InstanceIds=stopped)
    launch(2, "other", "train", "aws-use1")
    launch(2, "f1", "train", "aws-usw2", region="us-west-2")
    # Whoever may tag an instance writes these: a template and a name that is not one.
    launch(1, "hostile", HOSTILE, "site\nx", role="{% raw %}")
    yield url
    server.stop()


def _creds():
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_running_nodes_grouped_by_pool_site_and_role(endpoint):
    session = boto3.Session(region_name="us-east-1", **_creds())
    inv = inventory.inventory("f1", session=session, endpoint_url=endpoint)
    assert len(inv["pool_train"]["hosts"]) == 3  # the stopped one and the other factory are left out
    assert len(inv["pool_infer_a"]["hosts"]) == 1
    assert sorted(inv["site_aws_use1"]["hosts"]) == sorted(inv["pool_train"]["hosts"] + inv["pool_infer_a"]["hosts"])
    assert len(inv["role_node"]["hosts"]) == 4
    assert set(inv["all"]["children"]) == {"pool_train", "pool_infer_a", "site_aws_use1", "role_node", "ungrouped"}
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert set(hostvars) == set(inv["role_node"]["hosts"])
    assert not ansible_data.plain_strings(hostvars)  # every string is marked as data for Ansible
    for host, hv in hostvars.items():
        assert hv["ansible_host"] and hv["ansible_host"].startswith(("10.", "172.", "192.168."))
        assert hv["ec2_instance_type"] == "p5.48xlarge" and hv["aifactory_factory"] == "f1"
        assert hv["ec2_instance_id"].startswith("i-")


def test_several_regions(endpoint):
    session = boto3.Session(region_name="us-east-1", **_creds())
    inv = inventory.inventory("f1", regions=["us-east-1", "us-west-2"], session=session, endpoint_url=endpoint)
    assert len(inv["pool_train"]["hosts"]) == 5
    assert len(inv["site_aws_usw2"]["hosts"]) == 2


def test_cli_prints_ansible_dynamic_inventory_json(endpoint, tmp_path):
    env = {**os.environ, **CREDS}
    out = subprocess.run([sys.executable, "-m", "aifactory", "inventory", "--from", "aws", "--factory", "f1",
                          "--endpoint-url", endpoint], capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr
    inv = json.loads(out.stdout)
    assert len(inv["pool_train"]["hosts"]) == 3 and "_meta" in inv


def test_ansible_reads_it(endpoint, tmp_path):
    """The JSON is what ansible-inventory accepts from an inventory script."""
    env = {**os.environ, **CREDS}
    out = subprocess.run([sys.executable, "-m", "aifactory", "inventory", "--from", "aws", "--factory", "f1",
                          "--endpoint-url", endpoint], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    script = tmp_path / "inventory.sh"
    data = tmp_path / "inventory.json"
    data.write_text(out.stdout)
    script.write_text(f"#!/bin/sh\ncat {data}\n")
    script.chmod(0o755)
    ansible_inventory = Path(sys.executable).parent / "ansible-inventory"
    listed = subprocess.run([str(ansible_inventory), "-i", str(script), "--list"], capture_output=True, text=True,
                            env={**os.environ, "ANSIBLE_INVENTORY_ENABLED": "script"})
    assert listed.returncode == 0, listed.stderr
    parsed = ansible_data.load_json(listed.stdout)
    assert len(parsed["pool_train"]["hosts"]) == 3
    host = parsed["pool_train"]["hosts"][0]
    assert parsed["_meta"]["hostvars"][host]["aifactory_pool"] == "train"


def test_hostile_tags_are_data_and_make_no_groups(endpoint, tmp_path):
    CANARY.unlink(missing_ok=True)
    session = boto3.Session(region_name="us-east-1", **_creds())
    inv = inventory.inventory("hostile", session=session, endpoint_url=endpoint)
    assert set(inv) == {"all", "ungrouped", "_meta"} and inv["all"]["children"] == ["ungrouped"]
    data = tmp_path / "inventory.json"
    data.write_text(json.dumps(inv))
    script = tmp_path / "inventory.sh"
    script.write_text(f"#!/bin/sh\ncat {data}\n")
    script.chmod(0o755)
    env = {**os.environ, "ANSIBLE_INVENTORY_ENABLED": "script", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    used = subprocess.run([str(Path(sys.executable).parent / "ansible"), "all", "-i", str(script), "-c", "local",
                           "-e", "ansible_host=127.0.0.1", "-m", "debug", "-a",
                           'msg="{{ aifactory_pool }} {{ aifactory_role }} {{ aifactory_site }}"'],
                          capture_output=True, text=True, env=env, timeout=120)
    assert used.returncode == 0, used.stdout + used.stderr
    assert "lookup(" in used.stdout and not CANARY.exists()
