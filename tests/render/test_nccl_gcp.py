"""NCCL on GCP A3 VMs carries Google's published settings for each A3 variant, with the VM's NIC names.

- A3 High (a3-highgpu-8g, GPUDirect-TCPX): the variables of cluster-toolkit's
  ``examples/machine-learning/a3-highgpu-8g/nccl-tests/run-nccl-tests.sh``.
- A3 Mega (a3-megagpu-8g, GPUDirect-TCPXO): every variable of Google's
  ``tcpxo_scripts/nccl-env-profile.sh`` (google/nccl-plugin-gpudirect-tcpxo) with
  ``NCCL_LIB_DIR=/var/lib/tcpxo/lib64``, where slurm-gcp's RxDM prolog installs the plugin.
- A3 Ultra, A4, A4X (RoCE, gIB): the values cluster-toolkit's A3 Ultra NeMo Dockerfile copies from
  gIB's ``set_nccl_env.sh``, and the tuner file of each machine type.

On a VM the NICs have predictable names (enp0s12, enp6s0, ...); ``eth0``..``eth8`` are the names
GKE gives them inside a pod and select nothing on the host. Sources checked 2026-12-03.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from aifactory.catalog import load
from aifactory.render.nccl import pool_files, settings
from tests.render.helpers import STACKS, rendered
from tests.render.test_nccl_hca import conf_lines, profile_exports

CATALOG = load()
TCPXO_LIB = "/var/lib/tcpxo/lib64"

# cluster-toolkit a3-highgpu-8g run-nccl-tests.sh (the per-job UDS path aside) and its NeMo Dockerfile.
A3_HIGH = {
    "NCCL_NET": "GPUDirectTCPX_v7",
    "NCCL_SOCKET_IFNAME": "enp0s12",
    "NCCL_GPUDIRECTTCPX_CTRL_DEV": "enp0s12",
    "NCCL_GPUDIRECTTCPX_SOCKET_IFNAME": "enp6s0,enp12s0,enp134s0,enp140s0",
    "NCCL_GPUDIRECTTCPX_UNIX_CLIENT_PREFIX": "/run/tcpx",
    "NCCL_GPUDIRECTTCPX_PROGRAM_FLOW_STEERING_WAIT_MICROS": "500000",
    "NCCL_CROSS_NIC": "0",
    "NCCL_ALGO": "Ring",
    "NCCL_PROTO": "Simple",
    "NCCL_NSOCKS_PERTHREAD": "4",
    "NCCL_SOCKET_NTHREADS": "1",
    "NCCL_DYNAMIC_CHUNK_SIZE": "524288",
    "NCCL_P2P_NET_CHUNKSIZE": "524288",
    "NCCL_P2P_PCI_CHUNKSIZE": "524288",
    "NCCL_P2P_NVL_CHUNKSIZE": "1048576",
    "NCCL_BUFFSIZE": "4194304",
    "NCCL_NET_GDR_LEVEL": "PIX",
    "NCCL_P2P_PXN_LEVEL": "0",
}

# nccl-env-profile.sh, NCCL variables only (CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH and the NCCL_DEBUG
# pair are left to the job), NIC names as the VM has them.
A3_MEGA_PROFILE = {
    "NCCL_FASTRAK_IFNAME": "enp6s0,enp7s0,enp13s0,enp14s0,enp134s0,enp135s0,enp141s0,enp142s0",
    "NCCL_FASTRAK_CTRL_DEV": "enp0s12",
    "NCCL_SOCKET_IFNAME": "enp0s12",
    "NCCL_CROSS_NIC": "0",
    "NCCL_PROTO": "Simple,LL128",
    "NCCL_MIN_NCHANNELS": "4",
    "NCCL_NVLSTREE_MAX_CHUNKSIZE": "131072",
    "NCCL_P2P_NET_CHUNKSIZE": "524288",
    "NCCL_P2P_PCI_CHUNKSIZE": "524288",
    "NCCL_P2P_NVL_CHUNKSIZE": "1048576",
    "NCCL_FASTRAK_NUM_FLOWS": "2",
    "NCCL_FASTRAK_ENABLE_CONTROL_CHANNEL": "0",
    "NCCL_BUFFSIZE": "8388608",
    "NCCL_FASTRAK_USE_SNAP": "1",
    "NCCL_FASTRAK_USE_LLCM": "1",
    "NCCL_NET_GDR_LEVEL": "PIX",
    "NCCL_FASTRAK_ENABLE_HOTPATH_LOGGING": "0",
    "NCCL_TUNER_PLUGIN": "libnccl-tuner.so",
    "NCCL_TUNER_CONFIG_PATH": f"{TCPXO_LIB}/a3plus_tuner_config.textproto",
    "NCCL_SHIMNET_GUEST_CONFIG_CHECKER_CONFIG_FILE": f"{TCPXO_LIB}/a3plus_guest_config.textproto",
    "NCCL_FASTRAK_PLUGIN_ACCEPT_TIMEOUT_MS": "600000",
}
# Added on top of the profile: the aperture devices cluster-toolkit's job scripts export, and the
# plugin's registered name so that a node without the plugin fails instead of using sockets.
A3_MEGA_EXTRA = {"NCCL_FASTRAK_LLCM_DEVICE_DIRECTORY": "/dev/aperture_devices", "NCCL_NET": "FasTrak"}

# cluster-toolkit a3-ultragpu-8g NeMo Dockerfile ("match what is in set_nccl_env.sh").
GIB = {
    "NCCL_NET": "gIB",
    "NCCL_CROSS_NIC": "0",
    "NCCL_NET_GDR_LEVEL": "PIX",
    "NCCL_P2P_NET_CHUNKSIZE": "131072",
    "NCCL_NVLS_CHUNKSIZE": "524288",
    "NCCL_IB_ADAPTIVE_ROUTING": "1",
    "NCCL_IB_QPS_PER_CONNECTION": "4",
    "NCCL_IB_TC": "52",
    "NCCL_IB_FIFO_TC": "84",
}
GIB_PER_MACHINE = {
    "a3-ultragpu-8g": {"NCCL_TUNER_CONFIG_PATH": "/usr/local/gib/configs/tuner_config_a3u.txtpb",
                       "NCCL_SOCKET_IFNAME": "enp0s19,enp192s20"},
    "a4-highgpu-8g": {"NCCL_TUNER_CONFIG_PATH": "/usr/local/gib/configs/tuner_config_a4.txtpb",
                      "NCCL_SOCKET_IFNAME": "enp0s19,enp192s20"},
    "a4x-highgpu-4g": {"NCCL_SOCKET_IFNAME": "enp0s3,enp192s2"},
}
# gIB machines whose tuner file no primary source names: set_nccl_env.sh picks it on the node.
GIB_TUNER_UNPUBLISHED = {"a4x-highgpu-4g"}


def env(system: str) -> dict[str, str]:
    s = CATALOG.systems[system]
    return {r["variable"]: r["value"] for r in settings(
        SimpleNamespace(system=system, provider=s.provider, fabric_type=s.fabrics[0]))}


def rendered_conf(system: str) -> dict[str, list[str]]:
    s = CATALOG.systems[system]
    conf, _ = pool_files(SimpleNamespace(name="t"),
                         SimpleNamespace(system=system, provider=s.provider, fabric_type=s.fabrics[0]))
    return conf_lines(conf)


def gcp_systems(fabric: str) -> list[str]:
    return sorted(sid for sid, s in CATALOG.systems.items() if s.provider == "gcp" and s.fabrics[0] == fabric)


def test_each_gcp_gpudirect_fabric_is_one_machine_type():
    assert gcp_systems("gpudirect-tcpx") == ["a3-highgpu-8g"]
    assert gcp_systems("gpudirect-tcpxo") == ["a3-megagpu-8g"]
    assert gcp_systems("roce") == sorted(GIB_PER_MACHINE)


def test_a3_high_carries_cluster_toolkits_tcpx_settings():
    assert env("a3-highgpu-8g") == A3_HIGH


def test_a3_mega_carries_every_variable_of_googles_profile():
    got = env("a3-megagpu-8g")
    assert {k: got.get(k) for k in A3_MEGA_PROFILE} == A3_MEGA_PROFILE
    assert set(got) - set(A3_MEGA_PROFILE) == set(A3_MEGA_EXTRA)
    assert {k: got[k] for k in A3_MEGA_EXTRA} == A3_MEGA_EXTRA


def test_a3_mega_paths_point_where_the_plugin_is_installed():
    got = env("a3-megagpu-8g")
    for name in ("NCCL_TUNER_CONFIG_PATH", "NCCL_SHIMNET_GUEST_CONFIG_CHECKER_CONFIG_FILE"):
        assert got[name].startswith(TCPXO_LIB + "/"), name
    # The GKE container paths do not exist on a VM, and the tuner aborts on a missing file.
    assert not any(v.startswith(("/usr/local/nvidia", "/usr/local/tcpxo")) for v in got.values())


@pytest.mark.parametrize("system", ["a3-highgpu-8g", "a3-megagpu-8g"])
def test_gpudirect_nics_are_vm_names_not_pod_names(system):
    nic_vars = [k for k in env(system) if k.endswith(("IFNAME", "CTRL_DEV"))]
    assert nic_vars
    for name in nic_vars:
        for nic in env(system)[name].split(","):
            assert re.fullmatch(r"enp\d+s\d+", nic), (name, nic)


@pytest.mark.parametrize("system", sorted(GIB_PER_MACHINE))
def test_gib_machines_carry_set_nccl_env_values(system):
    got = env(system)
    assert {k: got.get(k) for k in GIB} == GIB
    assert {k: got.get(k) for k in GIB_PER_MACHINE[system]} == GIB_PER_MACHINE[system]
    if system in GIB_TUNER_UNPUBLISHED:
        assert "NCCL_TUNER_CONFIG_PATH" not in got, f"{system} now has a tuner path: drop it from the set"
    else:
        assert got["NCCL_TUNER_CONFIG_PATH"].startswith("/usr/local/gib/configs/")


def test_gib_tuner_file_matches_the_gpu():
    # Google: tuner_config_a3u for H200 (A3 Ultra), tuner_config_a4 for B200 (A4).
    by_gpu = {"h200-sxm": "tuner_config_a3u.txtpb", "b200": "tuner_config_a4.txtpb"}
    for system in set(GIB_PER_MACHINE) - GIB_TUNER_UNPUBLISHED:
        gpu = CATALOG.systems[system].gpu.id
        assert env(system)["NCCL_TUNER_CONFIG_PATH"].endswith("/" + by_gpu[gpu]), system


@pytest.mark.parametrize("system", ["a3-highgpu-8g", "a3-megagpu-8g", *sorted(GIB_PER_MACHINE)])
def test_rendered_nccl_conf_sets_each_variable_once(system):
    conf = rendered_conf(system)
    assert all(len(v) == 1 for v in conf.values()), {k: v for k, v in conf.items() if len(v) > 1}
    assert {k: v[0] for k, v in conf.items()} == env(system)


def test_the_multicloud_a3_mega_pool_renders_the_profile():
    files = rendered(STACKS / "multicloud" / "factory.yaml")
    conf = {k: v[0] for k, v in conf_lines(files["nccl/gcp/nccl.conf"]).items()}
    assert conf == {**A3_MEGA_PROFILE, **A3_MEGA_EXTRA}
    assert profile_exports(files["nccl/gcp/nccl.sh"]) == conf
