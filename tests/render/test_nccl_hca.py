"""NCCL_IB_HCA names each RDMA system's own compute HCAs, never a prefix that also takes the front-end NIC.

NCCL reads ``NCCL_IB_HCA`` as a list of prefixes unless it starts with ``=`` (exact names). A bare
``mlx5`` therefore selects every Mellanox device, the front-end (VCN, in-band, storage) NIC
included, and NCCL then stripes collectives over a port that is not on the compute fabric. The
exact lists below are copied from the sources named in the catalog rows (checked 2026-12-03); a
system without a published list is named in ``NO_SYSTEM_LIST`` with the reason, so adding an RDMA
system to the catalog without deciding its HCAs fails here.
"""

from __future__ import annotations

import re
import shlex
from types import SimpleNamespace

import pytest

from aifactory.catalog import load
from aifactory.render.nccl import pool_files, settings
from tests.render.helpers import STACKS, rendered

CATALOG = load()
RDMA = ("infiniband", "roce")

# The exact lists, as the sources print them (the catalog rows carry the same sources).
EXACT = {
    # oracle-quickstart/oci-hpc playbooks/roles/nccl-conf/templates/<shape>
    "BM.GPU.A100-v2.8": "=mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_1,mlx5_2,mlx5_3,mlx5_4,"
                        "mlx5_14,mlx5_15,mlx5_16,mlx5_17,mlx5_9,mlx5_10,mlx5_11,mlx5_12",
    "BM.GPU.H100.8": "=mlx5_0,mlx5_1,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7,mlx5_8,"
                     "mlx5_9,mlx5_10,mlx5_12,mlx5_13,mlx5_14,mlx5_15,mlx5_16,mlx5_17",
    "BM.GPU.H200.8": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11",
    "BM.GPU.B200.8": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11",
    # oci-hpc samples/gpu/nccl_run_allreduce_GB200.sbatch and healthchecks/files/*healthcheck.py
    "BM.GPU.GB200.4": "=mlx5_0,mlx5_1,mlx5_3,mlx5_4",
    "BM.GPU.MI300X.8": "=mlx5_0,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_7,mlx5_8,mlx5_9",
    # NVIDIA DGX H100/H200 user guide, network ports table (compute OSFP ports)
    "dgx-h100": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11",
    "dgx-h200": "=mlx5_0,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_9,mlx5_10,mlx5_11",
    # NVIDIA Mission Control north-south network guide 2.3.0, GB200 compute tray table
    "gb200-nvl72": "=mlx5_0,mlx5_1,mlx5_4,mlx5_5",
}

# Devices the same sources name as front-end, in-band or storage ports: never in the list.
FRONT_END = {
    "BM.GPU.H100.8": {"mlx5_2", "mlx5_11"},
    "dgx-h100": {"mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"},
    "dgx-h200": {"mlx5_1", "mlx5_2", "mlx5_7", "mlx5_8"},
    "gb200-nvl72": {"mlx5_2", "mlx5_3", "mlx5_6"},
}

_AZURE = ("Azure/azhpc-images renames InfiniBand HCAs mlx5_ib<N> and the accelerated-networking VF mlx5_an<N> "
          "(install_azure_persistent_rdma_naming.sh): the provider prefix mlx5_ib takes exactly the InfiniBand "
          "HCAs; no per-size list is published")
_GCP = ("the front-end NICs are gVNIC (no RDMA device), every mlx5 device of the VM is a GPU RDMA NIC, and the "
        "values cluster-toolkit copies from gIB's set_nccl_env.sh name no NCCL_IB_HCA")
_UNPUBLISHED = ("no primary source with this system's RDMA device names was found (numbering depends on the "
                "vendor's PCIe layout and firmware); it renders the fabric's mlx5 fallback: give it an exact list "
                "with a system-scope nccl_env overlay row")
NO_SYSTEM_LIST = {
    **{s: _AZURE for s in ("Standard_ND96asr_v4", "Standard_ND96amsr_A100_v4", "Standard_ND96isr_H100_v5",
                           "Standard_ND96isr_H200_v5", "Standard_ND96isr_MI300X_v5",
                           "Standard_ND128isr_NDR_GB200_v6")},
    **{s: _GCP for s in ("a3-ultragpu-8g", "a4-highgpu-8g", "a4x-highgpu-4g")},
    **{s: _UNPUBLISHED for s in ("BM.GPU.L40S.4", "dgx-a100", "hgx-h100", "hgx-h200", "dgx-b200", "hgx-b200",
                                 "dgx-b300", "gb300-nvl72", "pcie-h100-8", "pcie-l40s-8", "mi300x-8")},
}

# Fabrics that never go through NCCL's IB transport, so NCCL_IB_HCA means nothing there.
NO_IB_VERBS = {
    "efa": "aws-ofi-nccl drives EFA through libfabric; NCCL's IB transport is not used",
    "gpudirect-tcpx": "the GPUDirect-TCPX plugin takes its NICs from NCCL_GPUDIRECTTCPX_SOCKET_IFNAME",
    "gpudirect-tcpxo": "the FasTrak plugin takes its NICs from NCCL_FASTRAK_IFNAME",
}


def rdma_systems() -> list[str]:
    return sorted(sid for sid, s in CATALOG.systems.items() if set(s.fabrics) & set(RDMA))


def system_hca(system: str) -> str | None:
    rows = [r.value for r in CATALOG.nccl_env
            if r.scope == "system" and r.key == system and r.variable == "NCCL_IB_HCA"]
    return rows[0] if rows else None


def pool(system: str, fabric: str | None = None) -> SimpleNamespace:
    s = CATALOG.systems[system]
    fabric = fabric or next(f for f in s.fabrics if f in RDMA + tuple(NO_IB_VERBS))
    return SimpleNamespace(name="train", system=system, provider=s.provider, fabric_type=fabric)


def conf_lines(text: str) -> dict[str, list[str]]:
    """Variable -> values of the non-comment lines of an nccl.conf (a list, to catch repeats)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out.setdefault(name, []).append(value)
    return out


def profile_exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            out[name] = shlex.split(value)[0]
    return out


def render(system: str, fabric: str | None = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    conf, profile = pool_files(SimpleNamespace(name="t"), pool(system, fabric))
    return conf_lines(conf), profile_exports(profile)


def test_the_inventory_of_rdma_systems_is_complete():
    # Every RDMA system has a list or a written reason, and a reason never outlives a new list.
    decided = set(EXACT) | set(NO_SYSTEM_LIST)
    assert set(rdma_systems()) == decided, sorted(set(rdma_systems()) ^ decided)
    assert not set(EXACT) & set(NO_SYSTEM_LIST)


@pytest.mark.parametrize("system", rdma_systems())
def test_every_rdma_system_has_a_system_scope_list_or_a_reason(system):
    if system in NO_SYSTEM_LIST:
        assert system_hca(system) is None, f"{system} now has a list: drop it from NO_SYSTEM_LIST"
        assert len(NO_SYSTEM_LIST[system]) > 40
    else:
        assert system_hca(system) == EXACT[system], system


@pytest.mark.parametrize("system", sorted(EXACT))
def test_exact_lists_are_well_formed_and_sized_by_the_catalog(system):
    value = EXACT[system]
    assert value.startswith("="), "exact-match form: a plain list is a list of prefixes (mlx5_1 takes mlx5_10)"
    names = value[1:].split(",")
    assert all(re.fullmatch(r"mlx5_\d+", n) for n in names), names
    assert len(set(names)) == len(names), "a device named twice"
    assert len(names) == CATALOG.systems[system].compute_nics, "one HCA per compute NIC of the catalog"
    assert not set(names) & FRONT_END.get(system, set()), "a front-end port in the compute list"


@pytest.mark.parametrize("system", sorted(EXACT))
def test_rendered_nccl_conf_holds_the_exact_list(system):
    for fabric in sorted(set(CATALOG.systems[system].fabrics) & set(RDMA)):
        conf, profile = render(system, fabric)
        assert conf["NCCL_IB_HCA"] == [EXACT[system]], (system, fabric)
        assert profile["NCCL_IB_HCA"] == EXACT[system]


@pytest.mark.parametrize("system", sorted(EXACT) + sorted(s for s, why in NO_SYSTEM_LIST.items() if why == _AZURE))
def test_front_end_mellanox_shapes_never_get_a_bare_prefix(system):
    # OCI shapes, DGX and GB200 trays have Mellanox front-end ports; Azure VMs have mlx5_an0.
    conf, _ = render(system)
    value = conf["NCCL_IB_HCA"][0]
    assert value != "mlx5"
    assert value.startswith("=") or value == "mlx5_ib", value


def test_azure_prefix_cannot_take_the_accelerated_networking_vf():
    conf, _ = render("Standard_ND96isr_H100_v5")
    prefix = conf["NCCL_IB_HCA"][0]
    assert not "mlx5_an0".startswith(prefix)
    assert all(f"mlx5_ib{i}".startswith(prefix) for i in range(8))


@pytest.mark.parametrize("fabric", sorted(NO_IB_VERBS))
def test_fabrics_without_ib_verbs_get_no_hca_list(fabric):
    systems = [sid for sid, s in CATALOG.systems.items() if fabric in s.fabrics]
    assert systems, fabric
    for system in systems:
        env = {s["variable"] for s in settings(pool(system, fabric))}
        assert "NCCL_IB_HCA" not in env, (system, NO_IB_VERBS[fabric])


def test_oci_shape_settings_follow_their_nccl_conf_templates():
    # a100_b4.8 uses 4 QPs per connection; the Hopper/Blackwell templates disable cuMem.
    a100, _ = render("BM.GPU.A100-v2.8")
    assert a100["NCCL_IB_QPS_PER_CONNECTION"] == ["4"] and a100["NCCL_IGNORE_CPU_AFFINITY"] == ["1"]
    for shape in ("BM.GPU.H100.8", "BM.GPU.H200.8", "BM.GPU.B200.8"):
        conf, _ = render(shape)
        assert conf["NCCL_IB_QPS_PER_CONNECTION"] == ["1"], shape
        assert conf["NCCL_CUMEM_ENABLE"] == ["0"] and conf["NCCL_IGNORE_CPU_AFFINITY"] == ["1"], shape
    # Multi-node NVLink needs cuMem: the GB200 shape must not inherit NCCL_CUMEM_ENABLE=0.
    gb200, _ = render("BM.GPU.GB200.4")
    assert "NCCL_CUMEM_ENABLE" not in gb200


def test_the_multicloud_stack_renders_exact_lists():
    files = rendered(STACKS / "multicloud" / "factory.yaml")
    for pool_name, system in (("oci", "BM.GPU.H100.8"), ("onprem", "dgx-h100")):
        conf = conf_lines(files[f"nccl/{pool_name}/nccl.conf"])
        assert conf["NCCL_IB_HCA"] == [EXACT[system]], pool_name
        assert profile_exports(files[f"nccl/{pool_name}/nccl.sh"])["NCCL_IB_HCA"] == EXACT[system]
    assert conf_lines(files["nccl/azure/nccl.conf"])["NCCL_IB_HCA"] == ["mlx5_ib"]
