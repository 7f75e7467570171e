"""The ``aifactory`` command: parse arguments, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .errors import AifactoryError, SpecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Declare an AI factory once; plan, deploy and configure it everywhere.")


class PlanFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _print_findings(findings) -> None:
    for f in findings:
        _err(f.render())


def _planned(file: Path):
    """Load, check and plan FILE; exit 1 with located findings when it is not valid."""
    from . import plan as planning
    from . import spec

    try:
        loaded = spec.load(file)
        result = planning.validate(loaded)
    except SpecError as exc:
        _print_findings(exc.findings)
        raise typer.Exit(1) from None
    _print_findings(result.findings)
    if result.errors:
        _err(f"{file}: {len(result.errors)} error(s), {len(result.warnings)} warning(s)")
        raise typer.Exit(1)
    return result.plan


@app.command()
def validate(file: Path = typer.Argument(..., help="factory.yaml")) -> None:
    """Check a factory spec: exit 0 when valid, 1 with FILE:LINE: path: message lines when not."""
    plan = _planned(file)
    t = plan.totals
    typer.echo(f"{file}: valid ({len(plan.pools)} pools, {t['nodes']:,} nodes, {t['gpus']:,} GPUs, "
               f"{len(plan.warnings)} warning(s))")


@app.command()
def plan(file: Path = typer.Argument(..., help="factory.yaml"),
         format: PlanFormat = typer.Option(PlanFormat.table, "--format", "-f", help="table, json or markdown")) -> None:
    """Plan a factory: nodes, GPUs, racks, power, fabric bill of materials, software lock."""
    from . import report

    result = _planned(file)
    if format is PlanFormat.json:
        sys.stdout.write(report.to_json(result))
    elif format is PlanFormat.markdown:
        sys.stdout.write(report.to_markdown(result))
    else:
        from rich.console import Console

        report.print_table(result, Console())


@app.command()
def schema() -> None:
    """Print the JSON Schema of factory.yaml (for editor completion)."""
    from .spec import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def catalog(table: str = typer.Argument("systems", help="systems, gpus, switches, cuda or branches")) -> None:
    """List catalog entries with their sources."""
    import dataclasses

    from .catalog import load

    cat = load()
    tables = {"systems": cat.systems, "gpus": cat.gpus, "switches": cat.switches, "cuda": cat.cuda,
              "branches": cat.branches}
    if table not in tables:
        raise AifactoryError(f"unknown catalog table {table!r}; choose one of {', '.join(tables)}")
    for key, row in tables[table].items():
        if table == "systems":
            typer.echo(f"{key:32} {row.provider:7} {row.gpus_per_node} x {row.gpu.id:9} {row.node_kw:7.2f} kW  "
                       f"{'/'.join(row.fabrics)}")
        else:
            data = dataclasses.asdict(row)
            data.pop("source", None)
            typer.echo(f"{key:24} " + "  ".join(f"{k}={v}" for k, v in data.items() if k != "id"))


def main() -> None:
    try:
        app()
    except AifactoryError as exc:
        _err(f"aifactory: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        _err("aifactory: interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
