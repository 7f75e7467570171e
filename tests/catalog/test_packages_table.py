"""The packages table: one row per component, OS family and branch range, never two for a branch."""

from __future__ import annotations

import pytest

from aifactory import catalog as cat
from aifactory.catalog import CatalogError


def _row(**cells) -> tuple:
    base = {"component": "fabric_manager", "family": "debian", "first_branch": "", "last_branch": "",
            "name": "nvidia-fabricmanager", "version_pin": "=", "source": "test"}
    base.update(cells)
    return ("packages", tuple((c, base[c]) for c in cat.TABLES["packages"].columns))


def test_packaged_rows_load_and_do_not_overlap():
    rows = cat.load().rows["packages"]
    assert len(rows) >= 20
    cat.check_package_ranges(rows)  # the loader ran it too; no error
    assert {r.family for r in rows} == set(cat.PACKAGE_FAMILIES)


@pytest.mark.parametrize("first, last", [("575", ""), ("", "580"), ("585", "590"), ("", "")])
def test_overlapping_ranges_are_refused(first, last):
    """The packaged fabric_manager/debian rows are ..579 and 580..: any of these overlaps one
    (a row whose first_branch matches a packaged row replaces it instead)."""
    with pytest.raises(CatalogError, match="overlap"):
        cat.Catalog((_row(first_branch=first, last_branch=last, name="acme-fm"),))


def test_a_row_with_the_same_key_replaces_the_packaged_one():
    catalog = cat.Catalog((_row(first_branch="580", name="acme-fm"),))
    names = {r.name for r in catalog.rows["packages"] if r.component == "fabric_manager" and r.family == "debian"}
    assert names == {"nvidia-fabricmanager-{branch}", "acme-fm"}


def test_a_range_that_ends_before_it_starts_is_refused():
    with pytest.raises(CatalogError, match="before first_branch"):
        cat.check_package_ranges([cat.parse_row(cat.TABLES["packages"], dict(_row(
            component="nvlsm", first_branch="600", last_branch="590")[1]), "x")])


@pytest.mark.parametrize("family, pin", [("debian", "-"), ("debian", "module"), ("redhat", "=")])
def test_a_pin_of_the_other_family_is_refused(family, pin):
    with pytest.raises(CatalogError, match="pin"):
        cat.Catalog((_row(component="nvlsm", family=family, first_branch="900", version_pin=pin),))


@pytest.mark.parametrize("name", ["nvidia-fm-{version}", "{branch", "x;rm -rf", "-o", "Nvidia-FM", "x{{branch}}",
                                  "a b", "x" * 65])
def test_a_name_template_holds_only_package_characters_and_known_placeholders(name):
    with pytest.raises(CatalogError, match="name"):
        cat.parse_row(cat.TABLES["packages"], dict(_row(name=name)[1]), "packages.csv:2")


@pytest.mark.parametrize("column, value", [("component", "kernel"), ("family", "suse"), ("version_pin", ">=")])
def test_components_families_and_pins_are_closed_lists(column, value):
    with pytest.raises(CatalogError, match=column):
        cat.parse_row(cat.TABLES["packages"], dict(_row(**{column: value})[1]), "packages.csv:2")


@pytest.mark.parametrize("component, pin", [("nvlsm", "module"), ("driver_open_stream", "-")])
def test_module_is_the_pin_of_module_streams_only(component, pin):
    with pytest.raises(CatalogError, match="module"):
        cat.Catalog((_row(component=component, family="redhat", first_branch="900", version_pin=pin),))
