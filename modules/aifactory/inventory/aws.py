"""Dynamic Ansible inventory from EC2 tags: the running nodes of a factory, grouped by pool, site and role.

Auto Scaling groups create and replace instances on their own, so the inventory of an AWS pool
is read from the instances' tags (the keys in :mod:`aifactory.components.base`, written by the
launch template) rather than from stack outputs. The result is Ansible's dynamic-inventory JSON
(``--list`` form, ``_meta.hostvars`` included so Ansible never calls back per host).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

from ..components.base import TAG_FACTORY, TAG_POOL, TAG_ROLE, TAG_SITE, group_name
from ..fields import NAME_PATTERN

GROUP_KINDS = (("pool", TAG_POOL), ("site", TAG_SITE), ("role", TAG_ROLE))
_NAME = re.compile(NAME_PATTERN)


def _unsafe(value):
    """Tags and names read back from the cloud are untrusted: whoever may tag an instance must not
    run a template on the controller. Ansible's inventory-script JSON marks a string as data with
    ``{"__ansible_unsafe": ...}`` (what ``ansible-inventory --list`` itself prints)."""
    return {"__ansible_unsafe": value} if isinstance(value, str) else value


def running_instances(ec2, factory: str) -> Iterable[dict]:
    paginator = ec2.get_paginator("describe_instances")
    filters = [{"Name": f"tag:{TAG_FACTORY}", "Values": [factory]},
               {"Name": "instance-state-name", "Values": ["running"]}]
    for page in paginator.paginate(Filters=filters):
        for reservation in page["Reservations"]:
            yield from reservation["Instances"]


def build(instances: Iterable[dict], factory: str) -> dict:
    """Ansible dynamic-inventory JSON for ``instances`` (as ``describe_instances`` returns them)."""
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict] = {}
    for inst in sorted(instances, key=lambda i: i["InstanceId"]):
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        if tags.get(TAG_FACTORY) != factory:
            continue
        host = inst.get("PrivateDnsName") or inst["InstanceId"]
        hostvars[host] = {key: _unsafe(value) for key, value in {
            # Nodes have no public address: Ansible reaches them over the private network.
            "ansible_host": inst.get("PrivateIpAddress"),
            "ec2_instance_id": inst["InstanceId"],
            "ec2_instance_type": inst.get("InstanceType"),
            "ec2_availability_zone": inst.get("Placement", {}).get("AvailabilityZone"),
            "aifactory_factory": factory,
            "aifactory_pool": tags.get(TAG_POOL),
            "aifactory_site": tags.get(TAG_SITE),
            "aifactory_role": tags.get(TAG_ROLE),
        }.items()}
        for kind, key in GROUP_KINDS:
            # A group name is made from the tag only when it is a name the spec could hold.
            if isinstance(tags.get(key), str) and _NAME.fullmatch(tags[key]):
                groups.setdefault(group_name(kind, tags[key]), []).append(host)
    out: dict = {name: {"hosts": hosts} for name, hosts in sorted(groups.items())}
    grouped = {h for hosts in groups.values() for h in hosts}
    ungrouped = [h for h in hostvars if h not in grouped]
    if ungrouped:  # Ansible lists a host only through a group
        out["ungrouped"] = {"hosts": ungrouped}
    out["all"] = {"children": sorted(groups) + ["ungrouped"]}
    out["_meta"] = {"hostvars": hostvars}
    return out


def inventory(factory: str, regions: Optional[list[str]] = None, session=None,
              endpoint_url: Optional[str] = None) -> dict:
    """The inventory of ``factory`` across ``regions`` (default: the session's region)."""
    import boto3

    session = session or boto3.Session()
    regions = regions or [session.region_name or "us-east-1"]
    instances: list[dict] = []
    for region in regions:
        ec2 = session.client("ec2", region_name=region, endpoint_url=endpoint_url)
        instances.extend(running_instances(ec2, factory))
    return build(instances, factory)
