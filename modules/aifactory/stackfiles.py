"""The files of a Pulumi project folder (``Pulumi.yaml``, ``Pulumi.<stack>.yaml``), read as the
Pulumi CLI reads them but through the bounded YAML loader: both come from the pull request.

Kept apart from :mod:`aifactory.preview` so that `validate` can check a spec against the stack
configs beside it without importing Pulumi.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import AifactoryError, Finding, SpecError
from .files import ReadError, read_bytes
from .yamlfile import Document, load_text

STACK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
PROJECT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
CONFIG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,199})?")
MAX_STACK_FILE_BYTES = 1024 * 1024  # a stack config is a few lines; encrypted values are small
MAX_CONFIG_STRING = 64 * 1024  # one value (a CA certificate, a key) is a few KiB at most


@dataclass
class StackFiles:
    """What the project and stack files hold, with where each config key is (for messages)."""

    project: str
    stack: str
    config: dict[str, Any]
    config_file: Optional[Path] = None
    key_lines: dict[str, int] = field(default_factory=dict)

    def locate(self, message: str) -> str:
        """``message`` prefixed with ``FILE:LINE`` when it is about a key of the stack config
        (``config aifactory:bmcScheme: ...``, as the components word it)."""
        m = re.match(r"config ([^\s:]+:[^\s:]+):", message)
        if self.config_file is None or not m or m.group(1) not in self.key_lines:
            return message
        return f"{self.config_file}:{self.key_lines[m.group(1)]}: {message}"


def _listed(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def valid_stack_name(name: object) -> bool:
    return isinstance(name, str) and bool(STACK_NAME.fullmatch(name)) and ".." not in name


def _stack_file(stack_dir: Path, name: str) -> Path:
    """``stack_dir/name``, refused unless it is a regular file inside the folder (a committed
    symlink must not make the tool read a file elsewhere)."""
    path = stack_dir / name
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return path  # the reader says what is wrong (missing, unreadable, a loop)
    if not target.is_relative_to(stack_dir.resolve()):
        raise AifactoryError(f"{path}: a symlink that leaves the stack folder is refused")
    return path


def _load(path: Path, allow_empty: bool = False) -> Optional[Document]:
    """A stack YAML file through the bounded loader; None for an empty stack config."""
    try:
        raw = read_bytes(path, MAX_STACK_FILE_BYTES)
    except ReadError as exc:
        raise AifactoryError(str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([Finding((), f"not UTF-8 text (byte {exc.start})", file=str(path), line=1)]) from None
    if allow_empty and all(not line.strip() or line.lstrip().startswith("#") or line.strip() in ("---", "...")
                           for line in text.splitlines()):
        return None  # `pulumi stack init` leaves no config; an emptied one is as valid
    return load_text(text, str(path))


def _config_value(doc: Document, key: str, value: Any, path: tuple) -> None:
    """Plain data Pulumi could have written: strings of bounded size, finite numbers, booleans,
    lists and mappings of them; never null (a key without a value is a typo)."""
    if value is None:
        raise SpecError([doc.finding(path, "no value", "give a value or remove the key")])
    if isinstance(value, str):
        if len(value) > MAX_CONFIG_STRING:
            raise SpecError([doc.finding(path, f"value longer than {MAX_CONFIG_STRING // 1024} KiB")])
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError([doc.finding(path, "not a finite number")])
    elif isinstance(value, dict):
        for k, v in value.items():
            _config_value(doc, key, v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _config_value(doc, key, v, path + (i,))
    elif not isinstance(value, (bool, int)):
        raise SpecError([doc.finding(path, "not a plain value")])


def _has_secure(value: Any) -> bool:
    """A ``{secure: ...}`` value anywhere in ``value`` (Pulumi encrypts inside structured config too)."""
    if isinstance(value, dict):
        return "secure" in value or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def read_stack(stack_dir: Path | str, stack: Optional[str] = None, plain_only: bool = True) -> StackFiles:
    """The project and stack files of a Pulumi project folder, validated; see :func:`stack_settings`."""
    stack_dir = Path(stack_dir)
    if not stack_dir.is_dir():
        raise AifactoryError(f"{stack_dir}: not a folder")
    project_file = stack_dir / "Pulumi.yaml"
    if not os.path.lexists(project_file):
        raise AifactoryError(f"{stack_dir}: not a Pulumi project (no Pulumi.yaml)")
    doc = _load(_stack_file(stack_dir, "Pulumi.yaml"))
    assert doc is not None
    if not isinstance(doc.data, dict):
        raise SpecError([doc.finding((), "must be a mapping with the project's name and runtime",
                                     "see stacks/*/Pulumi.yaml")])
    project = doc.data.get("name")
    if project is None:
        raise SpecError([doc.finding(("name",), "required field 'name' is missing")])
    if not isinstance(project, str) or not PROJECT_NAME.fullmatch(project):
        raise SpecError([doc.finding(("name",), "must be a project name: letters, digits, '-', '_' and '.', "
                                                "at most 100 characters")])
    runtime = doc.data.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python" or (isinstance(runtime, dict) and not isinstance(runtime.get("options", {}), dict)):
        raise SpecError([doc.finding(("runtime",), "must be python (runtime: python, or a mapping with "
                                                   "name: python and options)")])
    if "main" in doc.data:
        # The offline preview runs __main__.py in the stack folder; a project pointing elsewhere
        # would be previewed as one program and deployed as another.
        raise SpecError([doc.finding(("main",), "not supported: the program is __main__.py in the stack folder")])

    stacks = sorted(n for n in (p.name[len("Pulumi."):-len(".yaml")] for p in stack_dir.glob("Pulumi.*.yaml"))
                    if valid_stack_name(n))
    if stack is None:
        if len(stacks) != 1:
            raise AifactoryError(f"{stack_dir}: {len(stacks)} stack config files ({_listed(stacks)}); "
                                 "name one with --stack")
        stack = stacks[0]
    elif not valid_stack_name(stack):
        raise AifactoryError(f"--stack: {stack[:100]!r} is not a stack name (letters, digits, '-', '_' and '.', "
                             "at most 100 characters)")
    elif stack not in stacks:
        raise AifactoryError(f"--stack {stack}: no Pulumi.{stack}.yaml in {stack_dir} "
                             f"(stacks: {_listed(stacks)})")

    config_file = stack_dir / f"Pulumi.{stack}.yaml"
    result = StackFiles(project, stack, {}, config_file)
    stack_doc = _load(_stack_file(stack_dir, config_file.name), allow_empty=True)
    if stack_doc is None:
        return result
    if not isinstance(stack_doc.data, dict):
        raise SpecError([stack_doc.finding((), "must be a mapping with a 'config' mapping",
                                           "see stacks/*/Pulumi.dev.yaml")])
    raw = stack_doc.data.get("config")
    if raw is None:
        return result
    if not isinstance(raw, dict):
        raise SpecError([stack_doc.finding(("config",), "must be a mapping of key: value",
                                           "such as aws:region: us-east-1")])
    for key, value in raw.items():
        path = ("config", key)
        if not CONFIG_KEY.fullmatch(key):
            raise SpecError([stack_doc.finding(path, "not a config key (namespace:name of letters, digits, "
                                                    "'-', '_' and '.')")])
        # Keys without a namespace belong to the project, as with `pulumi config set`.
        full = key if ":" in key else f"{project}:{key}"
        if full in result.config:
            raise SpecError([stack_doc.finding(path, f"the same key as {full} (a key without a namespace "
                                                    "belongs to the project)")])
        if _has_secure(value):
            if not plain_only:
                continue
            raise SpecError([stack_doc.finding(path, "encrypted secrets need the Pulumi CLI to decrypt; "
                                                    "the offline preview reads only plain config")])
        _config_value(stack_doc, full, value, path)
        result.config[full] = value
        result.key_lines[full] = stack_doc.line_of(path)
    return result


def stack_settings(stack_dir: Path, stack: Optional[str] = None,
                   plain_only: bool = True) -> tuple[str, str, dict[str, Any]]:
    """(project, stack, config) of a Pulumi project folder, read as the CLI reads them.

    Both files come from the pull request: they are read through the bounded YAML loader, held
    to the shape Pulumi gives them, and every error names the file and line (``SpecError``) or
    the file (``AifactoryError``), never a value. ``stack``: the stack to read; it must exist.

    ``plain_only``: refuse encrypted values (the offline preview cannot decrypt them); with
    False they are left out of the returned config.
    """
    s = read_stack(stack_dir, stack, plain_only)
    return s.project, s.stack, s.config
