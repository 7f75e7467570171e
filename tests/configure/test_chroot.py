"""The playbooks for real: a Debian 12 root filesystem, targeted through the chroot connection.

check mode, a real run, then a second run that must change nothing; then assertions on the
files and package states inside the tree. Driver userspace comes from Debian non-free,
rdma-core/OpenSM/slurmd/munge from Debian main; FM and DCGM only render their configuration.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from aifactory import configure

from .conftest import HERE, chroot_inventory, in_root

pytestmark = [pytest.mark.slow, pytest.mark.root]

HOST = "gpu-0001"
DRIVER = "535.261.03"  # tests/configure/factory.yaml pins the driver Debian 12 non-free ships


def _run(inv, playbook="site.yml", **kw):
    from rich.console import Console

    console = Console(record=True, width=200, force_terminal=False)
    result = configure.run(inv, playbook, console=console, **kw)
    return result, console.export_text()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aifactory", "configure", *args],
                          capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"))


def test_site_check_then_apply_then_idempotent_then_health(tmp_path, rootfs, fact_cache):
    """One root filesystem through the whole life: dry run, install, re-run, health gate."""
    inv = chroot_inventory(tmp_path / "out", {HOST: rootfs})

    # 1. `aifactory configure --check`: live progress, the per-host summary, exit 0, nothing installed.
    proc = _cli(str(inv), "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "PLAY Install the NVIDIA software stack on GPU nodes" in out
    assert "PLAY Prepare Slurm compute nodes" in out
    assert "nvidia_driver : Install the driver packages pinned to 535.261.03" in out
    assert "slurm_client : Install slurmd and munge  ok=0 changed=1" in out  # predicted, not done
    assert "ansible-playbook: successful" in out
    header = next(line for line in out.splitlines() if "unreachable" in line and "host" in line)
    assert all(col in header for col in ("ok", "changed", "failed", "skipped"))
    row = next(line for line in out.splitlines() if line.strip("│┃ ").startswith(HOST))
    assert int(row.split("│")[3]) > 0  # the changed column: a fresh node has work to do
    assert in_root(rootfs, "dpkg-query", "-W", "nvidia-smi").returncode != 0, "check mode installed the driver"
    assert not (rootfs / "usr/share/nvidia/nvswitch/fabricmanager.cfg").exists()

    # 2. The real run, then a second one that must change nothing.
    first, text = _run(inv)
    assert first.ok, text
    assert first.hosts[HOST].changed >= 10, text
    second, text = _run(inv)
    assert second.ok, text
    assert second.hosts[HOST].changed == 0, text
    assert second.hosts[HOST].ok > 30  # every role ran again, it just had nothing to do

    # Packages: the pinned driver userspace, the verbs stack, the subnet manager, Slurm.
    for package in ("nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "nvidia-persistenced", "rdma-core",
                    "ibverbs-utils", "infiniband-diags", "opensm", "slurmd", "slurm-client", "munge"):
        status = in_root(rootfs, "dpkg-query", "-W", "-f=${Status}", package).stdout
        assert status.endswith(" ok installed"), (package, status)  # "hold ok installed" when held
    version = in_root(rootfs, "dpkg-query", "-W", "-f=${Version}", "nvidia-smi").stdout
    assert version.startswith(DRIVER + "-"), version
    held = set(in_root(rootfs, "apt-mark", "showhold").stdout.split())
    assert {"nvidia-smi", "libnvidia-ml1", "libnvidia-cfg1", "slurmd", "slurm-client"} <= held, held
    assert "nvidia-persistenced" not in held  # Debian versions it on its own; it is not pinned to the driver
    for unit in ("nvidia-persistenced", "opensm", "munge", "slurmd"):
        assert in_root(rootfs, "systemctl", "is-enabled", unit).stdout.strip() == "enabled", unit

    # Files the roles render, with the plan's values in them.
    assert "blacklist nouveau" in (rootfs / "etc/modprobe.d/blacklist-nouveau.conf").read_text()
    fm = (rootfs / "usr/share/nvidia/nvswitch/fabricmanager.cfg").read_text()
    assert f"NVIDIA Fabric Manager {DRIVER}" in fm and "FABRIC_MODE=0" in fm
    assert "CUDA_HOME=/usr/local/cuda-12.2" in (rootfs / "etc/profile.d/cuda.sh").read_text()
    assert "Requires=nvidia-dcgm.service" in (rootfs / "etc/systemd/system/dcgm-exporter.service").read_text()
    assert "sm_priority 0" in (rootfs / "etc/opensm/opensm.conf").read_text()
    # The pool's NCCL and dcgm-exporter files are the rendered ones, byte for byte: one author,
    # delivered by the roles.
    from aifactory import plan as planning
    from aifactory import spec
    from aifactory.render import dcgm, monitoring
    from aifactory.render.deployment import build_files

    built = planning.build(spec.load(HERE / "factory.yaml"))
    rendered = build_files(built)
    pool = built.pools[0].name
    assert (rootfs / "etc/nccl.conf").read_text() == rendered[f"nccl/{pool}/nccl.conf"]
    assert (rootfs / "etc/profile.d/nccl.sh").read_text() == rendered[f"nccl/{pool}/nccl.sh"]
    assert (rootfs / dcgm.COUNTERS_PATH.lstrip("/")).read_text() == rendered[f"dcgm/{pool}/dcgm-exporter.csv"]
    assert (rootfs / dcgm.ENVIRONMENT_PATH.lstrip("/")).read_text() == rendered[f"dcgm/{pool}/dcgm-exporter.env"]
    assert not (rootfs / "etc/dcgm-exporter/counters.csv").exists()
    # Monitoring: node_exporter on the node, Prometheus on the monitoring host (the same one here)
    # with the rendered configuration, which the installed promtool accepts with its target file.
    for package, unit in (("prometheus-node-exporter", "prometheus-node-exporter"), ("prometheus", "prometheus")):
        assert in_root(rootfs, "dpkg-query", "-W", "-f=${Status}", package).stdout.endswith(" ok installed"), package
        assert in_root(rootfs, "systemctl", "is-enabled", unit).stdout.strip() == "enabled", unit
    assert (rootfs / "etc/prometheus/prometheus.yml").read_text() == rendered["prometheus/prometheus.yml"]
    assert (rootfs / f"etc/prometheus/targets/{pool}.json").read_text() == rendered[f"prometheus/targets/{pool}.json"]
    check = in_root(rootfs, "promtool", "check", "config", "/etc/prometheus/prometheus.yml")
    assert check.returncode == 0 and "SUCCESS" in check.stdout + check.stderr, check.stdout + check.stderr
    assert "does not exist" not in check.stdout + check.stderr  # promtool read and checked the target file
    # The exporter's packaged listen address is the port the rendered node jobs scrape.
    usage = in_root(rootfs, "prometheus-node-exporter", "--help")
    listen = re.search(r"--web\.listen-address=\S*:(\d+)\s", usage.stdout + usage.stderr)  # "=:9100 ..."
    assert listen and int(listen.group(1)) == monitoring.NODE_EXPORTER_PORT, usage.stdout + usage.stderr
    assert f"${{1}}:{monitoring.NODE_EXPORTER_PORT}" in rendered["prometheus/prometheus.yml"]
    assert "non-free" in (rootfs / "etc/apt/sources.list.d/debian-nonfree.sources").read_text()
    # The NVIDIA repository is not added on the distro path, and nothing IMEX/NVLSM on an H100 node.
    assert not (rootfs / "etc/apt/sources.list.d/nvidia-cuda.sources").exists()
    assert not (rootfs / "etc/nvidia-imex").exists()
    assert not (rootfs / "etc/modules-load.d/nvlsm.conf").exists()

    # 3. The health gate: the real nvidia-smi from non-free, with no GPU or kernel module behind it,
    # must fail the node and say why, in the output and in the per-node report.
    report = tmp_path / "health"
    report.mkdir()
    health, text = _run(inv, "health.yml",
                        extravars={"gpu_health_report_dir": str(report), "gpu_health_dcgm_level": 0})
    assert health.failed_hosts == [HOST], text
    assert f"{HOST} unhealthy: nvidia-smi failed" in text
    data = json.loads((report / f"{HOST}.json").read_text())
    assert data["healthy"] is False and data["host"] == HOST
    assert data["failures"][0].startswith("nvidia-smi failed")
    assert any("NVLink" in f for f in data["failures"]) and any("fabric" in f for f in data["failures"]), data


def test_configure_names_the_failed_host(tmp_path, rootfs, fact_cache):
    # gpu-0002's NSCQ does not match its fabric manager: the nvidia_fabric role must refuse it.
    inv = chroot_inventory(tmp_path / "out", {"gpu-0001": rootfs, "gpu-0002": rootfs},
                           extra={"gpu-0002": {"nvidia_fabric_nscq_version": "535.1.1"}},
                           factory=HERE / "two-nodes.yaml")
    proc = _cli(str(inv), "--tags", "fabric")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "site.yml failed on 1 host(s): gpu-0002" in proc.stderr
    assert "gpu-0002: nvidia_fabric : Fail when fabric manager and NSCQ do not match exactly" in proc.stdout
    assert "gpu-0001" not in proc.stderr
