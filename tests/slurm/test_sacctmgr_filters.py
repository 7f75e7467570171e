"""The slurm_accounting role's sacctmgr filters: what they read back, and only the difference written.

The shown text is what ``sacctmgr -n -P show ...`` prints (src/sacctmgr/common.c, parse_time.c):
``|``-separated, an unset limit empty, MaxWall as ``[days-]hours:minutes:seconds``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "playbooks" / "roles" / "slurm_accounting"
_spec = importlib.util.spec_from_file_location("sacctmgr_filters", ROLE / "filter_plugins" / "sacctmgr.py")
sacctmgr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sacctmgr)

SHOWN = "normal|0|||\n"  # Slurm's own QoS, no limits
I = ["sacctmgr", "-i"]


def qos(name="high", priority=100, max_wall="2d", max_jobs_per_user=4, max_gpus_per_user=16):
    return {"name": name, "priority": priority, "max_wall": max_wall,
            "max_jobs_per_user": max_jobs_per_user, "max_gpus_per_user": max_gpus_per_user}


def test_the_role_reads_the_fields_the_filter_parses():
    role_vars = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    assert role_vars["_slurm_accounting_qos_format"] == sacctmgr.QOS_FORMAT
    filters = sacctmgr.FilterModule().filters()
    tasks = "".join(p.read_text() for p in (ROLE / "tasks").glob("*.yml"))
    assert all(name in tasks for name in filters)


def test_a_missing_qos_is_added_with_its_set_limits_only():
    assert sacctmgr.qos_commands(SHOWN, [qos(), qos("debug", 0, None, None, None)]) == [
        I + ["add", "qos", "Name=high", "Priority=100", "MaxWall=2880", "MaxJobsPerUser=4",
             "MaxTRESPerUser=gres/gpu=16"],
        I + ["add", "qos", "Name=debug"],
    ]


@pytest.mark.parametrize("wall", ["2d", "48h", "2880", 2880, "2-00:00:00", "48:00:00", "2-0", "2879:01"])
def test_a_qos_as_sacctmgr_shows_it_is_left_alone(wall):
    shown = SHOWN + "high|100|2-00:00:00|4|cpu=64,gres/gpu=16\n"
    assert sacctmgr.qos_commands(shown, [qos(max_wall=wall)]) == []


def test_only_the_settings_that_differ_are_modified_and_null_clears_a_limit():
    shown = "high|10|1-00:00:00|4|cpu=64,gres/gpu=8\n"
    assert sacctmgr.qos_commands(shown, [qos(max_jobs_per_user=None)]) == [
        I + ["modify", "qos", "where", "Name=high", "set", "Priority=100", "MaxWall=2880", "MaxJobsPerUser=-1",
             "MaxTRESPerUser=gres/gpu=16"]]
    # Priority null is Slurm's 0; clearing a GPU limit leaves the cpu limit alone.
    assert sacctmgr.qos_commands(shown, [qos(priority=None, max_wall="1d", max_jobs_per_user=4,
                                             max_gpus_per_user=None)]) == [
        I + ["modify", "qos", "where", "Name=high", "set", "Priority=0", "MaxTRESPerUser=gres/gpu=-1"]]


def test_names_compare_as_slurm_stores_them():
    assert sacctmgr.qos_commands("high|100|2-00:00:00|4|gres/gpu=16\n", [qos(name="HIGH")]) == []


@pytest.mark.parametrize("bad, says", [
    (qos(name="a,b"), "is not a name"),
    (qos(name="x priority=9"), "is not a name"),
    (qos(name=None), "is not a name"),
    (qos(max_wall="1:30:00:00"), "is not a duration"),
    (qos(max_wall="0m"), "between 1 and"),
    (qos(max_jobs_per_user=-3), "between 1 and"),
    (qos(max_gpus_per_user="8; reboot"), "whole number"),
    (qos(priority=True), "whole number"),
    ({**qos(), "max_cpus": 4}, "unknown settings max_cpus"),
])
def test_values_sacctmgr_would_misread_are_refused(bad, says):
    with pytest.raises(AnsibleFilterError, match=says):
        sacctmgr.qos_commands("", [bad])


def test_a_qos_listed_twice_is_refused():
    with pytest.raises(AnsibleFilterError, match="listed twice"):
        sacctmgr.qos_commands("", [qos(), qos(name="High")])


def test_output_that_is_not_the_five_fields_is_refused():
    with pytest.raises(AnsibleFilterError, match="not the five fields"):
        sacctmgr.qos_commands("normal|0\n", [])


@pytest.mark.parametrize("text, wanted", [
    ("90", 90), ("90m", 90), ("12h", 720), ("7d", 10080), ("1:30", 2), ("01:30:00", 90),
    ("3-12", 5040), ("3-12:30", 5070), ("3-12:30:01", 5071), ("", None), (None, None), (45, 45),
])
def test_slurm_time_formats_in_minutes(text, wanted):
    assert sacctmgr.minutes(text) == wanted


def test_clusters_are_added_where_missing():
    assert sacctmgr.cluster_commands("c1\n", ["c1", "c2", "", "C2"]) == [I + ["add", "cluster", "Name=c2"]]
    assert sacctmgr.cluster_commands("c1\nc2\n", ["c1", "c2"]) == []


def test_a_federation_is_added_then_kept_to_exactly_its_clusters():
    fed = {"name": "fed", "clusters": ["c1", "c2"]}
    assert sacctmgr.federation_commands("", fed) == [I + ["add", "federation", "Name=fed", "Clusters=c1,c2"]]
    assert sacctmgr.federation_commands("fed|c2\nfed|c1\nother|c3\n", fed) == []
    # As sacctmgr 22.05 prints it: every line after the first ends in one more '|'.
    assert sacctmgr.federation_commands("fed|c1\nfed|c2|\n", fed) == []
    assert sacctmgr.federation_commands("fed|c1\nfed|c3\n", fed) == [
        I + ["modify", "federation", "where", "Name=fed", "set", "Clusters=c1,c2"]]
    assert sacctmgr.federation_commands("fed|\n", fed) == [
        I + ["modify", "federation", "where", "Name=fed", "set", "Clusters=c1,c2"]]
    assert sacctmgr.federation_commands("fed|c1\n", None) == []


@pytest.mark.parametrize("bad, says", [
    ({"name": "fed", "clusters": []}, "lists no clusters"),
    ({"name": "fed", "clusters": ["c1", "c1"]}, "twice"),
    ({"name": "fed", "clusters": ["c1,c2"]}, "is not a name"),
    ({"name": "f d", "clusters": ["c1"]}, "is not a name"),
    ({"name": "fed", "clusters": ["c1"], "state": "active"}, "mapping of name and clusters"),
])
def test_a_federation_sacctmgr_would_misread_is_refused(bad, says):
    with pytest.raises(AnsibleFilterError, match=says):
        sacctmgr.federation_commands("", bad)
