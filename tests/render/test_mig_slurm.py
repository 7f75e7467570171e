"""A MIG pool's Slurm files: typed GPU GRES per profile on its node line, NVML detection in
gres.conf, and the real slurmctld (Debian 12: Slurm 22.05) taking both.

Slurm's way for MIG (https://slurm.schedmd.com/gres.html#MIG_Management, checked 2026-12-03):
``AutoDetect=nvml`` in gres.conf for the nodes with MIG, and Gres= in slurm.conf as if the MIG
instances were GPUs, typed by a substring of the MIG profile NVML reports. gres.conf is read by
slurmd on a node with the GPUs, so here it is checked as text; slurm.conf is read by slurmctld.
"""

from __future__ import annotations

import pytest

from aifactory.render import slurm
from tests.render.helpers import planned, rendered

SPEC = """
name: migf
software: {os: debian-12}
sites: [{name: hall, power_mw: 2, pue: 1.2, rack_kw: 60}]
pools:
  - {name: infer, site: hall, provider: onprem, system: dgx-h100, nodes: 2, mig: {"2g.20gb": 3, "1g.10gb": 1}}
  - {name: small, site: hall, provider: onprem, system: dgx-h100, nodes: 1, mig: {"1g.10gb+me": 1, "3g.40gb": 1, "2g.20gb": 1}}
  - {name: train, site: hall, provider: onprem, system: dgx-h100, nodes: 2}
"""


def _lines(text: str, start: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(start)]


def test_mig_nodes_advertise_typed_gres_and_gres_conf_detects_them():
    files = rendered(SPEC)
    conf, gres = files["slurm/hall/slurm.conf"], files["slurm/hall/gres.conf"]
    nodes = {ln.split()[0]: ln for ln in _lines(conf, "NodeName=")}
    assert "Gres=gpu:2g.20gb:24,gpu:1g.10gb:8 " in nodes["NodeName=infer-[0001-0002]"]
    assert "Gres=gpu:1g.10gb+me:8,gpu:3g.40gb:8,gpu:2g.20gb:8 " in nodes["NodeName=small-0001"]
    assert "Gres=gpu:h100_sxm:8 " in nodes["NodeName=train-[0001-0002]"]
    assert "Features=h100_sxm,hopper,x86_64,mig " in nodes["NodeName=infer-[0001-0002]"]
    assert _lines(gres, "NodeName=infer") == ["NodeName=infer-[0001-0002] AutoDetect=nvml"]
    assert _lines(gres, "NodeName=small") == ["NodeName=small-0001 AutoDetect=nvml"]
    # Whole-GPU pools keep their device files and core binding.
    assert all("File=/dev/nvidia" in ln for ln in _lines(gres, "NodeName=train"))
    assert "https://slurm.schedmd.com/gres.html#MIG_Management" in gres


def test_a_factory_without_mig_gets_no_mig_comment():
    files = rendered(SPEC.replace(', mig: {"2g.20gb": 3, "1g.10gb": 1}', "").replace(
        ', mig: {"1g.10gb+me": 1, "3g.40gb": 1, "2g.20gb": 1}', ""))
    assert "MIG" not in files["slurm/hall/gres.conf"] and "AutoDetect" not in files["slurm/hall/gres.conf"]


@pytest.mark.slow
def test_slurmctld_takes_the_mig_gres_and_reports_it_per_node(tmp_path):
    from tests.render.test_slurmctld import _fields, _start

    plan, _ = planned(SPEC)
    files = slurm.files(plan, plan.catalog())
    ctld = _start(files, "hall", tmp_path)
    try:
        records = {r["NodeName"]: r for r in (_fields(line) for line in ctld.show("node", "-o").splitlines()
                                              if line.startswith("NodeName="))}
        assert {n: r["Gres"] for n, r in records.items()} == {
            "infer-0001": "gpu:2g.20gb:24,gpu:1g.10gb:8",
            "infer-0002": "gpu:2g.20gb:24,gpu:1g.10gb:8",
            "small-0001": "gpu:1g.10gb+me:8,gpu:3g.40gb:8,gpu:2g.20gb:8",
            "train-0001": "gpu:h100_sxm:8",
            "train-0002": "gpu:h100_sxm:8",
        }
        assert "mig" in records["infer-0001"]["AvailableFeatures"].split(",")
        # The typed counts add up to what the plan resolved, per node.
        pool = plan.pool("infer")
        assert sum(m.per_node for m in pool.mig) == 32
    finally:
        ctld.stop()
