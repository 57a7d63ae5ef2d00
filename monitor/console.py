"""The operator's console at ``/``: one server-rendered page drawn from :func:`monitor.status.build_status`.

No external assets (it works offline): inline CSS with light and dark schemes, inline SVG charts and a
few lines of script for the pausable auto-refresh. Every value that comes from a database or the config
(names of targets, tables, indexes, filters, error texts) goes through :func:`html.escape`, so a table
called ``<script>alert(1)</script>`` is shown as text.
"""

from __future__ import annotations

from html import escape
from typing import Any

REFRESH_SECONDS = 15

STYLE = """
:root{--bg:#fff;--fg:#111827;--muted:#6b7280;--card:#f9fafb;--line:#d1d5db;--ok:#15803d;--bad:#b91c1c;
--warn:#b45309;--recall:#2563eb;--latency:#db2777}
@media (prefers-color-scheme: dark){:root{--bg:#111827;--fg:#e5e7eb;--muted:#9ca3af;--card:#1f2937;
--line:#374151;--ok:#4ade80;--bad:#f87171;--warn:#fbbf24;--recall:#60a5fa;--latency:#f472b6}}
body{background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:1.2em;max-width:1200px}
a{color:var(--recall)}h1{font-size:1.4em;margin:0}h2{font-size:1.15em;margin:1.4em 0 .5em}
header{display:flex;gap:1em;align-items:center;flex-wrap:wrap}header .links{margin-left:auto}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid var(--line);padding:.3em .5em;text-align:left;
vertical-align:top}th{color:var(--muted);font-weight:600}
.up,.ok,.true{color:var(--ok)}.down,.failed,.false,.target-down{color:var(--bad)}.pending,.degraded,.misconfigured{color:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1em}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.8em 1em}
.card h3{margin:0 0 .3em;font-size:1.05em}.muted{color:var(--muted)}.big{font-size:1.6em;font-weight:700}
.cause{font-family:ui-monospace,monospace;font-size:.9em;white-space:pre-wrap;word-break:break-word}
button{background:var(--card);color:var(--fg);border:1px solid var(--line);border-radius:4px;padding:.2em .7em;cursor:pointer}
svg text{fill:var(--muted);font-size:11px}.axis{stroke:var(--line)}.recall-line{stroke:var(--recall);fill:none;stroke-width:2}
.latency-line{stroke:var(--latency);fill:none;stroke-width:2;stroke-dasharray:4 3}.recall-point{fill:var(--recall)}
.latency-point{fill:var(--latency)}.goal{stroke:var(--ok);stroke-dasharray:2 3}.mark-app{stroke:var(--warn);stroke-width:2}
.mark-rec{stroke:var(--ok);stroke-width:2}.bar{fill:var(--line)}.bar-fill{fill:var(--recall)}
"""  # noqa: E501 - CSS rules kept whole on their lines

SCRIPT = """
(function(){
  var key='vecmon-console-paused', button=document.getElementById('pause');
  function paused(){try{return localStorage.getItem(key)==='1';}catch(e){return false;}}
  function show(){button.textContent=paused()?'Resume refresh':'Pause refresh';
    document.getElementById('refresh-state').textContent=paused()?'paused':'every %(seconds)ss';}
  button.addEventListener('click',function(){try{localStorage.setItem(key,paused()?'0':'1');}catch(e){}show();});
  show();
  window.setInterval(function(){if(!paused()){window.location.reload();}},%(millis)s);
})();
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def _usd(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"${value:.{digits}f}"


def _pending(rows: float | None) -> str:
    return "" if rows is None else f"; {rows:g} rows wait for an embedding"


def _bytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def recall_chart(index: dict[str, Any], width: int = 480, height: int = 200) -> str:
    """Recall (left axis, 0..1) and probe query latency (right axis) over ef_search/probes, with the
    recall target, the application's setting and the recommended setting marked."""
    curve = index["curve"]
    if not curve:
        return "<p class='muted'>No recall curve yet: the probe has not measured this index.</p>"
    left, right, top, bottom = 40, 50, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [p["value"] for p in curve]
    low, high = min(values), max(values)
    latencies = [p["latency_seconds"] for p in curve if p["latency_seconds"] is not None]
    lat_high = max(latencies) * 1.1 if latencies else 1.0

    def x(value: float) -> float:
        return left + (plot_w / 2 if high == low else (value - low) / (high - low) * plot_w)

    def y_recall(recall: float) -> float:
        return top + (1 - recall) * plot_h

    def y_latency(seconds: float) -> float:
        return top + (1 - seconds / lat_high) * plot_h

    parts = [f"<svg class='recall-chart' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
             f"aria-label='recall and latency over {_e(index['param'])}'>",
             f"<line class='axis' x1='{left}' y1='{top}' x2='{left}' y2='{top + plot_h}'/>",
             f"<line class='axis' x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}'/>",
             f"<line class='axis' x1='{left + plot_w}' y1='{top}' x2='{left + plot_w}' y2='{top + plot_h}'/>"]
    for tick in (0.0, 0.5, 1.0):
        parts.append(f"<text x='{left - 6}' y='{y_recall(tick) + 4:.1f}' text-anchor='end'>{tick:g}</text>")
    parts.append(f"<text x='{left + plot_w + 6}' y='{top + 4}'>{lat_high * 1000:.1f} ms</text>")
    parts.append(f"<text x='{left + plot_w + 6}' y='{top + plot_h}'>0 ms</text>")
    if index.get("recall_target") is not None:
        goal = y_recall(index["recall_target"])
        parts.append(f"<line class='goal' x1='{left}' y1='{goal:.1f}' x2='{left + plot_w}' y2='{goal:.1f}'/>")
    for name, css, value in (("application", "mark-app", index.get("app_setting")),
                             ("recommended", "mark-rec", index.get("recommended_setting"))):
        if value is not None and low <= value <= high:
            parts.append(f"<line class='{css}' data-mark='{name}' data-value='{value:g}' x1='{x(value):.1f}' "
                         f"y1='{top}' x2='{x(value):.1f}' y2='{top + plot_h}'><title>{name} setting "
                         f"{value:g}</title></line>")
    recall_path = " ".join(f"{'M' if i == 0 else 'L'}{x(p['value']):.1f},{y_recall(p['recall']):.1f}"
                           for i, p in enumerate(curve))
    parts.append(f"<path class='recall-line' d='{recall_path}'/>")
    with_latency = [p for p in curve if p["latency_seconds"] is not None]
    if with_latency:
        latency_path = " ".join(f"{'M' if i == 0 else 'L'}{x(p['value']):.1f},{y_latency(p['latency_seconds']):.1f}"
                                for i, p in enumerate(with_latency))
        parts.append(f"<path class='latency-line' d='{latency_path}'/>")
    for p in curve:
        parts.append(f"<circle class='recall-point' data-value='{p['value']:g}' data-recall='{p['recall']!r}' "
                     f"cx='{x(p['value']):.1f}' cy='{y_recall(p['recall']):.1f}' r='3.5'><title>"
                     f"{_e(index['param'])}={p['value']:g}: recall {p['recall']:.3f}</title></circle>")
        if p["latency_seconds"] is not None:
            parts.append(f"<circle class='latency-point' data-value='{p['value']:g}' "
                         f"data-latency='{p['latency_seconds']!r}' cx='{x(p['value']):.1f}' "
                         f"cy='{y_latency(p['latency_seconds']):.1f}' r='3'><title>{p['latency_seconds'] * 1000:.2f}"
                         f" ms</title></circle>")
        parts.append(f"<text x='{x(p['value']):.1f}' y='{top + plot_h + 16}' text-anchor='middle'>"
                     f"{p['value']:g}</text>")
    parts.append(f"<text x='{left + plot_w / 2}' y='{height - 2}' text-anchor='middle'>{_e(index['param'])}: "
                 f"recall (solid, left), query latency (dashed, right); marks: application setting (amber), "
                 f"recommended (green)</text></svg>")
    return "".join(parts)


def _collector_cause(collector: dict[str, Any]) -> str:
    """The last error, or the config entries naming what the target lacks."""
    flagged = "; ".join(f"{p['path']}: {p['reason']}" for p in collector.get("misconfigured") or ())
    return collector["error"] or (f"misconfigured: {flagged}" if flagged else "")


def _targets_section(targets: list[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        failing = [c for c in t["collectors"] if c["state"] in ("failed", "target-down")]
        rows.append(f"<tr data-target='{_e(t['name'])}'><td>{_e(t['name'])}</td><td>{_e(t['where'])}</td>"
                    f"<td class='{_e(t['status'])} status'>{_e(t['status'])}</td>"
                    f"<td>{len(t['collectors']) - len(failing)}/{len(t['collectors'])} ok</td>"
                    f"<td class='cause'>{_e(t['cause'] or '')}</td></tr>")
    details = []
    for t in targets:
        for c in t["collectors"]:
            details.append(f"<tr><td>{_e(t['name'])}</td><td>{_e(c['name'])}</td><td class='{_e(c['state'])}'>"
                           f"{_e(c['state'])}</td><td>{c['series']}</td><td>{_seconds(c['last_success_seconds_ago'])}"
                           f"</td><td>{_seconds(c['duration_seconds'])}</td><td class='cause'>{_e(_collector_cause(c))}"
                           f"</td></tr>")
    return (f"<h2>Targets</h2><table id='targets'><tr><th>target</th><th>where</th><th>status</th><th>collectors</th>"
            f"<th>cause</th></tr>{''.join(rows)}</table>"
            f"<details><summary>Collectors</summary><table id='collectors'><tr><th>target</th><th>collector</th>"
            f"<th>state</th><th>series</th><th>last success</th><th>duration</th><th>last error</th></tr>"
            f"{''.join(details)}</table></details>")


def _index_card(index: dict[str, Any]) -> str:
    name = f"{index['schema']}.{index['table']} / {index['index']}"
    goal = index.get("recall_target")
    now = index.get("recall_now")
    met = "" if now is None or goal is None else ("ok" if now >= goal - 1e-9 else "failed")
    filters = "".join(f"<tr><td>{_e(f['name'])}</td><td>{_e(f['iterative'])}</td><td>{_num(f['recall'])}</td>"
                      f"<td>{_num(f['shortfall_ratio'])}</td></tr>" for f in index["filters"])
    filters_table = (f"<table class='filters'><tr><th>filter</th><th>iterative scan</th><th>recall</th>"
                     f"<th>shortfall</th></tr>{filters}</table>" if filters else "")
    freshness = ", ".join(f"newest row by {_e(f['column'])}: {_seconds(f['newest_row_age_seconds'])} old"
                          for f in index["freshness"])
    ratio = index.get("size_to_shared_buffers_ratio")
    bar = "" if ratio is None else (
        f"<svg width='160' height='10' class='size-bar'><rect class='bar' width='160' height='10' rx='2'/>"
        f"<rect class='bar-fill' width='{min(1.0, ratio) * 160:.1f}' height='10' rx='2'/></svg>")
    k = "" if index.get("k") is None else f"@{index['k']:g}"
    return (f"<div class='card vector-index' data-target='{_e(index['target'])}' data-index='{_e(index['index'])}'>"
            f"<h3>{_e(name)}</h3><div class='muted'>target {_e(index['target'])}</div>"
            f"<div><span class='big recall-now {met}'>{_num(now)}</span> recall{_e(k)} at "
            f"{_e(index['param'])}={_num(index.get('app_setting'), 6)} (target {_num(goal)}); recommended "
            f"{_e(index['param'])}: {_num(index.get('recommended_setting'), 6)}</div>"
            f"{recall_chart(index)}{filters_table}"
            f"<div>index size {_bytes(index.get('size_bytes'))} = {_num(ratio)} x shared_buffers {bar}</div>"
            f"<div class='muted'>{freshness or 'no freshness configured'}"
            f"{_pending(index.get('pending_rows'))}</div></div>")


def _endpoints_section(endpoints: list[dict[str, Any]], budgets: list[dict[str, Any]]) -> str:
    if not endpoints and not budgets:
        return ""
    rows = "".join(
        f"<tr><td>{_e(e['target'])}</td><td>{_e(e['provider'])} {_e(e['model'])}</td><td>{_e(e['kind'])}</td>"
        f"<td class='{str(e['success']).lower()}'>{'ok' if e['success'] else 'failing'}</td>"
        f"<td>{_seconds(e['last_duration_seconds'])}</td>"
        f"<td>{_e(', '.join(f'{k} {v:g}' for k, v in sorted(e['requests_by_outcome'].items())))}</td>"
        f"<td>{_usd(e['probe_spend_usd'], 4)}</td></tr>"
        for e in endpoints)
    budget_rows = "".join(
        f"<tr><td>{_e(b['target'])}</td><td>{_e(b['period'])}</td><td>{_usd(b['spend_usd'])}</td>"
        f"<td>{_usd(b['limit_usd'])}</td>"
        f"<td>{_num(b['used_ratio'])}</td></tr>" for b in budgets)
    return (f"<h2>Model endpoints</h2><table id='endpoints'><tr><th>endpoint</th><th>model</th><th>kind</th>"
            f"<th>last probe</th><th>latency</th><th>requests by outcome</th><th>probe spend</th></tr>{rows}</table>"
            + (f"<h2>Spend against budgets</h2><table id='budgets'><tr><th>budget</th><th>period</th><th>spend</th>"
               f"<th>limit</th><th>used</th></tr>{budget_rows}</table>" if budgets else ""))


def _slos_section(slos: list[dict[str, Any]]) -> str:
    if not slos:
        return ""
    rows = []
    for slo in slos:
        left = slo["budget_left_ratio"]
        css = "" if left is None else ("ok" if left > 0.25 else "degraded" if left > 0 else "failed")
        rows.append(f"<tr><td>{_e(slo['service'])} / {_e(slo['name'])}</td><td>{slo['objective']:g}</td>"
                    f"<td>{_num(slo['error_ratio'])}</td><td class='{css}'>"
                    f"{'no events yet' if left is None else f'{left:.1%}'}</td><td>{_e(slo['span'])}</td></tr>")
    return ("<h2>SLOs</h2><p class='muted'>Error budget left as vecmon's own counters show it: cumulative since this "
            "vecmon started (probe SLIs: the current probe result), not over the SLO's period; Prometheus' recording "
            "rules give the period's figure.</p><table id='slos'><tr><th>SLO</th><th>objective</th>"
            f"<th>error ratio</th><th>budget left</th><th>span</th></tr>{''.join(rows)}</table>")


def render_console(status: dict[str, Any], refresh_seconds: int = REFRESH_SECONDS) -> str:
    """The whole page; ``refresh_seconds`` (``/?refresh=N``, 1..3600) sets the auto-refresh period."""
    indexes = "".join(_index_card(i) for i in status["vector_indexes"])
    vector = (f"<h2>Vector indexes</h2><div class='cards'>{indexes}</div>" if indexes else
              "<h2>Vector indexes</h2><p class='muted'>No vector index discovered (pgvector missing, or no "
              "HNSW/IVFFlat index on a monitored database).</p>")
    script = SCRIPT % {"seconds": refresh_seconds, "millis": refresh_seconds * 1000}
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><meta name='color-scheme' content='light dark'>"
            f"<title>vecmon</title><link rel='icon' href='data:,'><style>{STYLE}</style></head><body>"
            f"<header><h1>vecmon {_e(status['version'])}</h1><span class='muted'>refresh "
            f"<span id='refresh-state'>every {refresh_seconds}s</span></span><button id='pause' type='button'>"
            f"Pause refresh</button><span class='links'><a href='/metrics'>/metrics</a> &middot; "
            f"<a href='/api/status'>/api/status</a> &middot; <a href='/ready'>/ready</a></span></header>"
            f"{_targets_section(status['targets'])}{vector}"
            f"{_endpoints_section(status['endpoints'], status['budgets'])}{_slos_section(status['slos'])}"
            f"<script>{script}</script></body></html>")
