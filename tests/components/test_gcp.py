"""The GCP GpuPool under Pulumi's mocks: GPU NIC networks and MTU per machine type, compact
placement, no external IP, labels, and a resource count that does not grow with nodes."""

from __future__ import annotations

import pytest

from aifactory.components.base import label_key
from tests.preview.harness import factory, inputs, only, run

TEMPLATE = "compute/instanceTemplate:InstanceTemplate"
MIG = "compute/instanceGroupManager:InstanceGroupManager"


def gcp(tmp_path, system="a3-megagpu-8g", fabric="gpudirect-tcpxo", nodes=16, config=None, **kw):
    return run(tmp_path / f"{system}-{nodes}", factory("gcp", system, nodes=nodes, zones=("us-central1-a",),
                                                       fabric=fabric, region="us-central1", **kw),
               config=config or {"gcp:project": "proj-1"})


@pytest.fixture(scope="module")
def mega(tmp_path_factory):
    return gcp(tmp_path_factory.mktemp("mega"))


def test_a3_mega_has_a_host_vpc_and_eight_gpu_vpcs_at_mtu_8244(mega):
    networks = {r.name: r.inputs for r in mega.resources if r.type.endswith("compute/network:Network")}
    gpu = {n: v for n, v in networks.items() if n.startswith("gpu-gpu-vpc-")}
    assert len(gpu) == 8 and len(networks) == 9
    assert all(v["mtu"] == 8244 and v["autoCreateSubnetworks"] is False for v in networks.values())
    nics = only(mega, TEMPLATE)["networkInterfaces"]
    assert len(nics) == 9
    assert nics[0]["subnetwork"] == "gpu-host-subnet-id"
    assert [n["subnetwork"] for n in nics[1:]] == [f"gpu-gpu-subnet-{i}-id" for i in range(8)]
    assert all(n["nicType"] == "GVNIC" for n in nics)


def test_no_external_ip_and_ssh_only_from_admin(mega):
    for nic in only(mega, TEMPLATE)["networkInterfaces"]:
        assert not nic.get("accessConfigs")
    firewalls = inputs(mega, "compute/firewall:Firewall")
    ssh = [f for f in firewalls if any("22" in a.get("ports", []) for a in f["allows"])]
    assert [f["sourceRanges"] for f in ssh] == [["10.20.0.0/16"]]
    assert not any("0.0.0.0/0" in f.get("sourceRanges", []) for f in firewalls)
    metadata = only(mega, TEMPLATE)["metadata"]
    assert metadata["enable-oslogin"] == "TRUE" and metadata["block-project-ssh-keys"] == "TRUE"
    assert set(metadata) == {"enable-oslogin", "block-project-ssh-keys", "user-data"}  # no ssh-keys


def test_compact_placement_template_and_managed_instance_group(mega):
    policy = only(mega, "compute/resourcePolicy:ResourcePolicy")
    assert policy["groupPlacementPolicy"]["collocation"] == "COLLOCATED"
    template = only(mega, TEMPLATE)
    assert template["machineType"] == "a3-megagpu-8g"
    assert template["resourcePolicies"].endswith("/gpu-placement")
    assert template["scheduling"]["onHostMaintenance"] == "TERMINATE"
    (disk,) = template["disks"]
    assert disk["boot"] and "ubuntu-2404-lts-amd64" in disk["sourceImage"]
    mig = only(mega, MIG)
    assert (mig["targetSize"], mig["zone"]) == (16, "us-central1-a")
    assert mig["versions"][0]["instanceTemplate"].endswith("/gpu-template")


def test_labels_are_label_shaped(mega):
    labels = only(mega, TEMPLATE)["labels"]
    assert labels[label_key("aifactory:pool")] == "gpu"
    assert labels["aifactory-factory"] == "test" and labels["aifactory-role"] == "node" and labels["team"] == "ml"
    assert all(k == k.lower() and ":" not in k for k in labels)


@pytest.mark.parametrize("system", ["a3-ultragpu-8g", "a4-highgpu-8g"])
def test_rdma_machine_types_get_roce_subnets_at_mtu_8896(tmp_path, system):
    result = gcp(tmp_path, system=system, fabric="roce")
    rdma = result.named("gpu-rdma-vpc").inputs
    assert rdma["networkProfile"] == "projects/proj-1/global/networkProfiles/us-central1-a-vpc-roce"
    assert rdma["mtu"] == 8896
    subnets = [r for r in result.resources if r.name.startswith("gpu-rdma-subnet-")]
    assert len(subnets) == 8 and all(s.inputs["network"] == "gpu-rdma-vpc-id" for s in subnets)
    nics = only(result, TEMPLATE)["networkInterfaces"]
    assert [n["nicType"] for n in nics] == ["GVNIC"] + ["MRDMA"] * 8
    assert only(result, TEMPLATE)["disks"][0]["diskType"] == "hyperdisk-balanced"


def test_rdma_without_project_is_a_clear_error(tmp_path):
    from aifactory.errors import AifactoryError

    with pytest.raises(AifactoryError, match="gcp:project"):
        gcp(tmp_path, system="a3-ultragpu-8g", fabric="roce", config={"aifactory:x": "y"})


def test_resource_count_is_independent_of_nodes(tmp_path):
    small, large = gcp(tmp_path, nodes=2), gcp(tmp_path, nodes=5000)
    assert sorted(r.type for r in small.resources) == sorted(r.type for r in large.resources)
    assert only(large, MIG)["targetSize"] == 5000


def test_reservation_and_spot(tmp_path):
    reserved = gcp(tmp_path, capacity="reservation", reservation="res-a3")
    affinity = only(reserved, TEMPLATE)["reservationAffinity"]
    assert affinity["type"] == "SPECIFIC_RESERVATION" and affinity["specificReservation"]["values"] == ["res-a3"]
    spot = gcp(tmp_path / "spot", capacity="spot")
    assert only(spot, TEMPLATE)["scheduling"]["provisioningModel"] == "SPOT"


def test_outputs(mega):
    pool = mega.outputs["pools"]["gpu"]
    assert pool["node_group_ids"] == ["gpu-nodes-id"]
    assert pool["network_ids"][0] == "gpu-host-subnet-id" and len(pool["network_ids"]) == 9
    inv = mega.outputs["inventory"]["gpu"]
    assert inv["selector"] == {"aifactory-factory": "test", "aifactory-pool": "gpu", "aifactory-role": "node"}
    assert (inv["gpu_nics"], inv["gpu_mtu"]) == (8, 8244)


@pytest.mark.parametrize("system,fabric,family", [("a3-megagpu-8g", "gpudirect-tcpxo", "family/debian-13"),
                                                  ("a4x-highgpu-4g", None, "family/debian-13-arm64")])
def test_debian_13_boots_from_the_debian_cloud_family_of_the_system_architecture(tmp_path, system, fabric, family):
    (disk,) = only(gcp(tmp_path, system=system, fabric=fabric, nodes=18, os="debian-13"), TEMPLATE)["disks"]
    assert disk["sourceImage"] == f"projects/debian-cloud/global/images/{family}"
