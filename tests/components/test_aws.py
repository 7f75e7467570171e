"""The AWS GpuPool under Pulumi's mocks: EFA layout, security group, IMDSv2, encryption, tags,
no public IP, capacity targeting, and a resource count that does not grow with nodes."""

from __future__ import annotations

import re

import pytest

from aifactory.components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, TAG_SITE
from tests.preview.harness import factory, inputs, only, run

LT = "ec2/launchTemplate:LaunchTemplate"
ASG = "autoscaling/group:Group"


def aws(tmp_path, system="p5.48xlarge", nodes=16, **kw):
    return run(tmp_path / f"{system}-{nodes}", factory("aws", system, nodes=nodes, zones=("us-east-1a",),
                                                       fabric="efa", region="us-east-1", **kw))


@pytest.fixture(scope="module")
def p5(tmp_path_factory):
    return aws(tmp_path_factory.mktemp("p5"))


@pytest.mark.parametrize("system,efa", [("p5.48xlarge", 32), ("p5e.48xlarge", 32), ("p5en.48xlarge", 16),
                                        ("p6-b200.48xlarge", 8), ("p4d.24xlarge", 4)])
def test_launch_template_has_every_efa_interface_on_its_own_network_card(tmp_path, system, efa):
    nics = only(aws(tmp_path, system), LT)["networkInterfaces"]
    assert len(nics) == efa
    assert [n["networkCardIndex"] for n in nics] == list(range(efa))
    # Primary: EFA with ENA at device 0 (the node's one IP); the others EFA-only at device 1.
    assert (nics[0]["interfaceType"], nics[0]["deviceIndex"]) == ("efa", 0)
    assert all((n["interfaceType"], n["deviceIndex"]) == ("efa-only", 1) for n in nics[1:])


def test_security_group_allows_all_traffic_to_and_from_itself(p5):
    sg = p5.named("gpu-efa-sg")
    rules = [r for r in p5.resources if r.type.startswith("aws:vpc/securityGroup")]
    self_rules = [r for r in rules if r.inputs.get("referencedSecurityGroupId") == "gpu-efa-sg-id"]
    assert {r.type.split(":")[-1] for r in self_rules} == {"SecurityGroupIngressRule", "SecurityGroupEgressRule"}
    assert all(r.inputs["ipProtocol"] == "-1" and r.inputs["securityGroupId"] == "gpu-efa-sg-id" for r in self_rules)
    # Every EFA interface carries that group.
    assert all(n["securityGroups"] == ["gpu-efa-sg-id"] for n in only(p5, LT)["networkInterfaces"])
    assert sg.parent == "gpu"


def test_ssh_only_from_the_admin_cidr(p5):
    ingress = inputs(p5, "SecurityGroupIngressRule")
    ssh = [r for r in ingress if r.get("fromPort") == 22]
    assert [(r["cidrIpv4"], r["toPort"]) for r in ssh] == [("10.20.0.0/16", 22)]
    assert not any(r.get("cidrIpv4") in ("0.0.0.0/0",) for r in ingress)


def test_no_admin_cidr_means_no_ssh_rule(tmp_path):
    result = aws(tmp_path, admin=())
    assert not [r for r in inputs(result, "SecurityGroupIngressRule") if r.get("fromPort") == 22]


def test_imdsv2_required_encrypted_root_and_no_public_ip(p5):
    lt = only(p5, LT)
    assert lt["metadataOptions"]["httpTokens"] == "required"
    assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (root,) = lt["blockDeviceMappings"]
    assert root["ebs"]["encrypted"] == "true"
    assert all(n["associatePublicIpAddress"] == "false" for n in lt["networkInterfaces"])
    for subnet in inputs(p5, "ec2/subnet:Subnet"):
        assert subnet["mapPublicIpOnLaunch"] is False
    assert lt["imageId"].startswith("resolve:ssm:/aws/service/deeplearning/ami/x86_64/")
    assert "ubuntu-24.04" in lt["imageId"]


def test_nodes_read_their_claimed_name_from_tags_in_metadata_with_imdsv2_still_required(p5):
    """The boot program reads the aifactory:node tag from /latest/meta-data/tags/instance/; tags are
    in the metadata only when the launch template allows it, and IMDSv2 stays required."""
    options = only(p5, LT)["metadataOptions"]
    assert options["instanceMetadataTags"] == "enabled"
    assert (options["httpTokens"], options["httpEndpoint"]) == ("required", "enabled")
    # With tags in metadata, EC2 refuses to launch an instance whose tag keys hold anything but
    # letters, digits and + - = . , _ : @ (the aifactory keys and the spec's tag keys qualify).
    (instance,) = [s for s in only(p5, LT)["tagSpecifications"] if s["resourceType"] == "instance"]
    assert instance["tags"] and all(re.fullmatch(r"[A-Za-z0-9+=.,_:@-]+", key) for key in instance["tags"])


def test_cluster_placement_group_and_instance_profile_with_ssm_only(p5):
    assert only(p5, "ec2/placementGroup:PlacementGroup")["strategy"] == "cluster"
    assert only(p5, LT)["placement"]["groupName"] == "gpu-placement"
    attachments = inputs(p5, "iam/rolePolicyAttachment:RolePolicyAttachment")
    assert [a["policyArn"] for a in attachments] == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    assert not inputs(p5, "iam/rolePolicy:RolePolicy")
    assert "ec2.amazonaws.com" in only(p5, "iam/role:Role")["assumeRolePolicy"]


def test_every_resource_is_tagged_and_nodes_inherit_tags(p5):
    expected = {TAG_FACTORY: "test", TAG_SITE: "s1", TAG_POOL: "gpu", "team": "ml"}
    for r in p5.resources:
        if not r.custom or r.type.startswith("aws:iam/rolePolicyAttachment"):
            continue  # attachments take no tags
        tags = r.inputs.get("tags")
        if r.type.endswith(ASG):
            tags = {t["key"]: t["value"] for t in tags}
        assert tags and expected.items() <= tags.items(), (r.type, tags)
    specs = {s["resourceType"]: s["tags"] for s in only(p5, LT)["tagSpecifications"]}
    assert set(specs) == {"instance", "volume", "network-interface"}
    assert specs["instance"][TAG_ROLE] == "node"


def test_node_group_carries_the_count_and_resource_count_is_independent_of_nodes(tmp_path):
    small, large = aws(tmp_path, nodes=2), aws(tmp_path, nodes=2000)
    assert len(small.resources) == len(large.resources)
    assert sorted(r.type for r in small.resources) == sorted(r.type for r in large.resources)
    asg = only(large, ASG)
    assert (asg["desiredCapacity"], asg["maxSize"], asg["minSize"]) == (2000, 2000, 0)
    assert asg["placementGroup"] == "gpu-placement"
    assert asg["vpcZoneIdentifiers"] == ["gpu-subnet-us-east-1a-id"]


def test_capacity_block_with_reservation_targets_it(tmp_path):
    result = aws(tmp_path, capacity="capacity-block", reservation="cr-0123456789abcdef0")
    lt = only(result, LT)
    assert lt["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert lt["capacityReservationSpecification"]["capacityReservationTarget"] == {
        "capacityReservationId": "cr-0123456789abcdef0"}
    assert only(result, ASG)["desiredCapacity"] == 16


def test_capacity_block_without_id_creates_an_empty_group_and_warns(tmp_path):
    result = aws(tmp_path, capacity="capacity-block")
    assert only(result, ASG)["desiredCapacity"] == 0
    assert "instanceMarketOptions" not in only(result, LT)
    assert any("capacity-block without a reservation id" in w for w in result.warnings)


def test_reservation_id_from_stack_config(tmp_path):
    from tests.preview.harness import make_stack
    from aifactory.preview import preview

    root = make_stack(tmp_path / "s", factory("aws", "p5.48xlarge", zones=("us-east-1a",), fabric="efa",
                                               region="us-east-1", capacity="capacity-block"),
                      config={"aifactory:reservations": {"gpu": "cr-0fedcba9876543210"}})
    result = preview(root)
    assert only(result, LT)["capacityReservationSpecification"]["capacityReservationTarget"][
        "capacityReservationId"] == "cr-0fedcba9876543210"
    assert not result.warnings


def test_spot_and_kubernetes_hop_limit(tmp_path):
    result = aws(tmp_path, capacity="spot", scheduler="kubernetes")
    lt = only(result, LT)
    assert lt["instanceMarketOptions"] == {"marketType": "spot"}
    assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 2


def test_pool_without_zone_is_refused_before_anything_is_built(tmp_path):
    from aifactory.errors import SpecError

    with pytest.raises(SpecError) as exc:
        run(tmp_path, factory("aws", "p5.48xlarge", zones=(), fabric="efa", region="us-east-1"))
    assert "pools[0].zones" in str(exc.value) and "[provider-zones]" in str(exc.value)


def test_outputs_carry_what_the_inventory_needs(p5):
    inv = p5.outputs["inventory"]["gpu"]
    assert inv["selector"] == {TAG_FACTORY: "test", TAG_POOL: "gpu", TAG_ROLE: "node"}
    assert inv["node_group"] == "gpu-nodes" and inv["efa_interfaces"] == 32
    assert p5.outputs["pools"]["gpu"]["node_group_ids"] == ["gpu-nodes"]
    assert p5.outputs["pools"]["gpu"]["network_ids"] == ["gpu-subnet-us-east-1a-id"]
    assert all(r.parent == "gpu" for r in p5.resources if r.type.startswith("aws:"))
    assert all(r.name.startswith("gpu-") for r in p5.resources if r.type.startswith("aws:"))


@pytest.mark.parametrize("system,parameter", [("p5.48xlarge", "/aws/service/debian/release/13/latest/amd64"),
                                              ("p6e-gb200.36xlarge", "/aws/service/debian/release/13/latest/arm64")])
def test_debian_13_boots_from_the_debian_public_ami_parameter_of_the_system_architecture(tmp_path, system, parameter):
    """Debian has no DLAMI: a debian-13 pool boots Debian's own AMI for its CPU architecture."""
    lt = only(aws(tmp_path, system=system, nodes=18, os="debian-13"), LT)
    assert lt["imageId"] == f"resolve:ssm:{parameter}"
