"""Checks against the live cloud account before a deploy (see :mod:`.aws`)."""

from .aws import Check, check_factory, check_pool

__all__ = ["Check", "check_factory", "check_pool"]
