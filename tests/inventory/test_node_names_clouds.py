"""`aifactory inventory --assign-names` on GCP and OCI: their SDKs' own clients against a fake API
that answers like the recorded responses and keeps what was written (labels and metadata with
their fingerprints; freeform tags), so a second run sees the first one's writes."""

from __future__ import annotations

import copy
import itertools
import json

import pytest

from aifactory.errors import AifactoryError
from aifactory.inventory import gcp, oci
from tests import ansible_data
from tests.inventory import fake_cloud, names_plan
from tests.inventory import test_oci_inventory as recorded_oci
from tests.inventory.fake_cloud import FakeApi, Reply

COMPARTMENT, SUBNETS, _config = recorded_oci.COMPARTMENT, recorded_oci.SUBNETS, recorded_oci._config
key = recorded_oci.key  # the fixture: an API signing key made for the tests

HOSTILE = "{{ lookup('pipe', 'touch %s') }}" % fake_cloud.CANARY


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    root = tmp_path_factory.mktemp("plans")
    return {p: names_plan.plan(root, p) for p in ("gcp", "oci")}


# --- GCP ---------------------------------------------------------------------------------------

PROJECT = "my-project-1"
ZONE = "us-central1-a"
BASE = f"/compute/v1/projects/{PROJECT}"


class Gce:
    """Instances of one zone; setLabels and setMetadata apply with their fingerprints, as GCE does."""

    def __init__(self):
        page = fake_cloud.recorded("gcp", "aggregated-page1")
        self.template = page["items"][f"zones/{ZONE}"]["instances"][0]
        self.instances: dict[str, dict] = {}
        self.fingerprints = itertools.count(1)
        self.api = FakeApi(self.handle)

    def add(self, name, pool="train", created="2026-01-05T10:00:00.000-08:00", label=None, metadata=None):
        inst = copy.deepcopy(self.template)
        inst.update({"id": str(1000 + len(self.instances)), "name": name, "creationTimestamp": created,
                     "selfLink": f"https://www.googleapis.com/compute/v1{BASE}/zones/{ZONE}/instances/{name}",
                     "labelFingerprint": f"lf{next(self.fingerprints)}"})
        inst["labels"] = {**inst["labels"], "aifactory-pool": pool}
        inst["networkInterfaces"][0]["networkIP"] = f"10.70.0.{10 + len(self.instances)}"
        if label is not None:
            inst["labels"]["aifactory-node"] = label
        items = [{"key": "user-data", "value": "#cloud-config\n"}, {"key": "enable-oslogin", "value": "TRUE"}]
        if metadata is not None:
            items.append({"key": "aifactory-node", "value": metadata})
        inst["metadata"] = {"kind": "compute#metadata", "fingerprint": f"mf{next(self.fingerprints)}", "items": items}
        self.instances[name] = inst
        return inst

    def writes(self):
        return [(c.path.rsplit("/", 2)[-2], c.path.rsplit("/", 1)[-1]) for c in self.api.calls if c.method == "POST"]

    def handle(self, method, path, query):
        if method == "GET" and path == f"{BASE}/aggregated/instances":
            return Reply({"items": {f"zones/{ZONE}": {"instances": list(self.instances.values())}}})
        prefix = f"{BASE}/zones/{ZONE}/instances/"
        if method != "POST" or not path.startswith(prefix):
            return None
        name, action = path[len(prefix):].split("/")
        inst, body = self.instances[name], json.loads(self.api.calls[-1].body)
        if action == "setLabels":
            if body.get("labelFingerprint") != inst["labelFingerprint"]:
                return Reply({"error": {"code": 412, "message": "Labels fingerprint either invalid or resource "
                                                                "labels have changed"}}, 412)
            inst.update({"labels": body["labels"], "labelFingerprint": f"lf{next(self.fingerprints)}"})
        elif action == "setMetadata":
            if body.get("fingerprint") != inst["metadata"]["fingerprint"]:
                return Reply({"error": {"code": 412, "message": "Supplied fingerprint does not match current "
                                                                "metadata fingerprint."}}, 412)
            inst["metadata"] = {"kind": "compute#metadata", "fingerprint": f"mf{next(self.fingerprints)}",
                                "items": body["items"]}
        else:
            return None
        return Reply({"kind": "compute#operation", "name": f"operation-{len(self.api.calls)}", "status": "RUNNING"})

    def claim(self, name):
        inst = self.instances[name]
        meta = {i["key"]: i["value"] for i in inst["metadata"]["items"]}
        return inst["labels"].get("aifactory-node"), meta.get("aifactory-node")


@pytest.fixture
def gce():
    fake = Gce()
    with fake_cloud.serve(fake.api) as url:
        fake.url = url
        yield fake


def _gcp(gce, plan, warnings=None):
    from google.auth.credentials import AnonymousCredentials

    _, compute_v1 = gcp._sdk()
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), client_options={"api_endpoint": gce.url})
    gce.api.calls.clear()
    return gcp.inventory("f1", PROJECT, instances_client=client, plan=plan,
                         warn=warnings.append if warnings is not None else None)


def test_gcp_claims_are_written_as_label_and_metadata_keeping_the_rest(gce, plans):
    gce.add("f1-train-bbbb", created="2026-01-05T10:00:01.000-08:00")
    gce.add("f1-train-aaaa", created="2026-01-05T18:00:00.500+00:00")  # launched first (UTC offsets differ)
    gce.add("f1-infer-a-cccc", pool="infer-a")
    inv = _gcp(gce, plans["gcp"])
    assert gce.claim("f1-train-aaaa") == ("train-0001", "train-0001")
    assert gce.claim("f1-train-bbbb") == ("train-0002", "train-0002")
    assert gce.claim("f1-infer-a-cccc") == ("infer-a-0001", "infer-a-0001")
    inst = gce.instances["f1-train-aaaa"]
    assert inst["labels"]["team"] == "ml" and inst["labels"]["aifactory-factory"] == "f1"  # the rest is kept
    assert [i["key"] for i in inst["metadata"]["items"]] == ["user-data", "enable-oslogin", "aifactory-node"]
    # Each write carried the fingerprint of the listing (a later change would be refused, not overwritten).
    assert sorted(gce.writes()) == sorted((n, a) for n in gce.instances for a in ("setLabels", "setMetadata"))
    assert inv["pool_train"]["hosts"] == ["train-0001", "train-0002"]
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert not ansible_data.plain_strings(hostvars)
    first = hostvars["train-0001"]
    assert (first["gce_name"], first["ansible_host"]) == ("f1-train-aaaa", "10.70.0.11")
    again = _gcp(gce, plans["gcp"])
    assert gce.writes() == [] and again == inv


def test_gcp_half_written_claims_are_completed_and_conflicts_left_alone(gce, plans):
    gce.add("f1-train-aaaa", label="train-0002")                          # the metadata write never happened
    gce.add("f1-train-bbbb", metadata="train-0003")                       # the label write never happened
    gce.add("f1-train-cccc", label="train-0001", metadata="train-0003")   # disagree: left alone
    gce.add("f1-infer-a-dddd", pool="infer-a", metadata=HOSTILE)          # metadata takes any text
    warnings: list = []
    inv = _gcp(gce, plans["gcp"], warnings)
    assert sorted(gce.writes()) == [("f1-train-aaaa", "setMetadata"), ("f1-train-bbbb", "setLabels")]
    assert gce.claim("f1-train-aaaa") == ("train-0002", "train-0002")
    assert gce.claim("f1-train-bbbb") == ("train-0003", "train-0003")
    assert gce.claim("f1-train-cccc") == ("train-0001", "train-0003")
    assert gce.claim("f1-infer-a-dddd") == (None, HOSTILE)
    assert inv["pool_train"]["hosts"] == ["train-0002", "train-0003"] and "pool_infer_a" not in inv
    assert len(warnings) == 2 and not any("lookup" in w for w in warnings)
    assert any("its node-name label and metadata disagree" in w for w in warnings)


def test_gcp_a_change_since_the_listing_is_refused_not_overwritten(gce, plans):
    gce.add("f1-train-aaaa")
    original = gce.handle

    def racing(method, path, query):  # someone labels the instance between listing and write
        if path.endswith("/setLabels"):
            gce.instances["f1-train-aaaa"]["labelFingerprint"] = "changed"
        return original(method, path, query)

    gce.api.handler = racing
    with pytest.raises(AifactoryError, match="412") as info:
        _gcp(gce, plans["gcp"])
    assert "\n" not in str(info.value) and gce.claim("f1-train-aaaa") == (None, None)


# --- OCI ---------------------------------------------------------------------------------------

class Oci:
    """Running instances of the compartment; UpdateInstance replaces their freeform tags."""

    def __init__(self):
        self.template = fake_cloud.recorded("oci", "instances-page1")[0]
        self.instances: dict[str, dict] = {}
        self.api = FakeApi(self.handle)

    def add(self, suffix, pool="train", created="2026-01-05T10:00:00.000Z", tag=None):
        inst = copy.deepcopy(self.template)
        inst.update({"id": f"ocid1.instance.oc1.iad.{suffix}", "displayName": f"inst-{suffix}", "timeCreated": created})
        inst["freeformTags"] = {**inst["freeformTags"], "aifactory-pool": pool}
        if tag is not None:
            inst["freeformTags"]["aifactory-node"] = tag
        self.instances[inst["id"]] = inst
        return inst["id"]

    def handle(self, method, path, query):
        if method == "GET" and path == "/20160918/instances":
            return Reply(list(self.instances.values()))
        if method == "GET" and path == "/20160918/vnicAttachments":
            return Reply(fake_cloud.recorded("oci", "vnic-attachments"))
        if method == "GET" and path == "/20160918/privateIps" and query.get("subnetId") in SUBNETS:
            subnet = SUBNETS[query["subnetId"]]
            if subnet != "train":
                return Reply(fake_cloud.recorded("oci", f"private-ips-{subnet}"))
            if query.get("page") == "2":
                return Reply(fake_cloud.recorded("oci", "private-ips-train-page2"))
            return Reply(fake_cloud.recorded("oci", "private-ips-train-page1"), headers={"opc-next-page": "2"})
        if method == "PUT" and path.startswith("/20160918/instances/"):
            inst = self.instances[path.rsplit("/", 1)[-1]]
            inst["freeformTags"] = json.loads(self.api.calls[-1].body)["freeformTags"]
            return Reply(inst)
        return None

    def writes(self):
        return [c.path.rsplit("/", 1)[-1] for c in self.api.calls if c.method == "PUT"]

    def tag(self, ocid):
        return self.instances[ocid]["freeformTags"].get("aifactory-node")


@pytest.fixture
def oracle():
    fake = Oci()
    with fake_cloud.serve(fake.api) as url:
        fake.url = url
        yield fake


def _oci(oracle, plan, key, warnings=None):
    oracle.api.calls.clear()
    return oci.inventory("f1", COMPARTMENT, config=_config(key), endpoint_url=oracle.url, plan=plan,
                         warn=warnings.append if warnings is not None else None)


def test_oci_claims_are_freeform_tags_written_once(oracle, plans, key):
    second = oracle.add("inst2", created="2026-01-05T11:00:00.000Z")
    first = oracle.add("inst6", created="2026-01-05T10:00:00.000Z")
    claimed = oracle.add("inst1", tag="train-0002")
    hostile = oracle.add("inst5", tag=HOSTILE)
    warnings: list = []
    inv = _oci(oracle, plans["oci"], key, warnings)
    assert (oracle.tag(first), oracle.tag(claimed), oracle.tag(second)) == ("train-0001", "train-0002", "train-0003")
    assert oracle.tag(hostile) == HOSTILE and sorted(oracle.writes()) == sorted([first, second])
    # UpdateInstance replaces the freeform tags: the others are sent back unchanged.
    assert oracle.instances[first]["freeformTags"]["team"] == "ml"
    assert inv["pool_train"]["hosts"] == ["train-0001", "train-0002", "train-0003"]
    hostvars = inv["_meta"]["hostvars"]
    assert hostvars["train-0002"]["ansible_host"] == {"__ansible_unsafe": "10.70.0.2"}
    assert hostvars["train-0001"]["oci_instance_id"] == {"__ansible_unsafe": first}
    assert len(warnings) == 1 and "holds a value that is no node name" in warnings[0] and "lookup" not in warnings[0]
    # Requests are signed like every other OCI call.
    assert all(c.headers["authorization"].startswith("Signature ") for c in oracle.api.calls)
    again = _oci(oracle, plans["oci"], key)
    assert oracle.writes() == [] and again == inv
