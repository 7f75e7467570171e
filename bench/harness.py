"""Small shared pieces: a result row, timing of whole commands, peak memory of a child."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    name: str
    value: float
    unit: str
    target: str
    ok: bool | None  # None: informational, no target

    def row(self) -> list[str]:
        verdict = {True: "pass", False: "FAIL", None: "-"}[self.ok]
        value = f"{self.value:,.3f}" if isinstance(self.value, float) and self.value < 100 else f"{self.value:,.0f}"
        return [self.name, f"{value} {self.unit}".strip(), self.target, verdict]


def aifactory(*args: str) -> list[str]:
    """The console entry point as a fresh process, exactly as a user runs it."""
    exe = Path(sys.executable).with_name("aifactory")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "aifactory", *args]


def time_command(cmd: list[str], repeat: int = 5, **kw) -> float:
    """Best wall time of ``repeat`` runs of a whole command (interpreter start included)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, **kw)
        best = min(best, time.perf_counter() - start)
    return best


def run_measured(cmd: list[str], **kw) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO, env={**os.environ, **kw.pop("env", {})}, **kw)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) * 1024
