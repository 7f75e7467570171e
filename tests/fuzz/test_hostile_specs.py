"""Hostile and broken specs never crash the tool.

Thousands of mutated example specs go through the library in-process (loader, schema,
every named check, the planner and the reports); a smaller share goes through the real
command line. Each one must either plan cleanly or fail with ``SpecError`` findings that
render as ``FILE:LINE: path: message`` — one line each, pointing inside the file — and the
command must exit 1 without a traceback. The conftest prints the example count.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from typer.testing import CliRunner

from aifactory import plan as planning
from aifactory import report, spec
from aifactory.cli import app
from aifactory.errors import SpecError
from tests.fuzz import mutations
from tests.fuzz.harness import scaled

FINDING = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+): (?:warning: )?(?P<path>[^\n]+?): (?P<message>[^\n]+)$")
SUMMARY = re.compile(r"^[^\n]+: \d+ error\(s\), \d+ warning\(s\)$")

# derandomize: the same examples on every run, so a red CI run is reproducible locally.
FUZZ = dict(deadline=None, derandomize=True, database=None, print_blob=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# Regressions: inputs that once crashed a loader of this kind, kept as explicit examples.
REGRESSIONS = [
    b"name: x\nsites: [" + b"[" * 100_000 + b"\n",                      # unterminated deep flow nesting
    b"a: &a [*a]\n",                                                      # self-referencing alias
    b"name: !!timestamp 99999-99-99\n",                                   # out-of-range timestamp
    b"name: x\n? [a, b]\n: complex key\n",                               # non-scalar mapping key
    b"name: x\nsites:\n  - {name: dc1}\n  - {name: dc1}\npools: []\n",     # duplicate names
    b"\xef\xbb\xbfname: x\n",                                             # UTF-8 byte order mark
    b"name: \xff\xfe\n",                                                   # invalid UTF-8
    "name: lab\ntags: {\"a\\nb\": x}\nsites: [{name: lab}]\npools: []\n".encode(),  # newline in a key
    "name: lab\nsites: [{name: lab, \"x\\n/tmp/a:1: forged\": 1}]\n".encode(),     # forged finding line
    b"name: x\npools:\n  - {name: p, site: s, provider: onprem, system: dgx-h100, nodes: 1e400}\n",
    b"name: x\nsites: [{name: s, power_mw: .nan}]\npools: [{name: p, site: s, provider: onprem,"
    b" system: dgx-h100, nodes: fill}]\n",
]


def _located(finding, file, content: bytes) -> None:
    text = finding.render()
    m = FINDING.match(text)
    assert m, f"finding does not read FILE:LINE: path: message (one line): {text!r}"
    assert m["file"] == str(file), text
    lines = content.count(b"\n") + content.count(b"\r") + 1
    assert 0 < int(m["line"]) <= lines + 1, f"line {m['line']} outside a {lines}-line file: {text!r}"


def exercise(content: bytes, file) -> None:
    """Everything ``aifactory validate`` and ``plan`` do, in-process; assert the error contract."""
    file.write_bytes(content)
    try:
        try:
            result = planning.validate(spec.load(file))
        except SpecError as exc:
            assert exc.findings, "SpecError without findings"
            for finding in exc.findings:
                _located(finding, file, content)
            return
        for finding in result.findings:
            _located(finding, file, content)
        if not result.errors:
            report.to_json(result.plan)
            # The table shares its rows with Markdown; rich's layout is slow, so the CLI
            # share of the fuzzing prints it (test_cli_validate_and_plan).
            report.to_markdown(result.plan)
    except AssertionError:
        raise
    except Exception:
        exercise.uncaught += 1
        raise


exercise.uncaught = 0


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "factory.yaml"


@pytest.fixture(autouse=True)
def _count_uncaught(fuzz_tally):
    before = exercise.uncaught
    yield
    fuzz_tally("uncaught", exercise.uncaught - before)


@pytest.mark.parametrize("content", REGRESSIONS, ids=range(len(REGRESSIONS)))
def test_regressions(content, target, fuzz_tally):
    fuzz_tally("in-process", command="spec-library")
    exercise(content, target)


@pytest.mark.parametrize("path", mutations.EXAMPLES, ids=lambda p: p.parent.name)
def test_unmutated_examples_plan(path, target):
    # The baseline the mutations start from must be valid, or the fuzzing proves little.
    result = planning.validate(spec.load(path))
    assert not result.errors, [f.render() for f in result.errors]


@settings(max_examples=scaled(3000), **FUZZ)
@given(content=mutations.structured())
def test_structured_mutations(content, target, fuzz_tally):
    fuzz_tally("in-process", command="spec-library")
    exercise(content, target)


@settings(max_examples=scaled(2200), **FUZZ)
@given(content=mutations.raw())
def test_raw_text_mutations(content, target, fuzz_tally):
    fuzz_tally("in-process", command="spec-library")
    exercise(content, target)


def _cli_contract(result, file) -> None:
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1), (result.exit_code, result.stderr[-2000:])
    if result.exit_code == 1:
        lines = [line for line in result.stderr.splitlines() if line]
        assert lines, "exit 1 without a message"
        for line in lines:
            assert FINDING.match(line) or SUMMARY.match(line), f"unlocated error line: {line!r}"
        assert any(line.startswith(f"{file}:") for line in lines), lines


@settings(max_examples=60, **FUZZ)
@given(content=mutations.hostile)
def test_cli_validate_and_plan(content, target, fuzz_tally):
    fuzz_tally("cli", command="validate+plan")
    target.write_bytes(content)
    runner = CliRunner()
    validate = runner.invoke(app, ["validate", str(target)])
    _cli_contract(validate, target)
    as_json = runner.invoke(app, ["plan", str(target), "--format", "json"])
    _cli_contract(as_json, target)
    assert as_json.exit_code == validate.exit_code
    if as_json.exit_code == 1:
        assert as_json.stdout == "", "a failed plan must print nothing on stdout"
    else:
        table = runner.invoke(app, ["plan", str(target)])
        _cli_contract(table, target)
        assert table.exit_code == 0


@pytest.mark.parametrize("content", [REGRESSIONS[0], REGRESSIONS[2], REGRESSIONS[6], REGRESSIONS[8],
                                     mutations._bomb(12, 10).encode()], ids=["deep", "timestamp", "utf8",
                                                                               "forged", "bomb"])
def test_console_script_exits_1_without_traceback(content, tmp_path, fuzz_tally):
    """A handful through a real process: the exit status is the interpreter's, not a runner's."""
    fuzz_tally("subprocess", command="plan")
    f = tmp_path / "factory.yaml"
    f.write_bytes(content)
    out = subprocess.run([sys.executable, "-m", "aifactory", "plan", str(f), "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert all(FINDING.match(line) or SUMMARY.match(line) for line in out.stderr.splitlines()), out.stderr
