"""One logical H100 pool on two providers gets the same Slurm and DCGM settings; only the
hardware (host CPUs and memory) and the provider's NCCL lines differ. Checked with a real
diff of the rendered files, not by comparing the inputs."""

from __future__ import annotations

import difflib
import re

import pytest

from tests.render.helpers import rendered

SPEC = """
name: twin
software: {{driver_branch: "580", cuda: "13.0"}}
sites:
  - {{name: a, provider: {pa}, region: {ra}}}
  - {{name: b, provider: {pb}, region: {rb}}}
fabrics:
  - {{name: fa, type: {fa}}}
  - {{name: fb, type: {fb}}}
pools:
  - {{name: train-a, site: a, provider: {pa}, system: {sa}, nodes: 16, fabric: fa, zones: [{ra}-z]}}
  - {{name: train-b, site: b, provider: {pb}, system: {sb}, nodes: 16, fabric: fb, zones: [{rb}-z]}}
"""

PAIRS = {
    # Azure ND H100 v5 and OCI BM.GPU.H100.8: 8 x H100 SXM each.
    "azure-oci": dict(pa="azure", ra="eastus", fa="infiniband", sa="Standard_ND96isr_H100_v5",
                      pb="oci", rb="us-ashburn-1", fb="roce", sb="BM.GPU.H100.8"),
    # AWS p5.48xlarge and GCP a3-megagpu-8g.
    "aws-gcp": dict(pa="aws", ra="us-east-1", fa="efa", sa="p5.48xlarge",
                    pb="gcp", rb="us-central1", fb="gpudirect-tcpxo", sb="a3-megagpu-8g"),
}
HARDWARE = ("CPUs", "Sockets", "CoresPerSocket", "ThreadsPerCore", "RealMemory", "Cores")


def _normalise(text: str, pool: str, site: str) -> str:
    """Blank out names (pool, site) and the host-hardware fields; everything else must match."""
    text = text.replace(pool, "POOL").replace(f"twin-{site}", "twin-SITE")
    for key in HARDWARE:
        text = re.sub(rf"\b{key}=\S+", f"{key}=HW", text)
    return text


def _diff(a: str, b: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_same_pool_same_slurm_and_dcgm(pair):
    files = rendered(SPEC.format(**PAIRS[pair]))
    for name in ("slurm.conf", "gres.conf", "cgroup.conf"):
        a, b = files[f"slurm/a/{name}"], files[f"slurm/b/{name}"]
        raw = _diff(a, b)
        # The raw diff touches only lines with names or hardware in them (the controller and
        # slurmdbd are each site's first node) ...
        for line in raw:
            assert re.search(r"ClusterName=|NodeName=|PartitionName=|SlurmctldHost=|AccountingStorageHost=",
                             line), (name, line)
        # ... and once those are blanked out the files are identical.
        assert _normalise(a, "train-a", "a") == _normalise(b, "train-b", "b"), name
    for name in ("dcgm-exporter.csv", "dcgm-exporter.env"):
        assert files[f"dcgm/train-a/{name}"] == files[f"dcgm/train-b/{name}"], name
    # GRES: same GPU type and count on both.
    assert re.search(r"Gres=gpu:h100_sxm:8", files["slurm/a/slurm.conf"])
    assert re.search(r"Gres=gpu:h100_sxm:8", files["slurm/b/slurm.conf"])
    # NCCL is where the providers differ, and it does differ.
    assert _diff(files["nccl/train-a/nccl.conf"], files["nccl/train-b/nccl.conf"])


def test_hardware_fields_really_differ_where_the_hosts_do():
    """Azure's 96-core ND H100 v5 and OCI's 112-core H100 shape: the node lines say so."""
    files = rendered(SPEC.format(**PAIRS["azure-oci"]))
    assert "CPUs=96 " in files["slurm/a/slurm.conf"] and "CPUs=224 " in files["slurm/b/slurm.conf"]
