"""The catalog's own integrity: every fact sourced, references resolve, generations covered."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from aifactory import catalog as cat
from aifactory.catalog import CatalogError, load, version_key

DATA = Path(cat.__file__).parent / "data" / cat.SCHEMA_VERSION


def test_every_row_of_every_table_has_a_source():
    tables = sorted(DATA.glob("*.csv"))
    assert len(tables) >= 8
    for table in tables:
        with table.open() as fh:
            rows = list(csv.DictReader(fh))
        assert rows, table.name
        assert all(r["source"].strip() for r in rows), table.name


def test_generations_covered():
    gpus = load().gpus
    for gpu in ("a100-80", "h100-sxm", "h200-sxm", "b200", "gb200", "b300", "gb300", "l40s", "mi300x"):
        assert gpu in gpus


def test_cloud_instance_types_per_provider():
    systems = load().systems
    for provider in ("aws", "gcp", "azure", "oci"):
        assert sum(s.provider == provider for s in systems.values()) >= 4
    assert systems["p5.48xlarge"].compute_nics == 32
    assert systems["p5en.48xlarge"].compute_nics == 16
    assert systems["p6-b200.48xlarge"].compute_nics == 8
    assert systems["a3-megagpu-8g"].mtu == 8244 and systems["a3-megagpu-8g"].fabrics[0] == "gpudirect-tcpxo"


def test_cuda_minimum_drivers_match_release_notes():
    c = load().cuda
    assert c["13.0"].min_driver == "580.65.06" and c["12.8"].min_driver == "570.26"
    assert version_key(c["13.1"].compat_min_driver) >= (580,)
    assert c["13.2"].min_driver == "595.45.04" and c["13.3"].min_driver == "610.43.02"


def test_blackwell_and_gh200_need_open_modules():
    gpus = load().gpus
    assert all(g.open_modules_required for g in gpus.values() if g.architecture == "blackwell")
    assert gpus["gh200"].open_modules_required and not gpus["h100-sxm"].open_modules_required


def test_bad_cell_is_a_catalog_error():
    with pytest.raises(CatalogError, match="expected int"):
        cat._convert("ten", int, "gpus.csv:2: tdp_w")
    with pytest.raises(CatalogError, match="true/false"):
        cat._convert("yes", bool, "x")


def test_suggest_finds_close_ids():
    c = load()
    assert c.suggest(c.systems, "dgx-h10") == "dgx-h100"
    assert c.suggest(c.systems, "standard_nd96isr_h100_v5") == "Standard_ND96isr_H100_v5"


REFRESHED = "2026-12-03"  # the day the driver and CUDA tables were last re-checked (see each row's source)


def test_branch_status_agrees_with_its_end_of_life():
    """A branch past its end of life is marked so, and a supported one is not past it."""
    for b in load().branches.values():
        assert b.kind in ("LTSB", "PB", "NFB") and b.status in ("supported", "eol"), b
        if b.status == "supported":
            assert b.eol is None or b.eol >= REFRESHED, b
        elif b.eol is not None:
            assert b.eol < REFRESHED, b


def test_newest_supported_ltsb_has_a_release_and_a_catalogued_cuda():
    c = load()
    ltsb = max((b for b in c.branches.values() if b.kind == "LTSB" and b.status == "supported"),
               key=lambda b: int(b.branch))
    assert ltsb.latest and ltsb.default_cuda in c.cuda
    assert version_key(ltsb.latest) >= version_key(c.cuda[ltsb.default_cuda].min_driver)


def test_driver_and_hardware_rows_carry_a_dated_source():
    for table in ("driver_branches", "cuda", "gpus", "architectures"):
        with (DATA / f"{table}.csv").open() as fh:
            for row in csv.DictReader(fh):
                assert "(checked 20" in row["source"] or "as catalogued 20" in row["source"], (table, row)
