"""The Pulumi program of every stack: ``stacks/<name>/__main__.py`` is two lines that call :func:`run`.

It loads ``factory.yaml`` next to the program, plans it, instantiates one ``GpuPool`` per pool
from the class the provider registry (:mod:`aifactory.providers`) names, and exports what the
Ansible inventory needs. Provider SDK modules are imported only for the providers a factory
uses (pulumi-azure-native alone is large).

Stack config read here (``Pulumi.<stack>.yaml``), all optional:

* ``aifactory:factory``: path of the factory file relative to the program (default ``factory.yaml``);
* ``aifactory:reservations``: ``{pool: reservation-id}``; capacity blocks and reservations are
  bought per deployment window, so their ids belong to the stack rather than to the durable spec;
* the plain settings of :data:`STRING_SETTINGS` (``aifactory:sshPublicKey``, ``gcp:project`` …),
  checked here for every provider so that no component reads one untyped.

Every key read here or by a component has its row (type, description, secret) in
:data:`aifactory.stackconfig.CONFIG_KEYS`, which each stack's ``Pulumi.yaml`` declares.

The stack config comes from the pull request like the spec does (docs/SECURITY.md): every file it
names is confined to the stack folder (relative, no ``..``, resolving, symlinks included, to a
regular file inside it), its values are held to the spec's own types, and no message echoes a
value from it.
"""

from __future__ import annotations

import contextvars
import os
import re
import stat
from pathlib import Path
from typing import Any, Optional

import pulumi
from pydantic import TypeAdapter, ValidationError

from .. import providers
from ..errors import AifactoryError, SpecError
from ..files import parse_json, safe_relpath
from ..fields import GCP_PROJECT_PATTERN, NAME_PATTERN, OCID_PATTERN, ReservationId
from .pool import InventoryPool  # noqa: F401  (the class component_class returns for inventory-only pools)

FACTORY_KEY = "aifactory:factory"
RESERVATIONS_KEY = "aifactory:reservations"
_NAME = re.compile(NAME_PATTERN)  # the spec's pool names
_RESERVATION_ID = TypeAdapter(ReservationId)

# The folder of the stack whose program is running (set by run(), read by components that take a
# file from the stack config, such as a BMC CA bundle). Each preview runs in its own context.
_STACK_DIR: contextvars.ContextVar[Optional[Path]] = contextvars.ContextVar("aifactory_stack_dir", default=None)


class FactoryError(pulumi.RunError):
    """The stack's factory is not valid: the engine prints the message (no traceback); the
    offline preview prints ``findings`` one per line, as ``aifactory validate`` does."""

    def __init__(self, path: Path, error: SpecError) -> None:
        super().__init__(f"{path} is not a valid factory:\n{error}")
        self.findings = list(error.findings)


def component_class(provider: str, declared_hosts: int = 0) -> type:
    """The ``GpuPool`` class for a ``provider`` pool declaring ``declared_hosts`` hosts, as the
    provider registry (:mod:`aifactory.providers`) names it; only that provider's module is
    imported. ``lab`` pools and on-prem pools without hosts get :class:`InventoryPool`."""
    return providers.component_class(provider, declared_hosts)


def stack_dir() -> Path:
    """The folder of the running stack program (the working directory outside :func:`run`,
    which is where the Pulumi CLI runs a program)."""
    return _STACK_DIR.get() or Path.cwd().resolve()


def confined_file(folder: Path, rel: Any, what: str) -> Path:
    """``folder/rel`` resolved, when ``rel`` is a plain relative path that resolves (symlinks
    followed) to a regular file inside ``folder``; :class:`AifactoryError` naming ``what``
    otherwise. The value is not echoed: it came from a file anyone could have written."""
    rule = "must be a relative path to a file inside the stack folder (no '..', no absolute path)"
    if not isinstance(rel, str) or safe_relpath(rel) is None:
        raise AifactoryError(f"{what}: {rule}")
    root = Path(folder).resolve()
    try:
        target = (root / rel).resolve(strict=True)
        st = os.stat(target)
    except (OSError, RuntimeError):  # missing, a symlink loop, unreadable
        raise AifactoryError(f"{what}: no such file in the stack folder") from None
    if not target.is_relative_to(root):
        raise AifactoryError(f"{what}: resolves outside the stack folder (a symlink that leaves it is refused)")
    if not stat.S_ISREG(st.st_mode):
        raise AifactoryError(f"{what}: not a regular file")
    return target


def factory_path(folder: Path, configured: Any = None) -> Path:
    """The factory file of the stack in ``folder``: ``aifactory:factory`` or ``factory.yaml``,
    confined to the folder either way (a committed ``factory.yaml`` may be a symlink too)."""
    if configured is None:
        return confined_file(folder, "factory.yaml", f"{Path(folder) / 'factory.yaml'}")
    return confined_file(folder, configured, f"config {FACTORY_KEY}")


def reservations_from(value: Any, key: str = RESERVATIONS_KEY) -> dict[str, str]:
    """``{pool: reservation id}`` from the stack config: a mapping (or its JSON text, as the Pulumi
    CLI stores a structured value) of pool names to ids of the spec's own reservation-id type.
    Values are never echoed: the file may hold anything."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = parse_json(value, f"config {key}") if value.strip() else None
        except AifactoryError:
            value = None
    if not isinstance(value, dict):
        raise AifactoryError(f"config {key}: must be a mapping of pool name to reservation id, "
                             "such as {train: cr-0123abcd}")
    out: dict[str, str] = {}
    for pool, rid in value.items():
        if not isinstance(pool, str) or not _NAME.fullmatch(pool):
            # Not echoed: only a pool name may appear in a message.
            raise AifactoryError(f"config {key}: a key is not a pool name (lowercase letters, digits and '-')")
        if not isinstance(rid, str):
            raise AifactoryError(f"config {key}: {pool}: the reservation id must be a string")
        try:
            out[pool] = _RESERVATION_ID.validate_python(rid, strict=True)
        except ValidationError:
            raise AifactoryError(f"config {key}: {pool}: not a valid reservation id (a cloud reservation id such "
                                 "as cr-0123abcd or projects/p/reservations/r: '/'-separated, no '..', no "
                                 "leading '-', at most 256 characters)") from None
    return out


# Plain string settings the components read from the stack config, each held to the shape of what
# it names before any component sees it: (namespace, name) -> (pattern, what it must be).
_SSH_KEY_TYPES = ("ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|"
                  "sk-ssh-ed25519@openssh\\.com|sk-ecdsa-sha2-nistp256@openssh\\.com")
_OCID = re.compile(OCID_PATTERN)
STRING_SETTINGS: dict[tuple[str, str], tuple[re.Pattern, str]] = {
    ("aifactory", "sshPublicKey"): (
        re.compile(rf"(?:{_SSH_KEY_TYPES}) [A-Za-z0-9+/]{{16,16384}}={{0,3}}(?: [\x20-\x7a|~]{{0,256}})?"),
        "an OpenSSH public key on one line (type, key, optional comment without braces)"),
    ("aifactory", "ociCompartmentId"): (_OCID, "an OCI compartment OCID such as ocid1.compartment.oc1..<id>"),
    ("oci", "tenancyOcid"): (_OCID, "an OCI tenancy OCID such as ocid1.tenancy.oc1..<id>"),
    ("gcp", "project"): (
        re.compile(GCP_PROJECT_PATTERN),
        "a Google Cloud project id such as my-project-123"),
}


def check_settings() -> None:
    """Refuse a stack setting of the wrong shape before a component turns it into a resource
    property (an SSH key with a forged second line, a compartment id holding a path). The
    value is never echoed."""
    for (namespace, name), (pattern, what) in STRING_SETTINGS.items():
        value = pulumi.Config(namespace).get(name)
        if value is not None and not pattern.fullmatch(value):
            raise AifactoryError(f"config {namespace}:{name}: must be {what}")


def load(factory_file: Path, reservations: Optional[dict] = None):
    """The plan of ``factory_file`` (a factory spec, or a reviewed ``plan.json``), with the
    stack-level reservation ids applied.

    The ids come from the stack config, not the spec, so they are validated here by the same
    type the plan uses, and the pools are rebuilt through the model rather than copied (a copy
    would skip validation)."""
    from .. import plan as planning
    from ..plan.model import PoolPlan

    reservations = reservations_from(reservations)
    plan = planning.load(factory_file)
    if reservations:
        names = {p.name for p in plan.pools}
        unknown = sorted(set(reservations) - names)
        if unknown:
            raise AifactoryError(f"config {RESERVATIONS_KEY}: no pool named {', '.join(unknown)} "
                                 f"(pools: {', '.join(sorted(names))})")
        pools = []
        for p in plan.pools:
            if p.name in reservations:
                try:
                    p = PoolPlan.model_validate({**p.model_dump(), "reservation": reservations[p.name]})
                except ValidationError:
                    raise AifactoryError(f"config {RESERVATIONS_KEY}: {p.name}: not a valid reservation "
                                         "for this pool") from None
            pools.append(p)
        plan = plan.model_copy(update={"pools": pools})
    return plan


def build(plan) -> dict[str, Any]:
    """Instantiate one component per pool (in plan order); returns ``{pool name: component}``."""
    components = {}
    for pool in plan.pools:
        cls = component_class(pool.provider, len(pool.hosts))
        components[pool.name] = cls(pool.name, pool, plan)
    return components


def run(program_file: str | Path, factory_file: Optional[str] = None) -> dict[str, Any]:
    """Entry point of a stack's ``__main__.py``: ``run(__file__)``."""
    config = pulumi.Config("aifactory")
    here = Path(program_file).resolve().parent
    _STACK_DIR.set(here)
    try:
        # ``factory_file`` comes from the program itself (reviewed code); the config does not.
        path = here / factory_file if factory_file else factory_path(here, config.get("factory"))
        reservations = reservations_from(config.get("reservations"))
        check_settings()
        try:
            plan = load(path, reservations)
        except SpecError as exc:
            raise FactoryError(path, exc) from None
        components = build(plan)
    except AifactoryError as exc:
        # RunError prints the message without a Python traceback.
        raise pulumi.RunError(str(exc)) from None
    pulumi.export("factory", plan.name)
    pulumi.export("software", plan.to_dict()["software"])
    pulumi.export("pools", {name: {"provider": plan.pool(name).provider, "node_group_ids": c.node_group_ids,
                                   "network_ids": c.network_ids} for name, c in components.items()})
    pulumi.export("inventory", {name: c.inventory for name, c in components.items()})
    return components
