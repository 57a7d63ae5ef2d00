"""Config-time checks of an SLO's SLI against the metrics vecmon itself declares.

A selector that names no series, or a latency threshold that is no bucket bound, used to give an
SLI of 100% errors (and a page) the moment the rules were loaded. For ``vecmon_*`` metrics the
declarations are known (every family is a :class:`~collectors.base.MetricSpec`, the histograms'
bucket lists are module constants of their collectors), so ``vecmon check-config`` reports:

- a metric vecmon does not export (with the closest declared names),
- a metric of the wrong kind (events need counters, latency a histogram, probe a gauge),
- a matcher on a label the metric does not have,
- a latency threshold that is not one of the histogram's bucket bounds.

Metrics of other exporters are not checked (vecmon cannot know them).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from alerts.metric_specs import declared_specs
from alerts.promql import number, range_selector, split_selector
from collectors.ann_latency import ANN_QUERY_DURATION_SECONDS, LATENCY_BUCKETS
from collectors.model_metrics import BUCKETS, MODEL_API_REQUEST_DURATION_SECONDS
from collectors.recall_metrics import RECALL_QUERY_RECALL_RATIO
from collectors.recall_scoring import RECALL_BUCKETS

# Prometheus adds these to every scraped series; vecmon adds target to every family.
_ALWAYS = {"job", "instance", "target"}
_MATCHER_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*,?')


def bucket_bounds() -> dict[str, tuple[float, ...]]:
    """Histogram family -> its bucket bounds (the collectors' own constants)."""
    return {ANN_QUERY_DURATION_SECONDS.name: tuple(LATENCY_BUCKETS),
            MODEL_API_REQUEST_DURATION_SECONDS.name: tuple(BUCKETS),
            RECALL_QUERY_RECALL_RATIO.name: tuple(RECALL_BUCKETS)}


def _spec(name: str, kind: str, field: str) -> Any:
    specs = declared_specs()
    spec = specs.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.75)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"{field}: vecmon exports no metric {name}{hint}")
    if spec.kind != kind:
        raise ValueError(f"{field}: {name} is a {spec.kind}, this SLI needs a {kind}")
    return spec


def _labels(selector: str, spec: Any, field: str) -> None:
    _, matchers = split_selector(selector)
    allowed = set(spec.labels) | _ALWAYS | ({"le"} if spec.kind == "histogram" else set())
    for label in _MATCHER_LABEL.findall(matchers):
        if label not in allowed:
            raise ValueError(f"{field}: {spec.name} has no label {label!r} "
                             f"(labels: {', '.join(sorted(set(spec.labels) | {'target'}))})")


def _check(selector: str | None, kind: str, field: str, suffix: str = "") -> Any:
    if selector is None:
        return None
    name, _ = split_selector(selector)
    if not name.startswith("vecmon_"):
        return None
    spec = _spec(name, kind, field)
    _labels(selector, spec, field)
    return spec


def check_sli(sli: Any) -> None:
    """Raise ValueError naming the field (``events.good``...) when the SLI cannot measure anything."""
    if sli.events is not None:
        for field in ("good", "bad", "total", "error_query", "total_query"):
            selector = getattr(sli.events, field)
            _check(None if selector is None else range_selector(selector), "counter", f"events.{field}")
    elif sli.latency is not None:
        spec = _check(sli.latency.histogram, "histogram", "latency.histogram")
        if spec is not None:
            bounds = bucket_bounds().get(spec.name)
            if bounds is not None and not any(abs(b - sli.latency.threshold) < 1e-9 for b in bounds):
                raise ValueError(f"latency.threshold: {number(sli.latency.threshold)}s is not a bucket bound of "
                                 f"{spec.name} (bounds: {', '.join(number(b) + 's' for b in bounds)})")
    elif sli.probe is not None:
        _check(sli.probe.ratio, "gauge", "probe.ratio")
