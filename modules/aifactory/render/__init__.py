"""Renderers that turn a Plan into files. All templates go through :func:`environment`."""
