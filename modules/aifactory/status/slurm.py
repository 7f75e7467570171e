"""Node states from Slurm's own JSON: ``sinfo --json`` or ``scontrol show nodes --json``.

Two shapes are read, told apart by the type of ``state``:

* Slurm 22.05 (OpenAPI plugin ``v0.0.38``, Debian 12's ``slurm-client``; its ``scontrol`` has no
  ``--json``, its ``sinfo`` has): ``"state": "idle"`` (lower case, the base state) and
  ``"state_flags": ["DRAIN", "NOT_RESPONDING"]``.
* Slurm 23.11 and later (data_parser ``v0.0.40`` .. ``v0.0.42``): ``"state": ["IDLE", "DRAIN"]``,
  the base state first, then its flags; ``reason_changed_at`` is ``{"set", "infinite", "number"}``.

The document is untrusted (a file a job saved, or stdin): it is read through the bounded JSON
reader, every node name must be an RFC 1123 host name label, every state word upper-case letters
and underscores, and reasons are cut to one printable line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import AifactoryError
from ..files import parse_json

MAX_BYTES = 64 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_REASON = 200
NODE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
STATE_WORD = re.compile(r"[A-Z][A-Z_]{0,31}")

# Base states in which a node takes (or runs) jobs; any other is unhealthy.
SERVING = frozenset({"IDLE", "ALLOCATED", "MIXED", "COMPLETING"})
# Flags that take a node out of service or say slurmctld cannot reach it.
BAD_FLAGS = frozenset({"DRAIN", "DRAINING", "DRAINED", "FAIL", "NOT_RESPONDING", "INVALID", "INVALID_REG",
                       "MAINTENANCE", "REBOOT_ISSUED", "POWERED_DOWN", "POWERING_DOWN"})


@dataclass(frozen=True)
class SlurmNode:
    name: str
    state: str  # the base state, upper case: IDLE, ALLOCATED, DOWN, ...
    flags: tuple[str, ...] = ()
    reason: str = ""

    @property
    def label(self) -> str:
        """``IDLE+DRAIN``: how scontrol writes a state with its flags."""
        return "+".join((self.state, *self.flags))

    @property
    def responding(self) -> bool:
        """Whether slurmd on the node has registered: slurm.conf lists every planned node, so being
        listed alone does not say that a machine exists."""
        return self.state not in ("UNKNOWN", "FUTURE") and "NOT_RESPONDING" not in self.flags

    @property
    def healthy(self) -> bool:
        return self.state in SERVING and not BAD_FLAGS.intersection(self.flags)


@dataclass
class SlurmNodes:
    nodes: dict[str, SlurmNode] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # entries left out, described safely
    version: str = ""


def one_line(value: Any, limit: int = MAX_REASON) -> str:
    """``value`` as one printable line of at most ``limit`` characters (control characters, line
    breaks and other unprintables become '?')."""
    return "".join(c if c.isprintable() else "?" for c in str(value)[:limit * 4])[:limit]


def _words(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > 32:
        raise ValueError(f"{where}: not a list of state words")
    words = []
    for w in value:
        if not isinstance(w, str) or not STATE_WORD.fullmatch(w.upper()):
            raise ValueError(f"{where}: {one_line(w, 40)!r} is not a state word")
        words.append(w.upper())
    return words


def _node(entry: Any) -> SlurmNode:
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    name = entry.get("name")
    if not isinstance(name, str) or not NODE_NAME.fullmatch(name):
        raise ValueError(f"node name {one_line(name, 80)!r} is not a host name")
    state = entry.get("state")
    if isinstance(state, str):  # v0.0.38: the base state, then state_flags
        words = _words(state, name) + _words(entry.get("state_flags", []), name)
    else:  # v0.0.40+: base state first, then the flags
        words = _words(state, name)
    if not words:
        raise ValueError(f"{name}: no state")
    reason = entry.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise ValueError(f"{name}: reason is not a string")
    return SlurmNode(name, words[0], tuple(dict.fromkeys(words[1:])), one_line(reason))


def parse(text: str, name: str = "Slurm JSON") -> SlurmNodes:
    """The nodes of one ``sinfo --json`` / ``scontrol show nodes --json`` document. A malformed
    document is an error; a malformed node entry is left out and listed in ``refused``."""
    if len(text) > MAX_BYTES:
        raise AifactoryError(f"{name}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
    data = parse_json(text, name)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise AifactoryError(f"{name}: not Slurm node JSON (expected an object with a \"nodes\" list, "
                             "as `scontrol show nodes --json` or `sinfo --json` write)")
    if len(data["nodes"]) > MAX_NODES:
        raise AifactoryError(f"{name}: more than {MAX_NODES:,} nodes")
    errors = data.get("errors") or []
    if isinstance(errors, list) and errors:
        first = errors[0]
        text = first.get("description") or first.get("error") if isinstance(first, dict) else first
        raise AifactoryError(f"{name}: Slurm reported an error: {one_line(text)}")
    out = SlurmNodes(version=_version(data.get("meta")))
    for i, entry in enumerate(data["nodes"]):
        try:
            node = _node(entry)
        except ValueError as exc:
            out.refused.append(f"nodes[{i}]: {one_line(exc)}")
            continue
        if node.name in out.nodes:  # sinfo lists a node once per partition in some releases
            continue
        out.nodes[node.name] = node
    return out


def _version(meta: Any) -> str:
    """``22.05.8``, from ``meta.Slurm.release`` (v0.0.38) or ``meta.slurm.release`` (v0.0.40+)."""
    if not isinstance(meta, dict):
        return ""
    slurm = meta.get("slurm") or meta.get("Slurm")
    release = slurm.get("release") if isinstance(slurm, dict) else None
    return release if isinstance(release, str) and re.fullmatch(r"[0-9][0-9.a-z-]{0,30}", release) else ""
