"""What ``/api/status`` serves and the console draws: targets, vector indexes, model endpoints, SLOs.

Everything comes from the snapshot store (the same families ``/metrics`` serves), so building it
never touches a database or a provider. :func:`build_status` returns plain JSON-ready data; its
shape is documented in the README ("Console and /api/status") and versioned by ``schema``.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

from alerts.promql import split_selector
from collectors.cost_metrics import COST_BUDGET_LIMIT_USD, COST_BUDGET_SPEND_USD, COST_BUDGET_USED_RATIO
from collectors.model_metrics import (
    MODEL_API_COST_USD_TOTAL,
    MODEL_API_LAST_STATUS_CODE,
    MODEL_API_PROBE_DURATION_SECONDS,
    MODEL_API_PROBE_SUCCESS,
    MODEL_API_REQUESTS_TOTAL,
)
from collectors.recall_metrics import (
    RECALL_ANN_QUERY_DURATION_SECONDS,
    RECALL_APP_SETTING,
    RECALL_K,
    RECALL_MEAN_RATIO,
    RECALL_RECOMMENDED_SETTING,
    RECALL_SHORTFALL_RATIO,
    RECALL_TARGET,
)
from collectors.vector_freshness import VECTOR_EMBEDDING_PENDING_ROWS, VECTOR_NEWEST_ROW_AGE_SECONDS
from collectors.vector_indexes import VECTOR_INDEX_SIZE_BYTES, VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO
from collectors.vector_selection import MISCONFIGURED
from monitor import __version__
from monitor.snapshot import FAILED, TARGET_DOWN, Entry, SnapshotStore

SCHEMA_VERSION = 1
INDEX_LABELS = ("schema", "table", "index")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


class CurvePoint(TypedDict):
    """One point of a vector index's recall curve: the search setting, recall and ANN latency there."""

    value: float
    recall: float
    latency_seconds: float | None


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def samples_of(store: SnapshotStore) -> list[Sample]:
    out = []
    for entry in store.entries():
        for family in entry.families:
            for sample in family.samples:
                out.append(Sample(sample.name, dict(sample.labels), float(sample.value)))
    return out


class Samples:
    """The snapshot's samples indexed by name, with label-matching lookups."""

    def __init__(self, samples: Iterable[Sample]):
        self.by_name: dict[str, list[Sample]] = {}
        for sample in samples:
            self.by_name.setdefault(sample.name, []).append(sample)

    def get(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.by_name.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]

    def one(self, name: str, **labels: str) -> float | None:
        found = self.get(name, **labels)
        return found[0].value if found else None

    def select(self, selector: str) -> list[Sample]:
        """Samples matching a plain PromQL vector selector (``name{label="v", other=~"re"}``)."""
        name, matchers = split_selector(selector)
        tests: list[tuple[str, Callable[[str], bool]]] = []
        for label, op, value in _MATCHER.findall(matchers):
            value = bytes(value, "utf-8").decode("unicode_escape")
            if op in ("=~", "!~"):
                pattern = re.compile(f"(?:{value})\\Z")
                tests.append((label, functools.partial(_regex_test, pattern=pattern, negate=op == "!~")))
            else:
                tests.append((label, functools.partial(_equality_test, want=value, negate=op == "!=")))
        return [s for s in self.by_name.get(name, []) if all(test(s.labels.get(label, "")) for label, test in tests)]


def _regex_test(value: str, pattern: re.Pattern[str], negate: bool) -> bool:
    return (pattern.match(value) is None) == negate


def _equality_test(value: str, want: str, negate: bool) -> bool:
    return (value == want) != negate


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _misconfigured(entry: Entry) -> list[dict[str, str]]:
    """Config entries the collector found naming what its target lacks (vecmon_collector_misconfigured)."""
    return sorted(({"path": x.labels["path"], "reason": x.labels["reason"]} for f in entry.families
                   for x in f.samples if x.name == MISCONFIGURED.name and x.value),
                  key=lambda p: (p["path"], p["reason"]))


def _targets(store: SnapshotStore, describe: Callable[[], dict[str, str]], now: float) -> list[dict[str, Any]]:
    up = store.target_up()
    where = describe()
    by_target: dict[str, list[Entry]] = {}
    for entry in sorted(store.entries(), key=lambda e: (e.target, e.collector)):
        by_target.setdefault(entry.target, []).append(entry)
    targets = []
    for name in sorted(set(where) | set(by_target)):
        entries = by_target.get(name, [])
        failing = [e for e in entries if e.state in (FAILED, TARGET_DOWN) and e.last_error]
        status_of: dict[bool | None, str] = {True: "up", False: "down"}
        status = status_of.get(up.get(name), "pending")
        misconfigured = {e.collector: _misconfigured(e) for e in entries}
        flagged = [f"{e.collector}: {p['path']}: {p['reason']}" for e in entries for p in misconfigured[e.collector]]
        if status == "up" and failing:
            status = "degraded"
        elif status == "up" and flagged:
            status = "misconfigured"
        targets.append({
            "name": name,
            "where": where.get(name, ""),
            "status": status,
            "cause": failing[0].last_error if failing else (flagged[0] if flagged else None),
            "collectors": [{
                "name": e.collector,
                "state": e.state,
                "series": e.series,
                "last_run_seconds_ago": None if e.last_run is None else round(now - e.last_run, 1),
                "last_success_seconds_ago": None if e.last_success is None else round(now - e.last_success, 1),
                "duration_seconds": e.last_duration,
                "error": e.last_error,
                "misconfigured": misconfigured[e.collector],
            } for e in entries],
        })
    return targets


def _vector_indexes(s: Samples) -> list[dict[str, Any]]:
    keys = sorted({(x.labels["target"], *(x.labels.get(k, "") for k in INDEX_LABELS))
                   for name in (VECTOR_INDEX_SIZE_BYTES.name, RECALL_MEAN_RATIO.name)
                   for x in s.by_name.get(name, [])})
    k_by_target = {x.labels["target"]: x.value for x in s.get(RECALL_K.name)}
    goal_by_target = {x.labels["target"]: x.value for x in s.get(RECALL_TARGET.name)}
    out = []
    for target, schema, table, index in keys:
        labels = {"target": target, "schema": schema, "table": table, "index": index}
        app = s.get(RECALL_APP_SETTING.name, **labels)
        param = app[0].labels.get("param", "") if app else ""
        app_value = app[0].value if app else None
        curve: list[CurvePoint] = []
        for point in s.get(RECALL_MEAN_RATIO.name, **labels, filter="", iterative="off"):
            value = float(point.labels["value"])
            curve.append({"value": value, "recall": point.value,
                          "latency_seconds": s.one(RECALL_ANN_QUERY_DURATION_SECONDS.name, **point.labels)})
        curve.sort(key=lambda p: p["value"])
        now = next((p["recall"] for p in curve if app_value is not None and p["value"] == app_value), None)
        filters = []
        modes = sorted({(x.labels["filter"], x.labels["iterative"])
                        for x in s.get(RECALL_MEAN_RATIO.name, **labels) if x.labels["filter"]})
        for name, iterative in modes:  # at the application's setting, with and without iterative scan
            def at_app(metric: str, labels: dict[str, str] = labels, name: str = name, iterative: str = iterative,
                       app_value: float | None = app_value) -> float | None:
                found = [x for x in s.get(metric, **labels, filter=name, iterative=iterative)
                         if app_value is not None and float(x.labels["value"]) == app_value]
                return found[0].value if found else None

            filters.append({"name": name, "iterative": iterative, "recall": at_app(RECALL_MEAN_RATIO.name),
                            "shortfall_ratio": at_app(RECALL_SHORTFALL_RATIO.name)})
        freshness = [{"column": x.labels.get("column", ""), "newest_row_age_seconds": x.value}
                     for x in s.get(VECTOR_NEWEST_ROW_AGE_SECONDS.name, target=target, schema=schema, table=table)]
        pending = s.one(VECTOR_EMBEDDING_PENDING_ROWS.name, target=target, schema=schema, table=table)
        out.append({
            **labels,
            "k": k_by_target.get(target),
            "recall_target": goal_by_target.get(target),
            "recall_now": now,
            "param": param,
            "app_setting": app_value,
            "recommended_setting": s.one(RECALL_RECOMMENDED_SETTING.name, **labels, filter="", iterative="off"),
            "curve": curve,
            "filters": filters,
            "size_bytes": s.one(VECTOR_INDEX_SIZE_BYTES.name, **labels),
            "size_to_shared_buffers_ratio": s.one(VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO.name, **labels),
            "freshness": freshness,
            "pending_rows": pending,
        })
    return out


def _endpoints(s: Samples) -> list[dict[str, Any]]:
    out = []
    for probe in sorted(s.get(MODEL_API_PROBE_SUCCESS.name), key=lambda x: x.labels["target"]):
        labels = probe.labels
        key = {k: labels[k] for k in ("target", "provider", "model", "kind")}
        outcomes = {x.labels["outcome"]: x.value for x in s.get(MODEL_API_REQUESTS_TOTAL.name, **key)}
        out.append({**key,
                    "success": bool(probe.value),
                    "last_duration_seconds": s.one(MODEL_API_PROBE_DURATION_SECONDS.name, **key),
                    "last_status_code": s.one(MODEL_API_LAST_STATUS_CODE.name, **key),
                    "requests_by_outcome": outcomes,
                    "probe_spend_usd": s.one(MODEL_API_COST_USD_TOTAL.name, **key)})
    return out


def _budgets(s: Samples) -> list[dict[str, Any]]:
    out = []
    for spend in sorted(s.get(COST_BUDGET_SPEND_USD.name), key=lambda x: (x.labels["target"], x.labels["period"])):
        key = {"target": spend.labels["target"], "period": spend.labels["period"]}
        out.append({**key, "spend_usd": spend.value, "limit_usd": s.one(COST_BUDGET_LIMIT_USD.name, **key),
                    "used_ratio": s.one(COST_BUDGET_USED_RATIO.name, **key)})
    return out


def _ratio_of(s: Samples, good: str | None, bad: str | None, total: str) -> tuple[float, float] | None:
    total_value = sum(x.value for x in s.select(total))
    if not s.select(total):
        return None
    if good is not None:
        if not s.select(good):
            return None
        return sum(x.value for x in s.select(good)), total_value
    return total_value - sum(x.value for x in s.select(bad or "")), total_value


def _latency_events(s: Samples, histogram: str, threshold: float) -> tuple[float, float] | None:
    name, matchers = split_selector(histogram)
    buckets = s.select(f"{name}_bucket{{{matchers}}}")
    if not buckets:
        return None
    good = sum(b.value for b in buckets if math.isclose(float(b.labels["le"]), threshold))
    total = sum(b.value for b in buckets if b.labels["le"] == "+Inf")
    return good, total


def _slos(s: Samples, slos: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for slo in slos:
        sli = slo.sli
        events: tuple[float, float] | None
        if sli.events is not None and sli.events.error_query is not None:
            events = None  # a PromQL query: only Prometheus can evaluate it
        elif sli.events is not None:
            events = _ratio_of(s, sli.events.good, sli.events.bad, sli.events.total)
        elif sli.latency is not None:
            events = _latency_events(s, sli.latency.histogram, sli.latency.threshold)
        else:
            samples = s.select(sli.probe.ratio)
            events = (sum(x.value for x in samples), float(len(samples))) if samples else None
        entry: dict[str, Any] = {"name": slo.name, "service": slo.service, "objective": slo.objective,
                                 "period_seconds": slo.period, "kind": sli.kind,
                                 "span": "now" if sli.probe is not None else "since vecmon started",
                                 "good": None, "total": None, "error_ratio": None, "budget_left_ratio": None}
        if events is not None and events[1] > 0:
            good, total = events
            error_ratio = max(0.0, 1 - good / total)
            entry.update(good=good, total=total, error_ratio=error_ratio,
                         budget_left_ratio=1 - error_ratio / (1 - slo.objective))
        out.append(entry)
    return out


def build_status(store: SnapshotStore, describe: Callable[[], dict[str, str]], slos: Iterable[Any] = (),
                 now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    samples = Samples(samples_of(store))
    return {
        "schema": SCHEMA_VERSION,
        "version": __version__,
        "generated_at": now,
        "targets": _targets(store, describe, now),
        "vector_indexes": _vector_indexes(samples),
        "endpoints": _endpoints(samples),
        "budgets": _budgets(samples),
        "slos": _slos(samples, slos),
    }
