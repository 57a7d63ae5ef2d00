"""The one place that knows grafanalib: panel, variable and dashboard builders, and its JSON quirks.

Dashboard modules build dashboards only through the functions here (``timeseries``, ``stat``,
``gauge``, ``bargauge``, ``table``, ``heatmap``, ``row``, ``query_var``, ``dashboard``...), so
switching to another builder (e.g. grafana-foundation-sdk) touches this module alone.

grafanalib 0.7.1 quirks fixed here (see the research notes, section a.4):

1. ``Threshold`` emits the string ``"null"`` and graph-era fields: steps are plain dicts.
2. ``Stat`` without thresholds emits ``"steps": ""``: every panel gets real steps.
3. ``Target`` defaults to ``intervalFactor=2``/``step=10`` and emits Graphite fields: fixed and dropped.
4. ``maxDataPoints=100``: left to Grafana (panel width).
5. ``GaugePanel`` emits no ``options`` and puts ``calcs`` into ``fieldConfig.defaults``: rebuilt.
6. ``BarGauge`` emits the Grafana 6 ``options.fieldOptions`` shape: rebuilt as ``fieldConfig``.
7. ``Heatmap`` emits the pre-9 heatmap: rebuilt as the Grafana 9+ heatmap (``options.calculate=false``).
8. Angular ``Graph``/``SingleStat`` are never used.
9. ``TimeSeries`` min/max/decimals accept ints only: set on the plain JSON.
10. Template labels default to ``None`` and datasource refs are strings in old examples: explicit
    labels and ``{"type": "prometheus", "uid": "${datasource}"}`` objects everywhere.

Output is deterministic: no ids from counters outside the dashboard, ``sort_keys`` and a fixed
indent, so the same config gives byte-identical JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    BarGauge,
    Dashboard,
    GaugePanel,
    GridPos,
    Heatmap,
    RowPanel,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

from collectors.self_metrics import COLLECTOR_DISABLED

# A threshold step list ({"color": ..., "value": ...} dicts, see ``steps``) and a panel JSON fragment.
ThresholdSteps = list[dict[str, Any]]
JSONObject = dict[str, Any]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
PANEL_TYPES = ("timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "row")

# Label matchers every selector carries (dashboard-linter target-job / target-instance rules).
JOB = 'job=~"$job"'
INSTANCE = 'instance=~"$instance"'
TARGET = 'target=~"$target"'


def matchers(*extra: str, target: bool = True) -> str:
    """``{job=~"$job", instance=~"$instance", target=~"$target", <extra>}``."""
    parts = [JOB, INSTANCE, *([TARGET] if target else []), *extra]
    return "{" + ", ".join(parts) + "}"


def m(name: str, *extra: str, target: bool = True) -> str:
    """A metric selector with the dashboard's job/instance(/target) matchers and ``extra`` ones."""
    return name + matchers(*extra, target=target)


def rate(selector: str, func: str = "rate") -> str:
    """``rate(<selector>[$__rate_interval])``."""
    return f"{func}({selector}[$__rate_interval])"


def steps(*pairs: tuple[str, float | None]) -> list[dict[str, Any]]:
    """Threshold steps as plain dicts (quirk 1); the first value must be None (the base)."""
    if not pairs or pairs[0][1] is not None:
        raise ValueError("threshold steps start with a base step whose value is None")
    return [{"color": color, "value": value} for color, value in pairs]


def higher_is_better(warn: float, good: float) -> list[dict[str, Any]]:
    """red below ``warn``, orange up to ``good``, green at and above it."""
    return steps(("red", None), ("orange", warn), ("green", good)) if warn < good else \
        steps(("red", None), ("green", good))


def lower_is_better(warn: float, bad: float) -> list[dict[str, Any]]:
    """green below ``warn``, orange up to ``bad``, red at and above it."""
    return steps(("green", None), ("orange", warn), ("red", bad)) if warn < bad else \
        steps(("green", None), ("red", bad))


NEUTRAL = [{"color": "text", "value": None}]


def threshold_override(display_name: str, threshold_steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Field override giving one series (by its legend) its own thresholds, e.g. one SLO's objective."""
    return {"matcher": {"id": "byName", "options": display_name},
            "properties": [{"id": "thresholds", "value": {"mode": "absolute", "steps": threshold_steps}}]}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    format: str = "time_series"  # time_series | table | heatmap


def q(expr: str, legend: str = "", *, instant: bool = False, table: bool = False, heatmap: bool = False) -> Query:
    fmt = "table" if table else "heatmap" if heatmap else "time_series"
    return Query(" ".join(expr.split()), legend, instant or table, fmt)


def _targets(queries: Sequence[Query]) -> list[Target]:
    if not queries:
        raise ValueError("a panel needs at least one query")
    return [Target(expr=query.expr, legendFormat=query.legend, refId=chr(ord("A") + i), datasource=DATASOURCE,
                   instant=query.instant, format=query.format, intervalFactor=1)  # quirk 3
            for i, query in enumerate(queries)]


@dataclass
class Panel:
    """A built panel: the builder object, its size, and JSON fixes applied after rendering."""

    obj: Any
    w: int
    h: int
    fixes: dict[str, Any] = field(default_factory=dict)  # deep-merged into the panel JSON
    replace: dict[str, Any] = field(default_factory=dict)  # top-level keys replaced wholesale
    is_row: bool = False


def _common(title: str, description: str, queries: Sequence[Query],
            thresholds: ThresholdSteps | None) -> dict[str, Any]:
    if not title or not description:
        raise ValueError(f"panel {title!r}: title and description are required")
    return dict(title=title, description=description, dataSource=DATASOURCE, targets=_targets(queries),
                thresholds=thresholds or NEUTRAL, maxDataPoints=None, editable=False)  # quirks 2, 4


def _defaults(unit: str, min_: float | None, max_: float | None, decimals: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": unit}
    for key, value in (("min", min_), ("max", max_), ("decimals", decimals)):
        if value is not None:
            out[key] = value
    return out


def timeseries(title: str, description: str, unit: str, queries: Sequence[Query], *,
               thresholds: ThresholdSteps | None = None,
               threshold_style: str = "off", min: float | None = None, max: float | None = None,
               decimals: int | None = None, stack: bool = False, fill: int = 10, bars: bool = False,
               calcs: Sequence[str] = ("lastNotNull", "max"), w: int = 12, h: int = 8,
               overrides: Sequence[JSONObject] = ()) -> Panel:
    obj = TimeSeries(**_common(title, description, queries, thresholds), unit=unit,
                     thresholdsStyleMode=threshold_style if thresholds else "off",
                     stacking={"mode": "normal", "group": "A"} if stack else {"mode": "none"},
                     fillOpacity=fill, drawStyle="bars" if bars else "line", showPoints="never",
                     legendDisplayMode="table", legendCalcs=list(calcs), tooltipMode="multi", tooltipSort="desc",
                     overrides=list(overrides))
    return Panel(obj, w, h, fixes={"fieldConfig": {"defaults": _defaults(unit, min, max, decimals)}})  # quirk 9


def _reduce(calc: str) -> dict[str, Any]:
    return {"calcs": [calc], "fields": "", "values": False}


def stat(title: str, description: str, unit: str, queries: Sequence[Query], *,
         thresholds: ThresholdSteps | None = None,
         decimals: int | None = None, graph: bool = False, color_mode: str = "value", calc: str = "lastNotNull",
         text_mode: str = "auto", mappings: Sequence[JSONObject] = (), overrides: Sequence[JSONObject] = (),
         w: int = 6,
         h: int = 4) -> Panel:
    obj = Stat(**_common(title, description, queries, thresholds), format=unit, decimals=decimals,
               graphMode="area" if graph else "none", colorMode=color_mode, reduceCalc=calc, textMode=text_mode,
               mappings=list(mappings), overrides=list(overrides))
    return Panel(obj, w, h, fixes={"fieldConfig": {"defaults": {"noValue": None, "color": {"mode": "thresholds"}}}})


def gauge(title: str, description: str, unit: str, queries: Sequence[Query], *, thresholds: ThresholdSteps,
          min: float = 0,
          max: float = 1, decimals: int | None = None, calc: str = "lastNotNull", w: int = 6, h: int = 6) -> Panel:
    obj = GaugePanel(**_common(title, description, queries, thresholds), format=unit)
    # quirk 5: GaugePanel's fieldConfig holds legacy keys and it emits no options at all
    field_config = {"defaults": {**_defaults(unit, min, max, decimals), "color": {"mode": "thresholds"},
                                 "mappings": [], "thresholds": {"mode": "absolute", "steps": thresholds}},
                    "overrides": []}
    options = {"reduceOptions": _reduce(calc), "orientation": "auto", "showThresholdMarkers": True,
               "showThresholdLabels": False}
    return Panel(obj, w, h, replace={"fieldConfig": field_config, "options": options})


def bargauge(title: str, description: str, unit: str, queries: Sequence[Query], *, thresholds: ThresholdSteps,
             min: float | None = 0,
             max: float | None = 1, decimals: int | None = None, calc: str = "lastNotNull",
             orientation: str = "horizontal", overrides: Sequence[JSONObject] = (), w: int = 12,
             h: int = 8) -> Panel:
    obj = BarGauge(**_common(title, description, queries, thresholds), format=unit, orientation=orientation)
    # quirk 6: the Grafana 6 options.fieldOptions shape becomes fieldConfig + reduceOptions
    field_config = {"defaults": {**_defaults(unit, min, max, decimals), "color": {"mode": "thresholds"},
                                 "mappings": [], "thresholds": {"mode": "absolute", "steps": thresholds}},
                    "overrides": list(overrides)}
    options = {"reduceOptions": _reduce(calc), "orientation": orientation, "displayMode": "gradient",
               "showUnfilled": True, "valueMode": "color", "namePlacement": "auto", "sizing": "auto",
               "minVizHeight": 16, "minVizWidth": 8, "maxVizHeight": 300}
    return Panel(obj, w, h, replace={"fieldConfig": field_config, "options": options})


def table(title: str, description: str, unit: str, queries: Sequence[Query], *,
          thresholds: ThresholdSteps | None = None,
          rename: dict[str, str] | None = None, hide: Iterable[str] = (), column_units: dict[str, str] | None = None,
          sort_by: str | None = None, descending: bool = True, w: int = 24, h: int = 8) -> Panel:
    """An instant table: one row per series, one column per query (merged on the labels)."""
    queries = [Query(x.expr, x.legend, True, "table") for x in queries]
    hidden = {"Time": True, **{name: True for name in hide}}
    transformations: list[dict[str, Any]] = []
    if len(queries) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({"id": "organize", "options": {"excludeByName": hidden, "indexByName": {},
                                                         "renameByName": dict(rename or {})}})
    overrides = [{"matcher": {"id": "byName", "options": column},
                  "properties": [{"id": "unit", "value": column_unit}]}
                 for column, column_unit in sorted((column_units or {}).items())]
    obj = Table(**_common(title, description, queries, thresholds), unit=unit, filterable=True,
                transformations=transformations, overrides=overrides)
    sort = [{"displayName": sort_by, "desc": descending}] if sort_by else []
    return Panel(obj, w, h, fixes={"options": {"sortBy": sort, "cellHeight": "sm", "footer": {"show": False}}},
                 replace={"color": None, "columns": None, "fontSize": None, "mappings": None})


def heatmap(title: str, description: str, unit: str, query: Query, *, w: int = 12, h: int = 8) -> Panel:
    """A heatmap of pre-bucketed histogram data: ``sum by (le) (increase(x_bucket[...]))``."""
    query = Query(query.expr, query.legend or "{{le}}", False, "heatmap")
    obj = Heatmap(**_common(title, description, [query], None), dataFormat="tsbuckets")
    # quirk 7: the Grafana 9+ heatmap; the legacy keys are dropped
    options = {"calculate": False, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark",
                                                           "scale": "exponential", "exponent": 0.5, "steps": 64,
                                                           "reverse": False},
               "yAxis": {"axisPlacement": "left", "unit": unit, "reverse": False},
               "rowsFrame": {"layout": "auto"}, "tooltip": {"mode": "single", "yHistogram": True, "show": True},
               "legend": {"show": True}, "exemplars": {"color": "rgba(255,0,255,0.7)"},
               "filterValues": {"le": 1e-9}, "showValue": "never", "cellValues": {"unit": "short"}}
    field_config = {"defaults": {"unit": unit, "custom": {"hideFrom": {"legend": False, "tooltip": False,
                                                                       "viz": False},
                                                          "scaleDistribution": {"type": "linear"}}},
                    "overrides": []}
    drop = {key: None for key in ("cards", "color", "dataFormat", "heatmap", "hideZeroBuckets", "highlightCards",
                                  "legend", "reverseYBuckets", "tooltip", "xAxis", "xBucketNumber", "xBucketSize",
                                  "yAxis", "yBucketBound", "yBucketNumber", "yBucketSize")}
    return Panel(obj, w, h, replace={**drop, "options": options, "fieldConfig": field_config})


def row(title: str) -> Panel:
    return Panel(RowPanel(title=title), GRID_WIDTH, 1, is_row=True)


# --------------------------------------------------------------------------- variables


def datasource_var() -> Template:
    return Template(name="datasource", label="Data source", type="datasource", query="prometheus", hide=0)


def query_var(name: str, label: str, query: str, *, multi: bool = True, include_all: bool = True,
              hide: int = 0) -> Template:
    """A Prometheus query variable refreshed on time-range change (refresh 2), ``.+`` as All."""
    return Template(name=name, label=label, query=query, dataSource=DATASOURCE, multi=multi,
                    includeAll=include_all, allValue=".+" if include_all else None, refresh=2, sort=1,
                    hide=hide, default="All" if include_all else None)


def standard_vars(anchor: str) -> list[Template]:
    """datasource, job and instance; ``anchor`` is a metric every vecmon exports (e.g. vecmon_build_info)."""
    return [datasource_var(),
            query_var("job", "Job", f"label_values({anchor}, job)"),
            query_var("instance", "Instance", f'label_values({anchor}{{{JOB}}}, instance)')]


# --------------------------------------------------------------------------- layout and dashboard


def layout(panels: Sequence[Panel]) -> list[Panel]:
    """Flow panels left to right over 24 columns (setting each builder object's gridPos); a row starts
    a new line. Returns the panels in order."""
    placed: list[Panel] = []
    x = y = line_height = 0
    for panel in panels:
        if panel.is_row or x + panel.w > GRID_WIDTH:
            y, x, line_height = y + line_height, 0, 0
        panel.obj.gridPos = GridPos(h=panel.h, w=panel.w, x=x, y=y)
        placed.append(panel)
        if panel.is_row:
            y += 1
            continue
        x += panel.w
        line_height = max(line_height, panel.h)
    return placed


def missing_capability(what: str, collector: str) -> str:
    """The text a panel shows instead of "No data" when it needs ``what`` on the target: the
    collector then reports itself disabled, which the message names so the reader can check."""
    return (f"no data: {what} is not installed on this target "
            f'({COLLECTOR_DISABLED.name}{{collector="{collector}"}} == 1)')


def explain_empty(panels: Sequence[Panel], message: str) -> list[Panel]:
    """Give every panel (rows aside) Grafana's ``noValue`` text ``message`` (see missing_capability)."""
    for panel in panels:
        if not panel.is_row:
            _deep_merge(panel.fixes, {"fieldConfig": {"defaults": {"noValue": message}}})
    return list(panels)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, cls=DashboardEncoder))


_LEGACY_TARGET_KEYS = ("step", "target", "metric")
_LEGACY_PANEL_KEYS = ("height", "span", "minSpan", "error", "cacheTimeout", "repeatDirection", "maxPerRow")


def _fix_panel(panel: Panel, panel_id: int) -> dict[str, Any]:
    data: dict[str, Any] = _plain(panel.obj)
    data["id"] = panel_id
    for key, value in panel.replace.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    _deep_merge(data, panel.fixes)
    defaults = data.get("fieldConfig", {}).get("defaults", {})
    for key in ("min", "max", "decimals", "noValue"):
        if key in defaults and defaults[key] is None:
            del defaults[key]
    for key in _LEGACY_PANEL_KEYS:
        data.pop(key, None)
    if data.get("repeat") is None:
        data.pop("repeat", None)
    for target in data.get("targets", []):
        for key in _LEGACY_TARGET_KEYS:
            target.pop(key, None)
    if panel.is_row:
        data.update({"collapsed": False, "panels": []})
        for key in ("datasource", "targets", "fieldConfig", "transformations", "links", "description"):
            data.pop(key, None)
    if data["type"] not in PANEL_TYPES:
        raise ValueError(f"panel type {data['type']!r} is not allowed")
    return data


def dashboard(uid: str, title: str, description: str, variables: Sequence[Template], panels: Sequence[Panel],
              *, tags: Sequence[str] = (), refresh: str = "30s", time_from: str = "now-6h") -> dict[str, Any]:
    """Build the dashboard as a plain JSON-able dict with every quirk fixed."""
    if len(uid) > 40:
        raise ValueError(f"uid {uid!r} is longer than Grafana's 40 characters")
    placed = layout(panels)
    links = [{"type": "dashboards", "tags": ["vecmon"], "asDropdown": True, "title": "vecmon dashboards",
              "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
              "tooltip": "", "url": ""}]
    board = Dashboard(title=title, uid=uid, description=description, tags=["vecmon", *tags], editable=False,
                      timezone="utc", refresh=refresh, time=Time(time_from, "now"), graphTooltip=1,
                      templating=Templating(list=list(variables)), links=links, panels=[])
    data: dict[str, Any] = _plain(board)
    for var in data["templating"]["list"]:
        for key in ("auto", "auto_count", "auto_min", "useTags", "tagsQuery", "tagValuesQuery"):
            var.pop(key, None)
        if var.get("includeAll"):
            var["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    data["panels"] = [_fix_panel(panel, i) for i, panel in enumerate(placed, start=1)]
    for key in ("rows", "hideControls", "sharedCrosshair", "style", "gnetId"):
        data.pop(key, None)
    data["annotations"] = {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                     "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                     "name": "Annotations & Alerts", "type": "dashboard"}]}
    return data


def to_json(board: dict[str, Any]) -> str:
    """Deterministic JSON text (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(board, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
