"""Errors that carry a spec location, so every message reads ``FILE:LINE: path: message``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

Path = tuple  # a spec path: keys and list indexes, e.g. ("pools", 0, "system")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(path: Iterable) -> str:
    """``("pools", 0, "system")`` -> ``pools[0].system``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)):
            # A key from a hostile file may hold newlines or ': ' and forge extra error lines.
            out += f"[{str(part)!r}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


@dataclass(frozen=True)
class Finding:
    """One problem found in a spec: an error stops the run, a warning is printed and passes."""

    path: tuple
    message: str
    hint: str = ""
    severity: str = "error"  # "error" | "warning"
    check: str = ""  # the named check that raised it, empty for loader/schema errors
    file: str = ""
    line: int = 0

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else "<spec>"
        # warnings keep the FILE:LINE: path: message shape that tools parse; the word leads the message
        prefix = "warning: " if self.severity == "warning" else ""
        text = f"{where}: {format_path(self.path)}: {prefix}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        if self.check:
            text += f" [{self.check}]"
        return text


@dataclass
class SpecError(Exception):
    """Raised when a spec cannot be loaded or fails validation; holds every finding."""

    findings: list[Finding] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f.render() for f in self.findings)


class AifactoryError(Exception):
    """An expected failure with a one-line message for the user (no traceback)."""
