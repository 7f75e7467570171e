"""Read what aifactory writes for Ansible the way Ansible does: every string value is ``!unsafe``.

``load_yaml`` reads an inventory or group_vars file (``!unsafe`` strings become plain ones, and
:func:`unsafe_strings` says which were tagged); ``load_json`` reads ``ansible-inventory --list``,
which prints an unsafe string as ``{"__ansible_unsafe": "..."}``.
"""

from __future__ import annotations

import json

import yaml


class Tagged(str):
    """A string that carried the ``!unsafe`` tag."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: Tagged(loader.construct_scalar(node)))


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_json(text: str):
    def hook(obj: dict):
        if set(obj) == {"__ansible_unsafe"}:
            return Tagged(obj["__ansible_unsafe"])
        return obj

    return json.loads(text, object_hook=hook)


def _template_free(text: str) -> bool:
    """A string YAML would read as a number, boolean or null: written quoted, never tagged (see
    aifactory.inventory.plan._represent_unsafe), and unable to hold template syntax."""
    return yaml.SafeLoader.resolve(yaml.SafeLoader(""), yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str"


def plain_strings(data, path=()) -> list[tuple]:
    """Paths of string values that are not tagged unsafe and could hold a template (keys aside)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in plain_strings(v, path + (k,))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in plain_strings(v, path + (i,))]
    if isinstance(data, str) and not isinstance(data, Tagged) and not _template_free(data):
        return [path]
    return []
