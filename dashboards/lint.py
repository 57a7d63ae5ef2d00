"""A dashboard linter implementing grafana/dashboard-linter's rules, in Python, on promql-parser.

The Go linter needs a Go toolchain newer than CI has, so its rules are ported here (from
``lint/rule_*.go``), applied a little more strictly where the issue asks for it: descriptions,
units and the templated datasource are required on *every* panel type vecmon emits, not only on
the types the Go linter checks. Every PromQL expression is parsed after variable expansion.

Rules (``RULES``): template-datasource, template-job, template-instance,
template-on-time-change-reload, template-label-promql, uneditable-dashboard, panel-datasource,
panel-title-description, panel-units, panel-no-targets, panel-type (no Angular panels),
target-promql, target-rate-interval, target-job, target-instance, target-counter-agg,
target-variables (every variable a query uses is defined).

Usage: ``python -m dashboards.check generated/grafana/*.json`` (exit 1 on findings; the exclusions
of :func:`dashboards.render.lint_exclusions` apply), or :func:`lint` from tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import promql_parser

RULES = {
    "template-datasource-rule": "a datasource variable named datasource (or <type>_datasource), labelled Data source",
    "template-job-rule": "a multi-value job query variable on the templated datasource, allValue .+, label Job",
    "template-instance-rule": "a multi-value instance query variable on the templated datasource, allValue .+",
    "template-on-time-change-reload-rule": "query variables refresh on time-range change (refresh: 2)",
    "template-label-promql-rule": "query variables are label_values/label_names/metrics/query_result of valid PromQL",
    "uneditable-dashboard": "provisioned dashboards are not editable",
    "panel-datasource-rule": "every panel uses the templated datasource",
    "panel-title-description-rule": "every panel has a title and a description",
    "panel-units-rule": "every panel has a valid Grafana unit",
    "panel-no-targets-rule": "every panel has queries",
    "panel-type-rule": "only current (React) panel types: no Angular graph/singlestat",
    "target-promql-rule": "every query parses as PromQL after variable expansion",
    "target-rate-interval-rule": "rate()/irate() ranges are [$__rate_interval]",
    "target-job-rule": 'every selector has job=~"$job"',
    "target-instance-rule": 'every selector has instance=~"$instance"',
    "target-counter-agg-rule": "counters (_total) are only used inside rate/irate/increase",
    "target-variables-rule": "every variable a query uses is a dashboard variable or a Grafana global",
}

# A dashboard, panel or query target as parsed JSON.
JSONObject = dict[str, Any]

ALLOWED_PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "row"}

# From dashboard-linter lint/rule_panel_units.go (itself from grafana-data valueFormats/categories.ts).
VALID_UNITS = {
    "none", "string", "short", "percent", "percentunit", "humidity", "dB", "hex0x", "hex", "sci", "locale", "pixel",
    "accMS2", "accFS2", "accG", "degree", "radian", "grad", "arcmin", "arcsec", "areaM2", "areaF2", "areaMI2",
    "flops", "mflops", "gflops", "tflops", "pflops", "eflops", "zflops", "yflops", "ppm", "conppb", "conngm3",
    "conngNm3", "conμgm3", "conμgNm3", "conmgm3", "conmgNm3", "congm3", "congNm3", "conmgdL", "conmmolL",
    "currencyUSD", "currencyGBP", "currencyEUR", "currencyJPY", "currencyRUB", "currencyUAH", "currencyBRL",
    "currencyDKK", "currencyISK", "currencyNOK", "currencySEK", "currencyCZK", "currencyCHF", "currencyPLN",
    "currencyBTC", "currencymBTC", "currencyμBTC", "currencyZAR", "currencyINR", "currencyKRW", "currencyIDR",
    "currencyPHP", "currencyVND", "bytes", "decbytes", "bits", "decbits", "kbytes", "deckbytes", "mbytes",
    "decmbytes", "gbytes", "decgbytes", "tbytes", "dectbytes", "pbytes", "decpbytes", "pps", "binBps", "Bps",
    "binbps", "bps", "KiBs", "Kibits", "KBs", "Kbits", "MiBs", "Mibits", "MBs", "Mbits", "GiBs", "Gibits", "GBs",
    "Gbits", "TiBs", "Tibits", "TBs", "Tbits", "PiBs", "Pibits", "PBs", "Pbits", "dateTimeAsIso",
    "dateTimeAsIsoNoDateIfToday", "dateTimeAsUS", "dateTimeAsUSNoDateIfToday", "dateTimeAsLocal",
    "dateTimeAsLocalNoDateIfToday", "dateTimeAsSystem", "dateTimeFromNow", "hertz", "ns", "µs", "ms", "s", "m", "h",
    "d", "dtdurationms", "dtdurations", "dthms", "dtdhms", "timeticks", "clockms", "clocks", "cps", "ops", "reqps",
    "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm", "bool", "bool_yes_no", "bool_on_off"
}

# Grafana's global variables that stand for durations, each expanded to its own sentinel duration
# (the Go linter's 8869990787ms overflows promql-parser, hence plain seconds).
DURATION_GLOBALS = {"__rate_interval": "98765s", "__interval": "98764s", "__range": "98763s", "__auto": "98762s"}
OTHER_GLOBALS = {"__interval_ms": "98761", "__range_s": "98760", "__range_ms": "98759", "__from": "1294671549254",
                 "__to": "1294671549255", "__dashboard": "dashboard", "__name": "name", "__org": "1"}
RATE_INTERVAL_SECONDS = 98765
_VARIABLE = re.compile(r'"(?:[^"\\]|\\.)*"|\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]')
_ANY_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class Finding:
    rule: str
    dashboard: str
    panel: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.dashboard}" + (f" / {self.panel}" if self.panel else "")
        return f"[{self.rule}] {where}: {self.message}"


@dataclass(frozen=True)
class Exclusion:
    """Like the Go linter's ``.lint`` exclusions: a rule off for one dashboard (and panel), with a reason."""

    rule: str
    dashboard: str  # uid, or "*"
    panel: str = "*"  # title, or "*"
    reason: str = ""

    def matches(self, finding: Finding, uid: str) -> bool:
        return (self.rule == finding.rule and self.dashboard in ("*", uid)
                and self.panel in ("*", finding.panel))


# --------------------------------------------------------------------------- PromQL helpers


class _Parser:
    """promql-parser, imported on first use: a test dependency, so ``vecmon generate`` (which only
    needs :class:`Exclusion`) runs without it."""

    def __getattr__(self, name: str) -> Any:
        import promql_parser

        return getattr(promql_parser, name)


if TYPE_CHECKING:  # pragma: no cover - mypy checks against promql-parser's own stubs
    pp = promql_parser
else:
    pp = _Parser()

# A PromQL AST node and its ancestors, outermost first (see walk).
Ancestors = tuple["promql_parser.Expr", ...]


def expand(expr: str) -> str:
    """Replace variables outside string literals, as the Go linter does: durations for Grafana's
    duration globals, placeholders for everything else. ``"$job"`` inside quotes stays as it is."""
    def substitute(match: re.Match[str]) -> str:
        if match.group(0).startswith('"'):
            return match.group(0)
        name: str = match.group(1) or match.group(2) or match.group(3)
        return DURATION_GLOBALS.get(name) or OTHER_GLOBALS.get(name) or f"var_{name}"
    return _VARIABLE.sub(substitute, expr)


def variables_used(expr: str) -> set[str]:
    return {m.group(1) or m.group(2) or m.group(3) for m in _ANY_VARIABLE.finditer(expr)}


def parse(expr: str) -> promql_parser.Expr:
    """Parse a dashboard query (variables expanded); raises ValueError with the parser's message."""
    try:
        return pp.parse(expand(expr))
    except Exception as exc:  # promql-parser raises plain ValueError/RuntimeError variants
        raise ValueError(f"invalid PromQL {expr!r}: {exc}") from None


def walk(node: promql_parser.Expr, parents: Ancestors = ()) -> Iterator[tuple[promql_parser.Expr, Ancestors]]:
    """Every node with its ancestors (promql_parser.walk gives no parents)."""
    yield node, parents
    children = []
    for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, attr, None)
        if isinstance(child, pp.Expr):
            children.append(child)
    if isinstance(node, pp.Call):
        children.extend(arg for arg in node.args if isinstance(arg, pp.Expr))
    for child in children:
        yield from walk(child, (*parents, node))


def selectors(ast: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    return [node for node, _ in walk(ast) if isinstance(node, pp.VectorSelector)]


def metric_names(expr: str) -> set[str]:
    """Metric names a query reads (``__name__`` matchers included)."""
    names = set()
    for selector in selectors(parse(expr)):
        if selector.name:
            names.add(selector.name)
        for matcher in selector.matchers.matchers:
            if matcher.name == "__name__" and str(matcher.op).endswith("Equal"):
                names.add(matcher.value)
    return names


def metric_name_patterns(expr: str) -> set[str]:
    """Regular expressions of ``{__name__=~"..."}`` selectors (e.g. every SLI window recording)."""
    return {matcher.value for selector in selectors(parse(expr)) for matcher in selector.matchers.matchers
            if matcher.name == "__name__" and _is_regex_op(matcher.op)}


def _is_regex_op(op: Any) -> bool:
    return str(op) in ("MatchOp.Re", "=~")


# --------------------------------------------------------------------------- dashboard walkers


def panels(board: JSONObject) -> Iterator[JSONObject]:
    for panel in board.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []
    for legacy_row in board.get("rows") or []:
        yield from legacy_row.get("panels") or []


def targets(board: JSONObject) -> Iterator[tuple[JSONObject, JSONObject]]:
    for panel in panels(board):
        for target in panel.get("targets") or []:
            yield panel, target


def _uid(ds: Any) -> str:
    if ds is None:
        return ""
    if isinstance(ds, str):
        return ds
    return str(ds.get("uid", ""))


# --------------------------------------------------------------------------- rules


class AddFinding(Protocol):
    """Records a finding of ``rule`` for the dashboard being linted (``panel`` "" for the dashboard)."""

    def __call__(self, rule: str, panel: str, message: str, severity: str = "error") -> None: ...


def _template_rules(board: JSONObject, add: AddFinding) -> bool:
    variables = board.get("templating", {}).get("list", [])
    datasources = [v for v in variables if v.get("type") == "datasource"]
    if not datasources:
        add("template-datasource-rule", "", "no templated data source")
    for var in datasources:
        query = str(var.get("query", "")).lower()
        names = {f"{query}_datasource"} | ({"datasource"} if len(datasources) == 1 else set())
        labels = {f"{query.title()} data source"} | ({"Data source"} if len(datasources) == 1 else set())
        if var.get("name") not in names:
            add("template-datasource-rule", "", f"datasource variable named {var.get('name')!r}, "
                f"should be one of {sorted(names)}")
        elif var.get("label") not in labels:
            add("template-datasource-rule", "", f"datasource variable labelled {var.get('label')!r}, "
                f"should be one of {sorted(labels)}", "warning")
    prometheus = bool(datasources) and datasources[0].get("query") == "prometheus"
    by_name = {v.get("name"): v for v in variables}
    ds_refs = {f"${v['name']}" for v in datasources} | {f"${{{v['name']}}}" for v in datasources}
    for name in ("job", "instance") if prometheus else ():
        rule, var = f"template-{name}-rule", by_name.get(name)
        if var is None:
            add(rule, "", f"no {name} variable")
            continue
        if _uid(var.get("datasource")) not in ds_refs:
            add(rule, "", f"{name} variable uses datasource {_uid(var.get('datasource'))!r}")
        if var.get("type") != "query":
            add(rule, "", f"{name} variable has type {var.get('type')!r}, should be query")
        if not var.get("multi"):
            add(rule, "", f"{name} variable is not multi-value")
        if var.get("allValue") != ".+":
            add(rule, "", f"{name} variable allValue is {var.get('allValue')!r}, should be '.+'")
        if var.get("label") != name.title():
            add(rule, "", f"{name} variable labelled {var.get('label')!r}, should be {name.title()!r}", "warning")
    for var in variables:
        if var.get("type") != "query":
            continue
        if var.get("refresh") != 2:
            add("template-on-time-change-reload-rule", "", f"variable {var.get('name')!r} has refresh "
                f"{var.get('refresh')!r}, should be 2 (on time range change)")
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.fullmatch(r"\s*(label_names|label_values|metrics|query_result)\((.*)\)\s*", query, re.S)
        if not match:
            add("template-label-promql-rule", "", f"variable {var.get('name')!r}: unsupported query {query!r}")
            continue
        func, arg = match.groups()
        if func == "label_values":
            arg = arg.rsplit(",", 1)[0] if "," in arg else ""
        if func in ("label_values", "query_result") and arg.strip():
            try:
                parse(arg)
            except ValueError as exc:
                add("template-label-promql-rule", "", f"variable {var.get('name')!r}: {exc}")
    if board.get("editable", True):
        add("uneditable-dashboard", "", "dashboard is editable")
    return prometheus


def _panel_rules(board: JSONObject, panel: JSONObject, add: AddFinding, ds_refs: set[str]) -> None:
    kind, title = panel.get("type"), panel.get("title") or ""
    if kind not in ALLOWED_PANEL_TYPES:
        add("panel-type-rule", title, f"panel type {kind!r} is not allowed (Angular or unknown)")
    if kind == "row":
        return
    if _uid(panel.get("datasource")) not in ds_refs:
        add("panel-datasource-rule", title, f"does not use a templated datasource, uses "
            f"{_uid(panel.get('datasource'))!r}")
    if not title.strip() or not str(panel.get("description") or "").strip():
        add("panel-title-description-rule", title, "missing title or description")
    field_config = panel.get("fieldConfig") or {}
    unit = (field_config.get("defaults") or {}).get("unit") or ""
    override_units = [prop.get("value") for override in field_config.get("overrides") or []
                      for prop in override.get("properties") or [] if prop.get("id") == "unit"]
    if unit not in VALID_UNITS or any(u not in VALID_UNITS for u in override_units):
        add("panel-units-rule", title, f"no or invalid unit {unit!r} (overrides {override_units})")
    if not panel.get("targets"):
        add("panel-no-targets-rule", title, "panel has no queries")
    for target in panel.get("targets") or []:
        if _uid(target.get("datasource")) not in ds_refs:
            add("panel-datasource-rule", title, f"query {target.get('refId')} uses datasource "
                f"{_uid(target.get('datasource'))!r}")


def _target_rules(board: JSONObject, panel: JSONObject, target: JSONObject, add: AddFinding,
                  known_vars: set[str]) -> None:
    title, expr = panel.get("title") or "", target.get("expr") or ""
    unknown = sorted(v for v in variables_used(expr) if v not in known_vars)
    if unknown:
        add("target-variables-rule", title, f"query uses undefined variable(s) {unknown}: {expr}")
    try:
        ast = parse(expr)
    except ValueError as exc:
        add("target-promql-rule", title, str(exc))
        return
    for node, parents in walk(ast):
        if isinstance(node, pp.MatrixSelector):
            if node.range == timedelta(seconds=RATE_INTERVAL_SECONDS) or not parents:
                continue
            parent = parents[-1]
            if not isinstance(parent, pp.Call):
                add("target-rate-interval-rule", title, f"range selector outside a function: {expr}")
            elif parent.func.name in ("rate", "irate"):
                add("target-rate-interval-rule", title, f"should use $__rate_interval: {expr}")
        if isinstance(node, pp.VectorSelector):
            by_label = {mt.name: mt for mt in node.matchers.matchers}
            for label in ("job", "instance"):
                matcher = by_label.get(label)
                if matcher is None or not _is_regex_op(matcher.op) or matcher.value != f"${label}":
                    add(f"target-{label}-rule", title, f'selector {node} lacks {label}=~"${label}": {expr}')
            if (node.name or "").endswith("_total"):
                ok = (len(parents) >= 2 and isinstance(parents[-1], pp.MatrixSelector)
                      and isinstance(parents[-2], pp.Call)
                      and parents[-2].func.name in ("rate", "irate", "increase"))
                if not ok:
                    add("target-counter-agg-rule", title, f"counter {node.name} not inside rate/irate/increase")


def lint(board: JSONObject, exclusions: Iterable[Exclusion] = ()) -> list[Finding]:
    """All findings for one dashboard (JSON as a dict), minus the excluded ones."""
    uid, name = board.get("uid") or "", board.get("title") or ""
    findings: list[Finding] = []

    def add(rule: str, panel: str, message: str, severity: str = "error") -> None:
        findings.append(Finding(rule, name, panel, message, severity))

    prometheus = _template_rules(board, add)
    variables = board.get("templating", {}).get("list", [])
    ds_refs = {f"${v['name']}" for v in variables if v.get("type") == "datasource"}
    ds_refs |= {f"${{{r[1:]}}}" for r in ds_refs}
    known_vars = {v.get("name") for v in variables} | set(DURATION_GLOBALS) | set(OTHER_GLOBALS)
    for panel in panels(board):
        _panel_rules(board, panel, add, ds_refs)
        if prometheus:
            for target in panel.get("targets") or []:
                _target_rules(board, panel, target, add, known_vars)
    excluded = list(exclusions)
    return [f for f in findings if not any(e.matches(f, uid) for e in excluded)]
