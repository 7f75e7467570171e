"""The spec's YAML loader is the project's one bounded YAML loader (:mod:`aifactory.yamlfile`)."""

from ..yamlfile import MAX_BYTES, MAX_DEPTH, MAX_NODES, Document, load_file, load_text  # noqa: F401

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "Document", "load_file", "load_text"]
