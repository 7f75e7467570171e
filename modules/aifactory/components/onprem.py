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
* ``bmcVerifyTls``: ``true`` (default), ``false``, or the path of a CA bundle that signed the BMCs;
* ``bmcPowerOffOnDelete``: power nodes off on ``pulumi destroy`` (default ``true``);
* ``bootTarget``: one-time boot override at create, ``Pxe`` (default) or ``UefiHttp``;
* ``bmcRetry``: an object of :class:`~aifactory.components.redfish.RetryPolicy` fields.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import pulumi

from ..errors import AifactoryError
from . import base
from .redfish import BOOT_TARGETS, RedfishNode, RedfishNodeArgs, RedfishProvider, RetryPolicy

CONFIG_NAMESPACE = "aifactory"
PASSWORD_KEY = "bmcPassword"


@dataclasses.dataclass(frozen=True)
class BmcSettings:
    """Stack-level BMC settings (never the password itself)."""

    username: str = "admin"
    scheme: str = "https"
    verify_tls: Any = True
    power_off_on_delete: bool = True
    boot_target: str = "Pxe"
    policy: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)

    @classmethod
    def from_config(cls, config: pulumi.Config) -> "BmcSettings":
        def key(name: str) -> str:
            return f"{CONFIG_NAMESPACE}:{name}"

        scheme = config.get("bmcScheme") or "https"
        if scheme not in ("https", "http"):
            raise AifactoryError(f"config {key('bmcScheme')}: must be https or http, got {scheme!r}")
        verify = config.get("bmcVerifyTls")
        if verify is None or verify.lower() == "true":
            verify_tls: Any = True
        elif verify.lower() == "false":
            verify_tls = False
        else:
            verify_tls = verify  # a CA bundle path, as requests takes it
        boot = config.get("bootTarget") or "Pxe"
        if boot not in BOOT_TARGETS or boot in ("None", "Hdd"):
            raise AifactoryError(f"config {key('bootTarget')}: must be Pxe or UefiHttp, got {boot!r}")
        retry = config.get_object("bmcRetry") or {}
        names = {f.name for f in dataclasses.fields(RetryPolicy)}
        unknown = sorted(set(retry) - names)
        if unknown:
            raise AifactoryError(f"config {key('bmcRetry')}: unknown field(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(names))}")
        try:
            policy = RetryPolicy(**retry)
        except (TypeError, ValueError) as exc:
            raise AifactoryError(f"config {key('bmcRetry')}: {exc}") from None
        off = config.get_bool("bmcPowerOffOnDelete")
        return cls(username=config.get("bmcUsername") or "admin", scheme=scheme, verify_tls=verify_tls,
                   power_off_on_delete=True if off is None else off, boot_target=boot, policy=policy)


class GpuPool(pulumi.ComponentResource):
    """An on-prem pool: the ``aifactory:onprem:GpuPool`` shape of :class:`aifactory.components.base.GpuPool`."""

    TYPE = base.type_token("onprem")

    node_group_ids: pulumi.Output[list]
    network_ids: pulumi.Output[list]
    inventory: pulumi.Output[dict]

    def __init__(self, name: str, pool, factory, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        spec = base.pool_spec(factory, pool)
        config = pulumi.Config(CONFIG_NAMESPACE)
        settings = BmcSettings.from_config(config)
        password = config.get_secret(PASSWORD_KEY)
        if password is None and spec.hosts:
            # Still register the nodes so the program previews offline; the provider's check
            # rejects the empty secret before any BMC is touched.
            pulumi.log.warn(f"{name}: config {CONFIG_NAMESPACE}:{PASSWORD_KEY} is not set; `pulumi up` will "
                            f"refuse to drive the BMCs until `pulumi config set --secret "
                            f"{CONFIG_NAMESPACE}:{PASSWORD_KEY} ...` is run", self)
            password = pulumi.Output.secret("")
        username = pulumi.Output.secret(settings.username)
        unmanaged = pool.nodes - len(spec.hosts)
        if unmanaged > 0 and spec.hosts:
            pulumi.log.info(f"{name}: {unmanaged} of {pool.nodes} nodes have no hosts entry (MAC/BMC); "
                            "they are inventory-only", self)

        # One provider object for the pool: it is pickled into every node's state, so it holds
        # only the retry policy.
        provider = RedfishProvider(settings.policy)
        child_opts = pulumi.ResourceOptions(parent=self)
        self.nodes: dict[str, RedfishNode] = {}
        for host in spec.hosts:
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

        hosts = {h.name: h for h in spec.hosts}

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
        self.node_group_ids = pulumi.Output.all(*[n.id for n in self.nodes.values()]).apply(list)
        # On-prem networks and fabrics are cabled, not created: no network resources to report.
        self.network_ids = pulumi.Output.from_input([])
        self.inventory = states.apply(lambda s: base.inventory(factory, pool, {
            "managed": "redfish" if hosts else "inventory-only",
            "hosts": host_entries(list(s)),
        }))
        self.register_outputs({"node_group_ids": self.node_group_ids, "network_ids": self.network_ids,
                               "inventory": self.inventory})
