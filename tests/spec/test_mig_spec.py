"""`mig:` is untrusted input: every hostile value the fuzzing aims at it is refused when the spec
is read or checked, before anything reaches nvidia-smi, a unit file or slurm.conf."""

from __future__ import annotations

import copy

import pytest
import yaml

from aifactory.errors import SpecError
from aifactory.plan import validate
from aifactory.spec import load_string
from tests.fuzz.hostile import TARGETS

BASE = {"name": "t", "sites": [{"name": "hall", "power_mw": 2}],
        "pools": [{"name": "gpu", "site": "hall", "provider": "onprem", "system": "dgx-h100", "nodes": 2}]}


@pytest.mark.parametrize("value", TARGETS["mig"], ids=[str(i) for i in range(len(TARGETS["mig"]))])
def test_hostile_mig_values_are_refused(value):
    spec = copy.deepcopy(BASE)
    spec["pools"][0]["mig"] = copy.deepcopy(value)
    text = yaml.safe_dump(spec, allow_unicode=True)
    try:
        result = validate(load_string(text, "f.yaml"))
    except SpecError as exc:
        assert all(f.path[:3] == ("pools", 0, "mig") for f in exc.findings), [f.render() for f in exc.findings]
        return
    assert result.errors and result.plan is None, value
    assert {f.check for f in result.errors} == {"mig-profiles"}
