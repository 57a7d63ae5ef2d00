"""A picture of a generated dashboard's layout: every panel's title and type where Grafana puts it.

:func:`layout_svg` turns dashboard JSON (as ``vecmon generate`` writes it) into a self-contained SVG
on Grafana's 24-column grid: rows as bands, panels as boxes with their title and visualisation type.
It needs nothing but the JSON, so a reader sees what a dashboard holds before opening Grafana;
``docs/make_screenshots.py`` turns these into the PNGs the README shows.
"""

from __future__ import annotations

from html import escape
from typing import Any

GRID_COLUMNS = 24
COLUMN_PX = 44  # width of one grid column
ROW_PX = 26  # height of one grid unit
MARGIN = 12
TITLE_PX = 34

# Fill colours by panel type (light, so the dark text stays readable in both README themes).
TYPE_COLOURS = {
    "timeseries": "#dbeafe", "graph": "#dbeafe", "stat": "#dcfce7", "gauge": "#dcfce7",
    "bargauge": "#dcfce7", "table": "#fef3c7", "heatmap": "#fde2e2", "text": "#f3f4f6",
    "state-timeline": "#ede9fe", "piechart": "#fce7f3",
}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels plus the panels of collapsed rows (which Grafana nests inside the row)."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        if panel.get("type") == "row" and panel.get("collapsed"):
            out.extend(panel.get("panels", []))
    return out


def _clip(text: str, width_px: float, char_px: float = 7.4) -> str:
    room = max(3, int(width_px / char_px))
    return text if len(text) <= room else text[: room - 1] + "\u2026"


def layout_svg(dashboard: dict[str, Any]) -> str:
    """The dashboard's layout as an SVG document (titles and types escaped: they come from config)."""
    panels = _panels(dashboard)
    bottom = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels if "gridPos" in p), default=1)
    width = GRID_COLUMNS * COLUMN_PX + 2 * MARGIN
    height = bottom * ROW_PX + TITLE_PX + 2 * MARGIN
    title = escape(str(dashboard.get("title", "")))
    uid = escape(str(dashboard.get("uid", "")))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 18}" font-size="18" font-weight="bold" fill="#111827">{title}</text>',
        f'<text x="{width - MARGIN}" y="{MARGIN + 18}" font-size="12" fill="#6b7280" text-anchor="end">'
        f'uid {uid} \u00b7 {sum(1 for p in panels if p.get("type") != "row")} panels</text>',
    ]
    top = MARGIN + TITLE_PX
    for panel in panels:
        grid = panel.get("gridPos")
        if not grid:
            continue
        x = MARGIN + grid["x"] * COLUMN_PX
        y = top + grid["y"] * ROW_PX
        w = grid["w"] * COLUMN_PX
        h = grid["h"] * ROW_PX
        kind = str(panel.get("type", ""))
        name = str(panel.get("title", ""))
        if kind == "row":
            parts.append(f'<rect x="{x}" y="{y + 2}" width="{w}" height="{h - 4}" fill="#1f2937" rx="3"/>')
            parts.append(f'<text x="{x + 8}" y="{y + h / 2 + 5}" font-size="13" font-weight="bold" '
                         f'fill="#ffffff">{escape(_clip(name, w - 16))}</text>')
            continue
        fill = TYPE_COLOURS.get(kind, "#e5e7eb")
        parts.append(f'<rect x="{x + 2}" y="{y + 2}" width="{w - 4}" height="{h - 4}" fill="{fill}" '
                     f'stroke="#9ca3af" rx="4"/>')
        parts.append(f'<text x="{x + 9}" y="{y + 20}" font-size="12" font-weight="bold" fill="#111827">'
                     f'{escape(_clip(name, w - 18))}</text>')
        parts.append(f'<text x="{x + 9}" y="{y + 36}" font-size="11" fill="#4b5563">{escape(kind)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
