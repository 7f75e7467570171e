"""Bare-metal node control through the node's BMC: a Pulumi dynamic provider on sushy.

One :class:`RedfishNode` resource per node. Its life cycle maps onto Redfish like this:

* create: connect to the BMC (verifies address, TLS and credentials), find the ComputerSystem,
  check the boot MAC when the spec gives one (a wrong BMC address in the spec must not
  re-image somebody else's machine), set a one-time boot override (PXE by default), power on
  and wait until the BMC reports the power state;
* read (``pulumi refresh``): power state, boot override and a hardware inventory;
* diff/update: boot and power settings change in place; a different BMC or system replaces;
* delete: power off (graceful, then forced), unless ``power_off_on_delete`` is false.

Faults (unreachable BMC, HTTP 5xx, timeouts) are retried a bounded number of times with
exponential backoff; wrong credentials or a missing system fail at once. Every error names the
node and the BMC and says what went wrong. Nothing is reported as created unless the node
really reached the requested state.

Credentials arrive as Pulumi secrets. They are returned in the outputs only under their own
input keys so that ``delete`` and ``refresh`` (which only see the previous outputs) can reach
the BMC; the engine marks an output secret when the input of the same name was secret, and
:class:`RedfishNode` lists both keys in ``additional_secret_outputs`` as well. They never
appear in error messages, inventory or logs written here.

The provider object is pickled by the Pulumi runtime (dill) into the state of every resource,
so it holds only plain settings (:class:`RetryPolicy`) and no clients, sessions or loggers.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import urlparse

import pulumi
import pulumi.dynamic as dyn
from pulumi.dynamic.dynamic import PROVIDER_KEY
import requests
import sushy
from sushy import exceptions as sushy_exc

from ..errors import AifactoryError

T = TypeVar("T")

POWER_STATES = ("On", "Off")
BOOT_TARGETS = ("Pxe", "UefiHttp", "Hdd", "None")
BOOT_MODES = ("UEFI", "Legacy")
SECRET_KEYS = ("bmc_username", "bmc_password")

# Inputs that identify the machine: changing them means a different node, so replace.
_REPLACE_KEYS = ("node", "endpoint", "system_id")
# Inputs applied in place by update().
_UPDATE_KEYS = ("boot_target", "boot_mode", "power_state", "power_off_on_delete", "reboot_if_on",
                "expected_mac", "verify_tls", "bmc_username", "bmc_password")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# user:password@ in any URL of a message (sushy and requests quote the URLs they tried).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)\S*@")
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f\x85\u2028\u2029]*")


def redact_url(url: Any) -> str:
    """``url`` as a message may show it: nothing before an ``@`` (user info, however it is
    spelled), no query or fragment, one line of bounded length."""
    scheme, sep, rest = str(url).partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,20}", scheme):
        return "<invalid URL>"
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    rest = rest.split("?")[0].split("#")[0]
    if not _PRINTABLE.fullmatch(rest) or len(rest) > 300:
        return "<invalid URL>"
    return f"{scheme}://{rest}"


def scrub(text: str, secrets: tuple = ()) -> str:
    """``text`` without credentials: URL user info and every secret value replaced by ``***``."""
    text = _URL_USERINFO.sub(r"\1***@", str(text))
    for secret in secrets:
        if isinstance(secret, str) and secret:
            text = text.replace(secret, "***")
    return " ".join(text.split())  # one line: a BMC's answer may hold line breaks


class RedfishError(AifactoryError):
    """A BMC operation failed for good; the message names the node, the BMC and the cause."""

    def __init__(self, node: str, endpoint: str, cause: str) -> None:
        endpoint = redact_url(endpoint)
        self.node, self.endpoint, self.cause = node, endpoint, cause
        super().__init__(f"node {node} (BMC {endpoint}): {cause}")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait on a BMC. Defaults suit real BMCs; tests pass short values."""

    attempts: int = 5  # tries per BMC request when the fault is transient (unreachable, 5xx, timeout)
    backoff_s: float = 2.0  # first pause between tries; doubles every try
    backoff_max_s: float = 30.0
    power_timeout_s: float = 300.0  # after a reset request, how long the power state may take
    power_attempts: int = 2  # reset requests before giving up on a power state
    poll_interval_s: float = 5.0
    connect_timeout_s: float = 10.0  # TCP connect to the BMC: fail fast when it is unreachable
    read_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        # The values may come from a stack config: a number of the right kind, positive and
        # bounded, so that no setting can make `pulumi up` wait for ever. Never echoed.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            whole = f.name.endswith("attempts")
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                raise ValueError(f"RetryPolicy.{f.name} must be {'a whole number' if whole else 'a number'}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"RetryPolicy.{f.name} must be positive")
            if value > _RETRY_LIMITS[f.name]:
                raise ValueError(f"RetryPolicy.{f.name} must be at most {_RETRY_LIMITS[f.name]}")


# Upper bounds of RetryPolicy: generous for real BMCs, finite for a hostile config.
_RETRY_LIMITS = {"attempts": 50, "power_attempts": 10, "backoff_s": 600, "backoff_max_s": 3600,
                 "power_timeout_s": 3600, "poll_interval_s": 600, "connect_timeout_s": 600, "read_timeout_s": 3600}


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, (sushy_exc.ConnectionError, sushy_exc.ServerSideError))


def _describe(exc: BaseException) -> str:
    """One line about a sushy error; never includes request headers (where credentials live).
    :meth:`_Session.fail` scrubs URLs with user info and the secrets themselves on top."""
    if isinstance(exc, sushy_exc.AccessError):
        return (f"the BMC rejected the credentials (HTTP {exc.status_code}); "
                "check the BMC user name and password (Pulumi config secrets)")
    if isinstance(exc, sushy_exc.ConnectionError):
        return f"BMC unreachable: {exc}"
    if isinstance(exc, sushy_exc.ServerSideError):
        return f"BMC server error (HTTP {exc.status_code}): {exc.detail or exc.code}"
    if isinstance(exc, sushy_exc.ResourceNotFoundError):
        return f"resource not found on the BMC (HTTP 404): {exc}"
    if isinstance(exc, sushy_exc.HTTPError):
        return f"BMC refused the request (HTTP {exc.status_code}): {exc.detail or exc}"
    return f"{type(exc).__name__}: {exc}"


def _value(enum_or_str: Any) -> Optional[str]:
    return None if enum_or_str is None else getattr(enum_or_str, "value", enum_or_str)


class _Session:
    """One node, one operation: the retry loop and the sushy client. Never pickled or stored."""

    def __init__(self, props: dict, policy: RetryPolicy, sleep: Callable[[float], None]) -> None:
        self.node = str(props["node"])
        self.endpoint = str(props["endpoint"])
        self.props = props
        self.policy = policy
        self.sleep = sleep
        self._client: Optional[sushy.Sushy] = None

    def fail(self, cause: str) -> RedfishError:
        secrets = tuple(self.props.get(k) for k in SECRET_KEYS)
        return RedfishError(self.node, self.endpoint, scrub(cause, secrets))

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``; retry transient faults with exponential backoff; raise RedfishError."""
        p = self.policy
        delay = p.backoff_s
        started = time.monotonic()
        last: Optional[BaseException] = None
        for attempt in range(1, p.attempts + 1):
            try:
                return fn()
            except sushy_exc.SushyError as exc:
                if not _is_transient(exc):
                    raise self.fail(f"{what}: {_describe(exc)}") from None
                last = exc
                if isinstance(exc, sushy_exc.ConnectionError):
                    self._client = None  # reconnect: the BMC may have restarted
            except (requests.RequestException, OSError, ValueError) as exc:
                # Outside sushy's own errors (a CA bundle that is not one, a malformed URL): not
                # transient, and the message may quote what was sent (fail() scrubs it).
                raise self.fail(f"{what}: {type(exc).__name__}: {exc}") from None
            if attempt < p.attempts:
                self.sleep(min(delay, p.backoff_max_s))
                delay *= 2
        elapsed = time.monotonic() - started
        raise self.fail(f"{what} failed after {p.attempts} attempts in {elapsed:.1f}s: {_describe(last)}")

    def client(self) -> sushy.Sushy:
        if self._client is None:
            p = self.policy
            verify = self.props.get("verify_tls", True)
            self._client = sushy.Sushy(
                self.endpoint,
                username=self.props.get("bmc_username"),
                password=self.props.get("bmc_password"),
                verify=verify,
                # sushy retries on its own too; keep its share minimal so that RetryPolicy is the
                # one bound that counts (1 = a single connection try, one immediate GET retry).
                server_side_retries=1,
                server_side_retries_delay=0,
                read_timeout=p.read_timeout_s,
                connect_timeout=p.connect_timeout_s,
            )
        return self._client

    def system(self):
        system_id = self.props.get("system_id")

        def get():
            return self.client().get_system(system_id or None)

        return self.call("reading the ComputerSystem", get)

    def refresh(self, system) -> None:
        self.call("reading the ComputerSystem", lambda: system.refresh(force=True))

    def power_state(self, system) -> Optional[str]:
        self.refresh(system)
        return _value(system.power_state)

    def set_power(self, system, want: str, reset_type: sushy.ResetType) -> str:
        """Request ``reset_type`` until the BMC reports ``want``; bounded by power_attempts."""
        p = self.policy
        started = time.monotonic()
        state = self.power_state(system)
        for attempt in range(1, p.power_attempts + 1):
            if state == want:
                return state
            self.call(f"requesting power {reset_type.value}", lambda: system.reset_system(reset_type))
            state = self.wait_power(system, want)
            if state == want:
                return state
            if attempt < p.power_attempts:
                self.sleep(min(p.backoff_s * 2 ** (attempt - 1), p.backoff_max_s))
                state = self.power_state(system)
        elapsed = time.monotonic() - started
        raise self.fail(f"power state never reached {want} (last reported {state}) after "
                        f"{p.power_attempts} reset request(s) ({reset_type.value}) in {elapsed:.1f}s")

    def wait_power(self, system, want: str) -> Optional[str]:
        p = self.policy
        deadline = time.monotonic() + p.power_timeout_s
        state = self.power_state(system)
        while state != want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sleep(min(p.poll_interval_s, left))
            state = self.power_state(system)
        return state

    def verify_mac(self, system) -> list[str]:
        macs = self.macs(system)
        expected = self.props.get("expected_mac")
        if expected and macs and expected.lower() not in macs:
            raise self.fail(f"boot MAC {expected} from the spec is not on this system (the BMC reports "
                            f"{', '.join(macs)}); check the host's bmc and mac in the spec")
        return macs

    def macs(self, system) -> list[str]:
        def read():
            try:
                # All members, not sushy's .summary: that drops NICs whose health is not OK, and a
                # PXE NIC with no link yet is still the boot NIC.
                found = set()
                for nic in system.ethernet_interfaces.get_members():
                    found.update(m.lower() for m in (nic.mac_address, nic.permanent_mac_address) if m)
                return sorted(found)
            except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError):
                return []  # a BMC without EthernetInterfaces: nothing to check against

        return self.call("reading the network interfaces", read)

    def inventory(self, system) -> dict:
        def optional(fn):
            try:
                return fn()
            except (sushy_exc.MissingAttributeError, sushy_exc.ResourceNotFoundError,
                    sushy_exc.BadRequestError):
                return None

        def processors():
            members = system.processors.get_members()
            kinds: dict[str, int] = {}
            for proc in members:
                kind = _value(proc.processor_type) or "Unknown"
                kinds[kind] = kinds.get(kind, 0) + 1
            return kinds

        mem = system.memory_summary
        return {
            "manufacturer": system.manufacturer,
            "model": system.model,
            "serial_number": system.serial_number,
            "uuid": system.uuid,
            "bios_version": system.bios_version,
            "memory_gib": getattr(mem, "size_gib", None) if mem else None,
            "processors": self.call("reading the processors", lambda: optional(processors)),
            "macs": self.macs(system),
        }


def _boot(system) -> dict:
    boot = system.boot
    return {"target": _value(boot.target), "enabled": _value(boot.enabled), "mode": _value(boot.mode)}


class RedfishProvider(dyn.ResourceProvider):
    """The dynamic provider. Pickled with the program: keep it to plain settings."""

    def __init__(self, policy: Optional[RetryPolicy] = None) -> None:
        super().__init__()
        self.policy = policy or RetryPolicy()

    # Tests replace this to count pauses without waiting; time.sleep pickles by reference.
    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _session(self, props: dict) -> _Session:
        return _Session(props, self.policy, self._sleep)

    # -- check / diff -------------------------------------------------------------------------
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        failures = []

        def bad(prop: str, reason: str) -> None:
            failures.append(dyn.CheckFailure(prop, reason))

        def known(key):
            value = news.get(key)
            return isinstance(value, (str, bool)) or value is None

        if not news.get("node"):
            bad("node", "node name is required")
        endpoint = news.get("endpoint")
        if isinstance(endpoint, str):
            # The endpoint is never echoed: a URL may carry user:password@.
            try:
                url = urlparse(endpoint)
                url.port  # noqa: B018 - raises ValueError on a port that is not a number
            except ValueError:
                url = None
            if url is None or url.scheme not in ("https", "http") or not url.hostname \
                    or not _PRINTABLE.fullmatch(endpoint):
                bad("endpoint", "BMC endpoint must be an http(s) URL such as https://10.0.0.5")
            elif "@" in url.netloc:
                bad("endpoint", "BMC endpoint must not carry credentials; use bmc_username/bmc_password")
        elif endpoint is None:
            bad("endpoint", "BMC endpoint is required")
        verify = news.get("verify_tls")
        if isinstance(verify, str) and (not verify or not _PRINTABLE.fullmatch(verify)):
            bad("verify_tls", "must be true, false or the path of a CA bundle")
        elif verify is not None and not isinstance(verify, (bool, str)):
            bad("verify_tls", "must be true, false or the path of a CA bundle")
        for key, choices in (("power_state", POWER_STATES), ("boot_target", BOOT_TARGETS)):
            if known(key) and news.get(key) not in choices:
                bad(key, f"must be one of {', '.join(choices)}, got {news.get(key)!r}")
        if known("boot_mode") and news.get("boot_mode") not in (None, *BOOT_MODES):
            bad("boot_mode", f"must be one of {', '.join(BOOT_MODES)}, got {news.get('boot_mode')!r}")
        mac = news.get("expected_mac")
        if isinstance(mac, str) and mac and not _MAC.match(mac.lower()):
            bad("expected_mac", f"not a MAC address: {mac!r}")
        for key in SECRET_KEYS:
            if key in news and news[key] in (None, ""):
                bad(key, f"{key} is empty; set it as a Pulumi config secret")
        return dyn.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        replaces = [k for k in _REPLACE_KEYS if olds.get(k) != news.get(k)]
        changed = [k for k in _UPDATE_KEYS if olds.get(k) != news.get(k)]
        return dyn.DiffResult(changes=bool(replaces or changed), replaces=replaces,
                              delete_before_replace=True)

    # -- create / read / update / delete ------------------------------------------------------
    def _apply(self, s: _Session, system, props: dict, first: bool) -> None:
        """Boot override, then power. On create the override comes first so the power-on boots it."""
        target = props.get("boot_target") or "Pxe"
        mode = props.get("boot_mode")
        want = props.get("power_state") or "On"
        if first or target != "None":
            s.call("setting the one-time boot override", lambda: system.set_system_boot_options(
                target=sushy.BootSource(target),
                enabled=sushy.BootSourceOverrideEnabled.ONCE if target != "None"
                else sushy.BootSourceOverrideEnabled.DISABLED,
                mode=sushy.BootSourceOverrideMode(mode) if mode else None))
            s.refresh(system)
            got = _value(system.boot.target)
            if target != "None" and got != target:
                raise s.fail(f"the BMC accepted the boot override but reports target {got!r}, not {target!r}")
        if want == "On":
            state = s.power_state(system)
            if state == "On" and first and props.get("reboot_if_on") and target != "None":
                # The override only takes effect on the next boot: restart a node that is already up.
                s.call("requesting power ForceRestart", lambda: system.reset_system(sushy.ResetType.FORCE_RESTART))
                s.sleep(min(self.policy.poll_interval_s, 1.0))
                state = s.wait_power(system, "On")
                if state != "On":
                    raise s.fail(f"power state never came back On after ForceRestart (last reported {state})")
            else:
                s.set_power(system, "On", sushy.ResetType.ON)
        else:
            self._power_off(s, system)

    def _power_off(self, s: _Session, system) -> None:
        try:
            s.set_power(system, "Off", sushy.ResetType.GRACEFUL_SHUTDOWN)
        except RedfishError as graceful:
            # The OS may ignore ACPI shutdown; a forced off is what "off" means for provisioning.
            try:
                s.set_power(system, "Off", sushy.ResetType.FORCE_OFF)
            except RedfishError as forced:
                raise s.fail(f"{forced.cause} (after GracefulShutdown: {graceful.cause})") from None

    def _outs(self, s: _Session, system, props: dict) -> dict:
        outs = {k: v for k, v in props.items() if not k.startswith("__")}
        outs["power_state"] = s.power_state(system)
        outs["boot_override"] = _boot(system)
        outs["system_path"] = system.path
        outs["inventory"] = s.inventory(system)
        return outs

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        s = self._session(props)
        system = s.system()
        s.verify_mac(system)
        self._apply(s, system, props, first=True)
        outs = self._outs(s, system, props)
        if outs["power_state"] != (props.get("power_state") or "On"):
            raise s.fail(f"power state is {outs['power_state']} after create, expected {props.get('power_state')}")
        return dyn.CreateResult(id_=str(system.uuid or system.path), outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> dyn.ReadResult:
        s = self._session(props)
        system = s.system()
        return dyn.ReadResult(id_=id_, outs=self._outs(s, system, props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        s = self._session(news)
        system = s.system()
        if news.get("expected_mac") != olds.get("expected_mac"):
            s.verify_mac(system)
        boot_changed = any(news.get(k) != olds.get(k) for k in ("boot_target", "boot_mode"))
        power_changed = news.get("power_state") != olds.get("power_state")
        if boot_changed or power_changed:
            props = dict(news)
            if not boot_changed:
                props["boot_target"] = "None"  # only power changed: leave the boot order alone
            self._apply(s, system, props, first=boot_changed)
        return dyn.UpdateResult(outs=self._outs(s, system, news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if not props.get("power_off_on_delete", True):
            return
        s = self._session(props)
        system = s.system()
        self._power_off(s, system)


@dataclass
class RedfishNodeArgs:
    """Inputs of one :class:`RedfishNode`. Credentials should be ``pulumi.Output.secret``."""

    node: pulumi.Input[str]
    endpoint: pulumi.Input[str]
    bmc_username: pulumi.Input[str] = dataclasses.field(repr=False)
    bmc_password: pulumi.Input[str] = dataclasses.field(repr=False)
    system_id: Optional[pulumi.Input[str]] = None  # Redfish system path; None = the BMC's only system
    expected_mac: Optional[pulumi.Input[str]] = None
    verify_tls: pulumi.Input[Any] = True  # True, False or a CA bundle path
    boot_target: pulumi.Input[str] = "Pxe"
    boot_mode: Optional[pulumi.Input[str]] = "UEFI"
    power_state: pulumi.Input[str] = "On"
    power_off_on_delete: pulumi.Input[bool] = True
    reboot_if_on: pulumi.Input[bool] = False


# pulumi.dynamic serializes the provider once per resource, and every call of its
# serialize_provider wraps pickle's _batch_setitems in one more layer that is never removed, so a
# program with ~500 dynamic resources dies with RecursionError (pulumi/pulumi#17803 has the symptom;
# reproduced here with a 1,000-node pool). One serialization per provider object avoids it and
# makes a big pool register fast; the text is exactly what the SDK would have produced.
_SERIALIZED: "weakref.WeakKeyDictionary[RedfishProvider, str]" = weakref.WeakKeyDictionary()


def serialized_provider(provider: RedfishProvider) -> pulumi.Output[str]:
    """The provider as pulumi.dynamic stores it in ``__provider`` (a secret), made once per object."""
    cached = _SERIALIZED.get(provider)
    if cached is None:
        from pulumi.dynamic.dynamic import serialize_provider
        from pulumi.runtime._serialization import _serialize

        text, _ = _serialize(True, serialize_provider, provider)
        cached = _SERIALIZED[provider] = text
    return pulumi.Output.secret(cached)


class RedfishNode(dyn.Resource, module="redfish", name="Node"):
    """One bare-metal node driven through its BMC."""

    power_state: pulumi.Output[str]
    boot_override: pulumi.Output[dict]
    system_path: pulumi.Output[str]
    inventory: pulumi.Output[dict]

    def __init__(self, name: str, args: RedfishNodeArgs, provider: Optional[RedfishProvider] = None,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        # Not dataclasses.asdict: it deep-copies, and Outputs must be passed through as they are.
        props = {f.name: getattr(args, f.name) for f in dataclasses.fields(args)}
        props.update({"boot_override": None, "system_path": None, "inventory": None})
        props[PROVIDER_KEY] = serialized_provider(provider or RedfishProvider())
        secret = pulumi.ResourceOptions(additional_secret_outputs=list(SECRET_KEYS))
        # dyn.Resource.__init__ would serialize the provider again: register as it does, with the
        # cached text (same type token, same __provider property).
        pulumi.CustomResource.__init__(self, f"pulumi-python:{self._resource_type_name}", name, props,
                                       pulumi.ResourceOptions.merge(opts, secret) if opts else secret)
