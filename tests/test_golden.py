"""Golden files: one runner over tests/golden/<case>/{factory.yaml, expected/}.

Each case's rendered deployment directory must equal its expected/ tree byte for byte: no
file more, none less. After an intended change, regenerate with
``pytest tests/test_golden.py --update-golden`` and review the diff like any other change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aifactory import plan as planning
from aifactory import spec
from aifactory.render.deployment import build_files

EVERY_STACK_IN_FAST = True  # byte-for-byte output of every case: cheap, and the first to catch a change
GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "factory.yaml").is_file())


def _render(case: str) -> dict[str, str]:
    loaded = spec.load(GOLDEN / case / "factory.yaml")
    return build_files(planning.build(loaded))


@pytest.mark.parametrize("case", CASES)
def test_golden(case, request):
    expected_dir = GOLDEN / case / "expected"
    files = _render(case)
    if request.config.getoption("--update-golden"):
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, text in files.items():
            path = expected_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="")
        pytest.skip(f"golden files of {case} rewritten; review with git diff")
    assert expected_dir.is_dir(), f"no expected/ for {case}: run pytest tests/test_golden.py --update-golden"
    expected = {str(p.relative_to(expected_dir)): p.read_text(encoding="utf-8")
                for p in sorted(expected_dir.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(expected), "files added or removed"
    for rel in files:
        assert files[rel] == expected[rel], f"{case}/expected/{rel} differs (rerun with --update-golden and review)"


def test_cases_cover_the_example_stacks():
    stacks = GOLDEN.parent.parent / "stacks"
    for case in ("lab", "aws-p5", "multicloud", "superpod-h100"):
        assert case in CASES
        # the golden case is the example stack itself, not a copy that drifted from it
        assert (GOLDEN / case / "factory.yaml").read_bytes() == (stacks / case / "factory.yaml").read_bytes(), case
