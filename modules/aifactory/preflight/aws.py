"""AWS preflight: what ``pulumi up`` would otherwise discover an hour into a GPU deployment.

For every AWS pool of a planned factory, with read-only API calls:

* ``offering``: the instance type is offered in each of the pool's availability zones;
* ``efa``: the instance type supports EFA with as many interfaces as the catalog plans;
* ``ami``: the image resolves (the SSM parameter the launch template uses, or an explicit id)
  and matches the instance's architecture;
* ``quota``: on-demand and spot pools fit the account's vCPU quota for the instance family;
* ``reservation``: a named capacity reservation / block exists, is active (or scheduled),
  matches the instance type and zone and holds enough instances.

Each check returns a :class:`Check` whose message names the pool and says what to do.
An API the credentials may not call gives a warning, not a failure: preflight is advice,
the deployment itself is the authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..components.base import aws_ami_parameter

# EC2 vCPU quotas by instance family letter (Service Quotas codes, service "ec2").
# https://docs.aws.amazon.com/ec2/latest/instancetypes/ec2-instance-quotas.html
ON_DEMAND_QUOTAS = {"p": ("L-417A185B", "Running On-Demand P instances"),
                    "g": ("L-DB2E81BA", "Running On-Demand G and VT instances")}
SPOT_QUOTAS = {"p": ("L-7212CCBC", "All P Spot Instance Requests"),
               "g": ("L-3819A6DF", "All G and VT Spot Instance Requests")}

ARCH = {"x86_64": "x86_64", "arm64": "arm64"}


@dataclass(frozen=True)
class Check:
    pool: str
    name: str
    status: str  # ok | fail | warn | skip
    message: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def render(self) -> str:
        return f"{self.status.upper():4} {self.pool}: {self.name}: {self.message}"


def _error_text(exc) -> str:
    err = getattr(exc, "response", {}).get("Error", {})
    return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', str(exc))}"


def check_offering(ec2, pool, zones) -> Check:
    found = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": [pool.system]}, {"Name": "location", "Values": list(zones)}],
    )["InstanceTypeOfferings"]
    offered = {o["Location"] for o in found}
    missing = [z for z in zones if z not in offered]
    if missing:
        return Check(pool.name, "offering", "fail",
                     f"{pool.system} is not offered in {', '.join(missing)}; choose zones where it is "
                     f"(`aws ec2 describe-instance-type-offerings --location-type availability-zone "
                     f"--filters Name=instance-type,Values={pool.system} --region {pool.region}`)")
    return Check(pool.name, "offering", "ok", f"{pool.system} is offered in {', '.join(zones)}")


def _instance_type(ec2, pool) -> Optional[dict]:
    types = ec2.describe_instance_types(InstanceTypes=[pool.system])["InstanceTypes"]
    return types[0] if types else None


def check_efa(info: Optional[dict], pool) -> Check:
    if info is None:
        return Check(pool.name, "efa", "fail", f"{pool.system} is unknown to EC2 in {pool.region}")
    net = info.get("NetworkInfo", {})
    if pool.fabric_type != "efa":
        return Check(pool.name, "efa", "skip", "pool does not use EFA")
    if not net.get("EfaSupported"):
        return Check(pool.name, "efa", "fail", f"{pool.system} does not support EFA; pick an EFA instance type")
    maximum = net.get("EfaInfo", {}).get("MaximumEfaInterfaces", 0)
    if maximum < pool.compute_nics:
        return Check(pool.name, "efa", "fail", f"{pool.system} supports {maximum} EFA interfaces but the plan "
                     f"attaches {pool.compute_nics}; the catalog entry is wrong for this region")
    return Check(pool.name, "efa", "ok", f"{pool.compute_nics} EFA interfaces (maximum {maximum})")


def check_ami(ssm, ec2, pool, os_name: str, ami: Optional[str] = None) -> Check:
    source = ami
    if ami is None:
        from ..errors import AifactoryError

        try:
            parameter = aws_ami_parameter(os_name, pool.cpu_arch)
        except AifactoryError as exc:
            return Check(pool.name, "ami", "fail", str(exc))
        try:
            ami = ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
        except ssm.exceptions.ParameterNotFound:
            return Check(pool.name, "ami", "fail", f"SSM parameter {parameter} does not exist in {pool.region}; "
                         "set an explicit AMI id or choose another software.os")
        source = f"{ami} (from {parameter})"
    try:
        images = ec2.describe_images(ImageIds=[ami])["Images"]
    except Exception as exc:  # InvalidAMIID.NotFound / Malformed come as ClientError
        return Check(pool.name, "ami", "fail", f"image {ami} does not resolve: {_error_text(exc)}")
    if not images:
        return Check(pool.name, "ami", "fail", f"image {ami} does not exist or is not shared with this account")
    arch = images[0].get("Architecture")
    if arch and arch != ARCH.get(pool.cpu_arch, pool.cpu_arch):
        return Check(pool.name, "ami", "fail", f"image {ami} is {arch} but {pool.system} is {pool.cpu_arch}")
    return Check(pool.name, "ami", "ok", f"image {source}")


def check_quota(quotas, info: Optional[dict], pool, capacity: str) -> Check:
    if capacity in ("reservation", "capacity-block"):
        return Check(pool.name, "quota", "skip", "reserved capacity is not counted against the vCPU quota")
    table = SPOT_QUOTAS if capacity == "spot" else ON_DEMAND_QUOTAS
    code = table.get(pool.system[0])
    if code is None or info is None:
        return Check(pool.name, "quota", "skip", f"no vCPU quota code known for {pool.system}")
    vcpus = info["VCpuInfo"]["DefaultVCpus"] * pool.nodes
    try:
        value = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code[0])["Quota"]["Value"]
    except Exception as exc:
        return Check(pool.name, "quota", "warn", f"could not read quota {code[0]} ({code[1]}): {_error_text(exc)}")
    if value < vcpus:
        return Check(pool.name, "quota", "fail", f"{pool.nodes} x {pool.system} need {vcpus:,} vCPUs but the "
                     f"'{code[1]}' quota ({code[0]}) is {value:,.0f}; request an increase in Service Quotas")
    return Check(pool.name, "quota", "ok", f"{vcpus:,} of {value:,.0f} vCPUs ({code[1]})")


def check_reservation(ec2, pool) -> Check:
    if pool.capacity not in ("reservation", "capacity-block"):
        return Check(pool.name, "reservation", "skip", f"capacity is {pool.capacity}")
    if not pool.reservation:
        if pool.capacity == "capacity-block":
            return Check(pool.name, "reservation", "fail", "capacity-block pool without a reservation id: purchase "
                         "a block (`aws ec2 describe-capacity-block-offerings`) and set pools[].reservation or "
                         f"`pulumi config set --path aifactory:reservations.{pool.name} cr-…`")
        return Check(pool.name, "reservation", "skip", "no reservation id; instances use any open reservation")
    try:
        found = ec2.describe_capacity_reservations(CapacityReservationIds=[pool.reservation])["CapacityReservations"]
    except Exception as exc:
        return Check(pool.name, "reservation", "fail", f"{pool.reservation}: {_error_text(exc)}")
    if not found:
        return Check(pool.name, "reservation", "fail", f"{pool.reservation} does not exist in {pool.region}")
    res = found[0]
    problems = []
    if res.get("InstanceType") != pool.system:
        problems.append(f"is for {res.get('InstanceType')}, not {pool.system}")
    if pool.zones and res.get("AvailabilityZone") not in pool.zones:
        problems.append(f"is in {res.get('AvailabilityZone')}, not in {', '.join(pool.zones)}")
    state = res.get("State")
    if state not in ("active", "scheduled", "payment-pending"):
        problems.append(f"is {state}")
    available = res.get("AvailableInstanceCount", 0) if state == "active" else res.get("TotalInstanceCount", 0)
    if available < pool.nodes:
        problems.append(f"has {available} instances available for {pool.nodes} nodes")
    if problems:
        return Check(pool.name, "reservation", "fail", f"{pool.reservation} " + "; ".join(problems))
    when = f", starts {res.get('StartDate')}" if state == "scheduled" else ""
    return Check(pool.name, "reservation", "ok", f"{pool.reservation}: {state}, {available} instances{when}")


def check_pool(session, plan, pool, ami: Optional[str] = None) -> list[Check]:
    """Every check for one AWS pool, using clients from ``session`` (a ``boto3.Session``)."""
    region = pool.region
    ec2 = session.client("ec2", region_name=region)
    ssm = session.client("ssm", region_name=region)
    quotas = session.client("service-quotas", region_name=region)
    checks = []
    if not pool.zones:
        checks.append(Check(pool.name, "offering", "fail", "the pool names no availability zone (pools[].zones)"))
    else:
        checks.append(check_offering(ec2, pool, pool.zones))
    info = _instance_type(ec2, pool)
    checks.append(check_efa(info, pool))
    checks.append(check_ami(ssm, ec2, pool, plan.software.os, ami))
    checks.append(check_quota(quotas, info, pool, pool.capacity))
    checks.append(check_reservation(ec2, pool))
    return checks


def check_factory(plan, session=None, ami: Optional[str] = None) -> list[Check]:
    """Checks for every AWS pool of ``plan``; ``session`` defaults to the ambient credentials."""
    import boto3

    session = session or boto3.Session()
    out: list[Check] = []
    for pool in plan.pools:
        if pool.provider == "aws":
            out.extend(check_pool(session, plan, pool, ami))
    return out
