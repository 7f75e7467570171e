"""The one Jinja2 environment: StrictUndefined (a missing variable is an error, never an
empty string), no autoescape surprises for config files, stable whitespace, and filters
that hand structured data to real serializers instead of concatenating YAML or INI."""

from __future__ import annotations

import json
from functools import lru_cache

import jinja2
import yaml

from ..resources import templates_dir


def _to_yaml(value, indent: int = 2) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, indent=indent, width=1000).rstrip("\n")


def _to_json(value, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=True)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # configs, not HTML; values are validated by the spec patterns
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["to_yaml"] = _to_yaml
    env.filters["to_json"] = _to_json
    return env


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)
