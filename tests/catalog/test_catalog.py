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
