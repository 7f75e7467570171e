"""``aifactory up``: drive ``pulumi up`` on a stack folder through the Automation API.

The stack folder is an ordinary Pulumi project, so this is the same deployment as running
``pulumi up`` in it; the factory is planned first so that a bad spec fails here with its
located findings rather than half-way through an engine run. The Pulumi CLI does the work
(state backend, secrets, providers); without it, a one-line error says how to install it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional

from .errors import AifactoryError

INSTALL_HINT = ("the Pulumi CLI is not installed: install it with `curl -fsSL https://get.pulumi.com | sh` "
                "(or `brew install pulumi`), then choose a state backend with `pulumi login --local`")


def pulumi_command():
    """The Automation API's handle on the installed Pulumi CLI; :class:`AifactoryError` without one."""
    from pulumi import automation as auto

    if shutil.which("pulumi") is None:
        raise AifactoryError(INSTALL_HINT)
    try:
        return auto.PulumiCommand()
    except FileNotFoundError:
        raise AifactoryError(INSTALL_HINT) from None
    except auto.InvalidVersionError as exc:
        raise AifactoryError(f"the installed Pulumi CLI is too old for this SDK ({exc}); upgrade it") from None


def check_factory(stack_dir: Path, config: Optional[dict] = None) -> None:
    """Plan the stack's factory as its program will (the same ``aifactory:factory`` file, confined
    to the folder, and the same reservation ids); a bad spec raises with every located finding."""
    from .components.program import FACTORY_KEY, RESERVATIONS_KEY, factory_path, load

    config = config or {}
    load(factory_path(stack_dir, config.get(FACTORY_KEY)), config.get(RESERVATIONS_KEY))


def up(stack_dir: Path | str, stack: Optional[str] = None, command=None,
       on_output: Optional[Callable[[str], None]] = None, preview_only: bool = False):
    """Run ``pulumi up`` (or ``pulumi preview``) for ``stack_dir``; returns the Automation API result.

    ``command``: a ``pulumi.automation.PulumiCommand`` (tests pass a recording fake).
    """
    from pulumi import automation as auto

    from .preview import read_stack

    stack_dir = Path(stack_dir).resolve()
    files = read_stack(stack_dir, stack, plain_only=False)
    stack_name = files.stack
    try:
        check_factory(stack_dir, files.config)
    except AifactoryError as exc:
        raise AifactoryError(files.locate(str(exc))) from None
    command = command or pulumi_command()
    try:
        workspace = auto.LocalWorkspaceOptions(work_dir=str(stack_dir), pulumi_command=command)
        target = auto.create_or_select_stack(stack_name=stack_name, work_dir=str(stack_dir), opts=workspace)
        if preview_only:
            return target.preview(on_output=on_output)
        return target.up(on_output=on_output)
    except auto.CommandError as exc:
        raise AifactoryError(f"pulumi failed for stack {stack_name} in {stack_dir}: {_last_error(exc)}") from None


def _last_error(exc) -> str:
    """The meaningful line of a CLI failure (the CLI prints its error last on stderr)."""
    text = getattr(exc, "stderr", "") or str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error"):
            return line[:500]
    return lines[-1][:500] if lines else "unknown error"
