"""The stack config keys of aifactory's Pulumi projects: one table, :data:`CONFIG_KEYS`.

Every key a stack program or a component reads (``aifactory:*``, and the provider settings the
program checks or the ``stack-region`` check compares), and the provider keys a stack file sets
for the plugins, with its type, a description and whether it is a secret. Each
``stacks/<name>/Pulumi.yaml`` declares the keys its pools use (:func:`used_keys`), rendered by
:func:`declaration`; a test holds the files, the stack configs and the program to this table.

Where the declaration lives (Pulumi's project file reference and ``Project.Validate`` in
pulumi/pulumi ``sdk/go/common/workspace/project.go``, checked 2026-12-03): the project-level
``config:`` block accepts ``type``/``description``/``default``/``secret`` only for keys in the
project's own namespace (no prefix, or ``<project name>:``). Any other key, such as
``aws:region`` or ``aifactory:bmcPassword`` in the project ``onprem-dgx``, is refused with a
``type`` or a ``default`` and must carry a ``value`` that then applies to every stack. The keys
here are shared by all the stacks under the ``aifactory`` and provider namespaces, so they are
declared in the project's ``template.config`` block, which takes namespaced keys with a
``description`` and ``secret`` (``pulumi new`` from the stack folder prompts for each, reading a
secret without echo and storing it encrypted). Pulumi has no field for a namespaced key's type:
the type is kept here and the tests check every stack value against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

# The type names of Pulumi's project config (`simpleConfigType` of its project.json).
TYPES = ("string", "integer", "boolean", "object")
CLOUDS = frozenset({"aws", "gcp", "azure", "oci"})


@dataclass(frozen=True)
class ConfigKey:
    """One stack config key: ``namespace:name``, its Pulumi type, what it is for, and which
    pools make a stack use it (``providers``: the pool providers; ``hosts_only``: only pools that
    declare ``hosts``, which the components drive; no providers: every stack)."""

    key: str
    type: str
    description: str
    secret: bool = False
    providers: Optional[frozenset[str]] = None
    hosts_only: bool = False

    @property
    def namespace(self) -> str:
        return self.key.split(":", 1)[0]

    def used_by(self, pools: Iterable[tuple[str, int]]) -> bool:
        """Whether a stack whose pools are ``(provider, declared hosts)`` uses this key."""
        if self.providers is None:
            return True
        return any(p in self.providers and (hosts or not self.hosts_only) for p, hosts in pools)


def _keys(*keys: ConfigKey) -> dict[str, ConfigKey]:
    return {k.key: k for k in keys}


_ONPREM = frozenset({"onprem"})
CONFIG_KEYS: dict[str, ConfigKey] = _keys(
    # Read by the program (aifactory.components.program) for every stack.
    ConfigKey("aifactory:factory", "string",
              "Factory file of this stack, relative to the stack folder and inside it (default factory.yaml)"),
    ConfigKey("aifactory:reservations", "object",
              "Cloud reservation or capacity block id per pool, such as {train: cr-0123abcd}, set once bought",
              providers=CLOUDS),
    # Read by the Azure and OCI components, checked by the program.
    ConfigKey("aifactory:sshPublicKey", "string",
              "OpenSSH public key of the admin account on Azure and OCI nodes (one line)",
              providers=frozenset({"azure", "oci"})),
    ConfigKey("aifactory:ociCompartmentId", "string",
              "OCI compartment OCID the OCI pools are built in (default: the tenancy, oci:tenancyOcid)",
              providers=frozenset({"oci"})),
    # Read by the on-prem component for the Redfish-driven hosts (aifactory.components.onprem).
    ConfigKey("aifactory:bmcUsername", "string", "BMC user the Redfish calls log in as (default admin)",
              providers=_ONPREM, hosts_only=True),
    ConfigKey("aifactory:bmcPassword", "string",
              "BMC password (pulumi config set --secret aifactory:bmcPassword); pulumi up needs it",
              secret=True, providers=_ONPREM, hosts_only=True),
    ConfigKey("aifactory:bmcScheme", "string", "Scheme of the BMC Redfish endpoints: https (default) or http",
              providers=_ONPREM, hosts_only=True),
    ConfigKey("aifactory:bmcVerifyTls", "string",
              "Verify BMC certificates: true (default), false, or a CA bundle path inside the stack folder",
              providers=_ONPREM, hosts_only=True),
    ConfigKey("aifactory:bmcPowerOffOnDelete", "boolean", "Power nodes off on pulumi destroy (default true)",
              providers=_ONPREM, hosts_only=True),
    ConfigKey("aifactory:bootTarget", "string", "One-time boot override at create: Pxe (default) or UefiHttp",
              providers=_ONPREM, hosts_only=True),
    ConfigKey("aifactory:bmcRetry", "object",
              "Redfish retry policy: {attempts, backoff_s, power_timeout_s}", providers=_ONPREM, hosts_only=True),
    # Provider settings: read by the provider plugins; the program checks the shape of gcp:project
    # and oci:tenancyOcid, and the stack-region check compares each region with the spec's sites.
    ConfigKey("aws:region", "string", "AWS region of the AWS pools (their sites' region)",
              providers=frozenset({"aws"})),
    ConfigKey("gcp:project", "string", "Google Cloud project id the GCP pools are built in",
              providers=frozenset({"gcp"})),
    ConfigKey("gcp:region", "string", "Google Cloud region of the GCP pools (their sites' region)",
              providers=frozenset({"gcp"})),
    ConfigKey("azure-native:location", "string", "Azure location of the Azure pools (their sites' region)",
              providers=frozenset({"azure"})),
    ConfigKey("oci:region", "string", "OCI region of the OCI pools (their sites' region)",
              providers=frozenset({"oci"})),
    ConfigKey("oci:tenancyOcid", "string", "OCI tenancy OCID (the compartment when aifactory:ociCompartmentId is unset)",
              providers=frozenset({"oci"})),
)


def used_keys(pools: Iterable[tuple[str, int]]) -> list[ConfigKey]:
    """The keys a stack whose pools are ``(provider, declared hosts)`` uses, in table order."""
    pools = list(pools)
    return [k for k in CONFIG_KEYS.values() if k.used_by(pools)]


def declaration(keys: Iterable[ConfigKey]) -> dict[str, dict[str, Any]]:
    """The ``template.config`` mapping of ``Pulumi.yaml`` that declares ``keys``."""
    out: dict[str, dict[str, Any]] = {}
    for k in keys:
        entry: dict[str, Any] = {"description": k.description}
        if k.secret:
            entry["secret"] = True
        out[k.key] = entry
    return out


def value_has_type(value: Any, type_name: str) -> bool:
    """Whether a plain stack config value is of Pulumi's config type ``type_name``, as Pulumi's
    ``ValidateConfigValue`` judges it: a boolean may be the text ``true``/``false``, an integer
    its digits, and an object may be stored as its JSON text (``pulumi config set --path``)."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        return isinstance(value, str) and value.lstrip("-").isdigit()
    if type_name == "object":
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except ValueError:
                return False
        return isinstance(value, dict)
    raise ValueError(f"unknown config type {type_name!r}")
