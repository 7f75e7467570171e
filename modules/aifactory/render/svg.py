"""A topology diagram (SVG) per fabric, built with xml.etree so the markup is always well formed.

Tiers are drawn as rows. A tier of up to MAX_BOXES switches is drawn switch by switch; a larger
one (a 10 GW campus has 142,376 leaves) as one box with its count, so the file stays small and
the picture readable. Coordinates are integers and attributes are written in a fixed order, so
the bytes are the same on every machine.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..plan.model import FabricPlan, Plan

MAX_BOXES = 16
WIDTH = 960
ROW = 90
BOX_H = 36
TIER_NAMES = ["leaf", "spine", "core", "tier 4", "tier 5", "tier 6", "tier 7"]


def _text(parent, x: int, y: int, text: str, size: int = 12) -> None:
    t = ET.SubElement(parent, "text", {"x": str(x), "y": str(y), "font-size": str(size),
                                       "text-anchor": "middle", "font-family": "sans-serif"})
    t.text = text


def _row(parent, y: int, labels: list[str], fill: str) -> list[int]:
    """Boxes centred on one row; returns their centre x positions."""
    n = len(labels)
    slot = WIDTH // max(n, 1)
    w = max(24, min(160, slot - 8))
    centres = []
    for i, label in enumerate(labels):
        cx = slot * i + slot // 2
        ET.SubElement(parent, "rect", {"x": str(cx - w // 2), "y": str(y), "width": str(w), "height": str(BOX_H),
                                       "rx": "4", "fill": fill, "stroke": "#333"})
        _text(parent, cx, y + BOX_H // 2 + 4, label, 11 if n <= 8 else 9)
        centres.append(cx)
    return centres


def fabric_svg(plan: Plan, fabric: FabricPlan) -> str:
    tiers = list(fabric.switches_by_tier)
    rows = len(tiers) + 1
    height = ROW * rows + 60
    svg = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "width": str(WIDTH), "height": str(height),
                             "viewBox": f"0 0 {WIDTH} {height}"})
    title = ET.SubElement(svg, "title")
    title.text = f"{plan.name}: fabric {fabric.name} ({fabric.type})"
    _text(svg, WIDTH // 2, 22, f"{fabric.name}: {fabric.type}, {fabric.nodes:,} nodes, {fabric.rails} rails, "
          f"{fabric.tiers} tier(s), {sum(tiers):,} switches, {fabric.cables:,} cables", 14)
    lines = ET.SubElement(svg, "g", {"stroke": "#888", "stroke-width": "1"})
    boxes = ET.SubElement(svg, "g")
    below: list[int] = []
    y = 40 + ROW * (rows - 1)
    pools = [p for p in plan.pools if p.fabric == fabric.name]
    below = _row(boxes, y, [f"{p.name}: {p.nodes:,} x {p.system}" for p in pools] or ["no nodes"], "#e8f4e8")
    switch = fabric.switch or ("provider fabric" if fabric.managed_by == "provider" else "switch")
    if not tiers and fabric.managed_by == "provider":
        tiers_labels = [[f"{fabric.type} ({fabric.managed_by}-managed)"]]
    else:
        tiers_labels = []
        for i, count in enumerate(tiers):
            name = TIER_NAMES[i] if i < len(TIER_NAMES) else f"tier {i + 1}"
            if count <= MAX_BOXES:
                tiers_labels.append([f"{name} {j + 1}" for j in range(count)])
            else:
                tiers_labels.append([f"{count:,} x {switch} ({name})"])
    for labels in tiers_labels:
        y -= ROW
        above = _row(boxes, y, labels, "#e6eefa")
        for a in above:
            for b in below:
                ET.SubElement(lines, "line", {"x1": str(a), "y1": str(y + BOX_H), "x2": str(b), "y2": str(y + ROW)})
        below = above
    ET.indent(svg, space=" ")
    return ET.tostring(svg, encoding="unicode") + "\n"


def files(plan: Plan) -> dict[str, str]:
    return {f"topology/{f.name}.svg": fabric_svg(plan, f) for f in plan.fabrics}
