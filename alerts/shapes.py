"""Alert shapes several catalog entries share, declared as data: a gauge over a threshold, a gauge at
0 (an event), the mean of
a histogram from its ``_sum`` and ``_count`` rates, the share of failed outcomes of a request counter,
and the share of one counter in the sum of two. Each gives the expression and its promtool fixture
(:class:`alerts.model.Shape`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.fixtures import MINUTE, Fixture, InputSeries, above, counter, gauge, split
from alerts.model import Params
from alerts.promql import number
from collectors.pg_indexes import PG_INDEX_SIZE_BYTES


def ratio(numerator: str, denominator: str, guard: str = "0") -> str:
    """``numerator / denominator`` as a multi-line PromQL ratio, absent while the denominator is not
    above ``guard`` (no traffic gives no ratio rather than NaN)."""
    return f"(\n  {numerator}\n  /\n  ({denominator} > {guard})\n)"


def matchers(labels: dict[str, str]) -> str:
    """``{a="x", b="y"}`` (nothing for no labels)."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


def vector_table(p: Params, labels: dict[str, str]) -> InputSeries:
    """A vector index on the fixture's table, for the ``and on`` filter of :attr:`Params.vector_tables`."""
    index_labels = dict(labels, index="items_embedding_idx", am=p.settings.vector_index_methods[0])
    return gauge(PG_INDEX_SIZE_BYTES.name, index_labels, 1048576)


@dataclass(frozen=True)
class GaugeOver:
    """``metric{match} > threshold``; the fixture is the gauge at the value."""

    metric: str
    labels: dict[str, str]  # the fixture series' labels (the alert's labels)
    match: dict[str, str] = field(default_factory=dict)  # matchers in the expression

    def expr(self, p: Params) -> str:
        return f"{self.metric}{matchers(self.match)} > {p.limit}"

    def fixture(self, p: Params, value: float) -> Fixture:
        return Fixture((gauge(self.metric, self.labels, value),), dict(self.labels), value)


@dataclass(frozen=True)
class GaugeDown:
    """An event alert: ``metric == 0`` (then ``unless``); the fixture is the gauge at 0 (the condition
    holds) or 1, and ``$value`` is 0."""

    metric: str
    labels: dict[str, str]
    unless: str = ""  # PromQL appended to the comparison (``\nunless on (target)\n...``)

    def expr(self, p: Params) -> str:
        return f"{self.metric} == 0{self.unless}"

    def fixture(self, p: Params, value: float) -> Fixture:
        return Fixture((gauge(self.metric, self.labels, 0 if value else 1),), dict(self.labels), 0)


@dataclass(frozen=True)
class MeanLatency:
    """Mean observed seconds over the window, ``rate(_sum) / rate(_count)`` of a histogram, above the
    threshold; the fixture observes 10 requests a minute of ``value`` seconds each."""

    histogram: str
    by: str  # the alert's labels
    labels: dict[str, str]
    match: dict[str, str]

    def expr(self, p: Params) -> str:
        h, by, selector = self.histogram, f"sum by ({self.by})", matchers(self.match)
        return (ratio(f"{by} (rate({h}_sum{selector}[{p.w}]))", f"{by} (rate({h}_count{selector}[{p.w}]))")
                + f" > {p.limit}")

    def fixture(self, p: Params, value: float) -> Fixture:
        labels, per_minute = {**self.labels, **self.match}, 10
        return Fixture((counter(f"{self.histogram}_sum", labels, value * per_minute),
                        counter(f"{self.histogram}_count", labels, per_minute)),
                       dict(self.labels), value, active_from=MINUTE, settle=p.window or 0)


@dataclass(frozen=True)
class FailedOutcomes:
    """Share of a request counter's series whose ``outcome`` is not ``success`` over the window, above
    the threshold, once the window holds ``minimum`` requests; the fixture has ``unit`` requests per
    minute (or a multiple above the minimum), some ``http_5xx``."""

    requests: str
    by: str
    labels: dict[str, str]
    unit: int

    def expr(self, p: Params) -> str:
        r, by = self.requests, f"sum by ({self.by})"
        expr = (ratio(f'{by} (rate({r}{{outcome!="success"}}[{p.w}]))', f"{by} (rate({r}[{p.w}]))")
                + f" > {p.limit}")
        if p.minimum:
            expr += f"\nand on ({self.by})\n{by} (increase({r}[{p.w}])) >= {number(p.minimum)}"
        return expr

    def fixture(self, p: Params, value: float) -> Fixture:
        total = above(p.minimum, self.unit, self.unit)
        errors, ok = split(value, total)
        return Fixture((counter(self.requests, dict(self.labels, outcome="success"), ok),
                        counter(self.requests, dict(self.labels, outcome="http_5xx"), errors)),
                       dict(self.labels), errors / total, active_from=MINUTE, settle=p.window or 0)


@dataclass(frozen=True)
class ShareBelow:
    """``rate(part) / (rate(part) + rate(other))`` below the threshold, evaluated only above ``minimum``
    events per second; ``vector_tables``: only for tables having a vector index."""

    part: str
    other: str
    by: str
    labels: dict[str, str]
    vector_tables: bool = False

    def expr(self, p: Params) -> str:
        by, w = f"sum by ({self.by})", p.w
        expr = (ratio(f"{by} (rate({self.part}[{w}]))", f"{by} (rate({self.part}[{w}]) + rate({self.other}[{w}]))",
                      number(p.minimum or 0)) + f" < {p.limit}")
        return expr + (f"\nand on ({self.by})\n{p.vector_tables}" if self.vector_tables else "")

    def fixture(self, p: Params, value: float) -> Fixture:
        total = above(p.minimum, 10000, 100)  # events per minute, above the guard
        part, other = split(value, total)
        series: tuple[InputSeries, ...] = (counter(self.part, self.labels, part),
                                           counter(self.other, self.labels, other))
        if self.vector_tables:
            series += (vector_table(p, self.labels),)
        return Fixture(series, dict(self.labels), part / total, active_from=MINUTE, settle=p.window or 0)
