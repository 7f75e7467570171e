"""Count fuzz examples across the session (and across xdist workers) and print the totals.

CI must show how many hostile inputs were tried, not only that the tests passed, so every
example is counted through the ``fuzz_tally`` fixture and the terminal summary prints lines
such as::

    fuzz: 21340 examples (20930 in-process, 380 CLI, 30 subprocess), 0 uncaught
    fuzz by command: diff=3500 inventory=2000 plan=3000 preview=150 pxe=2500 render=1200 ...

``tally(kind)`` counts one example run ``kind`` way (``in-process``: the library or
``aifactory.cli.main`` in this process; ``cli``: typer's runner; ``subprocess``: the console
script in its own interpreter); ``command=`` also counts it for that command;
``tally("accepted", command=...)`` counts a run of that command that exited 0.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.fuzz import harness

_COUNTS = pytest.StashKey[Counter]()
KINDS = ("in-process", "cli", "subprocess")


def _counts(config) -> Counter:
    return config.stash.setdefault(_COUNTS, Counter())


@pytest.fixture(scope="session")
def fuzz_tally(pytestconfig):
    counts = _counts(pytestconfig)

    def tally(kind: str, n: int = 1, command: str | None = None) -> None:
        if kind == "accepted":
            counts[f"accepted:{command}"] += n
            return
        counts[kind] += n
        if command:
            counts[f"command:{command}"] += n

    return tally


@pytest.fixture(scope="session", autouse=True)
def _no_stale_canary():
    # The canary's name is per process; one left by an earlier run with the same pid would
    # fail every case, so start without it (and leave none behind).
    harness.clear_canary()
    yield
    harness.clear_canary()


def pytest_sessionfinish(session):
    # On an xdist worker, hand the counts to the controller (see pytest_testnodedown).
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fuzz_counts"] = dict(_counts(session.config))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _counts(node.config).update(getattr(node, "workeroutput", {}).get("fuzz_counts", {}))


def pytest_terminal_summary(terminalreporter, config):
    counts = _counts(config)
    if not counts:
        return
    total = sum(counts[k] for k in KINDS)
    ways = ", ".join(f"{counts[k]} {'CLI' if k == 'cli' else k}" for k in KINDS)
    terminalreporter.write_line(f"fuzz: {total} examples ({ways}), {counts['uncaught']} uncaught")
    commands = sorted((k.split(":", 1)[1], v) for k, v in counts.items() if k.startswith("command:"))
    if commands:
        # "accepted": runs that exited 0, i.e. mutants that got past validation into the command's
        # real work (a fuzzer whose every case is refused by the schema tests little else).
        terminalreporter.write_line("fuzz by command: " + " ".join(
            f"{name}={n}" + (f" ({counts[f'accepted:{name}']} accepted)" if counts[f"accepted:{name}"] else "")
            for name, n in commands))
