"""A small plan for the node-name tests: factory f1, pools train (3 nodes) and infer-a (1 node)."""

from __future__ import annotations

from pathlib import Path

from aifactory import plan as planning
from aifactory import spec

SPEC = """\
name: f1
software: {{driver_branch: "580", cuda: "13.0", os: ubuntu-24.04}}
access: {{admin_cidrs: [10.20.0.0/16]}}
sites:
  - {{name: {site}, provider: {provider}, region: {region}}}
fabrics:
  - {{name: fab, type: {fabric}}}
pools:
  - {{name: train, site: {site}, provider: {provider}, system: {system}, nodes: 3, fabric: fab, zones: [{zone}]}}
  - {{name: infer-a, site: {site}, provider: {provider}, system: {system}, nodes: 1, fabric: fab, zones: [{zone}]}}
"""
CLOUDS = {
    "aws": {"site": "aws-use1", "region": "us-east-1", "fabric": "efa", "system": "p5.48xlarge", "zone": "us-east-1a"},
    "gcp": {"site": "gcp-usc1", "region": "us-central1", "fabric": "gpudirect-tcpxo", "system": "a3-megagpu-8g",
            "zone": "us-central1-a"},
    "oci": {"site": "oci-iad", "region": "us-ashburn-1", "fabric": "roce", "system": "BM.GPU.H100.8",
            "zone": "Uocm:US-ASHBURN-AD-1"},
}


def spec_file(tmp_path: Path, provider: str) -> Path:
    path = tmp_path / f"factory-{provider}.yaml"
    path.write_text(SPEC.format(provider=provider, **CLOUDS[provider]))
    return path


def plan(tmp_path: Path, provider: str):
    return planning.build(spec.load(spec_file(tmp_path, provider)))
