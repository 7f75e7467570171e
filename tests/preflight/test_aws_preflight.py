"""AWS preflight against moto.

moto implements instance type offerings, instance types (with EFA data), SSM parameters and
images. Where it does not, the test says so and fills in with botocore's own tools:

* Service Quotas has no EC2 quotas in moto: a botocore ``Stubber`` answers ``GetServiceQuota``;
* ``DescribeCapacityReservations`` is not implemented in moto: a ``before-call`` event hook on
  the moto-backed EC2 client answers it, so every other EC2 call still reaches moto;
* moto refuses to create parameters under the reserved ``/aws/`` prefix, so the public DLAMI
  parameter is answered by a ``before-call`` hook on the SSM client (the image id it returns is
  a real moto image, checked through moto's ``DescribeImages``).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber
from moto import mock_aws

from aifactory import plan, spec
from aifactory.components.base import aws_ami_parameter
from aifactory.preflight import aws as preflight

REGION = "us-east-1"


def planned(zones=("us-east-1a",), system="p5.48xlarge", nodes=16, capacity="on-demand", reservation=None,
            os="ubuntu-24.04"):
    res = f", reservation: {reservation}" if reservation else ""
    loaded = spec.load_string(f"""
name: pf
software: {{os: {os}}}
sites: [{{name: s1, provider: aws, region: {REGION}}}]
fabrics: [{{name: efa, type: efa}}]
pools: [{{name: train, site: s1, provider: aws, system: {system}, nodes: {nodes}, fabric: efa,
          zones: [{', '.join(zones)}], capacity: {capacity}{res}}}]
""")
    return loaded.factory, plan.build(loaded)


class Session:
    """A boto3-session stand-in handing out prepared clients."""

    def __init__(self, **clients):
        self.clients = clients

    def client(self, name, region_name=None):
        return self.clients[name]


@pytest.fixture
def aws():
    with mock_aws():
        yield


def hook(client, operation: str, answer):
    """Answer ``operation`` from ``answer(api_params)`` before the request is sent; ``None`` lets it through.

    ``before-call`` sees the serialized request, so the API parameters are stashed in the request
    context one step earlier (``before-parameter-build``).
    """
    def stash(params, context, **_):
        context["api_params"] = dict(params)

    def respond(context, **_):
        return answer(context.get("api_params", {}))

    client.meta.events.register(f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}."
                                f"{operation}", stash)
    client.meta.events.register(f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}",
                                respond)
    return client


def ssm_publishing(image_id: str, parameter: str):
    ssm = boto3.client("ssm", region_name=REGION)

    def answer(params):
        if params.get("Name") == parameter:
            return AWSResponse(f"https://ssm.{REGION}.amazonaws.com/", 200, {}, None), {"Parameter": {"Name": parameter, "Type": "String", "Value": image_id, "Version": 1}}
        return None  # anything else goes to moto

    return hook(ssm, "GetParameter", answer)


def quotas_stub(value: float):
    client = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("get_service_quota", {"Quota": {"ServiceCode": "ec2", "QuotaCode": "L-417A185B",
                                                      "QuotaName": "Running On-Demand P instances",
                                                      "Value": value}},
                      {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"})
    stub.activate()
    return client, stub


def moto_image(arch="x86_64") -> str:
    ec2 = boto3.client("ec2", region_name=REGION)
    return next(i["ImageId"] for i in ec2.describe_images(Owners=["amazon"])["Images"] if i["Architecture"] == arch)


def by_name(checks):
    return {c.name: c for c in checks}


def test_everything_passes_for_a_well_formed_p5_pool(aws):
    factory, p = planned()
    param = aws_ami_parameter("ubuntu-24.04", "x86_64")
    image = moto_image()
    quotas, stub = quotas_stub(4096)
    session = Session(ec2=boto3.client("ec2", region_name=REGION), ssm=ssm_publishing(image, param),
                      **{"service-quotas": quotas})
    checks = by_name(preflight.check_factory(p, session=session))
    assert {n: c.status for n, c in checks.items()} == {
        "offering": "ok", "efa": "ok", "ami": "ok", "quota": "ok", "reservation": "skip"}
    assert "3,072 of 4,096 vCPUs" in checks["quota"].message  # 16 x 192 vCPUs
    assert image in checks["ami"].message and param in checks["ami"].message
    stub.assert_no_pending_responses()


def test_zone_without_the_instance_type_fails_naming_it(aws):
    factory, p = planned(zones=("us-east-1a", "us-east-1-bos-1a"))
    (check,) = [c for c in preflight.check_factory(p, session=Session(
        ec2=boto3.client("ec2", region_name=REGION), ssm=boto3.client("ssm", region_name=REGION),
        **{"service-quotas": quotas_stub(10_000)[0]})) if c.name == "offering"]
    assert check.failed and "not offered in us-east-1-bos-1a" in check.message


def test_quota_too_small_fails_with_the_numbers(aws):
    factory, p = planned(nodes=16)
    quotas, _ = quotas_stub(1536)
    ec2 = boto3.client("ec2", region_name=REGION)
    info = ec2.describe_instance_types(InstanceTypes=["p5.48xlarge"])["InstanceTypes"][0]
    check = preflight.check_quota(quotas, info, p.pools[0], "on-demand")
    assert check.failed
    assert "need 3,072 vCPUs" in check.message and "L-417A185B" in check.message and "1,536" in check.message


def test_quota_api_denied_is_a_warning_not_a_failure(aws):
    factory, p = planned()
    client = boto3.client("service-quotas", region_name=REGION)
    stub = Stubber(client)
    stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed")
    stub.activate()
    info = boto3.client("ec2", region_name=REGION).describe_instance_types(
        InstanceTypes=["p5.48xlarge"])["InstanceTypes"][0]
    check = preflight.check_quota(client, info, p.pools[0], "on-demand")
    assert check.status == "warn" and "AccessDeniedException" in check.message


def test_missing_ssm_parameter_and_bad_explicit_ami_fail(aws):
    factory, p = planned()
    ec2, ssm = boto3.client("ec2", region_name=REGION), boto3.client("ssm", region_name=REGION)
    missing = preflight.check_ami(ssm, ec2, p.pools[0], "ubuntu-24.04")  # moto has no DLAMI parameters
    assert missing.failed and "does not exist in us-east-1" in missing.message
    bad = preflight.check_ami(ssm, ec2, p.pools[0], "ubuntu-24.04", ami="ami-00000000deadbeef0")
    assert bad.failed and "does not resolve" in bad.message
    ok = preflight.check_ami(ssm, ec2, p.pools[0], "ubuntu-24.04", ami=moto_image())
    assert ok.status == "ok"


def test_image_of_the_wrong_architecture_fails(aws):
    factory, p = planned()
    ec2 = boto3.client("ec2", region_name=REGION)
    check = preflight.check_ami(None, ec2, p.pools[0], "ubuntu-24.04", ami=moto_image("arm64"))
    assert check.failed and "arm64" in check.message and "x86_64" in check.message


def test_efa_count_comes_from_the_api(aws):
    factory, p = planned(system="p5en.48xlarge")
    info = boto3.client("ec2", region_name=REGION).describe_instance_types(
        InstanceTypes=["p5en.48xlarge"])["InstanceTypes"][0]
    check = preflight.check_efa(info, p.pools[0])
    assert check.status == "ok" and check.message.startswith("16 EFA interfaces")
    lying = {**info, "NetworkInfo": {**info["NetworkInfo"], "EfaInfo": {"MaximumEfaInterfaces": 8}}}
    assert preflight.check_efa(lying, p.pools[0]).failed


URL = f"https://ec2.{REGION}.amazonaws.com/"


def reservation_hook(ec2, reservation: dict):
    """moto lacks DescribeCapacityReservations: answer it from a before-call hook."""
    def answer(params):
        ids = params.get("CapacityReservationIds", [])
        if reservation["CapacityReservationId"] not in ids:
            return AWSResponse(URL, 400, {}, None), {
                "Error": {"Code": "InvalidCapacityReservationId.NotFound", "Message": "not found"},
                "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse(URL, 200, {}, None), {"CapacityReservations": [reservation]}

    return hook(ec2, "DescribeCapacityReservations", answer)


BLOCK = {"CapacityReservationId": "cr-0123456789abcdef0", "InstanceType": "p5.48xlarge",
         "AvailabilityZone": "us-east-1a", "State": "scheduled", "TotalInstanceCount": 16,
         "AvailableInstanceCount": 0, "ReservationType": "capacity-block"}


def test_scheduled_capacity_block_passes_and_wrong_ones_fail(aws):
    factory, p = planned(capacity="capacity-block", reservation="cr-0123456789abcdef0")
    pool = p.pools[0]
    ok = preflight.check_reservation(reservation_hook(boto3.client("ec2", region_name=REGION), BLOCK), pool)
    assert ok.status == "ok" and "scheduled" in ok.message
    wrong = {**BLOCK, "InstanceType": "p5en.48xlarge", "AvailabilityZone": "us-east-1b", "TotalInstanceCount": 8}
    bad = preflight.check_reservation(reservation_hook(boto3.client("ec2", region_name=REGION), wrong), pool)
    assert bad.failed
    assert "p5en.48xlarge" in bad.message and "us-east-1b" in bad.message and "8 instances" in bad.message
    # The hook answers only this operation: the rest of EC2 is still moto.
    hooked = reservation_hook(boto3.client("ec2", region_name=REGION), BLOCK)
    assert hooked.describe_instance_type_offerings()["InstanceTypeOfferings"]


def test_unknown_reservation_and_block_without_id(aws):
    factory, p = planned(capacity="reservation", reservation="cr-0fffffffffffffff0")
    check = preflight.check_reservation(reservation_hook(boto3.client("ec2", region_name=REGION), BLOCK),
                                        p.pools[0])
    assert check.failed and "InvalidCapacityReservationId.NotFound" in check.message
    factory, p = planned(capacity="capacity-block")
    check = preflight.check_reservation(boto3.client("ec2", region_name=REGION), p.pools[0])
    assert check.failed and "aifactory:reservations.train" in check.message


def test_cli_reports_failures_and_exits_1(tmp_path, monkeypatch):
    """Through the CLI with moto in-process: the AMI parameter is missing there, so it fails."""
    from typer.testing import CliRunner

    from aifactory.cli import app

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    f = tmp_path / "factory.yaml"
    f.write_text(f"""name: pf
sites: [{{name: s1, provider: aws, region: {REGION}}}]
pools: [{{name: train, site: s1, provider: aws, system: p5.48xlarge, nodes: 2, zones: [us-east-1a]}}]
""")
    with mock_aws():
        result = CliRunner().invoke(app, ["preflight", str(f)])
    assert result.exit_code == 1
    assert "FAIL train: ami: SSM parameter /aws/service/deeplearning" in result.output
    assert "OK   train: offering" in result.output
