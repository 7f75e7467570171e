"""`aifactory inventory --from azure`: azure-mgmt-compute's and azure-mgmt-network's own clients,
through azure-core's RequestsTransport, against recorded Resource Manager responses (scale sets,
their VMs with power state, their network interfaces; two pages where ARM pages)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport

from aifactory.inventory import azure
from tests import ansible_data
from tests.inventory import fake_cloud
from tests.inventory.fake_cloud import CANARY, FakeApi, Reply

REPO = Path(__file__).resolve().parents[2]
SUB = "00000000-1111-2222-3333-444444444444"
SETS = "/providers/Microsoft.Compute/virtualMachineScaleSets"
# The scale sets in the recording, by name: their resource group and the file stem of their VMs.
RECORDED = {"train-nodes1a2b": ("rg-f1-train", "train"), "infer-a-nodes3c4d": ("rg-f1-infer", "infer-a"),
            "train-nodes9z9z": ("rg-other", "other"), "evil-nodes0000": ("rg-evil", "evil")}


def _handler(method, path, query):
    if method != "GET" or not query.get("api-version"):
        return None
    second = query.get("$skiptoken") == "page-2"
    if path == f"/subscriptions/{SUB}{SETS}":
        return Reply(fake_cloud.recorded("azure", "scale-sets-page2" if second else "scale-sets-page1"))
    found = re.fullmatch(
        rf"/subscriptions/{SUB}/resourceGroups/([^/]+){SETS}(?:/([^/]+)/(virtualMachines|networkInterfaces))?", path)
    if not found:
        return None
    group, name, kind = found.groups()
    if name is None:  # one resource group's scale sets
        every = fake_cloud.recorded("azure", "scale-sets-page1")["value"] + \
            fake_cloud.recorded("azure", "scale-sets-page2")["value"]
        return Reply({"value": [s for s in every if f"/resourceGroups/{group}/" in s["id"]]})
    if RECORDED.get(name, (None,))[0] != group:
        return None
    stem = RECORDED[name][1]
    if kind == "networkInterfaces":
        return Reply(fake_cloud.recorded("azure", f"{stem}-nics"))
    assert query.get("$expand") == "instanceView"  # the power state comes with the VMs
    if stem == "train":
        return Reply(fake_cloud.recorded("azure", "train-vms-page2" if second else "train-vms-page1"))
    return Reply(fake_cloud.recorded("azure", f"{stem}-vms"))


class Credential:
    """A token credential that hands out a fixed token (what azure-core's bearer policy asks for)."""

    def get_token(self, *scopes, **kwargs):
        assert scopes == ("https://management.azure.com/.default",)
        return AccessToken("fake-token", int(time.time()) + 3600)


@pytest.fixture
def api():
    return FakeApi(_handler)


def _inventory(api, factory="f1", resource_group=None):
    session = fake_cloud.session(api)
    compute, network = azure.clients(SUB, Credential(), transport=RequestsTransport(session=session))
    return azure.inventory(factory, SUB, resource_group, compute=compute, network=network)


def test_running_vms_grouped_by_pool_site_and_role(api):
    inv = _inventory(api)
    assert inv["pool_train"]["hosts"] == ["train0000", "train0001", "train-nodes1a2b-3"]  # not the deallocated one
    assert inv["pool_infer_a"]["hosts"] == ["infer-a000"]
    assert sorted(inv["site_azure_eus"]["hosts"]) == sorted(inv["role_node"]["hosts"]) == sorted(
        inv["pool_train"]["hosts"] + inv["pool_infer_a"]["hosts"])
    assert set(inv["all"]["children"]) == {"pool_train", "pool_infer_a", "site_azure_eus", "role_node", "ungrouped"}
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert set(hostvars) == set(inv["role_node"]["hosts"])  # the other factory's scale set is left out
    assert not ansible_data.plain_strings(hostvars)
    vm_id = (f"/subscriptions/{SUB}/resourceGroups/rg-f1-train{SETS}/train-nodes1a2b/virtualMachines/0")
    # The primary NIC's address, not the secondary's.
    assert hostvars["train0000"] == {
        "ansible_host": "10.70.0.4", "azure_vm_id": vm_id, "azure_vm_name": "train-nodes1a2b_0",
        "azure_vm_size": "Standard_ND96isr_H100_v5", "azure_zone": "1", "azure_location": "eastus",
        "azure_resource_group": "rg-f1-train", "azure_scale_set": "train-nodes1a2b", "aifactory_factory": "f1",
        "aifactory_pool": "train", "aifactory_site": "azure-eus", "aifactory_role": "node"}
    # A computer name that is no host name: listed as <scale set>-<instance id>.
    assert hostvars["train-nodes1a2b-3"]["ansible_host"] == "10.70.0.7"


def test_every_page_is_read_and_only_matching_scale_sets_are_opened(api):
    _inventory(api)
    paths = api.paths()
    assert paths.count(f"/subscriptions/{SUB}{SETS}") == 2
    assert paths.count(f"/subscriptions/{SUB}/resourceGroups/rg-f1-train{SETS}/train-nodes1a2b/virtualMachines") == 2
    assert not any("rg-other" in p or "rg-evil" in p for p in paths)
    # Calls grow with pools and pages: 2 scale-set pages, then (NICs + VM pages) per pool.
    assert len(paths) == 2 + (1 + 2) + (1 + 1)
    assert all(c.headers.get("authorization") == "Bearer fake-token" for c in api.calls)


def test_one_resource_group(api):
    inv = _inventory(api, resource_group="rg-f1-infer")
    assert inv["pool_infer_a"]["hosts"] == ["infer-a000"] and "pool_train" not in inv
    assert f"/subscriptions/{SUB}{SETS}" not in api.paths()


def test_a_vm_without_a_private_address_is_reached_by_name(api):
    hostvars = _inventory(api)["_meta"]["hostvars"]
    assert "ansible_host" not in hostvars["train0001"]


def test_hostile_tags_are_data_and_make_no_groups(api, tmp_path):
    inv = _inventory(api, "hostile")
    assert set(inv) == {"all", "ungrouped", "_meta"} and inv["ungrouped"]["hosts"] == ["evil-nodes0000-0"]
    hostvars = ansible_data.load_json(json.dumps(inv["_meta"]["hostvars"]))
    assert not ansible_data.plain_strings(hostvars)
    used = fake_cloud.ansible_debug(inv, tmp_path)
    assert "lookup(" in used and not CANARY.exists()


def test_ansible_reads_it(api, tmp_path):
    listed = fake_cloud.ansible_inventory(_inventory(api), tmp_path)
    assert listed["pool_train"]["hosts"] == ["train0000", "train0001", "train-nodes1a2b-3"]
    assert listed["_meta"]["hostvars"]["infer-a000"]["aifactory_pool"] == "infer-a"


def test_refused_credentials_are_one_line(api):
    def refuse(method, path, query):
        return Reply({"error": {"code": "AuthorizationFailed", "message": "The client 'x' does not have\n"
                                "authorization to perform action 'Microsoft.Compute/virtualMachineScaleSets/read'"}},
                     403)

    from aifactory.errors import AifactoryError

    with pytest.raises(AifactoryError, match=r"subscription .*AuthorizationFailed") as info:
        _inventory(FakeApi(refuse))
    assert "\n" not in str(info.value)


def test_cli_without_credentials_says_what_to_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env["HOME"] = str(tmp_path)
    env["PATH"] = str(Path(sys.executable).parent)  # no `az` login to fall back on
    out = subprocess.run([sys.executable, "-m", "aifactory", "inventory", "--from", "azure", "--factory", "f1",
                          "--subscription", SUB], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "AZURE_CLIENT_ID" in out.stderr and "az login" in out.stderr
