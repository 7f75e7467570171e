"""Dynamic Ansible inventory from EC2 tags: the running nodes of a factory, grouped by pool, site and role.

Auto Scaling groups create and replace instances on their own, so the inventory of an AWS pool
is read from the instances' tags (the keys in :mod:`aifactory.components.base`, written by the
launch template) rather than from stack outputs. :mod:`.dynamic` turns them into Ansible's
dynamic-inventory JSON, the same shape for every cloud.
"""

from __future__ import annotations

from typing import Iterable, Optional

from ..components.base import TAG_FACTORY, TAG_KEYS, TAG_NODE
from ..errors import AifactoryError
from .dynamic import ENDPOINT_PATTERN, Node, one_line, require, require_factory
from .dynamic import build as build_nodes

PROVIDER = "aws"
REGION_PATTERN = r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}"


def running_instances(ec2, factory: str) -> Iterable[dict]:
    paginator = ec2.get_paginator("describe_instances")
    filters = [{"Name": f"tag:{TAG_FACTORY}", "Values": [factory]},
               {"Name": "instance-state-name", "Values": ["running"]}]
    for page in paginator.paginate(Filters=filters):
        for reservation in page["Reservations"]:
            yield from reservation["Instances"]


def node(inst: dict) -> Node:
    """One ``describe_instances`` instance as a :class:`~.dynamic.Node`."""
    tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags", [])}
    return Node(
        key=inst["InstanceId"],
        names=tuple(n for n in (inst.get("PrivateDnsName"), inst["InstanceId"]) if n),
        address=inst.get("PrivateIpAddress"),
        tags={key: tags.get(key) for key in TAG_KEYS},
        hostvars={
            "ec2_instance_id": inst["InstanceId"],
            "ec2_instance_type": inst.get("InstanceType"),
            "ec2_availability_zone": inst.get("Placement", {}).get("AvailabilityZone"),
        })


def candidate(inst: dict):
    """One instance as :class:`~.names.Candidate`: its ``aifactory:node`` tag is the claim. The
    launch template allows tags in the instance metadata, where the node reads the same tag
    (``/latest/meta-data/tags/instance/aifactory:node``)."""
    from .names import Candidate

    tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags", [])}
    launched = inst.get("LaunchTime")
    return Candidate(node(inst), launched.timestamp() if hasattr(launched, "timestamp") else None,
                     tags.get(TAG_NODE))


def build(instances: Iterable[dict], factory: str) -> dict:
    """Ansible dynamic-inventory JSON for ``instances`` (as ``describe_instances`` returns them)."""
    return build_nodes((node(inst) for inst in instances), factory)


def inventory(factory: str, regions: Optional[list[str]] = None, session=None,
              endpoint_url: Optional[str] = None, *, plan=None, warn=None) -> dict:
    """The inventory of ``factory`` across ``regions`` (default: the session's region). With
    ``plan``, every running instance is named after the plan first (:mod:`.names`): new claims are
    written as the ``aifactory:node`` tag (``ec2:CreateTags``) and hosts are listed by those names."""
    require_factory(factory)
    for region in regions or []:
        require(region, REGION_PATTERN, "--region", "an AWS region such as us-east-1")
    if endpoint_url is not None:
        require(endpoint_url, ENDPOINT_PATTERN, "--endpoint-url", "an http(s) URL")
    import boto3

    session = session or boto3.Session()
    regions = regions or [session.region_name or "us-east-1"]
    instances: list[dict] = []
    clients = {}
    for region in regions:
        ec2 = session.client("ec2", region_name=region, endpoint_url=endpoint_url)
        for inst in running_instances(ec2, factory):
            instances.append(inst)
            clients[inst["InstanceId"]] = ec2
    if plan is None:
        return build(instances, factory)
    from .names import assign

    from botocore.exceptions import BotoCoreError, ClientError

    def write(found: Node, name: str) -> None:
        try:
            clients[found.key].create_tags(Resources=[found.key], Tags=[{"Key": TAG_NODE, "Value": name}])
        except (BotoCoreError, ClientError) as exc:
            raise AifactoryError(f"inventory --from aws: cannot tag {found.key} as {name}: {one_line(exc)}") from None

    return assign(plan, PROVIDER, factory, [candidate(i) for i in instances], write, warn=warn)
