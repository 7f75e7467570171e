"""Rendered user data reaches the instances: every cloud component hands its node group the very
bytes `aifactory render` writes to cloud-init/<pool>/user-data.yaml (the program runs under
Pulumi's mocks; the engine sees what a real `pulumi up` would send)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from aifactory import plan as planning
from aifactory import preview, spec
from aifactory.render.deployment import build_files

REPO = Path(__file__).resolve().parents[2]


def _b64(text: str) -> str:
    return base64.b64decode(text).decode("utf-8")


# (resource type, how to read the user data from its inputs)
READERS = {
    "aws": ("aws:ec2/launchTemplate:LaunchTemplate", lambda i: _b64(i["userData"])),
    "gcp": ("gcp:compute/instanceTemplate:InstanceTemplate", lambda i: i["metadata"]["user-data"]),
    "azure": ("azure-native:compute:VirtualMachineScaleSet",
              lambda i: _b64(i["virtualMachineProfile"]["osProfile"]["customData"])),
    "oci": ("oci:Core/instanceConfiguration:InstanceConfiguration",
            lambda i: _b64(i["instanceDetails"]["launchDetails"]["metadata"]["user_data"])),
}


@pytest.fixture(scope="module")
def multicloud():
    built = planning.build(spec.load(REPO / "stacks" / "multicloud" / "factory.yaml"))
    return built, build_files(built), preview.preview(REPO / "stacks" / "multicloud")


@pytest.mark.parametrize("provider", sorted(READERS))
def test_each_cloud_node_group_boots_with_the_rendered_user_data(multicloud, provider):
    built, rendered, result = multicloud
    kind, read = READERS[provider]
    (pool,) = [p for p in built.pools if p.provider == provider]
    (record,) = result.of_type(kind)
    sent = read(record.inputs)
    assert sent == rendered[f"cloud-init/{pool.name}/user-data.yaml"]
    config = yaml.safe_load(sent)
    paths = {f["path"] for f in config["write_files"]}
    assert {"/etc/nccl.conf", "/etc/profile.d/nccl.sh"} <= paths
    assert config["ssh_pwauth"] is False and config["package_upgrade"] is False
