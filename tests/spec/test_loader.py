"""YAML loading: line numbers, refusals a plain safe_load would let through, error format."""

from __future__ import annotations

import re

import pytest

from aifactory.errors import SpecError
from aifactory.spec import load, load_string
from aifactory.spec.loader import MAX_DEPTH, load_text

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<path>\S+): (?P<msg>.+)$")

VALID = """\
name: demo
sites:
  - name: dc1
    power_mw: 20
pools:
  - name: train
    site: dc1
    provider: onprem
    system: dgx-h100
    nodes: 4
"""


def findings(text: str):
    with pytest.raises(SpecError) as info:
        load_string(text, "f.yaml")
    return info.value.findings


def test_valid_spec_loads_with_line_map():
    spec = load_string(VALID, "f.yaml")
    assert spec.factory.pools[0].nodes == 4
    assert spec.doc.line_of(("pools", 0, "system")) == 9
    assert spec.doc.line_of(("sites", 0, "power_mw")) == 4
    # a path that does not exist resolves to its deepest existing parent
    assert spec.doc.line_of(("pools", 0, "zones", 3)) == 6


def test_unknown_field_names_line_and_suggests():
    text = VALID.replace("    nodes: 4", "    nodes: 4\n    fabirc: ib")
    (f,) = findings(text)
    assert (f.line, f.path) == (11, ("pools", 0, "fabirc"))
    assert "unknown field 'fabirc'" in f.message and "'fabric'" in f.hint
    assert LINE.match(f.render())


def test_wrong_type_points_at_value_line():
    (f,) = findings(VALID.replace("power_mw: 20", "power_mw: lots"))
    assert f.line == 4 and f.path == ("sites", 0, "power_mw")
    assert f.render().startswith("f.yaml:4: sites[0].power_mw: ")


def test_missing_required_field_points_at_parent():
    (f,) = findings(VALID.replace("    system: dgx-h100\n", ""))
    assert f.path == ("pools", 0, "system") and f.line == 6
    assert "required field 'system'" in f.message


def test_nodes_accepts_fill_and_rejects_nonsense():
    assert load_string(VALID.replace("nodes: 4", "nodes: fill")).factory.pools[0].nodes == "fill"
    for bad in ("nodes: -1", "nodes: 0", "nodes: 2.5", "nodes: many", "nodes: true"):
        (f,) = findings(VALID.replace("nodes: 4", bad))
        assert f.path == ("pools", 0, "nodes") and f.line == 10, bad


def test_duplicate_keys_are_refused_with_both_lines():
    (f,) = findings(VALID.replace("    nodes: 4", "    nodes: 4\n    nodes: 5"))
    assert f.line == 11 and "duplicate key 'nodes'" in f.message and "line 10" in f.message


def test_python_tags_never_construct():
    (f,) = findings(VALID.replace("system: dgx-h100", "system: !!python/object/apply:os.system [echo pwned]"))
    assert f.line == 9 and "not allowed" in f.message


def test_custom_tags_and_merge_keys_refused():
    assert "not allowed" in findings(VALID.replace("dgx-h100", "!secret dgx-h100"))[0].message
    text = "base: &b {name: x}\nname: demo\nsites:\n  - <<: *b\n"
    assert "merge keys" in findings(text)[0].message


def test_alias_bomb_is_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    (f,) = findings("\n".join(lines) + "\n")
    assert "expands to more than" in f.message


def test_deep_nesting_is_refused():
    text = "name: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n"
    (f,) = findings(text)
    assert "nesting deeper" in f.message


def test_syntax_error_reports_line():
    (f,) = findings("name: demo\nsites:\n  - {name: dc1\npools: []\n")
    assert f.line >= 3 and "YAML syntax error" in f.message


def test_empty_and_non_mapping_documents():
    assert "empty" in findings("")[0].message
    assert "mapping" in findings("- a\n- b\n")[0].message


def test_unreadable_and_non_utf8_files(tmp_path):
    with pytest.raises(SpecError) as info:
        load(tmp_path / "missing.yaml")
    assert "cannot read file" in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(SpecError) as info:
        load(bad)
    assert "not UTF-8" in str(info.value)


def test_numbers_written_bare_mean_version_strings():
    spec = load_string(VALID.replace("name: demo\n", "name: demo\nsoftware: {driver_branch: 580, cuda: 13.0}\n"))
    assert spec.factory.software.driver_branch == "580" and spec.factory.software.cuda == "13.0"


def test_every_node_os_loads_and_the_spec_and_the_plan_name_the_same_ones():
    from typing import get_args

    from aifactory.fields import NodeOs
    from aifactory.plan.model import SoftwareLock
    from aifactory.spec.models import Software

    assert "debian-13" in get_args(NodeOs)
    for os_name in get_args(NodeOs):
        spec = load_string(VALID.replace("name: demo\n", f"name: demo\nsoftware: {{os: {os_name}}}\n"))
        assert spec.factory.software.os == os_name
    assert Software.model_fields["os"].annotation == SoftwareLock.model_fields["os"].annotation == NodeOs
    (f,) = findings(VALID.replace("name: demo\n", "name: demo\nsoftware: {os: debian-14}\n"))
    assert f.path == ("software", "os") and f.line == 2 and "debian-13" in f.message


def test_timestamp_scalars_are_refused_with_location():
    (f,) = findings(VALID.replace("name: demo", "name: demo\ndescription: 2024-01-01"))
    assert f.line == 2


@pytest.mark.parametrize("name", ["Train", "a b", "x;rm -rf /", "$(reboot)", "../etc", "{{7*7}}", "-x", "a" * 50])
def test_names_are_strict(name):
    (f,) = findings(VALID.replace("name: train", f"name: {name!r}"))
    assert f.path == ("pools", 0, "name") and f.line == 6


def test_load_text_builds_line_map_for_lists():
    doc = load_text("a:\n  - 1\n  - 2\n")
    assert doc.lines[("a", 1)] == 3
