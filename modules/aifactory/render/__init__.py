"""Renderers that turn a Plan into files. All templates go through :func:`environment`.

``build_files(plan)`` returns the deployment directory as ``{relative path: text}``;
``render(plan, out, check=False)`` writes it (or compares it, for the drift gate).
Both are imported lazily so that ``aifactory.render.environment`` stays cheap to import.
"""


def build_files(*args, **kwargs):
    from .deployment import build_files as _build

    return _build(*args, **kwargs)


def render(*args, **kwargs):
    from .deployment import render as _render

    return _render(*args, **kwargs)
