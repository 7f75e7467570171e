"""The Redfish dynamic provider against the real sushy-tools emulator: life cycle, faults, secrets, pickling."""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import time

import dill
import pulumi
import pytest
from google.protobuf import json_format
from pulumi.runtime import mocks as pmocks
from pulumi.runtime.sync_await import _sync_await

from aifactory.components.redfish import (RedfishError, RedfishNode, RedfishNodeArgs, RedfishProvider,
                                          RetryPolicy)
from aifactory.errors import AifactoryError
from tests.redfish_emulator import closed_port, emulator, fake_system  # noqa: F401 (fixture)

USER, PASSWORD = "admin", "Planted-BMC-pw-7f3a9c"
MAC = "5c:ff:35:a0:00:01"
FAST = RetryPolicy(attempts=3, backoff_s=0.05, backoff_max_s=0.2, power_timeout_s=1.0, power_attempts=2,
                   poll_interval_s=0.05, connect_timeout_s=1.0, read_timeout_s=5.0)


class Recording(RedfishProvider):
    """Records every pause the retry logic takes (and still takes it)."""

    def __init__(self, policy: RetryPolicy = FAST) -> None:
        super().__init__(policy)
        self.pauses: list[float] = []

    def _sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        time.sleep(seconds)


def props(bmc_url: str, system_id=None, **kw) -> dict:
    base = dict(node="dgx-001", endpoint=bmc_url, system_id=system_id, bmc_username=USER, bmc_password=PASSWORD,
                expected_mac=MAC, verify_tls=True, boot_target="Pxe", boot_mode="UEFI", power_state="On",
                power_off_on_delete=True, reboot_if_on=False)
    base.update(kw)
    return base


@pytest.fixture
def bmc(emulator):  # noqa: F811
    """One BMC with one DGX node behind HTTP basic auth; power changes take effect at the next read."""
    return emulator.start([fake_system("dgx-001", mac=MAC)], credentials=(USER, PASSWORD))


def resets(bmc) -> list[str]:
    return [p for m, p in bmc.requests if m == "POST" and p.endswith("ComputerSystem.Reset")]


def _walk_strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _walk_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk_strings(v)
    else:
        yield str(value)


# -- life cycle ---------------------------------------------------------------------------------

def test_create_sets_one_time_pxe_powers_on_and_waits(emulator):  # noqa: F811
    # Real hardware takes a while to change power state: the emulator applies it 1 to 2 s later.
    bmc = emulator.start([fake_system("dgx-001", mac=MAC)], credentials=(USER, PASSWORD), power_delay_s=2)
    provider = Recording(RetryPolicy(attempts=3, backoff_s=0.05, power_timeout_s=5, poll_interval_s=0.1))
    result = provider.create(props(bmc.url))

    assert bmc.power_state("dgx-001") == "On"
    assert bmc.boot_device("dgx-001") == "Pxe"
    assert result.id == bmc.uuid("dgx-001")
    outs = result.outs
    assert outs["power_state"] == "On"
    assert outs["boot_override"]["target"] == "Pxe" and outs["boot_override"]["mode"] == "UEFI"
    assert outs["system_path"] == bmc.system_path("dgx-001")
    assert outs["inventory"]["macs"] == [MAC]
    assert outs["inventory"]["manufacturer"] == "Sushy Emulator"
    # The boot override went in before the power-on, so the node boots from the network.
    writes = [(m, p) for m, p in bmc.requests if m in ("PATCH", "POST") and "SessionService" not in p]
    assert writes[0][0] == "PATCH" and writes[0][1] == bmc.system_path("dgx-001")
    assert writes[-1][1].endswith("ComputerSystem.Reset")
    assert len(resets(bmc)) == 1
    # The change lands at least 1 s after the request (whole seconds in the fake driver): the
    # provider polled at least once instead of trusting the 204.
    assert provider.pauses and all(p == 0.1 for p in provider.pauses)


def test_read_reports_power_and_inventory_and_drift_is_repaired(bmc):
    provider = RedfishProvider(FAST)
    created = provider.create(props(bmc.url))
    # Someone powers the node off out of band; refresh sees it, diff wants it back On.
    from sushy_tools.emulator import main

    main.app.systems.set_power_state(bmc.uuid("dgx-001"), "ForceOff")
    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.outs["power_state"] == "Off"
    assert read.outs["inventory"]["uuid"] == bmc.uuid("dgx-001")
    diff = provider.diff(created.id, read.outs, props(bmc.url))
    assert diff.changes is True and diff.replaces == []
    updated = provider.update(created.id, read.outs, props(bmc.url))
    assert updated.outs["power_state"] == "On" and bmc.power_state("dgx-001") == "On"


def test_diff_replaces_on_a_different_machine_and_updates_settings_in_place(bmc):
    provider = RedfishProvider(FAST)
    outs = provider.create(props(bmc.url)).outs
    assert provider.diff("x", outs, props(bmc.url)).changes is False
    moved = provider.diff("x", outs, props("https://10.20.1.99"))
    assert moved.changes is True and moved.replaces == ["endpoint"]
    off = provider.diff("x", outs, props(bmc.url, power_state="Off"))
    assert off.changes is True and off.replaces == []
    rotated = provider.diff("x", outs, props(bmc.url, bmc_password="rotated"))
    assert rotated.changes is True and rotated.replaces == []


def test_update_powers_off_without_touching_boot_then_changes_boot(bmc):
    provider = RedfishProvider(FAST)
    outs = provider.create(props(bmc.url)).outs
    patches_before = [r for r in bmc.requests if r[0] == "PATCH"]
    outs = provider.update("x", outs, props(bmc.url, power_state="Off")).outs
    assert outs["power_state"] == "Off" and bmc.power_state("dgx-001") == "Off"
    assert [r for r in bmc.requests if r[0] == "PATCH"] == patches_before  # power only
    outs = provider.update("x", outs, props(bmc.url, power_state="Off", boot_target="Hdd")).outs
    assert bmc.boot_device("dgx-001") == "Hdd" and outs["boot_override"]["target"] == "Hdd"
    assert bmc.power_state("dgx-001") == "Off"


def test_delete_powers_off_unless_configured_not_to(bmc):
    provider = RedfishProvider(FAST)
    created = provider.create(props(bmc.url))
    keep = dict(created.outs, power_off_on_delete=False)
    before = len(bmc.requests)
    provider.delete(created.id, keep)
    assert bmc.power_state("dgx-001") == "On" and len(bmc.requests) == before  # not even contacted
    provider.delete(created.id, created.outs)
    assert bmc.power_state("dgx-001") == "Off"
    assert any(p.endswith("ComputerSystem.Reset") for _, p in bmc.requests[before:])


def test_node_already_on_is_restarted_only_when_asked(emulator):  # noqa: F811
    bmc = emulator.start([fake_system("dgx-001", mac=MAC, power_state="On")], credentials=(USER, PASSWORD))
    provider = RedfishProvider(FAST)
    provider.create(props(bmc.url))
    assert resets(bmc) == []  # already On: the override waits for the next boot
    provider.create(props(bmc.url, reboot_if_on=True))
    assert len(resets(bmc)) == 1 and bmc.power_state("dgx-001") == "On"


def test_check_names_the_bad_field():
    provider = RedfishProvider(FAST)
    bad = provider.check({}, props("ftp://bmc", power_state="Sideways", boot_target="Floppy",
                                    expected_mac="nope", bmc_password=""))
    fields = {f.property: f.reason for f in bad.failures}
    assert set(fields) == {"endpoint", "power_state", "boot_target", "expected_mac", "bmc_password"}
    assert "pulumi config" in fields["bmc_password"].lower()
    creds_in_url = provider.check({}, props("https://admin:pw@10.0.0.5"))
    assert [f.property for f in creds_in_url.failures] == ["endpoint"]
    assert provider.check({}, props("https://10.20.1.11")).failures == []


def test_mac_from_the_spec_must_be_on_the_system(bmc):
    with pytest.raises(RedfishError) as err:
        RedfishProvider(FAST).create(props(bmc.url, expected_mac="5c:ff:35:a0:99:99"))
    msg = str(err.value)
    assert "node dgx-001" in msg and "5c:ff:35:a0:99:99" in msg and MAC in msg
    assert bmc.power_state("dgx-001") == "Off" and resets(bmc) == []  # nothing was touched


def test_several_systems_need_a_system_id(emulator):  # noqa: F811
    bmc = emulator.start([fake_system("a", mac=MAC), fake_system("b", mac="5c:ff:35:a0:00:02")])
    with pytest.raises(RedfishError, match="node dgx-001 .*System count is not exactly one"):
        RedfishProvider(FAST).create(props(bmc.url))
    out = RedfishProvider(FAST).create(props(bmc.url, system_id=bmc.system_path("b"), expected_mac=None))
    assert out.id == bmc.uuid("b") and bmc.power_state("b") == "On" and bmc.power_state("a") == "Off"


# -- faults ----------------------------------------------------------------------------------------

def test_unreachable_bmc_is_retried_with_backoff_then_named():
    provider = Recording()
    url = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    with pytest.raises(RedfishError) as err:
        provider.create(props(url))
    msg = str(err.value)
    assert msg.startswith(f"node dgx-001 (BMC {url}):")
    assert "unreachable" in msg and "after 3 attempts" in msg
    assert provider.pauses == [0.05, 0.1]  # bounded, exponential
    assert time.monotonic() - started < 5


def test_wrong_credentials_fail_at_once_without_leaking_them(bmc):
    provider = Recording()
    with pytest.raises(RedfishError) as err:
        provider.create(props(bmc.url, bmc_password="wrong-" + PASSWORD))
    msg = str(err.value)
    assert "node dgx-001" in msg and "rejected the credentials (HTTP 401)" in msg
    assert provider.pauses == []  # not transient: no retries
    assert PASSWORD not in msg and "wrong-" not in msg
    assert bmc.power_state("dgx-001") == "Off"


def test_transient_5xx_is_retried_and_recovers(bmc):
    provider = Recording()
    bmc.fail_next(2, status=503)
    result = provider.create(props(bmc.url))
    assert result.outs["power_state"] == "On"
    assert len(provider.pauses) >= 1


def test_persistent_5xx_fails_naming_node_and_status(bmc):
    provider = Recording()
    bmc.fail_next(1000, status=500)
    with pytest.raises(RedfishError) as err:
        provider.create(props(bmc.url))
    msg = str(err.value)
    assert "node dgx-001" in msg and "HTTP 500" in msg and "after 3 attempts" in msg
    assert provider.pauses == [0.05, 0.1]


def test_5xx_on_the_power_action_is_not_success(bmc):
    # Everything up to the reset works; the reset itself keeps failing: the create must fail
    # even though the boot override is already set (no partial success).
    provider = Recording()
    from tests import redfish_emulator

    real = bmc.faults.app

    def fail_resets(environ, start_response):
        if environ["PATH_INFO"].endswith("ComputerSystem.Reset"):
            start_response("503 Busy", [("Content-Type", "application/json")])
            return [json.dumps({"error": {"code": "Base.1.0.ServiceTemporarilyUnavailable",
                                          "message": "busy"}}).encode()]
        return real(environ, start_response)

    assert isinstance(bmc.faults, redfish_emulator._Faults)
    bmc.faults.app = fail_resets
    with pytest.raises(RedfishError, match=r"node dgx-001 .*requesting power On failed after 3 attempts.*HTTP 503"):
        provider.create(props(bmc.url))
    assert bmc.boot_device("dgx-001") == "Pxe" and bmc.power_state("dgx-001") == "Off"


def test_power_state_never_reached_times_out_naming_the_node(bmc):
    bmc.swallow_power_actions = True
    provider = Recording()
    started = time.monotonic()
    with pytest.raises(RedfishError) as err:
        provider.create(props(bmc.url))
    elapsed = time.monotonic() - started
    msg = str(err.value)
    assert "node dgx-001" in msg and "never reached On" in msg and "last reported Off" in msg
    assert "2 reset request(s)" in msg
    assert len(resets(bmc)) == FAST.power_attempts
    # Two waits of power_timeout_s plus a backoff: bounded, not forever.
    assert 2 * FAST.power_timeout_s <= elapsed < 2 * FAST.power_timeout_s + 2


def test_delete_falls_back_to_force_off_and_fails_loudly_when_nothing_works(bmc):
    provider = Recording()
    created = provider.create(props(bmc.url))
    bmc.swallow_power_actions = True
    with pytest.raises(RedfishError, match=r"node dgx-001 .*never reached Off.*ForceOff.*GracefulShutdown"):
        provider.delete(created.id, created.outs)
    bodies = [p for m, p in bmc.requests if p.endswith("ComputerSystem.Reset")]
    assert len(bodies) == 1 + 2 * FAST.power_attempts  # the create's On, then both kinds of off


def test_errors_are_aifactory_errors():
    assert issubclass(RedfishError, AifactoryError)


# -- secrets ----------------------------------------------------------------------------------------

def test_credentials_never_reach_logs_errors_or_inventory(bmc, caplog):
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    provider = Recording()
    with caplog.at_level(logging.DEBUG):
        created = provider.create(props(bmc.url))
        provider.read(created.id, created.outs)
        bmc.fail_next(1000)
        with pytest.raises(RedfishError) as err:
            provider.read(created.id, created.outs)
    text = caplog.text + str(err.value)
    assert "HTTP request: GET" in caplog.text  # sushy really logged at DEBUG
    assert PASSWORD not in text and token not in text
    # The password is in the outputs under its own key only (marked secret by the engine and by
    # additional_secret_outputs, see the mocks test), nowhere else.
    outs = {k: v for k, v in created.outs.items() if k not in ("bmc_password", "bmc_username")}
    assert not any(PASSWORD in s for s in _walk_strings(outs))
    # And the BMC did see it, as basic auth: proof the test planted it where it matters.
    assert any(h.get("HTTP_AUTHORIZATION") == f"Basic {token}" for h in bmc.faults.headers)


# -- pickling and the Pulumi runtime -------------------------------------------------------------

def test_provider_pickles_with_dill_and_still_works(bmc):
    provider = RedfishProvider(FAST)
    clone = dill.loads(dill.dumps(provider, recurse=True))
    assert clone.policy == FAST
    # Exactly what the Pulumi runtime does: pulumi.dynamic serializes, the provider host decodes.
    from pulumi.dynamic.dynamic import serialize_provider

    blob = serialize_provider(provider)
    hosted = dill.loads(base64.b64decode(blob))
    assert PASSWORD not in blob and USER not in base64.b64decode(blob).decode("latin-1")
    assert hosted.create(props(bmc.url)).outs["power_state"] == "On"


class _EngineMocks(pmocks.Mocks):
    """Plays the engine for the dynamic resource: decode ``__provider`` as the provider host does
    and call its ``create`` against the emulator; other resources echo their inputs."""

    def __init__(self) -> None:
        self.created: list[dict] = []

    def new_resource(self, args: pmocks.MockResourceArgs):
        if args.typ != "pulumi-python:dynamic/redfish:Node":
            return f"{args.name}-id", dict(args.inputs)
        from pulumi.runtime import rpc

        # The engine strips secret envelopes before calling a provider that does not accept
        # secrets (the dynamic provider host answers acceptSecrets=False).
        inputs = {k: rpc.unwrap_rpc_secret(v) for k, v in args.inputs.items()}
        blob = inputs.pop("__provider")
        provider = dill.loads(base64.b64decode(blob))
        result = provider.create(inputs)
        self.created.append(result.outs)
        return result.id, dict(result.outs, __provider=blob)

    def call(self, args):
        raise NotImplementedError(args.token)


class _RawMonitor(pmocks.MockMonitor):
    def __init__(self, mocks) -> None:
        super().__init__(mocks)
        self.requests = []

    def RegisterResource(self, request):  # noqa: N802 - gRPC name
        self.requests.append(request)
        return super().RegisterResource(request)


def _in_mocks(fn):
    def run():
        mocks = _EngineMocks()
        monitor = _RawMonitor(mocks)
        pmocks.set_mocks(mocks, project="onprem", stack="test", preview=False, monitor=monitor)
        return fn(), mocks, monitor

    return contextvars.Context().run(run)


def test_resource_under_pulumi_mocks_round_trips_the_provider_and_keeps_secrets(bmc):
    def program():
        node = RedfishNode("dgx-001", RedfishNodeArgs(
            node="dgx-001", endpoint=bmc.url, bmc_username=pulumi.Output.secret(USER),
            bmc_password=pulumi.Output.secret(PASSWORD), expected_mac=MAC), RedfishProvider(FAST))
        return _sync_await(pulumi.Output.all(node.id, node.power_state, node.inventory).future())

    (rid, power, inventory), mocks, monitor = _in_mocks(program)
    assert rid == bmc.uuid("dgx-001") and power == "On" and inventory["macs"] == [MAC]
    assert bmc.power_state("dgx-001") == "On" and len(mocks.created) == 1
    # Secretness of outputs is the engine's job (the mocks do not apply it): it follows the
    # secret inputs of the same name and the resource's additional_secret_outputs.
    (request,) = [r for r in monitor.requests if r.type == "pulumi-python:dynamic/redfish:Node"]
    assert set(request.additionalSecretOutputs) >= {"bmc_username", "bmc_password"}
    # On the wire to the engine the password travels only inside secret envelopes, which the
    # engine encrypts in the state file and masks in plans: find every occurrence.
    wire = json_format.MessageToDict(request.object)
    from pulumi.runtime import rpc

    def occurrences(value, inside_secret=False):
        if isinstance(value, dict):
            secret = rpc.is_rpc_secret(value)
            return sum(occurrences(v, inside_secret or secret) for v in value.values())
        if isinstance(value, list):
            return sum(occurrences(v, inside_secret) for v in value)
        return [0, 1][PASSWORD in str(value)] * (1 if not inside_secret else 0)

    assert PASSWORD in json.dumps(wire)  # it is there, so the next check means something
    assert occurrences(wire) == 0


def test_provider_is_serialized_once_per_object_and_as_the_sdk_does():
    from pulumi.dynamic.dynamic import serialize_provider

    from aifactory.components import redfish

    provider = RedfishProvider(FAST)

    def text(out):
        return _sync_await(out.future())

    first = contextvars.Context().run(lambda: text(redfish.serialized_provider(provider)))
    assert first == serialize_provider(provider)
    assert redfish._SERIALIZED[provider] is redfish._SERIALIZED[provider]
    # Many serializations in one process used to nest pickle wrappers until RecursionError.
    for _ in range(600):
        redfish.serialized_provider(provider)
    assert dill.loads(base64.b64decode(first)).policy == FAST
