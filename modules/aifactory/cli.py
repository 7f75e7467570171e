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


class PreviewFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
def preview(stack_dir: Path = typer.Argument(..., help="Pulumi stack folder (stacks/<name>)"),
            format: PreviewFormat = typer.Option(PreviewFormat.table, "--format", "-f", help="table or json"),
            stack: Optional[str] = typer.Option(None, "--stack", "-s", help="stack name (Pulumi.<stack>.yaml)"),
            policy: bool = typer.Option(False, "--policy", help="evaluate the guardrail policy pack (policy/) "
                                        "offline; exit 1 on any violation")) -> None:
    """Run a stack's program offline under Pulumi's mocks and print the resource tree."""
    from . import preview as offline

    try:
        result = offline.preview(stack_dir, stack)
    except SpecError as exc:
        _print_findings(exc.findings)
        raise typer.Exit(1) from None
    if format is PreviewFormat.json:
        sys.stdout.write(offline.to_json(result))
        for w in result.warnings:
            _err(f"warning: {w}")
    else:
        from rich.console import Console

        offline.print_table(result, Console())
    if policy:
        from .policy import RULES, evaluate

        violations = evaluate(result.resources)
        for v in violations:
            _err(f"{stack_dir}: policy: {v.render()}")
        if violations:
            _err(f"{stack_dir}: {len(violations)} policy violation(s) (mandatory)")
            raise typer.Exit(1)
        _err(f"{stack_dir}: policy: {len(RULES)} rules, {len(result.resources)} resources, no violation")


@app.command()
def up(stack_dir: Path = typer.Argument(..., help="Pulumi stack folder (stacks/<name>)"),
       stack: Optional[str] = typer.Option(None, "--stack", "-s", help="stack name (Pulumi.<stack>.yaml)"),
       preview_only: bool = typer.Option(False, "--preview", help="run `pulumi preview` instead of `pulumi up`")) -> None:
    """Deploy a stack with `pulumi up` through the Automation API (needs the Pulumi CLI)."""
    from . import deploy

    try:
        result = deploy.up(stack_dir, stack, on_output=typer.echo, preview_only=preview_only)
    except SpecError as exc:
        _print_findings(exc.findings)
        raise typer.Exit(1) from None
    summary = getattr(result, "summary", None)
    if summary is not None:
        typer.echo(f"{stack_dir}: {summary.result} ({summary.resource_changes})")


@app.command()
def preflight(file: Path = typer.Argument(..., help="factory.yaml"),
              ami: Optional[str] = typer.Option(None, "--ami", help="explicit AMI id instead of the SSM parameter")) -> None:
    """Check an AWS account before deploying: offerings, EFA, AMI, quotas, reservations."""
    from .preflight import check_factory

    result = _planned(file)
    from .spec import load

    checks = check_factory(load(file).factory, result, ami=ami)
    for check in checks:
        (_err if check.failed else typer.echo)(check.render())
    if not checks:
        typer.echo(f"{file}: no AWS pools to check")
    if any(c.failed for c in checks):
        raise typer.Exit(1)


class InventorySource(str, Enum):
    aws = "aws"


@app.command()
def inventory(source: InventorySource = typer.Option(..., "--from", help="where to read the nodes from: aws"),
              factory: str = typer.Option(..., "--factory", help="factory name (the aifactory:factory tag)"),
              region: Optional[list[str]] = typer.Option(None, "--region", help="AWS region (repeatable)"),
              endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url", help="EC2 endpoint override")) -> None:
    """Print an Ansible dynamic inventory (JSON) of a factory's running nodes, grouped by pool, site and role."""
    from .inventory.aws import inventory as from_aws

    sys.stdout.write(json.dumps(from_aws(factory, region or None, endpoint_url=endpoint_url), indent=2) + "\n")


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
