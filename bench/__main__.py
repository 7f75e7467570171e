"""Run every benchmark and print one table: figure, target, pass/fail. Exit 1 on a miss."""

from __future__ import annotations

import importlib
import sys

SUITES = ["plan", "render", "pulumi", "ansible"]


def main(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    wanted = argv or SUITES
    results = []
    for name in wanted:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            continue
        results.extend(module.run())
    table = Table(title="aifactory benchmarks")
    for head in ("figure", "measured", "target", "result"):
        table.add_column(head)
    for r in results:
        table.add_row(*r.row())
    Console(width=140).print(table)
    return 1 if any(r.ok is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
