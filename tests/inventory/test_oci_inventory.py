"""`aifactory inventory --from oci`: the oci SDK's own ComputeClient and VirtualNetworkClient,
signing real requests with a key made here, against recorded responses served over HTTP
(instances and private IPs in two pages, VNIC attachments tying them together)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aifactory.errors import AifactoryError
from aifactory.inventory import oci as inventory
from tests import ansible_data
from tests.inventory import fake_cloud
from tests.inventory.fake_cloud import CANARY, FakeApi, Reply

REPO = Path(__file__).resolve().parents[2]
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaafactory"
SUBNETS = {"ocid1.subnet.oc1.iad.train": "train", "ocid1.subnet.oc1.iad.infer": "infer",
           "ocid1.subnet.oc1.iad.other": "other"}


def _handler(method, path, query):
    if method != "GET":
        return None
    second = query.get("page") == "2"
    if path == "/20160918/instances":
        assert query == {"compartmentId": COMPARTMENT, "lifecycleState": "RUNNING", **({"page": "2"} if second else {})}
        if second:
            return Reply(fake_cloud.recorded("oci", "instances-page2"))
        return Reply(fake_cloud.recorded("oci", "instances-page1"), headers={"opc-next-page": "2"})
    if path == "/20160918/vnicAttachments" and query.get("compartmentId") == COMPARTMENT:
        return Reply(fake_cloud.recorded("oci", "vnic-attachments"))
    if path == "/20160918/privateIps" and query.get("subnetId") in SUBNETS:
        subnet = SUBNETS[query["subnetId"]]
        if subnet != "train":
            return Reply(fake_cloud.recorded("oci", f"private-ips-{subnet}"))
        if second:
            return Reply(fake_cloud.recorded("oci", "private-ips-train-page2"))
        return Reply(fake_cloud.recorded("oci", "private-ips-train-page1"), headers={"opc-next-page": "2"})
    return None


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> tuple[Path, str]:
    """An API signing key made for the tests and its fingerprint, as `oci setup config` writes them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("oci") / "key.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()  # noqa: S324 - OCI's key fingerprint is MD5
    return path, ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def _config(key) -> dict:
    path, fingerprint = key
    return {"user": "ocid1.user.oc1..aaaaaaaauser", "tenancy": "ocid1.tenancy.oc1..aaaaaaaatenancy",
            "fingerprint": fingerprint, "key_file": str(path), "region": "us-ashburn-1"}


@pytest.fixture
def api():
    fake = FakeApi(_handler)
    with fake_cloud.serve(fake) as url:
        fake.url = url
        yield fake


def _inventory(api, key, factory="f1"):
    return inventory.inventory(factory, COMPARTMENT, config=_config(key), endpoint_url=api.url)


def test_running_instances_grouped_by_pool_site_and_role(api, key):
    inv = _inventory(api, key)
    assert inv["pool_train"]["hosts"] == ["inst-abcde-f1-train-pool", "inst-fghij-f1-train-pool",
                                         "ocid1.instance.oc1.iad.inst5", "ocid1.instance.oc1.iad.inst6"]
    assert inv["pool_infer_a"]["hosts"] == ["inst-pqrst-f1-infer-a-pool"]
    assert sorted(inv["site_oci_iad"]["hosts"]) == sorted(inv["role_node"]["hosts"]) == sorted(
        inv["pool_train"]["hosts"] + inv["pool_infer_a"]["hosts"])
    assert set(inv["all"]["children"]) == {"pool_train", "pool_infer_a", "site_oci_iad", "role_node", "ungrouped"}
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert set(hostvars) == set(inv["role_node"]["hosts"])  # the other factory's instance is left out
    assert not ansible_data.plain_strings(hostvars)
    # The primary VNIC (attached at launch) and its primary address, not a secondary of either.
    assert hostvars["inst-abcde-f1-train-pool"] == {
        "ansible_host": "10.70.0.2", "oci_instance_id": "ocid1.instance.oc1.iad.inst1",
        "oci_display_name": "inst-abcde-f1-train-pool", "oci_shape": "BM.GPU.H100.8",
        "oci_availability_domain": "Uocm:US-ASHBURN-AD-1", "oci_fault_domain": "FAULT-DOMAIN-1",
        "oci_region": "iad", "aifactory_factory": "f1", "aifactory_pool": "train", "aifactory_site": "oci-iad",
        "aifactory_role": "node"}
    # A display name that is no host name, and one already taken: listed by OCID, the name kept as data.
    assert hostvars["ocid1.instance.oc1.iad.inst5"]["oci_display_name"] == "node;id\nx"
    assert hostvars["ocid1.instance.oc1.iad.inst6"]["ansible_host"] == "10.70.0.6"


def test_pages_are_followed_and_requests_signed(api, key):
    _inventory(api, key)
    paths = api.paths()
    assert paths.count("/20160918/instances") == 2
    assert paths.count("/20160918/vnicAttachments") == 1
    # Private IPs are listed per subnet the factory's VNICs are in (one per pool), never per node.
    assert sorted(c.query["subnetId"] for c in api.calls if c.path == "/20160918/privateIps") == [
        "ocid1.subnet.oc1.iad.infer", "ocid1.subnet.oc1.iad.train", "ocid1.subnet.oc1.iad.train"]
    key_id = f'keyId="ocid1.tenancy.oc1..aaaaaaaatenancy/ocid1.user.oc1..aaaaaaaauser/{key[1]}"'
    assert all(c.headers["authorization"].startswith("Signature ") and key_id in c.headers["authorization"]
               for c in api.calls)


def test_an_instance_without_a_private_address_is_reached_by_name(api, key):
    hostvars = _inventory(api, key)["_meta"]["hostvars"]
    assert "ansible_host" not in hostvars["inst-pqrst-f1-infer-a-pool"]


def test_hostile_tags_and_names_are_data_and_make_no_groups(api, key, tmp_path):
    inv = _inventory(api, key, "hostile")
    assert set(inv) == {"all", "ungrouped", "_meta"} and inv["ungrouped"]["hosts"] == ["ocid1.instance.oc1.iad.inst7"]
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert not ansible_data.plain_strings(hostvars)
    used = fake_cloud.ansible_debug(inv, tmp_path)
    assert "lookup(" in used and not CANARY.exists()


def test_service_errors_are_one_line(key):
    def refuse(method, path, query):
        return Reply({"code": "NotAuthorizedOrNotFound", "message": "Authorization failed or\nrequested resource "
                      "not found."}, 404)

    fake = FakeApi(refuse)
    with fake_cloud.serve(fake) as url:
        with pytest.raises(AifactoryError, match="404 NotAuthorizedOrNotFound") as info:
            inventory.inventory("f1", COMPARTMENT, config=_config(key), endpoint_url=url)
    assert "\n" not in str(info.value)


def test_cli_reads_the_config_file_and_serves_ansible(api, key, tmp_path):
    """The console entry point end to end (config file, signing, paging, JSON out), and the same
    command as an inventory script for ansible-inventory (which passes --list)."""
    config = tmp_path / "config"
    config.write_text("[DEFAULT]\n" + "".join(f"{k}={v}\n" for k, v in _config(key).items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
    env.update({"HOME": str(tmp_path), "OCI_CONFIG_FILE": str(config)})
    args = [sys.executable, "-m", "aifactory", "inventory", "--from", "oci", "--factory", "f1",
            "--compartment", COMPARTMENT, "--region", "us-ashburn-1", "--endpoint-url", api.url]
    script = tmp_path / "oci-inventory.sh"
    script.write_text("#!/bin/sh\ncd %s && exec %s \"$@\"\n" % (REPO, " ".join(f"'{a}'" for a in args)))
    script.chmod(0o755)
    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(script), "--list"],
                            capture_output=True, text=True, env={**env, "ANSIBLE_INVENTORY_ENABLED": "script"},
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    parsed = ansible_data.load_json(listed.stdout)
    assert len(parsed["pool_train"]["hosts"]) == 4
    assert parsed["_meta"]["hostvars"]["inst-fghij-f1-train-pool"]["ansible_host"] == "10.70.0.3"
    one = subprocess.run([*args, "--host", "inst-fghij-f1-train-pool"], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=120)
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["oci_instance_id"] == {"__ansible_unsafe": "ocid1.instance.oc1.iad.inst2"}


def test_cli_without_a_config_says_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
    env["HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "aifactory", "inventory", "--from", "oci", "--factory", "f1",
                          "--compartment", COMPARTMENT], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "~/.oci/config" in out.stderr and "OCI_CONFIG_FILE" in out.stderr
