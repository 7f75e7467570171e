"""`aifactory inventory --from gcp`: google-cloud-compute's own client against recorded responses
served over HTTP (two pages of an aggregated listing, filtered on the factory label)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aifactory.inventory import gcp
from tests import ansible_data
from tests.inventory import fake_cloud
from tests.inventory.fake_cloud import CANARY, FakeApi, Reply

REPO = Path(__file__).resolve().parents[2]
PROJECT = "my-project-1"
LISTING = f"/compute/v1/projects/{PROJECT}/aggregated/instances"


def _handler(method, path, query):
    if method == "POST" and path == "/token":  # OAuth 2.0 refresh, for the CLI's credentials file
        return Reply({"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"})
    if method == "GET" and path == LISTING:
        page = "aggregated-page2" if query.get("pageToken") == "page-2" else "aggregated-page1"
        return Reply(fake_cloud.recorded("gcp", page))
    return None


@pytest.fixture
def api():
    fake = FakeApi(_handler)
    with fake_cloud.serve(fake) as url:
        fake.url = url
        yield fake


def _inventory(api, factory="f1"):
    from google.auth.credentials import AnonymousCredentials

    _, compute_v1 = gcp._sdk()
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(),
                                        client_options={"api_endpoint": api.url})
    return gcp.inventory(factory, PROJECT, instances_client=client)


def test_running_nodes_grouped_by_pool_site_and_role(api):
    inv = _inventory(api)
    assert inv["pool_train"]["hosts"] == ["f1-train-a1b2", "f1-train-c3d4", "1004"]
    assert inv["pool_infer_a"]["hosts"] == ["f1-infer-a-e5f6"]
    assert sorted(inv["site_gcp_usc1"]["hosts"]) == sorted(inv["role_node"]["hosts"]) == sorted(
        inv["pool_train"]["hosts"] + inv["pool_infer_a"]["hosts"])
    assert set(inv["all"]["children"]) == {"pool_train", "pool_infer_a", "site_gcp_usc1", "role_node", "ungrouped"}
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert set(hostvars) == set(inv["role_node"]["hosts"])  # the other factory's node is left out
    assert not ansible_data.plain_strings(hostvars)
    node = hostvars["f1-train-a1b2"]
    assert node == {"ansible_host": "10.70.0.2", "gce_name": "f1-train-a1b2", "gce_id": "1001",
                    "gce_machine_type": "a3-highgpu-8g", "gce_zone": "us-central1-a", "aifactory_factory": "f1",
                    "aifactory_pool": "train", "aifactory_site": "gcp-usc1", "aifactory_role": "node"}
    # A name that is no host name: the node is listed by its id, its name kept as data.
    assert hostvars["1004"]["gce_name"] == "f1-train-x;id\nx" and hostvars["1004"]["ansible_host"] == "10.70.0.4"


def test_both_pages_are_read_with_the_label_filter(api):
    _inventory(api)
    listings = [c for c in api.calls if c.path == LISTING]
    assert len(listings) == 2 and listings[1].query.get("pageToken") == "page-2"
    # What the component writes: the label form of aifactory:factory, on running instances only.
    assert {c.query["filter"] for c in listings} == {'(labels.aifactory-factory = "f1") (status = "RUNNING")'}


def test_a_node_without_a_private_address_is_reached_by_name(api):
    hostvars = _inventory(api)["_meta"]["hostvars"]
    assert "ansible_host" not in hostvars["f1-infer-a-e5f6"]


def test_hostile_labels_are_data_and_make_no_groups(api, tmp_path):
    inv = _inventory(api, "hostile")
    assert set(inv) == {"all", "ungrouped", "_meta"} and inv["ungrouped"]["hosts"] == ["3001"]
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert not ansible_data.plain_strings(hostvars)
    assert hostvars["3001"]["aifactory_site"] == "site\nx"
    used = fake_cloud.ansible_debug(inv, tmp_path)
    assert "lookup(" in used and not CANARY.exists()


def test_cli_reads_the_application_default_credentials(api, tmp_path):
    """The console entry point end to end: credentials file, token refresh, listing, JSON out;
    and the same command as an inventory script for ansible-inventory (which passes --list)."""
    env = _env(tmp_path, api)
    args = [sys.executable, "-m", "aifactory", "inventory", "--from", "gcp", "--factory", "f1",
            "--project", PROJECT, "--endpoint-url", api.url]
    out = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pool_train"]["hosts"] == ["f1-train-a1b2", "f1-train-c3d4", "1004"]
    # A self-signed JWT from the key file, scoped to reading Compute Engine.
    assert all(c.headers.get("authorization", "").startswith("Bearer ") for c in api.calls if c.path == LISTING)
    script = tmp_path / "gcp-inventory.sh"
    script.write_text("#!/bin/sh\ncd %s && exec %s \"$@\"\n" % (REPO, " ".join(f"'{a}'" for a in args)))
    script.chmod(0o755)
    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(script), "--list"],
                            capture_output=True, text=True, env={**env, "ANSIBLE_INVENTORY_ENABLED": "script"},
                            timeout=120)
    assert listed.returncode == 0, listed.stderr
    parsed = ansible_data.load_json(listed.stdout)
    assert len(parsed["pool_train"]["hosts"]) == 3
    assert parsed["_meta"]["hostvars"]["f1-train-a1b2"]["ansible_host"] == "10.70.0.2"


def test_cli_without_credentials_says_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))}
    env.update({"HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "NO_GCE_CHECK": "true"})
    out = subprocess.run([sys.executable, "-m", "aifactory", "inventory", "--from", "gcp", "--factory", "f1",
                          "--project", PROJECT], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "GOOGLE_APPLICATION_CREDENTIALS" in out.stderr


def _env(tmp_path, api):
    """A service account key file whose token endpoint is the fake API (the key is made here)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    creds = tmp_path / "service-account.json"
    creds.write_text(json.dumps({"type": "service_account", "project_id": PROJECT, "private_key_id": "1",
                                 "private_key": key, "client_email": f"inventory@{PROJECT}.iam.gserviceaccount.com",
                                 "client_id": "1", "token_uri": f"{api.url}/token"}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update({"GOOGLE_APPLICATION_CREDENTIALS": str(creds), "HOME": str(tmp_path), "NO_GCE_CHECK": "true"})
    return env

