"""Dynamic Ansible inventory from EC2 tags: the running nodes of a factory, grouped by pool, site and role.

Auto Scaling groups create and replace instances on their own, so the inventory of an AWS pool
is read from the instances' tags (the keys in :mod:`aifactory.components.base`, written by the
launch template) rather than from stack outputs. :mod:`.dynamic` turns them into Ansible's
dynamic-inventory JSON, the same shape for every cloud.
"""

from __future__ import annotations

from typing import Iterable, Optional

from ..components.base import TAG_FACTORY, TAG_KEYS
from .dynamic import ENDPOINT_PATTERN, Node, require, require_factory
from .dynamic import build as build_nodes

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


def build(instances: Iterable[dict], factory: str) -> dict:
    """Ansible dynamic-inventory JSON for ``instances`` (as ``describe_instances`` returns them)."""
    return build_nodes((node(inst) for inst in instances), factory)


def inventory(factory: str, regions: Optional[list[str]] = None, session=None,
              endpoint_url: Optional[str] = None) -> dict:
    """The inventory of ``factory`` across ``regions`` (default: the session's region)."""
    require_factory(factory)
    for region in regions or []:
        require(region, REGION_PATTERN, "--region", "an AWS region such as us-east-1")
    if endpoint_url is not None:
        require(endpoint_url, ENDPOINT_PATTERN, "--endpoint-url", "an http(s) URL")
    import boto3

    session = session or boto3.Session()
    regions = regions or [session.region_name or "us-east-1"]
    instances: list[dict] = []
    for region in regions:
        ec2 = session.client("ec2", region_name=region, endpoint_url=endpoint_url)
        instances.extend(running_instances(ec2, factory))
    return build(instances, factory)
