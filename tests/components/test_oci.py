"""The OCI GpuPool under Pulumi's mocks: cluster network over an instance configuration for a
BM.GPU shape, private subnet, SSH only from admin, data sources answered by the mocks."""

from __future__ import annotations

import pytest

from tests.preview.harness import factory, inputs, only, run

CONFIG = {"aifactory:ociCompartmentId": "ocid1.compartment.oc1..test"}


def oci(tmp_path, nodes=8, system="BM.GPU.H100.8", zones=(), config=None, **kw):
    return run(tmp_path / f"oci-{nodes}-{system}", factory("oci", system, nodes=nodes, zones=zones, fabric="roce",
                                                           region="us-ashburn-1", **kw),
               config=CONFIG if config is None else config)


@pytest.fixture(scope="module")
def bm(tmp_path_factory):
    return oci(tmp_path_factory.mktemp("bm"))


def test_cluster_network_of_an_instance_configuration(bm):
    cluster = only(bm, "Core/clusterNetwork:ClusterNetwork")
    (pool,) = cluster["instancePools"]
    assert pool["size"] == 8 and pool["instanceConfigurationId"].endswith("gpu-config")
    assert cluster["placementConfiguration"]["primarySubnetId"].endswith("gpu-subnet")
    # No zone in the spec: the first availability domain the compartment sees.
    assert cluster["placementConfiguration"]["availabilityDomain"] == "mock:AD-1"
    launch = only(bm, "Core/instanceConfiguration:InstanceConfiguration")["instanceDetails"]["launchDetails"]
    assert launch["shape"] == "BM.GPU.H100.8"
    assert launch["sourceDetails"]["imageId"] == "ocid1.image.oc1..mock-bm.gpu.h100.8"
    assert launch["isPvEncryptionInTransitEnabled"] is True


def test_no_public_ip_and_ssh_only_from_admin(bm):
    launch = only(bm, "Core/instanceConfiguration:InstanceConfiguration")["instanceDetails"]["launchDetails"]
    assert launch["createVnicDetails"]["assignPublicIp"] is False
    assert only(bm, "Core/subnet:Subnet")["prohibitPublicIpOnVnic"] is True
    rules = only(bm, "Core/securityList:SecurityList")["ingressSecurityRules"]
    ssh = [r for r in rules if r.get("tcpOptions", {}).get("min") == 22]
    assert [r["source"] for r in ssh] == ["10.20.0.0/16"]
    assert not any(r["source"] == "0.0.0.0/0" for r in rules)


def test_the_data_sources_used_are_answered_and_recorded(bm):
    tokens = [token for token, _ in bm.calls]
    assert tokens == ["oci:Identity/getAvailabilityDomains:getAvailabilityDomains", "oci:Core/getImages:getImages"]
    images_args = bm.calls[1][1]
    assert images_args["shape"] == "BM.GPU.H100.8" and images_args["operatingSystemVersion"] == "24.04"


def test_declared_zone_skips_the_lookup(tmp_path):
    result = oci(tmp_path, zones=("Uocm:US-ASHBURN-AD-2",))
    assert [t for t, _ in result.calls] == ["oci:Core/getImages:getImages"]
    assert only(result, "Core/clusterNetwork:ClusterNetwork")["placementConfiguration"]["availabilityDomain"] == \
        "Uocm:US-ASHBURN-AD-2"


def test_freeform_tags_and_count_independent_of_nodes(tmp_path, bm):
    for r in bm.resources:
        if r.custom:
            assert r.inputs["freeformTags"]["aifactory-pool"] == "gpu", r.type
    large = oci(tmp_path, nodes=512)
    assert sorted(r.type for r in large.resources) == sorted(r.type for r in bm.resources)


def test_vm_shapes_and_missing_compartment_are_clear_errors(tmp_path):
    from aifactory.errors import AifactoryError

    with pytest.raises(AifactoryError, match="ociCompartmentId"):
        oci(tmp_path, config={})
    assert not inputs(oci(tmp_path / "ok"), "Core/publicIp:PublicIp")
