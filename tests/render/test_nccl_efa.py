"""NCCL on AWS EFA loads the aws-ofi-nccl plugin the EFA installer really installs.

NCCL turns ``NCCL_NET_PLUGIN=<NAME>`` into ``libnccl-net-<NAME>.so`` (2.21+ also tries the literal
value, 2.27+ takes a comma list and ``none``) and opens ``libnccl-net.so`` when it is unset. The
EFA installer's aws-ofi-nccl installs ``libnccl-net.so`` in every release and, from v1.15 on,
``libnccl-net-ofi.so`` next to it (aws/aws-ofi-nccl ``src/Makefile.am`` per tag). A name outside
those files makes NCCL fall back to TCP sockets without an error.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aifactory.catalog import load
from aifactory.render.nccl import settings
from tests.render.helpers import STACKS, rendered

# What every aws-ofi-nccl release the EFA installer ships puts under /opt/amazon/ofi-nccl/lib.
INSTALLED_BY_EVERY_RELEASE = {"libnccl-net.so"}
EFA_SYSTEMS = sorted(sid for sid, s in load().systems.items() if "efa" in s.fabrics)


def plugin_files(value: str | None) -> set[str]:
    """The files NCCL tries to open for a value of NCCL_NET_PLUGIN (None: unset)."""
    if value is None:
        return {"libnccl-net.so"}
    names = [v.strip() for v in value.split(",") if v.strip() and v.strip() != "none"]
    # Either form may be the one found; both must exist for the choice to be safe.
    return {f"libnccl-net-{n}.so" for n in names} | {n for n in names if n.endswith(".so")}


def test_plugin_files_follow_nccls_naming():
    assert plugin_files(None) == {"libnccl-net.so"}
    assert plugin_files("aws-ofi") == {"libnccl-net-aws-ofi.so"}
    assert plugin_files("ofi") == {"libnccl-net-ofi.so"}


def test_every_efa_system_is_covered():
    assert {"p4d.24xlarge", "p5.48xlarge", "p5en.48xlarge", "p6-b200.48xlarge"} <= set(EFA_SYSTEMS)


@pytest.mark.parametrize("system", EFA_SYSTEMS)
def test_efa_settings_never_name_a_plugin_the_installer_lacks(system):
    pool = SimpleNamespace(fabric_type="efa", provider=load().systems[system].provider, system=system)
    env = {s["variable"]: s["value"] for s in settings(pool)}
    files = plugin_files(env.get("NCCL_NET_PLUGIN"))
    assert files <= INSTALLED_BY_EVERY_RELEASE, (system, env.get("NCCL_NET_PLUGIN"))
    # The one recommended EFA variable with current libfabric and aws-ofi-nccl stays.
    assert env["FI_EFA_USE_HUGE_PAGE"] == "0"


def test_rendered_efa_files_leave_the_plugin_to_the_linker_path():
    files = rendered(STACKS / "aws-p5" / "factory.yaml")
    efa = [rel for rel, text in files.items()
           if rel.startswith("nccl/") and "FI_EFA_USE_HUGE_PAGE" in text]
    assert efa, "the aws-p5 stack has an EFA pool"
    for rel in efa:
        assert "NCCL_NET_PLUGIN" not in files[rel], rel
