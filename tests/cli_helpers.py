"""What the command-line tests share: a spec with two errors, and `aifactory` run in this process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "stacks/lab/factory.yaml"

# Two errors: a site over its power budget, and a pool at a site that does not exist.
BAD = """\
name: bad
sites:
  - {name: dc1, power_mw: 1}
pools:
  - {name: a, site: dc1, provider: onprem, system: dgx-h100, nodes: 500}
  - {name: b, site: dc9, provider: onprem, system: dgx-h100, nodes: 1}
"""


def run(monkeypatch, capsys, *args):
    """``aifactory ARGS`` through the console entry point, in this process: (exit code, stdout, stderr)."""
    from aifactory import cli

    monkeypatch.setattr(sys, "argv", ["aifactory", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        cli.main()
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err
