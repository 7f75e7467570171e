"""Run the node playbooks through ansible-runner, with live progress and a per-host summary.

ansible-runner executes ``ansible-playbook`` in its own process and hands every callback
event to :class:`Progress`, which keeps per-task and per-host tallies, drives a rich display
(a spinner on a terminal, one line per finished task otherwise, so CI logs read well) and
reports each failure as it happens. :func:`run` returns a :class:`RunResult` whose
``failed_hosts`` names every host that failed or could not be reached.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from rich.text import Text

from ..errors import AifactoryError
from ..resources import playbooks_dir

# slurm.yml (re)configures the Slurm control plane and nodes, after site.yml and with the
# operator's secrets (-e @FILE).
PLAYBOOKS = ("site.yml", "upgrade.yml", "health.yml", "slurm.yml")
COUNTERS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
SUMMARY_ROWS = 50  # a 10,000-host table helps nobody; beyond this, failed hosts and totals


@dataclass
class HostSummary:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @property
    def bad(self) -> bool:
        return self.failed > 0 or self.unreachable > 0


@dataclass
class RunResult:
    status: str
    rc: int
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # "host: task: message", in order
    artifacts: Optional[Path] = None
    output_tail: str = ""

    @property
    def failed_hosts(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.bad)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failed_hosts

    def merged(self, later: "RunResult") -> "RunResult":
        """This run followed by ``later`` (another playbook on the same hosts): counters added per host."""
        hosts = {}
        for name in sorted(set(self.hosts) | set(later.hosts)):
            a, b = self.hosts.get(name, HostSummary(name)), later.hosts.get(name, HostSummary(name))
            hosts[name] = HostSummary(name, *(getattr(a, f) + getattr(b, f) for f in
                                              ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")))
        return RunResult(later.status if self.ok else self.status, self.rc or later.rc, hosts,
                         self.failures + later.failures, later.artifacts, later.output_tail)


def _message(res: dict) -> str:
    for key in ("msg", "stderr", "reason"):
        value = res.get(key)
        if value:
            text = value if isinstance(value, str) else str(value)
            # The dnf module says "Failed to install some of the specified packages" and lists which
            # ones, and why, apart: the list is what the operator needs.
            details = res.get("failures")
            if isinstance(details, list) and details:
                text = f"{text}: {'; '.join(str(d) for d in details)}"
            return " ".join(text.split())[:300]
    return "failed"


class Progress:
    """ansible-runner event handler: tallies, live display, failures as they happen."""

    def __init__(self, console) -> None:
        from rich.progress import Progress as RichProgress
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console
        self.live = console.is_terminal
        self.bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                console=console, transient=True, disable=not self.live)
        self.task_id = None
        self.tasks_done = 0
        self.current: Optional[str] = None
        self.tally = {"ok": 0, "changed": 0, "failed": 0, "skipped": 0, "unreachable": 0}
        self.failures: list[str] = []
        self.stats: dict = {}

    def __enter__(self) -> "Progress":
        self.bar.__enter__()
        self.task_id = self.bar.add_task("starting ansible-playbook", total=None)
        return self

    def __exit__(self, *exc) -> None:
        self._finish_task()
        self.bar.__exit__(*exc)

    def _finish_task(self) -> None:
        if self.current is None:
            return
        t = self.tally
        self.tasks_done += 1
        mark = ("✗", "red") if t["failed"] or t["unreachable"] else (("~", "yellow") if t["changed"] else ("✓", "green"))
        counts = f"ok={t['ok']} changed={t['changed']} failed={t['failed']} skipped={t['skipped']}"
        if t["unreachable"]:
            counts += f" unreachable={t['unreachable']}"
        # Text, not markup: task names are free text and may hold brackets.
        self.console.print(Text.assemble(mark, " ", self.current, "  ", (counts, "dim")), highlight=False)
        self.current = None

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind == "playbook_on_play_start":
            self._finish_task()
            self.console.print(Text.assemble(("PLAY ", "bold"), data.get("play", "")), highlight=False)
        elif kind == "playbook_on_task_start":
            self._finish_task()
            self.current = data.get("task", "")
            role = data.get("role")
            if role:
                self.current = f"{role} : {self.current}"
            self.tally = dict.fromkeys(self.tally, 0)
            self.bar.update(self.task_id, description=f"[{self.tasks_done + 1}] {self.current}")
        elif kind.startswith("runner_on_") or kind.startswith("runner_item_on_"):
            if kind.startswith("runner_item_on_"):
                return True  # the loop's summary event follows and is what counts
            host = data.get("host", "?")
            res = data.get("res", {}) if isinstance(data.get("res"), dict) else {}
            if kind == "runner_on_ok":
                self.tally["changed" if res.get("changed") else "ok"] += 1
            elif kind == "runner_on_skipped":
                self.tally["skipped"] += 1
            elif kind == "runner_on_failed" and not data.get("ignore_errors"):
                self.tally["failed"] += 1
                line = f"{host}: {self.current}: {_message(res)}"
                self.failures.append(line)
                self.console.print(Text.assemble(("  failed ", "red"), line), highlight=False)
            elif kind == "runner_on_unreachable":
                self.tally["unreachable"] += 1
                line = f"{host}: unreachable: {_message(res)}"
                self.failures.append(line)
                self.console.print(Text.assemble(("  unreachable ", "red"), line), highlight=False)
        elif kind == "playbook_on_stats":
            self._finish_task()
            self.stats = {k: data.get(k) or {} for k in COUNTERS}
        return True  # keep the event in the artifacts


def _summaries(stats: dict) -> dict[str, HostSummary]:
    hosts: dict[str, HostSummary] = {}
    names = set()
    for key in COUNTERS:
        names.update(stats.get(key, {}))
    for name in sorted(names):
        hosts[name] = HostSummary(
            host=name,
            ok=stats.get("ok", {}).get(name, 0),
            changed=stats.get("changed", {}).get(name, 0),
            failed=stats.get("failures", {}).get(name, 0),
            unreachable=stats.get("dark", {}).get(name, 0),
            skipped=stats.get("skipped", {}).get(name, 0),
            rescued=stats.get("rescued", {}).get(name, 0),
            ignored=stats.get("ignored", {}).get(name, 0),
        )
    return hosts


def summary_table(result: RunResult):
    """A rich Table: one row per host (failed hosts first when there are many), then totals."""
    from rich.table import Table

    table = Table(title=f"ansible-playbook: {result.status}", show_lines=False)
    table.add_column("host")
    for column in ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"):
        table.add_column(column, justify="right")
    rows = sorted(result.hosts.values(), key=lambda s: (not s.bad, s.host))
    for s in rows[:SUMMARY_ROWS]:
        style = "red" if s.bad else ("yellow" if s.changed else "green")
        table.add_row(s.host, str(s.ok), str(s.changed), str(s.failed), str(s.unreachable), str(s.skipped),
                      str(s.rescued), str(s.ignored), style=style)
    if len(rows) > SUMMARY_ROWS:
        table.add_row(f"… {len(rows) - SUMMARY_ROWS} more hosts", *[""] * 7, style="dim")
    if len(rows) > 1:
        total = [sum(getattr(s, f) for s in rows) for f in
                 ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")]
        table.add_row(f"total ({len(rows)} hosts)", *map(str, total), style="bold")
    return table


def _inventory_path(inventory: Path) -> Path:
    inventory = Path(inventory)
    if not inventory.exists():
        raise AifactoryError(f"inventory {inventory} does not exist (write one with `aifactory inventory FILE --out DIR`)")
    nested = inventory / "inventory"
    if inventory.is_dir() and nested.is_dir():
        return nested.resolve()  # the --out folder of `aifactory inventory`
    return inventory.resolve()


def run(inventory: Path | str, playbook: str = "site.yml", *, check: bool = False, limit: Optional[str] = None,
        tags: Optional[str] = None, skip_tags: Optional[str] = None, extravars: Optional[dict] = None,
        vars_files: Sequence[Path | str] = (), envvars: Optional[dict] = None, console=None,
        artifacts_dir: Path | str | None = None) -> RunResult:
    """Run ``playbook`` from playbooks/ against ``inventory``; never raises for failed hosts.

    ``vars_files`` are files of extra variables handed to ansible-playbook by path (``-e @FILE``),
    the way secrets reach the roles (``slurm_accounting_storage_pass``, ``munge_key``): a file
    from the operator's secret store, ansible-vault encrypted or not (``ANSIBLE_VAULT_PASSWORD_FILE``
    names the vault password). aifactory never reads them, and unlike ``extravars`` they are not
    copied into the runner's folder."""
    import ansible_runner
    from rich.console import Console

    if playbook not in PLAYBOOKS:
        raise AifactoryError(f"unknown playbook {playbook!r}; choose one of {', '.join(PLAYBOOKS)}")
    var_paths = []
    for item in vars_files:
        path = Path(item)
        if not path.is_file():
            raise AifactoryError(f"extra variables file {path} does not exist or is not a file")
        var_paths.append(str(path.resolve()))
    console = console or Console(stderr=False)
    project = playbooks_dir()
    private = Path(artifacts_dir) if artifacts_dir else Path(tempfile.mkdtemp(prefix="aifactory-configure-"))
    private.mkdir(parents=True, exist_ok=True)
    env = {
        # ansible.cfg in playbooks/ is ignored when the folder is world-writable; name it explicitly.
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(project / "roles"),
        "ANSIBLE_NOCOLOR": "1",
        # ansible-playbook next to this interpreter: a virtualenv need not be on PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        # ansible-runner turns host key checking off unless told; ansible.cfg's choice stands.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
    }
    env.update(envvars or {})
    cmdline = ["--check", "--diff"] if check else []
    for path in var_paths:
        cmdline += ["-e", f"@{path}"]
    try:
        with Progress(console) as progress:
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(project),
                playbook=playbook,
                inventory=str(_inventory_path(Path(inventory))),
                cmdline=shlex.join(cmdline) if cmdline else None,
                limit=limit,
                tags=tags,
                skip_tags=skip_tags,
                extravars=extravars or {},
                envvars=env,
                event_handler=progress,
                # ansible-runner caches facts per run by default; an absolute path keeps ansible.cfg's
                # intent (facts reused between runs, so `gathering = smart` skips known hosts).
                fact_cache=os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION",
                                          str(Path.home() / ".cache" / "aifactory" / "facts")),
                fact_cache_type="jsonfile",
                quiet=True,
                settings={"suppress_ansible_output": True},
            )
        tail = ""
        try:
            tail = runner.stdout.read()[-4000:]
        except (AttributeError, OSError, ValueError):  # stdout is gone once artifacts are cleaned
            pass
        return RunResult(status=runner.status, rc=runner.rc, hosts=_summaries(progress.stats or runner.stats or {}),
                         failures=progress.failures, output_tail=tail,
                         artifacts=Path(runner.config.artifact_dir) if artifacts_dir else None)
    finally:
        # ansible-runner writes the whole process environment (cloud keys, tokens) to
        # artifacts/<id>/command and the extra vars to env/extravars. Our own temporary folder goes
        # entirely; in a folder the caller chose, the environment copy goes and the rest stays.
        if artifacts_dir is None:
            shutil.rmtree(private, ignore_errors=True)
        else:
            for copy in private.glob("artifacts/*/command"):
                copy.unlink(missing_ok=True)
