"""The provider registry: one small descriptor per provider, built in or added by a plugin.

Everything that differs between providers without needing the provider's SDK lives in its
:class:`Provider` descriptor: the import path of its ``GpuPool`` component, whether its tags are
label-shaped, whether (and why) a pool must name a zone, the images it boots each OS from, and
which pools create no resources at all (inventory-only). The component module, which imports the
cloud SDK, is imported only when :meth:`Provider.component_class` is called, so the planner, the
checks and the inventory read provider facts without loading ``pulumi_aws`` and friends. This
module imports nothing beyond the standard library and :mod:`aifactory.errors`.

Built-in providers are registered here, in code, so they work from a source tree or with stale
package metadata. Other distributions add providers through the ``aifactory.providers`` entry-point
group, each entry point naming a :class:`Provider` (or a callable returning one) whose ``name`` is
the entry point's name::

    [project.entry-points."aifactory.providers"]
    vmware = "aifactory_vmware.provider:VMWARE"

Plugin rules: entry points are read once per process, and only when a name that is not built in
is asked for (or the whole registry is listed). A plugin can add a provider, never replace one: an
entry point named after a built-in provider is ignored (the built-in stays), with a warning unless
it is this distribution's own declaration of that built-in. A plugin that fails to import, does not
yield a :class:`Provider`, yields one under another name, or is declared by two distributions is
left out with a :class:`ProviderPluginWarning`, so a broken plugin never stops a factory that does
not use it; asking for its name raises :class:`~aifactory.errors.AifactoryError` saying why it is
missing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import threading
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

from .errors import AifactoryError

GROUP = "aifactory.providers"
DISTRIBUTION = "gpufactory"  # this project's distribution: its own entry points restate the built-ins

# The component of a pool that creates no resources, only its inventory entry in the stack outputs.
INVENTORY_POOL = "aifactory.components.pool:InventoryPool"

# A provider name becomes part of a Pulumi type token (aifactory:<provider>:GpuPool), an Ansible
# variable and a spec value: a short lowercase RFC 1123 label.
NAME_PATTERN = r"[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?"
_NAME = re.compile(NAME_PATTERN)
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_ARCHES = ("x86_64", "arm64")


class ProviderPluginWarning(UserWarning):
    """A plugin in the ``aifactory.providers`` entry-point group was left out (see the module doc)."""


@dataclass(frozen=True, eq=False)  # one instance per provider: compared by identity
class Provider:
    """What aifactory knows of one provider without importing its SDK.

    * ``name``: the spec's ``provider`` value and the middle of the type token;
    * ``component``: ``"package.module:Class"`` of its ``GpuPool``, or None when every pool of the
      provider is inventory-only (see :data:`INVENTORY_POOL`);
    * ``title``: how messages name it (``AWS``);
    * ``labels``: tags are written as labels (lowercase, no ``:``; GCP labels, OCI freeform tags);
    * ``zone_required``: why a pool must name a zone, or None where it need not;
    * ``images``: ``{(os, cpu_arch): image}`` the component boots nodes from (a string, or the
      provider's own reference shape); None when the provider takes any OS (images are built and
      served on site);
    * ``image_kind``: what an entry of ``images`` is, for messages (``public AMI parameter``);
    * ``inventory_only_without_hosts``: a pool that declares no ``hosts`` creates no resources
      (a campus-scale on-prem pool must not become a million resources);
    * ``inventory_fields``: what an inventory-only pool of the provider adds to its inventory entry;
    * ``on_site``: racks, switches and power are ours to plan (not a cloud's);
    * ``systems_from``: the catalog provider whose systems the pools run (the lab runs on-prem ones);
    * ``cloud_init``: nodes boot with the rendered cloud-init user data;
    * ``region_key``: the stack config key that sets the region the provider's resources are
      created in (``aws:region``), checked against the sites by the ``stack-region`` check;
    * ``chroot_nodes``: its nodes are root filesystems that run under chroot on one machine (the
      lab): no cgroup hierarchy of their own and not the hardware the catalog models, so Slurm
      gets its cgroup-free plugins and takes the node lines as configured.
    """

    name: str
    component: Optional[str]
    title: str = ""
    labels: bool = False
    zone_required: Optional[str] = None
    images: Optional[Mapping[tuple[str, str], Any]] = None
    image_kind: str = "image"
    inventory_only_without_hosts: bool = False
    inventory_fields: Mapping[str, Any] = field(default_factory=lambda: {"managed": "inventory-only"})
    on_site: bool = False
    systems_from: str = ""
    cloud_init: bool = False
    region_key: Optional[str] = None
    chroot_nodes: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise AifactoryError(f"provider name {_show(self.name)}: must be a lowercase name of letters, digits "
                                 "and '-' (at most 32 characters, starting with a letter)")
        where = f"provider {self.name}"
        if self.component is not None and (not isinstance(self.component, str)
                                           or not _IMPORT_PATH.fullmatch(self.component)):
            raise AifactoryError(f"{where}: component must be an import path such as 'package.module:GpuPool'")
        if self.zone_required is not None and not isinstance(self.zone_required, str):
            raise AifactoryError(f"{where}: zone_required must be a sentence saying why, or None")
        if self.images is not None:
            if not isinstance(self.images, Mapping) or not all(
                    isinstance(k, tuple) and len(k) == 2 and all(isinstance(p, str) for p in k) for k in self.images):
                raise AifactoryError(f"{where}: images must map (os, cpu_arch) pairs to images")
            object.__setattr__(self, "images", MappingProxyType(dict(self.images)))
        if not isinstance(self.inventory_fields, Mapping):
            raise AifactoryError(f"{where}: inventory_fields must be a mapping")
        object.__setattr__(self, "inventory_fields", MappingProxyType(dict(self.inventory_fields)))
        object.__setattr__(self, "title", self.title or self.name)
        object.__setattr__(self, "systems_from", self.systems_from or self.name)

    @property
    def type_token(self) -> str:
        return f"aifactory:{self.name}:GpuPool"

    # --- images ---------------------------------------------------------------------------

    def image(self, os_name: str, cpu_arch: str) -> Any:
        """The image the provider boots ``os_name`` on ``cpu_arch`` from; None where it has none.
        A provider without an image table takes any OS: the answer is then ``"any"``."""
        if self.images is None:
            return "any"
        return self.images.get((os_name, cpu_arch))

    def os_names(self, cpu_arch: Optional[str] = None) -> tuple[str, ...]:
        """The OS names of the image table (on ``cpu_arch`` when given), sorted."""
        return tuple(sorted({o for o, a in (self.images or {}) if cpu_arch is None or a == cpu_arch}))

    def require_image(self, os_name: str, cpu_arch: str) -> Any:
        """:meth:`image`, or an error naming ``software.os`` and what the provider does offer."""
        found = self.image(os_name, cpu_arch)
        if found is not None:
            return found
        known = self.os_names(cpu_arch)
        if known:
            hint = f"use one of {', '.join(known)}"
        else:
            arches = sorted({a for _, a in self.images or {}})
            hint = f"{self.title} has images for {', '.join(arches) or 'no'} nodes only"
        raise AifactoryError(f"software.os: {os_name} on {cpu_arch} has no {self.image_kind} on {self.title}; {hint}")

    # --- the component --------------------------------------------------------------------

    def component_path(self, declared_hosts: int = 0) -> str:
        """The import path of the class that builds a pool declaring ``declared_hosts`` hosts."""
        if self.component is None or (self.inventory_only_without_hosts and not declared_hosts):
            return INVENTORY_POOL
        return self.component

    def component_class(self, declared_hosts: int = 0) -> type:
        """The ``GpuPool`` class of a pool with ``declared_hosts`` hosts, importing its module now."""
        path = self.component_path(declared_hosts)
        module_name, _, attr = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = exc.name or module_name
            raise AifactoryError(f"pools[].provider: {self.name} pools need the Python module {missing}, which "
                                 f"cannot be imported ({_one_line(exc)}); install the package that provides "
                                 "it") from None
        cls = getattr(module, attr, None)
        if not isinstance(cls, type):
            raise AifactoryError(f"pools[].provider: the component of provider {self.name}, {path}, is not a class")
        return cls


# --- the built-in providers ------------------------------------------------------------------

# Deep Learning Base OSS Nvidia Driver GPU AMIs, published as public SSM parameters
# (https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html): the
# driver, EFA installer and aws-ofi-nccl are baked in, so nodes join the fabric on first boot.
# Debian has no DLAMI; the Debian cloud team publishes its official AMIs (owner 136693071363) as
# public parameters /aws/service/debian/release/<major>/latest/<amd64|arm64>, Debian 13 included
# (https://wiki.debian.org/Cloud/AmazonEC2Image/Trixie, checked 2026-12-03).
AWS = Provider(
    "aws", "aifactory.components.aws:GpuPool", title="AWS", image_kind="public AMI parameter",
    zone_required="a cluster placement group lives in one zone, e.g. [us-east-1a]", cloud_init=True,
    region_key="aws:region",
    images={
        ("ubuntu-22.04", "x86_64"): "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
        ("ubuntu-24.04", "x86_64"): "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id",
        ("ubuntu-22.04", "arm64"): "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
        ("ubuntu-24.04", "arm64"): "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id",
        ("debian-12", "x86_64"): "/aws/service/debian/release/12/latest/amd64",
        ("debian-12", "arm64"): "/aws/service/debian/release/12/latest/arm64",
        ("debian-13", "x86_64"): "/aws/service/debian/release/13/latest/amd64",
        ("debian-13", "arm64"): "/aws/service/debian/release/13/latest/arm64",
    })

# Plain OS images: the NVIDIA stack is pinned and installed by the configure step, so the image
# must not bring its own driver. Labels, not tags: GCP label keys allow only [a-z0-9_-]
# (https://cloud.google.com/compute/docs/labeling-resources#requirements). Debian's families in
# project debian-cloud are debian-<major> and debian-<major>-arm64, debian-13 and debian-13-arm64
# for trixie (https://cloud.google.com/compute/docs/images/os-details, checked 2026-12-03).
GCP = Provider(
    "gcp", "aifactory.components.gcp:GpuPool", title="GCP", labels=True, cloud_init=True, region_key="gcp:region",
    zone_required="compact placement and the GPU networks live in one zone, e.g. [us-central1-a]",
    images={
        ("ubuntu-22.04", "x86_64"): "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts",
        ("ubuntu-22.04", "arm64"): "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts-arm64",
        ("ubuntu-24.04", "x86_64"): "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
        ("ubuntu-24.04", "arm64"): "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-arm64",
        ("debian-12", "x86_64"): "projects/debian-cloud/global/images/family/debian-12",
        ("debian-12", "arm64"): "projects/debian-cloud/global/images/family/debian-12-arm64",
        ("debian-13", "x86_64"): "projects/debian-cloud/global/images/family/debian-13",
        ("debian-13", "arm64"): "projects/debian-cloud/global/images/family/debian-13-arm64",
        ("rhel-9", "x86_64"): "projects/rhel-cloud/global/images/family/rhel-9",
        ("rhel-9", "arm64"): "projects/rhel-cloud/global/images/family/rhel-9-arm64",
    })

# The HPC images carry the InfiniBand (DOCA-OFED) stack the ND-series needs; x86_64 only. Debian
# publishes only plain images on Azure (Debian:debian-13:13-gen2,
# https://marketplace.microsoft.com/en-us/product/virtual-machines/debian.debian-13, checked
# 2026-12-03), none with that stack, so Debian 12 and 13 are left out and provider-images refuses them.
AZURE = Provider(
    "azure", "aifactory.components.azure:GpuPool", title="Azure", image_kind="Ubuntu HPC image", cloud_init=True,
    region_key="azure-native:location",
    images={
        ("ubuntu-22.04", "x86_64"): {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204",
                                     "version": "latest"},
        ("ubuntu-24.04", "x86_64"): {"publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2404",
                                     "version": "latest"},
    })

# Platform images by (operating system, version); the image OCID is region-specific, so the
# component looks it up at deploy. Freeform tags are written in the label form, like GCP's.
# OCI's platform images include no Debian
# (https://docs.oracle.com/en-us/iaas/Content/Compute/References/images.htm, checked 2026-12-03),
# so provider-images refuses Debian 12 and 13 on OCI.
_OCI_IMAGES = {"ubuntu-22.04": ("Canonical Ubuntu", "22.04"), "ubuntu-24.04": ("Canonical Ubuntu", "24.04"),
               "rhel-9": ("Oracle Linux", "9")}
OCI = Provider(
    "oci", "aifactory.components.oci:GpuPool", title="OCI", labels=True, image_kind="platform image",
    cloud_init=True, region_key="oci:region", images={(os_name, arch): image for os_name, image in _OCI_IMAGES.items() for arch in _ARCHES})

# Pools with declared hosts get one Redfish-driven node each; the rest are racked and booted
# outside Pulumi and appear in the inventory only.
ONPREM = Provider("onprem", "aifactory.components.onprem:GpuPool", title="on-prem", on_site=True,
                  inventory_only_without_hosts=True)

# Chroot nodes on the local machine (``aifactory lab``): nothing for Pulumi to create.
LAB = Provider("lab", None, title="lab", on_site=True, systems_from="onprem",
               inventory_fields={"connection": "chroot"}, chroot_nodes=True)

BUILTIN: Mapping[str, Provider] = MappingProxyType({p.name: p for p in (AWS, GCP, AZURE, OCI, ONPREM, LAB)})


# --- plugins -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plugins:
    found: Mapping[str, Provider]
    broken: Mapping[str, str]  # name -> why it was left out


_EMPTY = _Plugins(MappingProxyType({}), MappingProxyType({}))
_lock = threading.RLock()
_cache: Optional[_Plugins] = None


def reset() -> None:
    """Forget the plugins read so far: the next lookup reads the entry points again."""
    global _cache
    with _lock:
        _cache = None


def _plugins() -> _Plugins:
    global _cache
    with _lock:
        if _cache is None:
            _cache = _EMPTY  # what a plugin module sees if it looks providers up while it is loaded
            try:
                _cache = _discover()
            except BaseException:
                _cache = None
                raise
        return _cache


def _discover() -> _Plugins:
    found: dict[str, Provider] = {}
    broken: dict[str, str] = {}
    try:
        points = list(importlib.metadata.entry_points(group=GROUP))
    except Exception as exc:  # unreadable metadata of some installed distribution
        _warn(f"the {GROUP} entry points could not be read ({_one_line(exc)}); only built-in providers are known")
        return _Plugins(MappingProxyType(found), MappingProxyType(broken))
    by_name: dict[str, list] = {}
    for point in points:
        by_name.setdefault(point.name, []).append(point)
    for name in sorted(by_name):
        ours = [p for p in by_name[name] if _is_ours(p)]
        theirs = [p for p in by_name[name] if p not in ours]
        if name in BUILTIN:
            # This distribution restates its built-ins for other tools; the code is what counts.
            for point in theirs:
                _warn(f"{_origin(point)} is ignored: {name} is a built-in provider, which a plugin cannot replace")
            continue
        if not theirs:
            continue  # a provider this distribution no longer has (stale metadata)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            _warn(f"{_origin(theirs[0])} is ignored: a provider name must be a lowercase name of letters, "
                  "digits and '-' (at most 32 characters)")
            continue
        if len(theirs) > 1:
            why = f"it is declared by more than one plugin ({', '.join(_origin(p) for p in theirs)})"
        else:
            why = _load(name, theirs[0], found)
        if why:
            broken[name] = why
            _warn(f"provider {name} is left out: {why}")
    return _Plugins(MappingProxyType(found), MappingProxyType(broken))


def _load(name: str, point, found: dict) -> str:
    """Load one plugin into ``found``; the reason it was left out otherwise."""
    origin = _origin(point)
    try:
        obj = point.load()
        if not isinstance(obj, Provider) and callable(obj):
            obj = obj()
    except Exception as exc:
        return f"{origin} failed to load ({_one_line(exc)})"
    if not isinstance(obj, Provider):
        return f"{origin} does not name an aifactory.providers.Provider (it names a {type(obj).__name__})"
    if obj.name != name:
        return f"{origin} yields provider {_show(obj.name)}, not {name!r}: the names must agree"
    found[name] = obj
    return ""


def _is_ours(point) -> bool:
    dist = getattr(point, "dist", None)
    dist_name = getattr(dist, "name", None) if dist is not None else None
    if dist_name:
        return _normal(dist_name) == DISTRIBUTION
    builtin = BUILTIN.get(point.name)
    return builtin is not None and point.value == f"{__name__}:{builtin.name.upper()}"


def _origin(point) -> str:
    dist = getattr(point, "dist", None)
    by = f" of distribution {getattr(dist, 'name', None)}" if dist is not None and getattr(dist, "name", None) else ""
    return f"entry point {point.name} = {point.value}{by}"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _warn(message: str) -> None:
    warnings.warn(f"{GROUP}: {message}", ProviderPluginWarning, stacklevel=4)


def _one_line(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 200 else text[:199] + "…"


def _show(value: Any) -> str:
    """A value for a message: quoted, escaped, short (it may come from an untrusted file)."""
    if not isinstance(value, str):
        return f"of type {type(value).__name__}"
    return repr(value[:64] + ("…" if len(value) > 64 else ""))


# --- lookups -------------------------------------------------------------------------------

def names() -> tuple[str, ...]:
    """Every provider name: built-ins in their order, then plugins sorted."""
    return tuple(BUILTIN) + tuple(sorted(_plugins().found))


def registry() -> Mapping[str, Provider]:
    """Every provider, built in or from a plugin, by name."""
    return MappingProxyType({**BUILTIN, **_plugins().found})


def find(name: Any) -> Optional[Provider]:
    """The provider named ``name``; None when there is none (see :func:`get` for the error)."""
    if not isinstance(name, str):
        return None
    builtin = BUILTIN.get(name)
    if builtin is not None:
        return builtin  # built-ins never wait on (or break by) the entry points
    return _plugins().found.get(name)


def get(name: Any, field: str = "provider") -> Provider:
    """The provider named ``name``; :class:`AifactoryError` naming ``field`` and the known providers
    (or why a plugin of that name was left out) otherwise."""
    found = find(name)
    if found is not None:
        return found
    known = ", ".join(names())
    why = _plugins().broken.get(name) if isinstance(name, str) else None
    if why:
        raise AifactoryError(f"{field}: provider {name!r} is not available: {why}; known: {known}")
    raise AifactoryError(f"{field}: no component for provider {_show(name)}; known: {known}")


def component_class(name: Any, declared_hosts: int = 0, field: str = "pools[].provider") -> type:
    """The ``GpuPool`` class for a pool of provider ``name`` declaring ``declared_hosts`` hosts;
    only that provider's module is imported."""
    return get(name, field).component_class(declared_hosts)


def on_site(name: Any) -> bool:
    """Whether racks, switches and power of ``name``'s pools are ours to plan (on-prem, lab)."""
    found = find(name)
    return bool(found and found.on_site)


def where(predicate: Callable[[Provider], bool]) -> tuple[str, ...]:
    """The names of the providers for which ``predicate`` holds, in :func:`names` order."""
    every = registry()
    return tuple(n for n in names() if predicate(every[n]))
