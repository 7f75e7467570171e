"""Target 4: wall time of the first and the second (idempotent) configure run of the lab
(`aifactory up stacks/lab` on fresh nodes, then again); the second must take at most 40%
of the first. Needs root (chroot) like the lab itself; reports nothing otherwise."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from .harness import REPO, Result


def run() -> list[Result]:
    if os.geteuid() != 0:
        return [Result("ansible: lab configure runs (needs root)", 0, "", "skipped: not root", None)]
    from rich.console import Console

    from aifactory import lab

    work = Path(tempfile.mkdtemp(prefix="aifactory-bench-lab-"))
    stack = work / "lab"
    stack.mkdir()
    shutil.copy(REPO / "stacks/lab/factory.yaml", stack / "factory.yaml")
    quiet = Console(file=io.StringIO())
    try:
        first = lab.up(stack, console=quiet)
        second = lab.up(stack, console=quiet)
    finally:
        lab.down(stack, say=lambda *_: None)
        shutil.rmtree(work, ignore_errors=True)
    a, b = first.seconds["configure"], second.seconds["configure"]
    c, d = first.seconds.get("control plane", 0.0), second.seconds.get("control plane", 0.0)
    return [
        Result("ansible: first configure of 2 lab nodes (site.yml)", a, "s", "-", first.ok or None),
        Result("ansible: second (idempotent) configure", b, "s", "-", None),
        Result("ansible: changes reported by the second run", second.first_changed, "", "0", second.first_changed == 0),
        Result("ansible: second / first", b / a, "x", "<= 0.40", b / a <= 0.40),
        # slurm.yml on a lab whose daemons run: the control plane's converge, reported, no target yet.
        Result("ansible: first / second slurm.yml (control plane)", c, "s", f"second {d:.1f} s", None),
        Result("ansible: whole lab up, first", sum(first.seconds.values()), "s", "-", None),
        Result("ansible: whole lab up, converged (job included)", sum(second.seconds.values()), "s", "-",
               second.job.ok if second.job else None),
    ]
