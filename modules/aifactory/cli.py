"""The ``aifactory`` command: parse arguments, call the library, print. Nothing else lives here."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperCommand

from .errors import AifactoryError, SpecError
from .text import plural

LOG = logging.getLogger(__name__)

# Exit codes, the same for every command: 0 ok, 1 an error (bad input, a failed check or run),
# 2 a usage error (click's own), 3 drift or changes found where the caller asked to be told
# (`render --check`, `diff --exit-code`), so a pipeline can tell "the plan moved" from "it broke".
EXIT_ERROR, EXIT_DRIFT = 1, 3


@dataclass
class _Global:
    """The global options of one run (`aifactory -v validate F`, or after the command's name)."""

    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    log_file: Optional[str] = None


_OPTS = _Global()


def _take_global_options(command, args: list[str]) -> list[str]:
    """``args`` without the global options, which are recorded in ``_OPTS``: people put ``-v`` or
    ``--debug`` after the command's name as often as before it. An option's value is never read
    as one (``--out -v`` is a folder), nor anything after ``--`` (``exec ... -- cmd -v``)."""
    own, takes_value = set(), set()
    for param in command.params:
        if param.param_type_name == "option":
            own.update(param.opts + param.secondary_opts)
            if not param.is_flag and not param.count:
                takes_value.update(param.opts + param.secondary_opts)
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in own:
            out.append(arg)
            if arg in takes_value and i + 1 < len(args):
                out.append(args[i + 1])
                i += 1
        elif arg == "--verbose" or re.fullmatch(r"-v+", arg):
            _OPTS.verbose += 1 if arg == "--verbose" else len(arg) - 1
        elif arg in ("-q", "--quiet"):
            _OPTS.quiet = True
        elif arg == "--debug":
            _OPTS.debug = True
        elif arg == "--log-file" and i + 1 < len(args):
            _OPTS.log_file = args[i + 1]
            i += 1
        elif arg.startswith("--log-file="):
            _OPTS.log_file = arg.partition("=")[2]
        else:
            out.append(arg)
        i += 1
    return out


class _Command(TyperCommand):
    """A command that also takes the global options after its name, and starts the log."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _take_global_options(self, args))

    def invoke(self, ctx):
        _start_logging()
        return super().invoke(ctx)


class _App(typer.Typer):
    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _App(no_args_is_help=True, pretty_exceptions_enable=False,
           context_settings={"help_option_names": ["-h", "--help"]},
           help="Declare an AI factory once; plan, deploy and configure it everywhere.",
           epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 drift or changes "
                  "(render --check, diff --exit-code). The global options (-v, -q, --debug, "
                  "--log-file) also work after the command's name.")

# The distributions whose versions `--version` reports beside aifactory's own: what a bug report
# needs. Read from the installed metadata, so no SDK is imported to answer.
VERSION_OF = ("pydantic", "pulumi", "pulumi-aws", "pulumi-gcp", "pulumi-azure-native", "pulumi-oci",
              "ansible-core", "ansible-runner", "boto3", "google-cloud-compute", "azure-mgmt-compute", "oci", "sushy")


def _version(value: bool) -> None:
    if not value:
        return
    import importlib.metadata as metadata
    import platform

    from . import __version__

    typer.echo(f"aifactory {__version__} (Python {platform.python_version()})")
    for name in VERSION_OF:
        try:
            typer.echo(f"  {name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            typer.echo(f"  {name} not installed")
    raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                          help="print the versions of aifactory and the tools it drives, and exit"),
             verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                         help="say what each step does on stderr; -vv adds detail, -vvv "
                                              "the libraries' own logs"),
             quiet: bool = typer.Option(False, "--quiet", "-q", help="print only errors, warnings and the "
                                        "output asked for (no progress or success lines)"),
             debug: bool = typer.Option(False, "--debug", envvar="AIFACTORY_DEBUG",
                                        help="on an unexpected error, print its full traceback (for a bug "
                                             "report) instead of one line; implies -vv"),
             log_file: Optional[str] = typer.Option(None, "--log-file", envvar="AIFACTORY_LOG_FILE", metavar="PATH",
                                                    help="append a timestamped log of what the command does "
                                                         "to PATH (created mode 0600; no secrets)")) -> None:
    """Declare an AI factory once; plan, deploy and configure it everywhere."""
    _OPTS.verbose += verbose
    _OPTS.quiet = _OPTS.quiet or quiet
    _OPTS.debug = _OPTS.debug or debug
    if log_file is not None and _OPTS.log_file is None:
        _OPTS.log_file = log_file


# --- logging: the stdlib's, so library modules log with logging.getLogger(__name__) ----------

_HANDLERS: list[logging.Handler] = []
_SAVED_LEVELS: list[tuple[logging.Logger, int]] = []
# For records of what the command prints itself: the log file gets them, stderr does not twice.
_FILE_ONLY = {"aifactory_file_only": True}
_SECRET_WORD = re.compile(r"(?i)pass|secret|token|key|credential|auth")


class _Stderr(logging.StreamHandler):
    """stderr as it is when a record is written (tests and callers swap sys.stderr)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _OneLine(logging.Formatter):
    """`aifactory: warning: message` on stderr: one line a record, never a traceback (--debug
    prints that of an unexpected error itself)."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(record.getMessage().split())
        return f"aifactory: {record.levelname.lower()}: {text}"


class _Timestamped(logging.Formatter):
    def formatTime(self, record, datefmt=None) -> str:
        import datetime as dt

        return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def _open_log(path: str):
    """The log file, appended to; created readable by its owner only (it names files and hosts)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise AifactoryError(f"--log-file {path}: cannot open it: {exc.strerror}") from None
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")


def _hidden(value: str) -> str:
    """An --extra-vars value as the log shows it: a file by its path, a variable by its name only."""
    if value.startswith("@"):
        return value
    key, sep, _ = value.partition("=")
    return f"{key}=<redacted>" if sep else "<redacted>"


def _redacted_argv(argv: list[str]) -> str:
    """The command line for the log: --extra-vars values and KEY=VALUE words that name a secret
    are replaced, and the command `exec` runs on a node is counted, not written."""
    out, hide = [], False
    for i, arg in enumerate(argv):
        if hide:
            out.append(_hidden(arg))
            hide = False
        elif arg == "--":
            out.append(f"-- <{plural(len(argv) - i - 1, 'argument')}>")
            break
        elif arg in ("-e", "--extra-vars"):
            out.append(arg)
            hide = True
        elif arg.startswith("--extra-vars="):
            out.append("--extra-vars=" + _hidden(arg.partition("=")[2]))
        elif arg.startswith("-e") and not arg.startswith("--"):
            out.append("-e" + _hidden(arg[2:]))
        elif "=" in arg and _SECRET_WORD.search(arg.split("=", 1)[0]):
            out.append(arg.split("=", 1)[0] + "=<redacted>")
        else:
            out.append(arg)
    return " ".join(out)


def _start_logging() -> None:
    """Wire the stdlib logging for this run: stderr at the level -v/-q ask for, and the log file."""
    _stop_logging()
    opts = _OPTS
    console_level = logging.ERROR if opts.quiet else logging.WARNING
    if opts.verbose == 1:
        console_level = logging.INFO
    if opts.verbose >= 2 or opts.debug:
        console_level = logging.DEBUG
    # -vvv: every library's records too (Pulumi, Ansible Runner, the cloud SDKs); otherwise ours.
    target = logging.getLogger() if opts.verbose >= 3 else logging.getLogger("aifactory")
    console = _Stderr()
    console.setLevel(console_level)
    console.setFormatter(_OneLine())
    console.addFilter(lambda record: not getattr(record, "aifactory_file_only", False))
    handlers = [console]
    path = opts.log_file or None
    if path:
        log_file = logging.StreamHandler(_open_log(path))
        log_file.setLevel(logging.DEBUG)
        log_file.setFormatter(_Timestamped("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        handlers.append(log_file)
    ours = logging.getLogger("aifactory")
    saved = [(ours, ours.level)]
    ours.setLevel(logging.DEBUG if path else console_level)
    if target is not ours:
        saved.append((target, target.level))
        target.setLevel(logging.DEBUG)
    for handler in handlers:
        handler._aifactory_target = target  # type: ignore[attr-defined]
        target.addHandler(handler)
    _HANDLERS.extend(handlers)
    _SAVED_LEVELS[:] = saved
    from . import __version__

    LOG.info("aifactory %s (Python %s) in %s: %s", __version__, sys.version.split()[0], os.getcwd(),
             _redacted_argv(["aifactory", *sys.argv[1:]]), extra=_FILE_ONLY)


def _stop_logging() -> None:
    """Undo :func:`_start_logging`: main() may run many times in one process."""
    for handler in _HANDLERS:
        handler._aifactory_target.removeHandler(handler)  # type: ignore[attr-defined]
        if not isinstance(handler, _Stderr):
            handler.close()
            handler.stream.close()
    _HANDLERS.clear()
    for logger, level in _SAVED_LEVELS:
        logger.setLevel(level)
    _SAVED_LEVELS.clear()


def _say(text: str) -> None:
    """A progress or success line: what -q leaves out."""
    LOG.info("%s", text, extra=_FILE_ONLY)
    if not _OPTS.quiet:
        typer.echo(text)


def _emit(data) -> None:
    """The one JSON document of a --format json (or sarif) run: the only thing on stdout."""
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


class TextOrJson(str, Enum):
    text = "text"
    json = "json"


class ValidateFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"


class TableOrJson(str, Enum):
    table = "table"
    json = "json"


class PlanFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


def _console(**kw):
    """A rich console; when the output is a log rather than a terminal, wide enough that tables
    keep their columns instead of folding every cell."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160, **kw)


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _print_findings(findings) -> None:
    for f in findings:
        text = f.render()
        LOG.log(logging.WARNING if f.severity == "warning" else logging.ERROR, "%s", text, extra=_FILE_ONLY)
        _err(text)


def _planned(file: Path):
    """Load, check and plan FILE; exit 1 with located findings when it is not valid."""
    return _loaded_and_planned(file)[1]


def _plan_input(file: Path):
    """The plan of FILE: a factory spec, checked and planned, or a reviewed plan.json (as
    `aifactory plan -f json` or a rendered deployment writes it), read back as it is."""
    from .plan.model import is_plan_file, load_plan

    if is_plan_file(file):
        return load_plan(file)
    return _planned(file)


def _checked(file: Path):
    """(LoadedSpec or None, findings, Plan or None) of FILE: every check run, nothing printed."""
    from . import plan as planning
    from . import spec

    try:
        loaded = spec.load(file)
        result = planning.validate(loaded)
    except SpecError as exc:
        return None, list(exc.findings), None
    errors = [f for f in result.findings if f.severity == "error"]
    LOG.info("%s: %d error(s), %d warning(s)", file, len(errors), len(result.findings) - len(errors))
    return loaded, list(result.findings), None if errors else result.plan


def _loaded_and_planned(file: Path):
    """(LoadedSpec, Plan) of FILE; exit 1 with located findings when it is not valid."""
    loaded, findings, plan = _checked(file)
    _print_findings(findings)
    if plan is None:
        errors = sum(1 for f in findings if f.severity == "error")
        if loaded is not None:
            _err(f"{file}: {errors} error(s), {len(findings) - errors} warning(s)")
        raise typer.Exit(1)
    t = plan.totals
    LOG.info("%s: planned %s, %s, %s", file, plural(len(plan.pools), "pool"), plural(t["nodes"], "node"),
             plural(t["gpus"], "GPU"))
    return loaded, plan


@app.command()
def validate(file: Path = typer.Argument(..., help="factory.yaml"),
             format: ValidateFormat = typer.Option(ValidateFormat.text, "--format", "-f",
                                                   help="text, json or sarif (SARIF 2.1.0, for code scanning)")
             ) -> None:
    """Check a factory spec: exit 0 when valid, 1 with FILE:LINE: path: message lines when not."""
    loaded, findings, plan = _checked(file)
    # The FILE:LINE lines go to stderr in every format: a CI log shows them beside the SARIF upload.
    _print_findings(findings)
    errors = sum(1 for f in findings if f.severity == "error")
    if format is ValidateFormat.json:
        from . import report

        _emit(report.validation_to_dict(str(file), findings, plan))
    elif format is ValidateFormat.sarif:
        from . import __version__, report
        from .plan.checks import REGISTRY

        _emit(report.to_sarif(findings, REGISTRY, __version__))
    if plan is None:
        if loaded is not None:
            _err(f"{file}: {errors} error(s), {len(findings) - errors} warning(s)")
        raise typer.Exit(1)
    if format is ValidateFormat.text:
        t = plan.totals
        _say(f"{file}: valid ({len(plan.pools)} pools, {t['nodes']:,} nodes, {t['gpus']:,} GPUs, "
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
        report.print_table(result, _console())


@app.command("checks")
def list_checks(format: TableOrJson = typer.Option(TableOrJson.table, "--format", "-f", help="table or json")) -> None:
    """List the named checks `validate` runs: id, phase, severity, providers and why each exists."""
    from .plan.checks import REGISTRY

    if format is TableOrJson.json:
        sys.stdout.write(json.dumps([vars(c) | {"providers": list(c.providers)} for c in REGISTRY.values()],
                                    indent=2) + "\n")
        return
    for c in REGISTRY.values():
        typer.echo(f"{c.name:16} {c.phase:9} {c.severity:8} {', '.join(c.providers) or 'all':10} {c.rationale}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of factory.yaml (for editor completion)."""
    from .spec import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


class CatalogFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def catalog(table: Optional[str] = typer.Argument(None, help="a table name; without one, the list of tables"),
            format: CatalogFormat = typer.Option(CatalogFormat.table, "--format", "-f", help="table, json or csv"),
            spec: Optional[Path] = typer.Option(None, "--spec", help="include the rows this factory spec adds "
                                                "(its catalog: section)")) -> None:
    """Show the catalog: every row of a table with its source, and where it comes from (the
    packaged tables, AIFACTORY_CATALOG, or a spec's catalog: section)."""
    import csv as csvlib
    import dataclasses

    from . import catalog as cat

    overlay = cat.env_overlay()
    if spec is not None:
        from . import spec as specs

        try:
            loaded = specs.load(spec)
            try:
                overlay = overlay + cat.overlay_from_spec(loaded.factory.catalog)
            except cat.CatalogError as exc:
                raise SpecError([loaded.doc.finding(exc.path, exc.problem, check="catalog-overlay")]) from None
        except SpecError as exc:
            _print_findings(exc.findings)
            raise typer.Exit(1) from None
    current = cat.load(overlay)
    added = {(name, tuple(dict(cells)[k] for k in cat.TABLES[name].key)) for name, cells in overlay}
    if table is None:
        rows = [{"table": t.name, "rows": len(current.rows[t.name]), "key": ", ".join(t.key), "about": t.about}
                for t in cat.TABLES.values()]
        if format is CatalogFormat.json:
            sys.stdout.write(json.dumps(rows, indent=2) + "\n")
            return
        for r in rows:
            typer.echo(f"{r['table']:16} {r['rows']:4} rows  key {r['key']:24} {r['about']}")
        return
    tbl = cat.table(table)
    records = [dataclasses.asdict(r) for r in current.rows[tbl.name]]
    for r in records:
        r["from"] = "overlay" if (tbl.name, tuple(cat.cell_text(r[k]) for k in tbl.key)) in added else "packaged"
    if format is CatalogFormat.json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
        return
    if format is CatalogFormat.csv:
        writer = csvlib.DictWriter(sys.stdout, fieldnames=tbl.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: cat.cell_text(v) for k, v in r.items()} for r in records)
        return
    from rich.table import Table

    view = Table(title=f"{tbl.name}: {tbl.about}", show_lines=False)
    for column in [*tbl.columns, "from"]:
        view.add_column(column, overflow="fold", no_wrap=column in tbl.key)
    for r in records:
        view.add_row(*(cat.cell_text(r[c]) for c in [*tbl.columns, "from"]))
    _console().print(view)


PreviewFormat = TableOrJson


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
        offline.print_table(result, _console())
    if policy:
        from .policy import RULES, evaluate

        violations = evaluate(result.resources)
        for v in violations:
            _err(f"{stack_dir}: policy: {v.render()}")
        if violations:
            _err(f"{stack_dir}: {plural(len(violations), 'policy violation')} (mandatory)")
            raise typer.Exit(1)
        text = (f"{stack_dir}: policy: {plural(len(RULES), 'rule')}, {plural(len(result.resources), 'resource')}, "
                "no violation")
        LOG.info("%s", text, extra=_FILE_ONLY)
        if not _OPTS.quiet:
            _err(text)


@app.command()
def up(stack_dir: Path = typer.Argument(..., help="Pulumi stack folder (stacks/<name>)"),
       stack: Optional[str] = typer.Option(None, "--stack", "-s", help="stack name (Pulumi.<stack>.yaml)"),
       preview_only: bool = typer.Option(False, "--preview", help="run `pulumi preview` instead of `pulumi up`")) -> None:
    """Deploy a stack: `pulumi up` through the Automation API, or for a lab stack the whole main
    job on this machine (plan, provision root filesystems, render, configure, health, summary)."""
    from . import lab

    if lab.is_lab(stack_dir):
        _lab_up(stack_dir)
        return
    from . import deploy

    try:
        result = deploy.up(stack_dir, stack, on_output=typer.echo, preview_only=preview_only)
    except SpecError as exc:
        _print_findings(exc.findings)
        raise typer.Exit(1) from None
    summary = getattr(result, "summary", None)
    if summary is not None:
        typer.echo(f"{stack_dir}: {summary.result} ({summary.resource_changes})")


def _lab_up(stack_dir: Path) -> None:
    from . import lab

    console = _console(soft_wrap=True)  # one line per task
    try:
        result = lab.up(stack_dir, console=console)
    except SpecError as exc:
        _print_findings(exc.findings)
        raise typer.Exit(1) from None
    lab.summary(result, console)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def down(stack_dir: Path = typer.Argument(..., help="lab stack folder (stacks/lab)")) -> None:
    """Remove a lab built by `aifactory up` (cloud stacks: run `pulumi destroy` in the stack folder)."""
    from . import lab

    if not lab.is_lab(stack_dir):
        raise AifactoryError(f"{stack_dir}: not a lab stack; for a cloud stack run `pulumi destroy` in it")
    lab.down(stack_dir, say=_say)


@app.command(name="exec")
def exec_(stack_dir: Path = typer.Argument(..., help="lab stack folder (stacks/lab)"),
          node: str = typer.Argument(..., help="lab node, as the plan names it (gpu-0001)"),
          command: list[str] = typer.Argument(..., help="the command, after --")) -> None:
    """Run a command on a running lab node: in its network namespace, its tree and under its host
    name (`aifactory exec stacks/lab gpu-0001 -- sinfo`). Exits with the command's status."""
    from . import lab

    if not lab.is_lab(stack_dir):
        raise AifactoryError(f"{stack_dir}: not a lab stack")
    done = lab.exec_on(stack_dir, node, command)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    raise typer.Exit(done.returncode)


@app.command()
def preflight(file: Path = typer.Argument(..., help="factory.yaml or plan.json"),
              ami: Optional[str] = typer.Option(None, "--ami", help="explicit AMI id instead of the SSM parameter"),
              format: TextOrJson = typer.Option(TextOrJson.text, "--format", "-f", help="text or json")) -> None:
    """Check an AWS account before deploying: offerings, EFA, AMI, quotas, reservations."""
    from .preflight import check_factory

    checks = check_factory(_plan_input(file), ami=ami)
    failed = [c for c in checks if c.failed]
    for check in checks:
        LOG.info("%s", check.render(), extra=_FILE_ONLY)
    if format is TextOrJson.json:
        _emit({"file": str(file), "ok": not failed, "failed": len(failed),
               "checks": [{"pool": c.pool, "check": c.name, "status": c.status, "message": c.message} for c in checks]})
    else:
        for check in checks:
            (_err if check.failed else typer.echo)(check.render())
        if not checks:
            _say(f"{file}: no AWS pools to check")
    if failed:
        raise typer.Exit(1)


class InventorySource(str, Enum):
    aws = "aws"
    gcp = "gcp"
    azure = "azure"
    oci = "oci"


@app.command()
def inventory(file: Optional[Path] = typer.Argument(None, help="factory.yaml or plan.json (with --out)"),
              out: Optional[str] = typer.Option(None, "--out", "-o", help="folder that receives inventory/"),
              force: bool = typer.Option(False, "--force", help="write into a non-empty folder aifactory did not "
                                         "create (its other files are left alone)"),
              source: Optional[InventorySource] = typer.Option(
                  None, "--from", help="where to read the nodes from: aws, gcp, azure, oci"),
              factory: Optional[str] = typer.Option(None, "--factory", help="factory name (the aifactory:factory tag)"),
              region: Optional[list[str]] = typer.Option(None, "--region",
                                                         help="AWS region (repeatable) or OCI region"),
              project: Optional[str] = typer.Option(None, "--project",
                                                    help="GCP project id (default: $GOOGLE_CLOUD_PROJECT)"),
              subscription: Optional[str] = typer.Option(
                  None, "--subscription", help="Azure subscription id (default: $AZURE_SUBSCRIPTION_ID)"),
              resource_group: Optional[str] = typer.Option(None, "--resource-group",
                                                           help="Azure resource group (default: all)"),
              compartment: Optional[str] = typer.Option(None, "--compartment", help="OCI compartment OCID"),
              endpoint_url: Optional[str] = typer.Option(None, "--endpoint-url",
                                                         help="API endpoint override (aws, gcp, oci)"),
              list_: bool = typer.Option(False, "--list", help="print the whole inventory (the default; what "
                                         "Ansible passes to an inventory script)"),
              host: Optional[str] = typer.Option(None, "--host", help="print one host's variables (Ansible's "
                                                 "inventory-script call)"),
              assign_names: Optional[Path] = typer.Option(
                  None, "--assign-names", help="plan.json or factory.yaml: give each running instance without one "
                  "the lowest free planned name of its pool (written as a tag; nodes wait for it at boot) and list "
                  "hosts by their planned names (aws, gcp, oci)")) -> None:
    """Ansible inventory: FILE --out DIR writes hosts.yml and group_vars from the plan; --from aws|gcp|azure|oci
    prints a dynamic inventory (JSON) of a factory's running nodes, grouped by pool, site and role."""
    if source is None:
        if file is None or out is None:
            raise AifactoryError("inventory: give FILE --out DIR (from the plan) or --from aws|gcp|azure|oci "
                                 "--factory NAME")
        from .files import out_dir
        from .inventory import build_files, write_files

        folder = out_dir(out)
        plan = _plan_input(file)
        written = write_files(build_files(plan), folder, force=force)
        _say(f"{folder / 'inventory'}: {len(written)} files, {plan.totals['nodes']:,} hosts")
        return
    from .inventory.dynamic import from_cloud

    name = source.value
    # The scope's usual variable stands in for its option, for its own cloud only.
    if name == "gcp" and project is None:
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    if name == "azure" and subscription is None:
        subscription = os.environ.get("AZURE_SUBSCRIPTION_ID")
    named = {}
    if assign_names is not None:  # what cannot be named is reported on stderr, one line each
        named = {"plan": _plan_input(assign_names), "warn": lambda text: _err(f"inventory: {text}")}
    try:
        data = from_cloud(name, factory, regions=region or [], project=project, subscription=subscription,
                          resource_group=resource_group, compartment=compartment, endpoint_url=endpoint_url,
                          **named)
    except ModuleNotFoundError as exc:
        sdk = (exc.name or "").split(".")[0]
        if sdk not in ("google", "azure", "oci", "boto3", "botocore"):
            raise
        # The listing SDKs are an extra: validate, plan and render never need them.
        raise AifactoryError(f"inventory --from {name} needs the {name} SDK ({exc.name}), which the "
                             "'inventory' extra of gpufactory installs") from None
    if host is not None:  # _meta holds every host's variables, so Ansible never asks; answered all the same
        data = data["_meta"]["hostvars"].get(host, {})
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@app.command()
def render(file: Path = typer.Argument(..., help="factory.yaml, or a reviewed plan.json"),
           out: str = typer.Option(..., "--out", "-o", help="deployment directory to write"),
           check: bool = typer.Option(False, "--check", help="write nothing; exit 3 listing files that differ"),
           force: bool = typer.Option(False, "--force", help="write into a non-empty folder aifactory did not "
                                      "create (its other files are left alone)"),
           format: TextOrJson = typer.Option(TextOrJson.text, "--format", "-f", help="text or json (the files "
                                             "written, or with --check those that differ)")) -> None:
    """Render the deployment directory (inventory, Slurm, NCCL, DCGM, Prometheus, cloud-init, lock, diagrams)."""
    from .files import out_dir
    from .render import render as render_to

    out = out_dir(out)
    result = render_to(_plan_input(file), out, check=check, force=force)
    as_json = format is TextOrJson.json
    if check:
        differ = len(result.changed) + len(result.missing) + len(result.extra)
        LOG.info("%s: %d changed, %d missing, %d extra, %d unchanged", out, len(result.changed), len(result.missing),
                 len(result.extra), result.unchanged)
        if as_json:
            _emit({"out": str(out), "check": True, "drift": result.drift, "changed": list(result.changed),
                   "missing": list(result.missing), "extra": list(result.extra), "unchanged": result.unchanged})
        else:
            for kind, paths in (("changed", result.changed), ("missing", result.missing), ("extra", result.extra)):
                for p in paths:
                    typer.echo(f"{kind}: {out / p}")
        if result.drift:
            _err(f"{out}: {differ} file(s) differ from the plan; run `aifactory render {file} --out {out}`")
            raise typer.Exit(EXIT_DRIFT)
        if not as_json:
            _say(f"{out}: up to date ({result.unchanged} files)")
        return
    for p in result.written:
        LOG.debug("wrote %s", out / p)
    for p in result.removed:
        LOG.debug("removed %s", out / p)
    for p in result.kept:
        _err(f"warning: kept {out / p}: no longer rendered, but changed since aifactory wrote it")
    summary = f"{out}: {len(result.written)} written, {len(result.removed)} removed, {result.unchanged} unchanged"
    if as_json:
        LOG.info("%s", summary, extra=_FILE_ONLY)
        _emit({"out": str(out), "check": False, "written": list(result.written), "removed": list(result.removed),
               "kept": list(result.kept), "unchanged": result.unchanged})
        return
    if not _OPTS.quiet:
        for p in result.written:
            typer.echo(f"wrote {out / p}")
        for p in result.removed:
            typer.echo(f"removed {out / p}")
    _say(summary)


@app.command()
def diff(old: Path = typer.Argument(..., help="the plan before the change: plan.json or a factory spec"),
         new: Path = typer.Argument(..., help="the plan after the change: plan.json or a factory spec"),
         format: PlanFormat = typer.Option(PlanFormat.table, "--format", "-f", help="table (plain lines), markdown "
                                           "or json"),
         exit_code: bool = typer.Option(False, "--exit-code", help="exit 3 when the plans differ")) -> None:
    """Explain what changes between two plans: nodes, GPUs, power, fabric, versions."""
    from . import diff as plan_diff

    try:
        d = plan_diff.compare(plan_diff.load(old), plan_diff.load(new))
    except SpecError as exc:
        _print_findings(exc.findings)
        raise typer.Exit(1) from None
    LOG.info("%s -> %s: %s", old, new, plural(len(d.totals) + len(d.lines), "change"))
    out = {PlanFormat.json: plan_diff.to_json, PlanFormat.markdown: plan_diff.to_markdown}.get(format, plan_diff.to_text)
    sys.stdout.write(out(d))
    if exit_code and not d.empty:
        raise typer.Exit(EXIT_DRIFT)


@app.command()
def status(file: Path = typer.Argument(..., help="factory.yaml, plan.json, or a lab stack folder (a running lab)"),
           slurm_json: Optional[str] = typer.Option(None, "--slurm-json", help="`scontrol show nodes --json` or "
                                                    "`sinfo --json` output saved to a file; - reads stdin"),
           prometheus: Optional[str] = typer.Option(None, "--prometheus", help="the factory's Prometheus, "
                                                    "http(s)://HOST:PORT"),
           format: PlanFormat = typer.Option(PlanFormat.table, "--format", "-f", help="table, json or markdown")) -> None:
    """The live factory against its plan, per pool and node: provisioned, Slurm state and drain
    reason, lock digest, XID errors, last health gate. Exits 0 when all agree and are healthy, 3
    when anything drifted or is unhealthy."""
    from . import lab
    from . import status as live
    from .files import read_text
    from .status import lab as lab_status
    from .status import prometheus as prom
    from .status import slurm as slurm_json_reader

    slurm = lab_digests = lab_failures = None
    source = None
    if file.is_dir():
        if not lab.is_lab(file):
            raise AifactoryError(f"{file}: a folder is read as a lab stack, and this one is not")
        the_plan = _plan_input(file / "factory.yaml")
        slurm, lab_digests, lab_failures = lab_status.read(file, the_plan)
        source = f"lab {file}" if slurm is not None else None
    else:
        the_plan = _plan_input(file)
    if slurm_json is not None:
        if slurm_json == "-":
            raw = sys.stdin.buffer.read(slurm_json_reader.MAX_BYTES + 1)
            if len(raw) > slurm_json_reader.MAX_BYTES:
                raise AifactoryError("--slurm-json -: larger than 64 MiB")
            text = raw.decode("utf-8", errors="replace")
        else:
            text = read_text(slurm_json, slurm_json_reader.MAX_BYTES, "--slurm-json")
        slurm = slurm_json_reader.parse(text, "stdin" if slurm_json == "-" else slurm_json)
        source = slurm_json
    view = prom.read(prometheus) if prometheus else None
    result = live.collect(the_plan, slurm=slurm, slurm_source=source, prometheus=view,
                          lab_digests=lab_digests, lab_failures=lab_failures)
    LOG.info("%s", live.summary(result), extra=_FILE_ONLY)
    if format is PlanFormat.json:
        _emit(result.to_dict())
    elif format is PlanFormat.markdown:
        sys.stdout.write(live.to_markdown(result))
    else:
        live.print_table(result, _console())
    if not result.ok:
        raise typer.Exit(EXIT_DRIFT)


@app.command()
def configure(inventory: Path = typer.Argument(..., help="inventory folder (aifactory inventory --out DIR) or file"),
              playbook: str = typer.Option("site.yml", "--playbook", "-p", help="site.yml, upgrade.yml, health.yml or slurm.yml"),
              check: bool = typer.Option(False, "--check", help="dry run: report what would change"),
              limit: Optional[str] = typer.Option(None, "--limit", "-l", help="host pattern to restrict the run to"),
              tags: Optional[str] = typer.Option(None, "--tags", "-t", help="only tasks with these tags"),
              skip_tags: Optional[str] = typer.Option(None, "--skip-tags", help="skip tasks with these tags"),
              extra: Optional[list[str]] = typer.Option(None, "--extra-vars", "-e",
                                                        help="KEY=VALUE, or @FILE of variables (a secrets file, "
                                                             "ansible-vault encrypted or not); repeatable")) -> None:
    """Configure nodes: run a playbook with live progress and a per-host summary; exit 1 naming failed hosts."""
    from . import configure as configuring

    extravars, vars_files = {}, []
    for item in extra or []:
        if item.startswith("@"):
            # Handed to ansible-playbook by path, never read or copied by aifactory (configure.run).
            vars_files.append(Path(item[1:]))
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise AifactoryError(f"--extra-vars {item!r}: expected KEY=VALUE")
        extravars[key] = value
    console = _console(soft_wrap=True)  # one line per task, also in CI logs
    result = configuring.run(inventory, playbook, check=check, limit=limit, tags=tags, skip_tags=skip_tags,
                             extravars=extravars, vars_files=vars_files, console=console)
    console.print(configuring.summary_table(result))
    if result.failed_hosts:
        _err(f"aifactory: {playbook} failed on {len(result.failed_hosts)} host(s): {', '.join(result.failed_hosts)}")
        raise typer.Exit(1)
    if result.rc != 0:
        _err(f"aifactory: ansible-playbook exited {result.rc} ({result.status}):\n{result.output_tail}")
        raise typer.Exit(1)


@app.command()
def pxe(file: Path = typer.Argument(..., help="factory.yaml or plan.json"),
        out: str = typer.Option(..., "--out", "-o", help="folder for dnsmasq.conf and the http/ tree"),
        server_ip: str = typer.Option(..., "--server-ip", help="the provisioning host's IPv4 on the boot network"),
        ssh_key: list[Path] = typer.Option(..., "--ssh-key", help="SSH public key file for the admin user; repeatable"),
        interface: str = typer.Option("eno1", "--interface", help="boot network interface of the provisioning host"),
        subnet: Optional[str] = typer.Option(None, "--subnet", help="boot network CIDR (default: derived from host IPs)"),
        gateway: Optional[str] = typer.Option(None, "--gateway", help="default route handed out by DHCP"),
        dns: Optional[list[str]] = typer.Option(None, "--dns", help="DNS server handed out by DHCP; repeatable"),
        domain: Optional[str] = typer.Option(None, "--domain", help="DNS domain of the nodes"),
        http_port: int = typer.Option(8080, "--http-port", help="port of the HTTP server that serves http/"),
        inventory: Optional[Path] = typer.Option(None, "--inventory",
                                                 help="JSON {node: [MACs]} or the stack's `inventory` output"),
        force: bool = typer.Option(False, "--force", help="write into a non-empty folder aifactory did not "
                                   "create (its other files are left alone)")) -> None:
    """Render PXE provisioning for on-prem hosts: dnsmasq (DHCP/TFTP), iPXE scripts, Ubuntu autoinstall."""
    from .files import out_dir, read_text
    from .render.pxe import PxeSettings, read_inventory, render_pxe

    folder = out_dir(out)
    plan = _plan_input(file)
    keys = []
    for path in ssh_key:
        # An authorized_keys-style file: a few lines. A private key or a huge file is refused.
        text = read_text(path, 64 * 1024, "--ssh-key")
        keys.extend(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    settings = PxeSettings(server_ip=server_ip, ssh_public_keys=tuple(keys), interface=interface, subnet=subnet,
                           gateway=gateway, dns=tuple(dns or ()), domain=domain, http_port=http_port,
                           inventory=read_inventory(inventory) if inventory else {})
    written = render_pxe(plan, folder, settings, force=force)
    _say(f"{folder}: {len(written)} files (dnsmasq.conf, iPXE scripts, autoinstall for "
               f"{sum(1 for p in written if p.name == 'user-data')} hosts)")


@app.command()
def mirror(file: Path = typer.Argument(..., help="factory.yaml or plan.json"),
           out: str = typer.Option(..., "--out", "-o", help="bundle folder to write"),
           upstream: Optional[list[str]] = typer.Option(None, "--upstream", help="OS=URL: the base URL of NVIDIA's "
                                                        "repositories for that node OS (a proxy, a stand-in); "
                                                        "repeatable"),
           key: Optional[list[str]] = typer.Option(None, "--key", help="OS=FILE: the only key that repository's "
                                                   "index may be signed with (armoured); repeatable"),
           force: bool = typer.Option(False, "--force", help="write into a non-empty folder aifactory did not "
                                      "create (its other files are left alone)"),
           format: TextOrJson = typer.Option(TextOrJson.text, "--format", "-f", help="text or json (the manifest)")
           ) -> None:
    """Bundle the NVIDIA packages of the software lock, verified, as offline repositories for air-gapped installs."""
    from . import mirror as bundles
    from .files import out_dir

    folder = out_dir(out)
    upstreams = bundles.parse_upstream(upstream or [])
    keys = bundles.parse_keys(key or [])
    result = bundles.mirror(_plan_input(file), folder, upstream=upstreams, keys=keys, force=force)
    if format is TextOrJson.json:
        _emit({"out": str(folder), "downloaded": result.downloaded, "kept": result.kept,
               "manifest": result.manifest})
        return
    for repo in result.manifest["repositories"]:
        _say(f"{folder / repo['path']}: {plural(len(repo['packages']), 'package')} ({repo['format']}), "
             f"from {repo['upstream']}" + (f"; from the OS archive: {', '.join(repo['external'])}"
                                           if repo["external"] else ""))
    _say(f"{folder}: {len(result.downloaded)} downloaded, {result.kept} kept; lock "
         f"{result.manifest['lock_digest'][:12]}")


def _one_line(text: str, limit: int = 300) -> str:
    """``text`` as one printable line: an exception's message may carry a value from a hostile
    file, which must not start a line of its own or move the terminal's cursor."""
    return "".join(c if c.isprintable() else "?" for c in " ".join(str(text).split()))[:limit]


def _run() -> int:
    """Run the command; the exit status, with every expected failure as one line on stderr."""
    try:
        app(prog_name="aifactory")  # also under `python -m aifactory`: usage and completion name the command
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        _err(str(exc.code))
        return 1
    except AifactoryError as exc:
        LOG.error("%s", exc, extra=_FILE_ONLY)
        _err(f"aifactory: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("aifactory: interrupted")
        return 130
    except Exception as exc:
        # Cloud SDK failures (no credentials, a bad region or endpoint, an API refusal) are the
        # user's to fix, not a defect: one line, like every other expected failure.
        package = type(exc).__module__.split(".")[0]
        if package in ("botocore", "boto3"):
            LOG.error("AWS: %s", exc, extra=_FILE_ONLY)
            _err(f"aifactory: AWS: {exc}")
            return 1
        if package in ("google", "azure", "oci", "requests", "urllib3"):
            LOG.error("%s", exc, extra=_FILE_ONLY)
            _err("aifactory: " + " ".join(str(exc).split())[:300])
            return 1
        # A defect: the traceback goes to the log file, and to the terminal with --debug.
        LOG.error("unexpected error", exc_info=True, extra=_FILE_ONLY)
        if _OPTS.debug:
            raise
        _err(f"aifactory: internal error: {type(exc).__name__}: {_one_line(exc)} (a defect in aifactory: "
             "rerun with --debug for the traceback and report it)")
        return 1
    return 0


def main() -> None:
    global _OPTS
    _OPTS = _Global()  # main() may run many times in one process (tests, a caller's own loop)
    started = time.monotonic()
    code = 1
    try:
        code = _run()
    finally:
        LOG.info("exit %d after %.2f s", code, time.monotonic() - started, extra=_FILE_ONLY)
        _stop_logging()
    sys.exit(code)


if __name__ == "__main__":
    main()
