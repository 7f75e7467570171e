"""Security guardrails: pure rules (offline) and the pulumi-policy wrappers (``policy/``)."""

from __future__ import annotations

from .rules import REQUIRED_TAGS, RULE_NAMES, RULES, Resource, Rule, Violation, evaluate

__all__ = ["REQUIRED_TAGS", "RULE_NAMES", "RULES", "Resource", "Rule", "Violation",
           "evaluate"]
