"""Bring grafanalib 0.7.1's JSON (``schemaVersion: 12``) to the current dashboard schema.

grafanalib emits a Grafana 6-era document that Grafana migrates on every load. The facade already
builds current panel shapes (``fieldConfig.defaults``, ``options``, datasource objects, the Grafana
9+ heatmap, no ``graph`` panels); this module applies what the migrations from 12 to
:data:`SCHEMA_VERSION` would still change, so the file is what Grafana itself saves today:

- dashboard: ``schemaVersion`` 39 (Grafana 10.4; 11 and 12 migrate 39 onwards without changes to
  these panels), ``fiscalYearStartMonth``, ``liveNow``, ``weekStart``;
- panels: no null or default legacy keys (``interval``, ``timeFrom``, ``timeShift``,
  ``maxDataPoints``, ``hideTimeOverride``, ``transparent``); a datasource object on every panel
  and target (schema 33/36);
- time series: ``options.legend.showLegend`` (schema 37), no null axis bounds in ``custom``;
- tables: ``custom.displayMode`` becomes ``custom.cellOptions`` (schema 38), in overrides too;
- Prometheus targets: ``editorMode: code``, ``range`` beside ``instant``, no legacy ``query`` copy
  of ``expr`` or empty ``interval`` (``intervalFactor`` stays 1: grafanalib's default is 2).

Template variables are left as the facade builds them.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_PANEL_DEFAULTS = {"interval": (None, ""), "timeFrom": (None,), "timeShift": (None,), "maxDataPoints": (None,),
                   "hideTimeOverride": (False,), "transparent": (False,)}


def _cell_options(mode: Any) -> dict[str, Any]:
    return {"type": mode} if isinstance(mode, str) else dict(mode)


def _table(panel: dict[str, Any]) -> None:
    field_config = panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
    custom = field_config.setdefault("defaults", {}).setdefault("custom", {})
    custom["cellOptions"] = _cell_options(custom.pop("displayMode", "auto"))
    for override in field_config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "custom.displayMode":
                prop["id"], prop["value"] = "custom.cellOptions", _cell_options(prop.get("value"))


def _timeseries(panel: dict[str, Any]) -> None:
    legend = panel.setdefault("options", {}).setdefault("legend", {})
    legend["showLegend"] = legend.get("displayMode") != "hidden"
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
    for key in [k for k, v in custom.items() if v is None]:
        del custom[key]


def _target(target: dict[str, Any], datasource: dict[str, Any]) -> None:
    if not isinstance(target.get("datasource"), dict):
        target["datasource"] = dict(datasource)
    target.pop("query", None)
    if target.get("interval") == "":
        del target["interval"]
    target["instant"] = bool(target.get("instant"))
    target["range"] = not target["instant"]
    target["editorMode"] = "code"


def _panel(panel: dict[str, Any]) -> None:
    for key, defaults in _PANEL_DEFAULTS.items():
        if key in panel and panel[key] in defaults:
            del panel[key]
    if panel.get("type") == "row":
        for child in panel.get("panels", []):
            _panel(child)
        return
    if not isinstance(panel.get("datasource"), dict):
        panel["datasource"] = dict(DATASOURCE)
    panel.setdefault("options", {})
    panel.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
    for target in panel.get("targets", []):
        _target(target, panel["datasource"])
    if panel.get("type") == "timeseries":
        _timeseries(panel)
    elif panel.get("type") == "table":
        _table(panel)


def to_current_schema(board: dict[str, Any]) -> dict[str, Any]:
    """``board`` (the facade's JSON) in schema :data:`SCHEMA_VERSION`, changed in place and returned."""
    if board.get("schemaVersion", 0) >= SCHEMA_VERSION:
        return board
    for key in ("rows", "style", "sharedCrosshair", "hideControls", "gnetId"):
        board.pop(key, None)
    for panel in board.get("panels", []):
        _panel(panel)
    board["schemaVersion"] = SCHEMA_VERSION
    board.setdefault("fiscalYearStartMonth", 0)
    board.setdefault("liveNow", False)
    board.setdefault("weekStart", "")
    return board
