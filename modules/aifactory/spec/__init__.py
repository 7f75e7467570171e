"""Parse a factory spec (YAML) into typed models, with every error pointing at its line."""

from __future__ import annotations

import difflib
import typing

from pydantic import BaseModel, ValidationError

from ..errors import Finding, SpecError
from .loader import Document, load_file, load_text
from .models import Factory, json_schema

__all__ = ["Document", "Factory", "LoadedSpec", "json_schema", "load", "load_string"]


class LoadedSpec(typing.NamedTuple):
    factory: Factory
    doc: Document


def _model_at(path: list) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``path`` (for field-name hints)."""
    model: type[BaseModel] | None = Factory
    for part in path:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = None
        for candidate in [field.annotation, *typing.get_args(field.annotation)]:
            for inner in [candidate, *typing.get_args(candidate)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    model = inner
    return model


def _data_path(data, loc) -> list:
    """Keep the part of a pydantic ``loc`` that names real places in the document."""
    path, cur = [], data
    for part in loc:
        if isinstance(cur, dict) and isinstance(part, str) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        else:
            break
    return path


_PATTERN_HINTS = {
    "description": "one line of text without control characters or braces",
    "reservation": "a cloud reservation id such as cr-0123abcd or projects/p/reservations/r ('/'-separated, "
                   "no '..' and no leading '-')",
    "system": "a catalog id such as dgx-h100 or p5.48xlarge (see `aifactory catalog`)",
    "switch": "a catalog switch id such as qm9700 (see `aifactory catalog switches`)",
}


def _findings(exc: ValidationError, doc: Document) -> list[Finding]:
    out: dict[tuple, Finding] = {}
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        path = _data_path(doc.data, loc)
        kind = err["type"]
        hint = ""
        if kind == "extra_forbidden":
            key = loc[len(path)] if len(loc) > len(path) else loc[-1]
            parent = path[:-1] if path and path[-1] == key else path
            model = _model_at(parent)
            allowed = sorted(model.model_fields) if model else []
            close = difflib.get_close_matches(str(key), allowed, n=1)
            message = f"unknown field {key!r}"
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            path = parent + [key]
        elif kind == "missing":
            field = loc[len(path)] if len(loc) > len(path) else loc[-1]
            message = f"required field {field!r} is missing"
            path = path + [field]
        elif kind == "string_pattern_mismatch":
            message = "invalid value"
            value = err.get("input")
            if path and path[-1] == "name" or (path and path[-1] in ("site", "fabric")):
                hint = "lowercase letters, digits and '-', starting with a letter, at most 42 characters"
            elif path and path[-1] in _PATTERN_HINTS:
                hint = _PATTERN_HINTS[path[-1]]
            else:
                hint = f"must match {err['ctx']['pattern']}"
            message = f"invalid value {value!r}" if isinstance(value, str) and len(value) < 80 else "invalid value"
        elif kind == "literal_error":
            message = f"{err['msg'].replace('Input should be', 'must be')}"
        else:
            message = err["msg"].replace("Value error, ", "").replace("Input should be", "must be")
        key = tuple(path)
        if key not in out:  # a union reports one error per branch; the first is enough
            out[key] = doc.finding(key, message, hint)
    return sorted(out.values(), key=lambda f: (f.line, f.path.__repr__()))


def _parse(doc: Document) -> LoadedSpec:
    if not isinstance(doc.data, dict):
        raise SpecError([doc.finding((), "the document must be a mapping of factory fields",
                                     "start from one of the stacks/*/factory.yaml examples")])
    try:
        return LoadedSpec(Factory.model_validate(doc.data), doc)
    except ValidationError as exc:
        raise SpecError(_findings(exc, doc)) from None


def load(path) -> LoadedSpec:
    """Load and type-check a factory file. Raises :class:`SpecError` with located findings."""
    return _parse(load_file(path))


def load_string(text: str, file: str = "<string>") -> LoadedSpec:
    return _parse(load_text(text, file))
