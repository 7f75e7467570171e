"""Target 3: resource count of every example stack (offline preview under the SDK's mocks),
a 1,000-node cloud pool vs a 10-node one (must be equal), and the multi-cloud stack's
offline-preview time (a whole `aifactory preview` process; target < 10 s)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from .harness import REPO, Result, aifactory, time_command

# Every cloud pool of these stacks is resized together: AWS alone, then AWS + GCP + Azure + OCI.
CLOUD_STACKS = ("aws-p5", "multicloud")
CLOUDS = ("aws", "gcp", "azure", "oci")


def _count(stack_dir: Path) -> int:
    from aifactory.preview import preview

    return len(preview(stack_dir).resources)


def _resized(stack: str, nodes: int, work: Path) -> Path:
    target = work / f"{stack}-{nodes}"
    shutil.copytree(REPO / "stacks" / stack, target)
    # the stack's virtualenv path is relative to stacks/<name>; the preview needs no venv
    doc = yaml.safe_load((target / "factory.yaml").read_text())
    for p in doc["pools"]:
        if p["provider"] in CLOUDS:
            p["nodes"] = nodes
    (target / "factory.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return target


def run() -> list[Result]:
    results = []
    for stack_dir in sorted(p.parent for p in (REPO / "stacks").glob("*/Pulumi.yaml")):
        results.append(Result(f"pulumi: resources in stacks/{stack_dir.name}", _count(stack_dir), "", "-", None))
    work = Path(tempfile.mkdtemp(prefix="aifactory-bench-pulumi-"))
    try:
        for stack in CLOUD_STACKS:
            small = _count(_resized(stack, 10, work))
            large = _count(_resized(stack, 1000, work))
            results.append(Result(f"pulumi: stacks/{stack}, cloud pools of 10 nodes", small, "", "-", None))
            results.append(Result(f"pulumi: stacks/{stack}, cloud pools of 1,000 nodes", large, "",
                                  "= 10-node count", large == small))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time_command(aifactory("preview", str(REPO / "stacks/multicloud"), "--format", "json"), repeat=3)
    results.append(Result("pulumi: offline preview of stacks/multicloud (process wall time)", seconds, "s", "< 10 s",
                          seconds < 10))
    return results
