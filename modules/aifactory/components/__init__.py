"""Pulumi components: one ``GpuPool`` per provider with the same public shape (see ``base``).

Provider modules are imported on demand, through the provider registry
(:mod:`aifactory.providers`, ``Provider.component_class``): each pulls in its provider SDK, and a
factory should pay only for the clouds it uses.
"""

from .base import OUTPUTS, TAG_FACTORY, TAG_KEYS, TAG_POOL, TAG_ROLE, TAG_SITE, GpuPool

__all__ = ["OUTPUTS", "TAG_FACTORY", "TAG_KEYS", "TAG_POOL", "TAG_ROLE", "TAG_SITE", "GpuPool"]
