"""Nothing in the repository installs a package by a name this project does not own.

The PyPI project called "aifactory" is unrelated to this one (another owner, its own `aifactory`
console script). This project is distributed as `gpufactory`. Every install command and every
requirements file in the repository (workflows, Makefile, scripts, docs, stacks, policy pack)
must install this project from the checkout or as `gpufactory==<this version>`, and never by
the other name, pinned or not.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "gpufactory"
FOREIGN = {"aifactory"}  # normalised names (PEP 503) that belong to someone else
INSTALL = re.compile(r"\b(?:pip3?|uv pip|pipx|python3? -m pip)\s+install\b(?P<args>[^\n#`]*)")
OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
                      "-f", "--find-links", "-w", "--wheel-dir", "-t", "--target", "--prefix", "--root",
                      "--python-version", "--platform"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _requirement_name(token: str) -> str | None:
    token = token.strip("'\"")
    if not token or token.startswith(("-", ".", "/", "$")) or "://" in token or token.endswith((".whl", ".txt")):
        return None
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", token)
    return m.group(1) if m else None


def _install_targets(text: str):
    """(package token, line number) of every package an install command in ``text`` names."""
    for m in INSTALL.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        try:
            words = shlex.split(m.group("args").replace("\\\n", " "), posix=True)
        except ValueError:
            words = m.group("args").split()
        skip = False
        for word in words:
            if skip:
                skip = False
                continue
            if word in OPTIONS_WITH_VALUE:
                skip = True
                continue
            if word in ("&&", "||", ";", "|") or word.startswith(">"):
                break
            yield word, line


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    untracked = subprocess.run(["git", "ls-files", "-z", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, check=True).stdout
    names = {n for n in (out + untracked).decode().split("\0") if n}
    return [REPO / n for n in sorted(names) if (REPO / n).is_file()]


def _text(path: Path) -> str | None:
    if path.suffix in (".png", ".svg", ".gz", ".whl", ".csv") or "golden" in path.parts:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def test_the_distribution_name_is_ours():
    project = _project()
    assert _normalise(project["name"]) == DISTRIBUTION
    assert _normalise(project["name"]) not in FOREIGN
    assert project["scripts"] == {"aifactory": "aifactory.cli:main"}


def test_no_install_command_or_requirement_names_a_foreign_package():
    version = _project()["version"]
    problems = []
    for path in _tracked():
        if path == Path(__file__):
            continue
        text = _text(path)
        if text is None:
            continue
        rel = path.relative_to(REPO)
        targets = list(_install_targets(text))
        if re.search(r"requirements[^/]*\.txt$", path.name):
            targets += [(line.strip(), i) for i, line in enumerate(text.splitlines(), 1)
                        if line.strip() and not line.lstrip().startswith(("#", "-"))]
        for token, line in targets:
            name = _requirement_name(token)
            if name is None:
                continue
            if _normalise(name) in FOREIGN:
                problems.append(f"{rel}:{line}: installs {token!r}, a PyPI project this project does not own")
            elif _normalise(name) == DISTRIBUTION and token.strip("'\"") != f"{DISTRIBUTION}=={version}":
                problems.append(f"{rel}:{line}: {token!r}: pin this project as {DISTRIBUTION}=={version}")
    assert not problems, "\n".join(problems)


def test_the_guard_finds_what_it_guards_against():
    bad = ("run: pip install aifactory\n"
           "RUN python -m pip install --upgrade 'AIFactory>=1' rich\n"
           "uv pip install -e . gpufactory\n")
    names = [(_requirement_name(t), line) for t, line in _install_targets(bad)]
    assert ("aifactory", 1) in names and ("AIFactory", 2) in names and ("rich", 2) in names
    assert ("gpufactory", 3) in names and (None, 3) in names
