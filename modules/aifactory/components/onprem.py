"""On-prem GPU pools (DGX/HGX, NVL72 racks): one Redfish-driven node per declared host.

The spec lists a pool's hosts with their boot MAC and BMC address; each becomes a
:class:`~aifactory.components.redfish.RedfishNode` child that verifies the BMC, sets a one-time
PXE boot and powers the node on, so the provisioning host (see ``aifactory pxe``) installs it.
Nodes of the pool without a ``hosts`` entry are racked and booted outside Pulumi: they appear
in the inventory only (see :mod:`aifactory.components.base` on resource counts).

Stack config (``Pulumi.<stack>.yaml``, namespace ``aifactory``), all optional except the password:

* ``bmcUsername``: BMC user (default ``admin``, the DGX factory account);
* ``bmcPassword``: BMC password, set with ``pulumi config set --secret aifactory:bmcPassword``.
  The spec never holds it. Without it the program still previews offline, with a warning, and
  the provider's check refuses ``pulumi up``;
* ``bmcScheme``: ``https`` (default) or ``http``;
* ``bmcVerifyTls``: ``true`` (default), ``false``, or the path of a CA bundle that signed the BMCs,
  relative to the stack folder and inside it;
* ``bmcPowerOffOnDelete``: power nodes off on ``pulumi destroy`` (default ``true``);
* ``bootTarget``: one-time boot override at create, ``Pxe`` (default) or ``UefiHttp``;
* ``bmcRetry``: an object of :class:`~aifactory.components.redfish.RetryPolicy` fields.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Optional

import pulumi

from ..errors import AifactoryError
from ..files import parse_json
from . import base
from .pool import PoolComponent
from .redfish import RedfishNode, RedfishNodeArgs, RedfishProvider, RetryPolicy

CONFIG_NAMESPACE = "aifactory"
PASSWORD_KEY = "bmcPassword"


MAX_USERNAME = 64
MAX_PASSWORD = 256
# A BMC account name: printable ASCII without ':' (HTTP basic auth splits on it) and no spaces.
_USERNAME = re.compile(r"[!-9;-~]{1,%d}" % MAX_USERNAME)


def _key(name: str) -> str:
    return f"{CONFIG_NAMESPACE}:{name}"


def _choice(config: pulumi.Config, name: str, choices: tuple[str, ...], default: str) -> str:
    value = config.get(name)
    if value is None:
        return default
    if value not in choices:
        # Never echo the value: a misplaced password or a URL with credentials would be printed.
        raise AifactoryError(f"config {_key(name)}: must be {' or '.join(choices)}")
    return value


def _flag(config: pulumi.Config, name: str, default: bool) -> bool:
    value = config.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise AifactoryError(f"config {_key(name)}: must be true or false")
    return value.lower() == "true"


def _retry(config: pulumi.Config) -> RetryPolicy:
    text = config.get("bmcRetry")
    if text is None:
        return RetryPolicy()
    try:
        retry = parse_json(text, f"config {_key('bmcRetry')}") if text.strip() else None
    except AifactoryError:
        retry = None
    names = {f.name for f in dataclasses.fields(RetryPolicy)}
    if not isinstance(retry, dict):
        raise AifactoryError(f"config {_key('bmcRetry')}: must be a mapping of {', '.join(sorted(names))}")
    unknown = sorted(set(retry) - names)
    if unknown:
        # Field-shaped names are shown (a typo to fix); anything else only counted.
        shown = [k for k in unknown if re.fullmatch(r"[A-Za-z0-9_]{1,40}", k)]
        if len(shown) < len(unknown):
            shown.append(f"{len(unknown) - len(shown)} key(s) that are no field name")
        raise AifactoryError(f"config {_key('bmcRetry')}: unknown field(s) {', '.join(shown)}; "
                             f"known: {', '.join(sorted(names))}")
    try:
        return RetryPolicy(**retry)
    except (TypeError, ValueError) as exc:
        raise AifactoryError(f"config {_key('bmcRetry')}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class BmcSettings:
    """Stack-level BMC settings (never the password itself).

    Every value comes from the stack config, which a pull request can change: each is checked
    against the few values it may take, and no message repeats what was found instead.
    """

    username: str = dataclasses.field(default="admin", repr=False)
    scheme: str = "https"
    verify_tls: Any = True
    power_off_on_delete: bool = True
    boot_target: str = "Pxe"
    policy: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)

    @classmethod
    def from_config(cls, config: pulumi.Config, folder: Optional[Path] = None) -> "BmcSettings":
        """``folder``: the stack folder, inside which a CA bundle must be (default: the running stack's)."""
        username = config.get("bmcUsername")
        if username is None:
            username = "admin"
        elif not _USERNAME.fullmatch(username):
            raise AifactoryError(f"config {_key('bmcUsername')}: must be a BMC user name of 1-{MAX_USERNAME} "
                                 "printable characters without spaces or ':'")
        scheme = _choice(config, "bmcScheme", ("https", "http"), "https")
        verify = config.get("bmcVerifyTls")
        if verify is None or verify.lower() == "true":
            verify_tls: Any = True
        elif verify.lower() == "false":
            verify_tls = False
        else:
            # A CA bundle, as requests takes it: a file of the stack (a CA certificate is public and
            # belongs next to the stack), never a path elsewhere on the machine that runs the program.
            from .program import confined_file, stack_dir

            try:
                verify_tls = str(confined_file(folder or stack_dir(), verify, f"config {_key('bmcVerifyTls')}"))
            except AifactoryError as exc:
                raise AifactoryError(f"{exc} (it is true, false or a CA bundle in the stack folder)") from None
        boot = _choice(config, "bootTarget", ("Pxe", "UefiHttp"), "Pxe")
        policy = _retry(config)
        off = _flag(config, "bmcPowerOffOnDelete", True)
        return cls(username=username, scheme=scheme, verify_tls=verify_tls, power_off_on_delete=off,
                   boot_target=boot, policy=policy)


def _password(config: pulumi.Config) -> Optional[pulumi.Output]:
    """The BMC password as a secret Output; its length and characters are checked, never shown."""
    plain = config.get(PASSWORD_KEY)
    if plain is None:
        return None
    if len(plain) > MAX_PASSWORD or any(ord(c) < 32 or ord(c) == 127 for c in plain):
        raise AifactoryError(f"config {_key(PASSWORD_KEY)}: must be at most {MAX_PASSWORD} characters without "
                             "line breaks or control characters")
    return config.get_secret(PASSWORD_KEY)


class GpuPool(PoolComponent):
    """An on-prem pool: the ``aifactory:onprem:GpuPool`` shape of :class:`aifactory.components.base.GpuPool`."""

    TYPE = base.type_token("onprem")

    def __init__(self, name: str, pool, plan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(name, pool, plan, opts)
        config = pulumi.Config(CONFIG_NAMESPACE)
        settings = BmcSettings.from_config(config)
        password = _password(config)
        if password is None and pool.hosts:
            # Still register the nodes so the program previews offline; the provider's check
            # rejects the empty secret before any BMC is touched.
            pulumi.log.warn(f"{name}: config {CONFIG_NAMESPACE}:{PASSWORD_KEY} is not set; `pulumi up` will "
                            f"refuse to drive the BMCs until `pulumi config set --secret "
                            f"{CONFIG_NAMESPACE}:{PASSWORD_KEY} ...` is run", self)
            password = pulumi.Output.secret("")
        username = pulumi.Output.secret(settings.username)
        unmanaged = pool.nodes - len(pool.hosts)
        if unmanaged > 0 and pool.hosts:
            pulumi.log.info(f"{name}: {unmanaged} of {pool.nodes} nodes have no hosts entry (MAC/BMC); "
                            "they are inventory-only", self)

        # One provider object for the pool: it is pickled into every node's state, so it holds
        # only the retry policy.
        provider = RedfishProvider(settings.policy)
        child_opts = pulumi.ResourceOptions(parent=self)
        self.nodes: dict[str, RedfishNode] = {}
        for host in pool.hosts:
            self.nodes[host.name] = RedfishNode(base.child(name, host.name), RedfishNodeArgs(
                node=host.name,
                endpoint=f"{settings.scheme}://{host.bmc}",
                bmc_username=username,
                bmc_password=password,
                expected_mac=host.mac,
                verify_tls=settings.verify_tls,
                boot_target=settings.boot_target,
                boot_mode="UEFI",
                power_state="On",
                power_off_on_delete=settings.power_off_on_delete,
            ), provider, child_opts)

        hosts = {h.name: h for h in pool.hosts}

        def host_entries(states: list) -> list[dict]:
            out = []
            for host_name, (power, system_path, inventory) in zip(hosts, states):
                h = hosts[host_name]
                inv = inventory or {}
                out.append({"name": h.name, "ip": h.ip, "mac": h.mac, "bmc": h.bmc,
                            "power_state": power, "system_path": system_path,
                            "serial_number": inv.get("serial_number"), "uuid": inv.get("uuid"),
                            "macs": inv.get("macs") or [h.mac]})
            return out

        states = pulumi.Output.all(*[pulumi.Output.all(n.power_state, n.system_path, n.inventory)
                                     for n in self.nodes.values()])
        # On-prem networks and fabrics are cabled, not created: no network resources to report.
        self.publish(pulumi.Output.all(*[n.id for n in self.nodes.values()]).apply(list), [],
                     states.apply(lambda s: {"managed": "redfish" if hosts else "inventory-only",
                                             "hosts": host_entries(list(s))}))
