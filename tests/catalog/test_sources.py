"""Every packaged catalog fact says where it came from and when it was last read there."""

from __future__ import annotations

import re

import pytest

from aifactory import catalog as cat

# "(checked YYYY-MM-DD)" when the fact was read in its source that day, "as catalogued
# YYYY-MM-DD, not re-checked" when it was carried over (see data/v1/README.md).
DATE = re.compile(r"\b20\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])\b")


@pytest.mark.parametrize("name", sorted(cat.TABLES))
def test_every_packaged_row_has_a_dated_source(name):
    rows = cat.packaged(name)
    assert rows, name
    undated = [f"{name}.csv:{line} {row.source[:80]!r}"
               for line, row in enumerate(rows, start=2)
               if not row.source.strip() or not DATE.search(row.source)]
    assert not undated, "sources without a YYYY-MM-DD date:\n" + "\n".join(undated)
