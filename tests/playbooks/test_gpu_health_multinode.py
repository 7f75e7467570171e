"""gpu_health's checks across nodes: every node's view of its IMEX domain and one all_reduce per
pool through Slurm, against the floor the inventory derives from the catalog (nccl_busbw).

health.yml runs for real through ansible-playbook; srun, nvidia-imex-ctl and nvidia-smi are
test-local stand-ins on PATH that print real output:

- all_reduce_perf: the 8-node H100 InfiniBand run (the SHARP manifest) in coreweave/nccl-tests'
  README (https://github.com/coreweave/nccl-tests, "MPI Operator", checked 2026-12-03): Avg bus
  bandwidth 373.187 GB/s; NVIDIA/nccl-tests src/common.cu prints the summary lines.
- nvidia-imex-ctl -N: the 18-node GB200 domain in the AWS PCS User Guide, "Configure UltraServer
  instances" (https://docs.aws.amazon.com/pcs/latest/userguide/capacity-blocks-nvidia-imex.html,
  checked 2026-12-03), the format of NVIDIA's IMEX guide, "IMEX Service Command Service"
  (https://docs.nvidia.com/multi-node-nvlink-systems/imex-guide/cmdservice.html). The failing
  variant takes one node out as the legend of that output and DCGM's IMEX fields
  (DCGM_FI_IMEX_DOMAIN_STATUS: UP, DOWN, DEGRADED; DCGM_FI_IMEX_DAEMON_STATUS: ... UNAVAILABLE)
  describe it: the node UNAVAILABLE, its connections N (never connected), the domain DEGRADED.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aifactory import catalog as cat
from aifactory import plan as planning
from aifactory import spec
from aifactory.inventory import build_files, write_files
from aifactory.inventory.plan import nccl_busbw_floor
from tests import ansible_data
from tests.playbooks.test_roles import BIN, ENV, PLAYBOOKS

NCCL_TEST = "/opt/nccl-tests/build/all_reduce_perf"

NCCL_OUTPUT = """\
# nThread 1 nGpus 1 minBytes 4 maxBytes 2147483648 step: 2(factor) warmup iters: 50 iters: 50 validation: 1
#
#                                                              out-of-place                       in-place
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
   536870912     134217728     float     sum      -1   2984.6  179.88  356.01      0   2979.7  180.18  356.60      0
  1073741824     268435456     float     sum      -1   5808.0  184.87  365.90      0   5882.2  182.54  361.28      0
  2147483648     536870912     float     sum      -1    11163  192.37  380.73      0    11203  191.70  379.40      0
  4294967296    1073741824     float     sum      -1    22181  193.63  383.23      0    22570  190.29  376.62      0
  8589934592    2147483648     float     sum      -1    43980  195.31  386.56      0    44094  194.81  385.56      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 373.187 
#
"""

_IPS = ["172.31.48.81", "172.31.48.98", "172.31.48.221", "172.31.49.228", "172.31.50.39", "172.31.50.44",
        "172.31.51.66", "172.31.51.157", "172.31.52.239", "172.31.53.80", "172.31.54.95", "172.31.54.183",
        "172.31.54.203", "172.31.54.241", "172.31.55.59", "172.31.55.187", "172.31.55.197", "172.31.56.47"]

_LEGEND = """\
Connectivity Table Legend:
I - Invalid - Node wasn't reachable, no connection status available
N - Never Connected
R - Recovering - Connection was lost, but clean up has not yet been triggered.
D - Disconnected - Connection was lost, and clean up has been triggreed.
A - Authenticating - If GSSAPI enabled, client has initiated mutual authentication.
!V! - Version mismatch, communication disabled.
!M! - Node map mismatch, communication disabled.
C - Connected - Ready for operation

5/4/2026 06:08:10.580
Nodes:
"""


def _imex_output(down: int | None = None) -> str:
    """nvidia-imex-ctl -N for the 18-node domain; ``down``: the node that is out."""
    nodes = "".join(f"{f'Node #{i}':<9} - {ip:<15} - {'UNAVAILABLE' if i == down else 'READY':<20} - Version: 570.172\n"
                    for i, ip in enumerate(_IPS))
    header = " Nodes From\\To  " + "".join(f"{i:<4}" for i in range(len(_IPS))).rstrip() + "\n"
    rows = "".join(f"{i:>8}        " + "   ".join("N" if down in (i, j) else "C" for j in range(len(_IPS))) + "\n"
                   for i in range(len(_IPS)))
    state = "DEGRADED" if down is not None else "UP"
    return f"{_LEGEND}{nodes}\n{header}{rows}\nDomain State: {state}\n"


def test_imex_sample_is_the_published_one():
    """The healthy sample is the published output line for line (spacing of the node lines included)."""
    text = _imex_output()
    assert "Node #0   - 172.31.48.81    - READY                - Version: 570.172\n" in text
    assert "Node #17  - 172.31.56.47    - READY                - Version: 570.172\n" in text
    assert "      17        C   C   C" in text and text.endswith("\nDomain State: UP\n")


def _stand_ins(folder: Path) -> Path:
    """srun, nvidia-imex-ctl and nvidia-smi for this test only; srun records its argv."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (folder / "nccl.txt").write_text(NCCL_OUTPUT)
    (folder / "imex-up.txt").write_text(_imex_output())
    (folder / "imex-degraded.txt").write_text(_imex_output(down=5))
    py = sys.executable
    scripts = {
        "srun": f"""import json, sys
with open({str(folder / 'srun.jsonl')!r}, 'a') as f:
    f.write(json.dumps(sys.argv[1:]) + '\\n')
if '--partition=down' in sys.argv:
    sys.exit('srun: error: Unable to allocate resources: Invalid partition name specified')
sys.stdout.write(open({str(folder / 'nccl.txt')!r}).read())
""",
        "nvidia-imex-ctl": f"""import sys
config = sys.argv[sys.argv.index('-c') + 1]
assert sys.argv[-1] == '-N', sys.argv
name = 'imex-degraded.txt' if 'degraded' in config else 'imex-up.txt'
sys.stdout.write(open({str(folder)!r} + '/' + name).read())
""",
        "nvidia-smi": """import sys
for i in range(8):
    print(f"{i}, NVIDIA H100 80GB HBM3, 570.172.08, Enabled")
""",
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!{py}\n{body}")
        path.chmod(0o755)
    return bin_dir


def _host(pool: str, partition: str, floor: int, imex: bool = False, config: str = "up.cfg", **extra) -> dict:
    return {"ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable,
            "gpu_health_gpus": 8, "gpu_health_dcgm_level": 0, "gpu_health_pool": pool,
            "gpu_health_slurm_partition": partition, "gpu_health_nccl_multinode_min_busbw": floor,
            "gpu_health_imex": imex, "gpu_health_imex_config": config, **extra}


@pytest.mark.slow
def test_health_gate_runs_one_all_reduce_per_pool_and_checks_imex(tmp_path):
    bin_dir = _stand_ins(tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    hosts = {
        # dgx-h100 on InfiniBand: floor 320 GB/s, the sample's 373.187 passes.
        "h100-a": _host("h100", "h100", 320), "h100-b": _host("h100", "h100", 320),
        # dgx-b300 on InfiniBand: floor 640 GB/s, the same run fails it.
        "b300-a": _host("b300", "b300", 640), "b300-b": _host("b300", "b300", 640),
        # A pool whose srun fails: the gate says why and fails the pool.
        "down-a": _host("down", "down", 320), "down-b": _host("down", "down", 320),
        # An NVL72 pool outside Slurm: IMEX is checked, the all_reduce is skipped.
        "nvl-a": _host("nvl", "", 160, imex=True), "nvl-b": _host("nvl", "", 160, imex=True, config="degraded.cfg"),
    }
    for values in hosts.values():
        values["gpu_health_report_dir"] = str(reports)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"nvidia": {"hosts": hosts}}}}))
    env = dict(ENV, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               ANSIBLE_CACHE_PLUGIN_CONNECTION=str(tmp_path / "facts"), ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "health.yml"],
                          cwd=PLAYBOOKS, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out

    # One srun per Slurm pool, from its first host, over all of the pool's nodes, argv only.
    calls = [json.loads(line) for line in (tmp_path / "srun.jsonl").read_text().splitlines()]
    assert sorted(calls) == sorted(
        ["--mpi=pmix", f"--partition={pool}", f"--nodelist={pool}-a,{pool}-b", "--nodes=2",
         "--ntasks-per-node=8", "--gpus-per-node=8", NCCL_TEST, "-b", "4G", "-e", "4G", "-g", "1"]
        for pool in ("h100", "b300", "down"))

    # A low bandwidth fails the gate naming the pool, the measured and the expected GB/s.
    assert ("pool b300 unhealthy: all_reduce_perf across 2 nodes (16 GPUs) measured 373.187 GB/s bus bandwidth, "
            "expected at least 640 GB/s") in out
    assert "pool h100 healthy: all_reduce_perf across 2 nodes measured 373.187 GB/s bus bandwidth, floor 320 GB/s" in out
    assert "Multi-node NCCL check skipped: pool nvl is not Slurm-scheduled" in out
    recap = {line.split()[0]: line for line in out.splitlines() if ": ok=" in line}
    failed = {host for host, line in recap.items() if "failed=0" not in line}
    assert failed == {"b300-a", "down-a", "nvl-b"}, out[-3000:]
    assert (f"pool down unhealthy: srun {NCCL_TEST} failed (rc 1): srun: error: Unable to allocate resources: "
            "Invalid partition name specified; all_reduce_perf across 2 nodes (16 GPUs) measured 0.0 GB/s") in out

    # IMEX: the healthy domain passes; a node out of it fails every node that sees it.
    good = json.loads((reports / "nvl-a.json").read_text())
    assert good["healthy"] and good["found"]["imex_nodes"] == 18 and good["found"]["imex_domain"] == "UP"
    bad = json.loads((reports / "nvl-b.json").read_text())
    assert not bad["healthy"]
    assert bad["failures"] == ["IMEX domain is DEGRADED (want UP)", "IMEX nodes not READY: 172.31.50.44 UNAVAILABLE",
                               "35 IMEX connections not connected (N)"]
    assert bad["found"]["imex_not_connected"] == 35  # node 5's row and column
    assert "imex_domain" not in json.loads((reports / "h100-a.json").read_text())["found"]


def test_health_runs_the_checks_across_nodes_and_upgrade_does_not():
    def role_vars(playbook: str) -> dict:
        play = yaml.safe_load((PLAYBOOKS / playbook).read_text())[0]
        return next(r for r in play["roles"] if r["role"] == "gpu_health").get("vars", {})

    assert role_vars("health.yml")["gpu_health_multinode"] is True
    # A batch is part of a pool, and a domain mid-rollout runs IMEX at two driver versions.
    assert role_vars("upgrade.yml")["gpu_health_multinode"] is False
    defaults = yaml.safe_load((PLAYBOOKS / "roles/gpu_health/defaults/main.yml").read_text())
    assert defaults["gpu_health_multinode"] is False


SPEC = """\
name: gate
software: {driver_branch: "580", cuda: "13.0"}
sites:
  - {name: dc, power_mw: 20, pue: 1.3, rack_kw: 140}
fabrics:
  - {name: ib, type: infiniband, switch: qm9700}
  - {name: eth, type: ethernet, switch: sn5600}
pools:
  - {name: h100, site: dc, provider: onprem, system: dgx-h100, nodes: 4, fabric: ib}
  - {name: nvl, site: dc, provider: onprem, system: gb200-nvl72, nodes: 18, fabric: ib}
  - {name: k8s, site: dc, provider: onprem, system: dgx-b300, nodes: 2, fabric: ib, scheduler: kubernetes}
  - {name: plain, site: dc, provider: onprem, system: hgx-h100, nodes: 2, fabric: eth}
"""


def test_inventory_hands_each_pool_its_floor(tmp_path):
    loaded = spec.load_string(SPEC, "gate.yaml")
    plan = planning.build(loaded)
    write_files(build_files(plan), tmp_path)
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(tmp_path / "inventory"), "--list"],
                          capture_output=True, text=True, check=True)
    hostvars = ansible_data.load_json(proc.stdout)["_meta"]["hostvars"]
    got = {values["gpu_health_pool"]: (values["gpu_health_nccl_multinode_min_busbw"],
                                       values["gpu_health_slurm_partition"], values["gpu_health_imex"])
           for values in hostvars.values()}
    # 8 x 400 Gb/s = 400 GB/s x 0.8 (InfiniBand); 4 x 400 Gb/s x 0.8; 8 x 800 Gb/s x 0.8; plain
    # Ethernet has no floor. Slurm pools run the all_reduce in their own partition.
    assert got == {"h100": (320, "h100", False), "nvl": (160, "nvl", True), "k8s": (640, "", False),
                   "plain": (0, "plain", False)}
    catalog = cat.load()
    for pool in plan.pools:
        assert got[pool.name][0] == nccl_busbw_floor(pool, catalog)


def test_floor_is_the_line_rate_times_the_catalog_share():
    catalog = cat.load()
    assert set(catalog.nccl_busbw) <= set(cat.FABRIC_TYPES) and "ethernet" not in catalog.nccl_busbw
    assert all(0 < row.efficiency <= 1 and "estimate" in row.source for row in catalog.nccl_busbw.values())
