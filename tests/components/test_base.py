"""The shared shape: every provider module's GpuPool satisfies the Protocol; tags and labels."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from aifactory.components import base

PROVIDERS = ["aws", "gcp", "azure", "oci", "onprem"]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_module_has_the_public_shape(provider):
    import pulumi

    module = importlib.import_module(f"aifactory.components.{provider}")
    cls = module.GpuPool
    assert issubclass(cls, pulumi.ComponentResource)
    assert cls.TYPE == f"aifactory:{provider}:GpuPool"
    params = list(inspect.signature(cls.__init__).parameters)
    assert params[:5] == ["self", "name", "pool", "plan", "opts"]
    from aifactory.components.pool import PoolComponent

    assert issubclass(cls, PoolComponent)  # the shared shape, by construction
    declared = {name for klass in cls.__mro__ for name in vars(klass).get("__annotations__", {})}
    for output in base.OUTPUTS:
        assert output in declared, (provider, output)


STACK_OF = {"aws": "aws-p5", "gcp": "multicloud", "azure": "multicloud", "oci": "multicloud",
            "onprem": "superpod-h100"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_instances_satisfy_the_protocol_and_register_the_outputs(provider):
    from aifactory import preview

    stack_dir = REPO / "stacks" / STACK_OF[provider]
    result = preview.preview(stack_dir)
    pools = [r for r in result.records if r.type == f"aifactory:{provider}:GpuPool"]
    assert pools, provider
    for record in pools:
        assert set(result.outputs["inventory"][record.name]) >= {"pool", "site", "provider", "selector", "hosts"}
        assert {"node_group_ids", "network_ids"} <= set(result.outputs["pools"][record.name])
        children = result.children(record.name)
        assert all(c.name.startswith(f"{record.name}-") for c in children), [c.name for c in children]


def test_instance_is_a_gpupool_under_the_runtime_protocol(tmp_path):
    """Build one component directly under the SDK's own mocks and check it with isinstance."""
    import pulumi

    from aifactory import plan, spec
    from aifactory.components import aws
    from aifactory.preview.mocks import RecordingMocks

    built = plan.build(spec.load(REPO / "stacks" / "aws-p5" / "factory.yaml"))
    planned = built.pools[0]
    pulumi.runtime.set_mocks(RecordingMocks(), project="p", stack="s", preview=False)
    made = []

    @pulumi.runtime.test
    def build():
        made.append(aws.GpuPool("train", planned, built))
        return made[0].node_group_ids.apply(lambda ids: ids)

    build()
    assert isinstance(made[0], base.GpuPool)


def test_tags_carry_the_four_keys_and_win_over_user_tags():
    from aifactory import plan, spec

    loaded = spec.load_string("""
name: f1
tags: {team: ml}
sites: [{name: s1, provider: aws, region: us-east-1}]
pools: [{name: p1, site: s1, provider: aws, system: p5.48xlarge, nodes: 1, zones: [us-east-1a]}]
""")
    built = plan.build(loaded)
    pool = built.pools[0]
    assert base.tags(built, pool, "node") == {
        "team": "ml", base.TAG_FACTORY: "f1", base.TAG_SITE: "s1", base.TAG_POOL: "p1", base.TAG_ROLE: "node"}
    labels = base.labels(built, pool, "node")
    assert labels == {"team": "ml", "aifactory-factory": "f1", "aifactory-site": "s1", "aifactory-pool": "p1",
                      "aifactory-role": "node"}
    assert base.label_key(base.TAG_POOL) == "aifactory-pool"


def test_network_cidr_is_stable_and_private():
    import ipaddress
    from types import SimpleNamespace

    f, p = SimpleNamespace(name="f"), SimpleNamespace(name="p")
    cidr = base.network_cidr(f, p)
    assert cidr == base.network_cidr(f, p)
    net = ipaddress.ip_network(cidr)
    assert net.prefixlen == 16 and net.subnet_of(ipaddress.ip_network("10.64.0.0/10"))
    assert base.subnet_cidr(cidr, 1).endswith(".16.0/20")


def test_ami_parameter_for_an_unsupported_os_names_the_field():
    from aifactory.errors import AifactoryError

    assert base.aws_ami_parameter("ubuntu-22.04", "arm64").startswith("/aws/service/deeplearning/ami/arm64/")
    with pytest.raises(AifactoryError, match="software.os: rhel-9"):
        base.aws_ami_parameter("rhel-9", "x86_64")
