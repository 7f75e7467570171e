"""Offline preview: run a stack's real Pulumi program under the SDK's mock engine.

``preview(stack_dir)`` executes ``stack_dir/__main__.py`` exactly as ``pulumi up`` would (same
project name, stack config from ``Pulumi.<stack>.yaml``), but against
:class:`~aifactory.preview.mocks.RecordingMonitor` instead of the engine: no CLI, no
credentials, no network. Each run happens in a fresh ``contextvars`` context, so the SDK's
global settings (root stack, config, monitor) of one preview never leak into the next.
``preview=False`` is used so that every output resolves (the mocks echo inputs as outputs).

This is also the harness of the component tests.
"""

from __future__ import annotations

import contextvars
import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import AifactoryError, SpecError
from ..stackfiles import StackFiles, read_stack, stack_settings  # without Pulumi: `validate` reads them too
from .mocks import Record, RecordingMocks, RecordingMonitor, UnknownCall

__all__ = ["PreviewResult", "Record", "RecordingMocks", "StackFiles", "preview", "read_stack", "run_program",
           "stack_settings", "to_json", "print_table"]


@dataclass
class PreviewResult:
    project: str
    stack: str
    records: list[Record]
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def resources(self) -> list[Record]:
        """Everything but the root stack."""
        return [r for r in self.records if r.type != "pulumi:pulumi:Stack"]

    def of_type(self, type_: str) -> list[Record]:
        return [r for r in self.records if r.type == type_]

    def named(self, name: str) -> Record:
        for r in self.records:
            if r.name == name:
                return r
        raise KeyError(name)

    def children(self, parent: str) -> list[Record]:
        return [r for r in self.records if r.parent == parent]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


# Pulumi's own rules: stack and project names of letters, digits, '-', '_' and '.'; config keys
# ``namespace:name``. Stricter than a path needs, so a name is never a path (no '/', no '..').
def run_program(program: Path, project: str = "project", stack: str = "preview",
                config: Optional[dict[str, Any]] = None, mocks: Optional[RecordingMocks] = None) -> PreviewResult:
    """Run ``program`` (a ``__main__.py``) under recording mocks and return what it registered."""
    return contextvars.Context().run(_run, Path(program), project, stack, dict(config or {}),
                                     mocks or RecordingMocks())


def _run(program: Path, project: str, stack: str, config: dict, mocks: RecordingMocks) -> PreviewResult:
    from pulumi import Output
    from pulumi.runtime import config as pconfig
    from pulumi.runtime import settings
    from pulumi.runtime.mocks import MockEngine, MockSettings
    from pulumi.runtime.stack import run_in_stack
    from pulumi.runtime.sync_await import _sync_await

    logger = logging.getLogger(f"aifactory.preview.{project}.{stack}")
    logger.propagate = False
    collect = _Collect()
    logger.addHandler(collect)
    monitor = RecordingMonitor(mocks)
    settings.configure(MockSettings(
        monitor=monitor,
        monitor_features=set(monitor.GetDeploymentInfo(None).supportedFeatures),
        engine=MockEngine(logger),
        project=project, stack=stack, dry_run=False, organization="organization", callbacks=None,
    ))
    pconfig.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, [])
    settings.ROOT.set(None)
    added_path = str(program.parent) not in sys.path
    if added_path:  # as the language host does, so a stack may import its own helpers
        sys.path.insert(0, str(program.parent))
    holder: dict[str, Any] = {}

    def main() -> None:
        # The root stack is set inside the task that runs the program; keep it to read exports.
        holder["root"] = settings.get_root_resource()
        runpy.run_path(str(program), run_name="__main__")

    try:
        _sync_await(run_in_stack(main))
        root = holder.get("root")
        outputs = _sync_await(Output.from_input(dict(root.outputs)).future()) if root is not None else {}
    finally:
        if added_path:
            sys.path.remove(str(program.parent))
        logger.removeHandler(collect)
    return PreviewResult(project, stack, _tree_order(monitor.records), outputs or {}, collect.messages,
                         mocks.calls)


def _tree_order(records: list[Record]) -> list[Record]:
    """Parents before children, siblings by name: registration order depends on async timing,
    and the output should not."""
    by_parent: dict[Optional[str], list[Record]] = {}
    for r in records:
        by_parent.setdefault(r.parent, []).append(r)
    out: list[Record] = []

    def walk(parent: Optional[str]) -> None:
        for r in sorted(by_parent.get(parent, []), key=lambda r: (r.name, r.type)):
            out.append(r)
            walk(r.name)

    walk(None)
    seen = {id(r) for r in out}
    out.extend(r for r in records if id(r) not in seen)  # orphans (never expected), kept visible
    return out


def preview(stack_dir: Path | str, stack: Optional[str] = None) -> PreviewResult:
    """Run the stack in ``stack_dir`` offline; :class:`AifactoryError` with one line when it fails,
    :class:`SpecError` with located findings when a stack file or the factory is not valid."""
    import pulumi

    stack_dir = Path(stack_dir)
    files = read_stack(stack_dir, stack)
    program = stack_dir / "__main__.py"
    if not program.is_file():
        raise AifactoryError(f"{stack_dir}: no __main__.py")
    from ..components.program import FactoryError

    try:
        return run_program(program, files.project, files.stack, files.config)
    except FactoryError as exc:
        raise SpecError(exc.findings) from None  # located findings, as `validate` prints them
    except pulumi.RunError as exc:
        # The components name the config key at fault; the file and line are known here.
        raise AifactoryError(files.locate(str(exc))) from None
    except UnknownCall as exc:
        raise AifactoryError(str(exc)) from None


# -- output --------------------------------------------------------------------------------

# Inputs worth a glance in the table (camelCase, as the engine sees them).
KEY_INPUTS = (
    "instanceType", "machineType", "shape", "cidrBlock", "cidrBlocks", "ipCidrRange", "addressPrefix", "mtu",
    "strategy", "availabilityZone", "zone", "location", "desiredCapacity", "maxSize", "targetSize", "size",
    "ipProtocol", "fromPort", "toPort", "cidrIpv4", "sourceRanges", "networkProfile", "imageId",
)


def key_inputs(record: Record) -> dict[str, Any]:
    out = {k: record.inputs[k] for k in KEY_INPUTS if k in record.inputs and record.inputs[k] not in (None, [], "")}
    nics = record.inputs.get("networkInterfaces")
    if isinstance(nics, list):
        out["networkInterfaces"] = len(nics)
    sku = record.inputs.get("sku")
    if isinstance(sku, dict):
        out["sku"] = {k: v for k, v in sku.items() if k in ("name", "capacity")}
    return out


def to_json(result: PreviewResult) -> str:
    return json.dumps([r.to_dict() for r in result.records], indent=2, sort_keys=False, default=str) + "\n"


def print_table(result: PreviewResult, console) -> None:
    from rich.table import Table

    depth: dict[str, int] = {}
    table = Table(title=f"{result.project}/{result.stack}: {len(result.resources)} resources (offline preview)")
    for col in ("type", "name", "parent", "key inputs"):
        table.add_column(col, overflow="fold")
    for r in result.records:
        depth[r.name] = depth.get(r.parent, -1) + 1 if r.parent else 0
        inputs = key_inputs(r)
        table.add_row("  " * depth[r.name] + r.type, r.name, r.parent or "",
                      ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in inputs.items()))
    console.print(table)
    for w in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
