"""Stack config read by the program and the on-prem component: confined files, typed values,
bounded retry settings, and BMC credentials that no message, repr or log ever shows."""

from __future__ import annotations

import math
import os

import pytest
import requests

from aifactory.components import program
from aifactory.components.onprem import BmcSettings
from aifactory.components.redfish import (RedfishError, RedfishNodeArgs, RedfishProvider, RetryPolicy, redact_url,
                                          scrub)
from aifactory.errors import AifactoryError
from tests.redfish_emulator import closed_port

PLANTED = "PLANTED-bmc-pw-0b7e"
LAB = """
name: lab1
sites: [{name: lab, power_mw: 0.05}]
pools: [{name: gpu, site: lab, provider: lab, system: hgx-h100, nodes: 2}]
"""
FAST = RetryPolicy(attempts=2, backoff_s=0.01, backoff_max_s=0.02, power_timeout_s=1.0, poll_interval_s=0.01,
                   connect_timeout_s=1.0, read_timeout_s=2.0)


def props(endpoint: str, **kw) -> dict:
    base = dict(node="dgx-001", endpoint=endpoint, bmc_username="admin", bmc_password=PLANTED,
                expected_mac="5c:ff:35:a0:00:01", verify_tls=True, boot_target="Pxe", boot_mode="UEFI",
                power_state="On", power_off_on_delete=True, reboot_if_on=False)
    base.update(kw)
    return base


# -- confined files -------------------------------------------------------------------------

def test_confined_file_accepts_only_regular_files_inside(tmp_path):
    (tmp_path / "ok.yaml").write_text("x")
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "out").symlink_to("/etc/passwd")
    assert program.confined_file(tmp_path, "ok.yaml", "w") == (tmp_path / "ok.yaml").resolve()
    for rel, fragment in [("d", "not a regular file"), ("fifo", "not a regular file"), ("loop", "no such file"),
                          ("out", "symlink"), ("missing", "no such file"), ("/etc/passwd", "relative path"),
                          ("../x", "relative path"), ("a/./b", "relative path"), (None, "relative path"),
                          ("x\x00y", "relative path")]:
        with pytest.raises(AifactoryError, match=f"^w: .*{fragment}"):
            program.confined_file(tmp_path, rel, "w")


# -- reservations ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [{"gpu": "../x"}, {"gpu": "a b"}, {"gpu": 5}, {"gpu": None}, ["gpu"], "x", "",
                                   {"GPU": "cr-1"}, {"gpu": "cr-1\n"}])
def test_reservations_are_checked_by_load_itself(tmp_path, value):
    (tmp_path / "factory.yaml").write_text(LAB)
    with pytest.raises(AifactoryError, match="^config aifactory:reservations: "):
        program.load(tmp_path / "factory.yaml", value)


def test_valid_reservation_is_applied_through_the_model(tmp_path):
    (tmp_path / "factory.yaml").write_text(LAB)
    plan = program.load(tmp_path / "factory.yaml", '{"gpu": "projects/p/reservations/r-1"}')
    assert plan.pools[0].reservation == "projects/p/reservations/r-1"
    assert program.reservations_from(None) == {} and program.reservations_from({}) == {}


# -- retry policy ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("attempts", True, "must be a whole number"), ("attempts", 2.0, "must be a whole number"),
    ("attempts", "5", "must be a whole number"), ("attempts", 0, "must be positive"),
    ("attempts", 51, "must be at most 50"), ("backoff_s", math.nan, "must be positive"),
    ("power_timeout_s", math.inf, "must be positive"), ("read_timeout_s", -1.0, "must be positive"),
    ("poll_interval_s", 10 ** 9, "must be at most 600"), ("backoff_s", None, "must be a number"),
])
def test_retry_policy_is_typed_and_bounded(field, value, message):
    with pytest.raises(ValueError) as err:
        RetryPolicy(**{field: value})
    assert str(err.value) == f"RetryPolicy.{field} {message}"


# -- BMC credentials ------------------------------------------------------------------------

def test_settings_and_args_never_show_credentials():
    assert PLANTED not in repr(BmcSettings(username=PLANTED))
    assert PLANTED not in repr(RedfishNodeArgs(node="n", endpoint="https://b", bmc_username=PLANTED,
                                               bmc_password=PLANTED))


@pytest.mark.parametrize("endpoint", [f"ftp://admin:{PLANTED}@10.0.0.5", f"https://admin:{PLANTED}@10.0.0.5",
                                      f"https://admin:{PLANTED}@", f"https://10.0.0.5:{PLANTED}",
                                      f"https://admin:pa/{PLANTED}@10.0.0.5", f"https://10.0.0.5\n{PLANTED}"])
def test_check_never_echoes_an_endpoint(endpoint):
    result = RedfishProvider(FAST).check({}, props(endpoint))
    reasons = [f.reason for f in result.failures]
    assert [f.property for f in result.failures] == ["endpoint"], reasons
    assert not any(PLANTED in r for r in reasons)


@pytest.mark.parametrize("verify", [5, "", "ca\n.pem", ["x"]])
def test_check_types_verify_tls(verify):
    result = RedfishProvider(FAST).check({}, props("https://10.0.0.5", verify_tls=verify))
    assert [f.property for f in result.failures] == ["verify_tls"]


def test_unreachable_bmc_error_hides_credentials_in_the_url():
    port = closed_port()
    with pytest.raises(RedfishError) as err:
        RedfishProvider(FAST).create(props(f"http://admin:{PLANTED}@127.0.0.1:{port}"))
    message = str(err.value)
    assert message.startswith(f"node dgx-001 (BMC http://***@127.0.0.1:{port}):") and "unreachable" in message
    assert PLANTED not in message and "\n" not in message


def test_errors_outside_sushy_are_one_line_without_secrets(monkeypatch, tmp_path):
    """A failure that is not a sushy error (here one that quotes what was sent) is not retried,
    and is reported without the password."""
    import sushy

    def boom(*args, **kwargs):
        raise requests.exceptions.InvalidHeader(f"bad header Authorization: admin {PLANTED}\nsecond line")

    monkeypatch.setattr(sushy, "Sushy", boom)
    with pytest.raises(RedfishError) as err:
        RedfishProvider(FAST).create(props("https://10.0.0.5"))
    assert "InvalidHeader" in str(err.value) and PLANTED not in str(err.value) and "\n" not in str(err.value)


def test_a_ca_bundle_that_is_not_one_is_a_redfish_error(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text(f"{PLANTED}\n")
    port = closed_port()
    with pytest.raises(RedfishError) as err:
        RedfishProvider(FAST).create(props(f"https://127.0.0.1:{port}", verify_tls=str(bundle)))
    assert PLANTED not in str(err.value)


def test_redact_and_scrub():
    assert redact_url("https://10.0.0.5") == "https://10.0.0.5"
    assert redact_url(f"https://a:{PLANTED}@h/p?t={PLANTED}#f") == "https://***@h/p"
    assert redact_url(f"https://a:x@{PLANTED}@h") == "https://***@h"
    assert redact_url("x\ny") == "<invalid URL>" and redact_url(None) == "<invalid URL>"
    assert scrub(f"GET https://a:{PLANTED}@h failed\n{PLANTED}", (PLANTED,)) == "GET https://***@h failed ***"
