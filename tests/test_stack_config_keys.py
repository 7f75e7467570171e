"""Every stack declares the config keys it uses, as the one table (aifactory.stackconfig) has them.

- each ``stacks/*/Pulumi.yaml`` declares exactly the keys its pools use, with the table's
  description and secret flag, and is a project file Pulumi accepts (its JSON Schema, vendored
  under tests/data, and the namespace rules of ``Project.Validate``);
- every key a ``Pulumi.<stack>.yaml`` sets is declared there, of the declared type, and a secret
  one only encrypted;
- every key the program and its components read while previewing a stack is in the table, and
  the keys the program names in code are too.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from aifactory import plan as planning
from aifactory import providers
from aifactory.stackconfig import CONFIG_KEYS, TYPES, declaration, used_keys, value_has_type
from aifactory.stackfiles import read_stack

REPO = Path(__file__).resolve().parents[1]
STACKS = sorted(p.parent for p in (REPO / "stacks").glob("*/Pulumi.yaml"))
SCHEMA = json.loads((REPO / "tests" / "data" / "pulumi-project.json").read_text(encoding="utf-8"))


def _project(stack: Path) -> dict:
    return yaml.safe_load((stack / "Pulumi.yaml").read_text(encoding="utf-8"))


def _used(stack: Path):
    plan = planning.load(stack / "factory.yaml")
    return used_keys((p.provider, len(p.hosts)) for p in plan.pools)


def _stack_configs(stack: Path):
    for path in sorted(stack.glob("Pulumi.*.yaml")):
        yield path, (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}


def test_there_are_stacks():
    assert len(STACKS) >= 6


def test_table_is_well_formed():
    for name, key in CONFIG_KEYS.items():
        assert name == key.key and name.count(":") == 1, name
        assert key.type in TYPES, name
        assert key.description and "\n" not in key.description, name
        assert not (key.secret and key.providers is None), f"{name}: a secret every stack needs"
        unknown = (key.providers or set()) - set(providers.names())
        assert not unknown, f"{name}: unknown providers {unknown}"


def test_program_keys_are_in_the_table():
    """The keys the program names in code, and each provider's region key, have a row."""
    from aifactory.components import onprem, program

    named = {program.FACTORY_KEY, program.RESERVATIONS_KEY}
    named |= {f"{ns}:{name}" for ns, name in program.STRING_SETTINGS}
    named.add(f"{onprem.CONFIG_NAMESPACE}:{onprem.PASSWORD_KEY}")
    named |= {p.region_key for p in map(providers.find, providers.names()) if p.region_key}
    assert named - set(CONFIG_KEYS) == set()
    assert CONFIG_KEYS[f"{onprem.CONFIG_NAMESPACE}:{onprem.PASSWORD_KEY}"].secret


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_project_file_declares_exactly_the_keys_used(stack):
    project = _project(stack)
    declared = (project.get("template") or {}).get("config") or {}
    assert declared == declaration(_used(stack)), (
        f"{stack.name}/Pulumi.yaml template.config must be aifactory.stackconfig.declaration(used_keys(...))")
    # Namespaced keys belong in template.config: Pulumi refuses a type or a default for them in
    # the project-level config block, and would apply a 'value' there to every stack.
    assert "config" not in project


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_project_file_is_one_pulumi_accepts(stack):
    project = _project(stack)
    jsonschema.Draft202012Validator(SCHEMA).validate(project)
    # Project.Validate: a project-level config key outside the project's namespace has no type or
    # default and must have a value.
    name = project["name"]
    for key, decl in (project.get("config") or {}).items():
        if ":" in key and not key.startswith(f"{name}:") and isinstance(decl, dict):
            assert "type" not in decl and "default" not in decl and "value" in decl, key
    # stackfiles (the bounded loader) reads the project as the tools do.
    for path, _ in _stack_configs(stack):
        assert read_stack(stack, path.name[len("Pulumi."):-len(".yaml")], plain_only=False).project == name


def test_schema_refuses_what_pulumi_refuses():
    """The vendored schema is the real one: a misspelt declaration field is refused."""
    bad = {"name": "x", "runtime": "python", "config": {"k": {"type": "string", "descripton": "typo"}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(bad)


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_stack_files_set_only_declared_keys_of_their_type(stack):
    declared = {k.key: k for k in _used(stack)}
    project = _project(stack)["name"]
    for path, config in _stack_configs(stack):
        for raw, value in config.items():
            key = raw if ":" in raw else f"{project}:{raw}"
            assert key in declared, f"{path.name}: {key} is not declared in Pulumi.yaml"
            spec = declared[key]
            secure = isinstance(value, dict) and set(value) == {"secure"}
            if spec.secret:
                assert secure, f"{path.name}: {key} is a secret: set it with `pulumi config set --secret`"
            else:
                assert not secure and value_has_type(value, spec.type), f"{path.name}: {key} must be {spec.type}"


@pytest.mark.parametrize("stack", STACKS, ids=lambda p: p.name)
def test_every_key_the_program_reads_is_in_the_table(stack, monkeypatch):
    import pulumi.config

    from aifactory import preview

    read: set[str] = set()
    real = pulumi.config.get_config

    def recording(key):
        read.add(key)
        return real(key)

    monkeypatch.setattr(pulumi.config, "get_config", recording)
    preview.preview(stack)
    assert read, "the preview read no config at all: the recording hook is in the wrong place"
    assert read - set(CONFIG_KEYS) == set()
    # What a stack's pools use, the program reads (provider keys are read by the plugins).
    used = {k.key for k in _used(stack) if k.namespace == "aifactory"}
    assert used - read == set()


@pytest.mark.parametrize("value,type_name,ok", [
    ("x", "string", True), (1, "string", False),
    ("true", "boolean", True), (False, "boolean", True), ("yes", "boolean", False),
    ({"a": 1}, "object", True), ('{"a": 1}', "object", True), ("[1]", "object", False), ("{", "object", False),
    (3, "integer", True), ("-3", "integer", True), (True, "integer", False), ("3.5", "integer", False),
])
def test_value_has_type(value, type_name, ok):
    assert value_has_type(value, type_name) is ok
