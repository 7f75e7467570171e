"""The Azure GpuPool under Pulumi's mocks: ND scale set with accelerated networking in a
proximity placement group, no public IP, SSH keys only, encryption at host, NSG, tags."""

from __future__ import annotations

import pytest

from aifactory.components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE
from tests.preview.harness import factory, inputs, only, run

VMSS = "compute:VirtualMachineScaleSet"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDO93r15Ofq996yo2oa/atcq6BFEGR5IFQMJlETGu/KN test"


def azure(tmp_path, nodes=8, config=None, **kw):
    return run(tmp_path / f"az-{nodes}", factory("azure", "Standard_ND96isr_H100_v5", nodes=nodes, zones=(),
                                                 fabric="infiniband", region="eastus", **kw),
               config={"aifactory:sshPublicKey": KEY} if config is None else config)


@pytest.fixture(scope="module")
def nd(tmp_path_factory):
    return azure(tmp_path_factory.mktemp("nd"))


def test_scale_set_of_nd_vms_with_accelerated_networking_in_a_ppg(nd):
    vmss = only(nd, VMSS)
    assert vmss["sku"] == {"name": "Standard_ND96isr_H100_v5", "tier": "Standard", "capacity": 8}
    assert vmss["proximityPlacementGroup"]["id"].endswith("/mock/gpu-ppg")
    assert "gpu-ppg" in nd.named("gpu-nodes").dependencies
    assert vmss["singlePlacementGroup"] is True and vmss["overprovision"] is False
    (nic,) = vmss["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
    assert nic["enableAcceleratedNetworking"] is True
    (ipconf,) = nic["ipConfigurations"]
    assert "publicIPAddressConfiguration" not in ipconf and "publicIpAddressConfiguration" not in ipconf
    assert ipconf["subnet"]["id"].endswith("/gpu-subnet")


def test_ssh_key_only_and_encryption_at_host(nd):
    profile = only(nd, VMSS)["virtualMachineProfile"]
    linux = profile["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"][0]["keyData"] == KEY
    assert "adminPassword" not in profile["osProfile"]
    assert profile["securityProfile"]["encryptionAtHost"] is True
    assert profile["storageProfile"]["imageReference"]["offer"] == "ubuntu-hpc"


def test_nsg_opens_ssh_only_to_admin_cidrs(nd):
    rules = only(nd, "network:NetworkSecurityGroup")["securityRules"]
    allow = [r for r in rules if r["access"] == "Allow"]
    assert [(r["sourceAddressPrefix"], r["destinationPortRange"]) for r in allow] == [("10.20.0.0/16", "22")]
    deny = [r for r in rules if r["access"] == "Deny"]
    assert deny and deny[0]["destinationPortRange"] == "22" and deny[0]["priority"] > allow[0]["priority"]
    assert only(nd, "network:Subnet")["defaultOutboundAccess"] is False


def test_tags_on_every_taggable_resource(nd):
    for r in nd.resources:
        if r.custom and r.type != "azure-native:network:Subnet":
            tags = r.inputs["tags"]
            assert tags[TAG_FACTORY] == "test" and tags[TAG_POOL] == "gpu" and TAG_ROLE in tags, r.type


def test_resource_count_is_independent_of_nodes(tmp_path):
    small, large = azure(tmp_path, nodes=2), azure(tmp_path, nodes=90)
    assert sorted(r.type for r in small.resources) == sorted(r.type for r in large.resources)
    assert only(large, VMSS)["sku"]["capacity"] == 90


def test_missing_admin_key_is_a_clear_error(tmp_path):
    from aifactory.errors import AifactoryError

    with pytest.raises(AifactoryError, match="aifactory:sshPublicKey"):
        azure(tmp_path, config={})


def test_spot_and_capacity_reservation(tmp_path):
    spot = only(azure(tmp_path / "spot", capacity="spot"), VMSS)["virtualMachineProfile"]
    assert (spot["priority"], spot["evictionPolicy"]) == ("Spot", "Delete")
    group = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/capacityReservationGroups/nd"
    reserved = only(azure(tmp_path / "res", capacity="reservation", reservation=group), VMSS)
    assert reserved["virtualMachineProfile"]["capacityReservation"]["capacityReservationGroup"]["id"] == group


def test_outputs(nd):
    pool = nd.outputs["pools"]["gpu"]
    assert pool["node_group_ids"][0].endswith("/gpu-nodes") and pool["network_ids"][0].endswith("/gpu-subnet")
    assert nd.outputs["inventory"]["gpu"]["resource_group"] == "gpu-rg"
    assert not inputs(nd, "network:PublicIPAddress")
