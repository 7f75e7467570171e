"""The one bounded YAML loader for every YAML file aifactory reads: data plus a line per path.

PyYAML's safe composer builds the node tree (so no Python tags can run); we then build the
data ourselves so that we can refuse what a plain ``safe_load`` silently accepts:
duplicate keys, non-standard tags, merge keys, alias bombs and absurd nesting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from .errors import Finding, SpecError

try:  # libyaml is much faster; the pure-Python composer behaves the same
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

MAX_NODES = 200_000  # a factory spec is a few hundred nodes; an alias bomb is billions
MAX_DEPTH = 64
MAX_BYTES = 16 * 1024 * 1024

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


@dataclass
class Document:
    """Parsed YAML: ``data`` for validation, ``lines`` to point errors at the right line."""

    data: object
    file: str
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, path) -> int:
        """Line of the deepest prefix of ``path`` that exists in the document (1-based)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def finding(self, path, message: str, hint: str = "", **kw) -> Finding:
        return Finding(tuple(path), message, hint, file=self.file, line=self.line_of(path), **kw)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[tuple, int] = {}
        self.count = 0
        self.scalar_loader = _Loader("")

    def fail(self, node, path, message, hint=""):
        raise SpecError([Finding(tuple(path), message, hint, file=self.file, line=node.start_mark.line + 1)])

    def build(self, node, path: tuple, depth: int):
        self.count += 1
        if self.count > MAX_NODES:
            self.fail(node, path, f"document expands to more than {MAX_NODES} values",
                      "remove recursive or repeated aliases (a YAML alias bomb is refused)")
        if depth > MAX_DEPTH:
            self.fail(node, path, f"nesting deeper than {MAX_DEPTH} levels", "a factory spec is only a few levels deep")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                self.fail(node, path, f"tag {node.tag!r} is not allowed", "use plain YAML mappings")
            out: dict = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.fail(key_node, path, "YAML merge keys (<<) are not supported", "write the keys out")
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                    self.fail(key_node, path, "mapping keys must be plain strings")
                key = key_node.value
                if key in out:
                    first = self.lines.get(path + (key,), 0)
                    self.fail(key_node, path + (key,), f"duplicate key {key!r} (first defined on line {first})",
                              "remove one of the two")
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                self.fail(node, path, f"tag {node.tag!r} is not allowed", "use plain YAML lists")
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if node.tag not in _SCALAR_TAGS:
            self.fail(node, path, f"tag {node.tag!r} is not allowed", "only plain strings, numbers, booleans and null")
        return self.scalar_loader.construct_object(node)


def _check_depth(text: str, file: str) -> None:
    """Refuse deep nesting before composing: libyaml's composer recurses in C, so a few
    thousand nested brackets overflow the C stack and kill the process (a segfault, not a
    RecursionError we could catch). Its event parser keeps an explicit stack, so walking
    the events first is safe."""
    scanner = _Loader(text)
    depth = 0
    try:
        while True:
            event = scanner.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise SpecError([Finding((), f"nesting deeper than {MAX_DEPTH} levels",
                                             "a factory spec is only a few levels deep", file=file, line=line)])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            elif isinstance(event, yaml.StreamEndEvent):
                return
    finally:
        scanner.dispose()


def _expanded(node, memo: dict, active: set) -> int:
    """How many values ``node`` becomes once every alias is copied out (capped past MAX_NODES).

    Shared nodes are sized once (memo), so an alias bomb is measured in microseconds
    instead of being built up to the limit; a node that contains itself never ends."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        return MAX_NODES + 1
    active.add(key)
    total = 1
    if isinstance(node, yaml.MappingNode):
        total += sum(_expanded(v, memo, active) for _, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total += sum(_expanded(v, memo, active) for v in node.value)
    active.discard(key)
    memo[key] = min(total, MAX_NODES + 1)
    return memo[key]


def _check_expansion(root, builder: "_Builder") -> None:
    memo: dict = {}
    if _expanded(root, memo, set()) <= MAX_NODES:
        return
    # Point at the smallest node that still expands past the limit: the line with the bomb.
    node, path, seen = root, (), set()
    while id(node) not in seen:
        seen.add(id(node))
        children = (node.value if isinstance(node, yaml.MappingNode) else
                    list(enumerate(node.value)) if isinstance(node, yaml.SequenceNode) else [])
        big = [(k, v) for k, v in children if memo.get(id(v), 0) > MAX_NODES]
        if not big:
            break
        key, node = big[0]
        path += (key.value if isinstance(key, yaml.ScalarNode) else key,)
    builder.fail(node, path if all(isinstance(p, (str, int)) for p in path) else (),
                 f"document expands to more than {MAX_NODES} values",
                 "remove recursive or repeated aliases (a YAML alias bomb is refused)")


def load_text(text: str, file: str = "<string>") -> Document:
    """Parse YAML text; raise :class:`SpecError` with a located finding on any problem."""
    if len(text) > MAX_BYTES:
        raise SpecError([Finding((), f"file is larger than {MAX_BYTES // 1024 // 1024} MiB", file=file, line=1)])
    loader = _Loader(text)
    try:
        try:
            _check_depth(text, file)
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError([Finding((), f"YAML syntax error: {problem}", "check indentation and quoting",
                                 file=file, line=line)]) from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, only an offset
        char = exc.character if isinstance(exc.character, int) else 0
        raise SpecError([Finding((), f"character U+{char:04X} is not allowed in YAML ({exc.reason})",
                                 "remove control characters from the file",
                                 file=file, line=text.count("\n", 0, exc.position) + 1)]) from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpecError([Finding((), f"YAML error: {first}", file=file, line=1)]) from None
    except RecursionError:
        raise SpecError([Finding((), f"nesting deeper than {MAX_DEPTH} levels", file=file, line=1)]) from None
    if node is None:
        raise SpecError([Finding((), "the file is empty", "start from one of the stacks/*/factory.yaml examples",
                                 file=file, line=1)])
    builder = _Builder(file)
    try:
        _check_expansion(node, builder)
        data = builder.build(node, (), 0)
    except RecursionError:
        raise SpecError([Finding((), f"nesting deeper than {MAX_DEPTH} levels", file=file, line=1)]) from None
    except (ValueError, TypeError, yaml.YAMLError) as exc:  # e.g. an out-of-range timestamp scalar
        raise SpecError([Finding((), f"cannot read value: {exc}", file=file, line=1)]) from None
    return Document(data=data, file=file, lines=builder.lines)


def load_file(path: str | os.PathLike) -> Document:
    from .files import ReadError, read_bytes

    name = os.fspath(path)
    try:  # a regular file only: a FIFO would block, /dev/zero would never end
        raw = read_bytes(name, MAX_BYTES)
    except ReadError as exc:
        raise SpecError([Finding((), exc.reason, file=name, line=0 if "cannot read" in exc.reason else 1)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([Finding((), f"not UTF-8 text (byte {exc.start})", file=name, line=1)]) from None
    return load_text(text, name)
