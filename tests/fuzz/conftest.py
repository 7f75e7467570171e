"""Count fuzz examples across the session (and across xdist workers) and print the total.

CI must show how many hostile specs were tried, not only that the tests passed, so every
example is counted through the ``fuzz_tally`` fixture and the terminal summary prints one
line such as ``fuzz: 5210 examples (5100 in-process, 110 CLI), 0 uncaught``.
"""

from __future__ import annotations

from collections import Counter

import pytest

_COUNTS = pytest.StashKey[Counter]()


def _counts(config) -> Counter:
    return config.stash.setdefault(_COUNTS, Counter())


@pytest.fixture(scope="session")
def fuzz_tally(pytestconfig):
    counts = _counts(pytestconfig)

    def tally(kind: str, n: int = 1) -> None:
        counts[kind] += n

    return tally


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
    inproc, cli, uncaught = counts["in-process"], counts["cli"], counts["uncaught"]
    terminalreporter.write_line(
        f"fuzz: {inproc + cli} examples ({inproc} in-process, {cli} CLI), {uncaught} uncaught")
