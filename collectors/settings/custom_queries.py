"""Settings of custom SQL queries (``queries:``), run by :mod:`collectors.custom_queries`.

A vecmon query names its metric columns, their type and help, and its label columns::

    queries:
      - name: orders
        sql: SELECT status, count(*) AS open, sum(total) AS amount FROM orders GROUP BY status
        labels: [status]
        metrics:
          - {column: open, type: gauge, help: Open orders by status.}
          - {column: amount, type: counter, help: Order value by status., name: order_amount}

Metric names: vecmon's own metrics are ``vecmon_*``; a custom query's metric is always
``vecmon_custom_<name>``, where ``name`` defaults to ``<query name>_<column>`` and counters get
``_total`` appended. So custom metrics can never shadow a vecmon metric (the config check also
refuses any name a vecmon collector declares), and two queries cannot export the same name.
Only postgres_exporter's queries.yaml (``extend_query_path``) keeps its own names
(``<namespace>_<column>``), for existing dashboards.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from collectors.base import MetricSpec
from collectors.custom_queries import ColumnPlan, QueryPlan, VersionRange
from collectors.settings.base import Duration, Model

CUSTOM_PREFIX = "vecmon_custom_"
IDENTIFIER = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
RESERVED_LABELS = ("target",)
DEFAULT_ROW_LIMIT = 1000
MAX_ROW_LIMIT = 100_000
_VERSION = re.compile(r"^\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$")


def version_bound(value: Any, upper: bool) -> int:
    """``14`` / ``"14.2"`` / ``"9.6"`` / ``140002`` -> server_version_num; a bare major as an upper
    bound means every minor release of it (``16`` -> 169999)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10000:
        return value
    match = _VERSION.match(str(value))
    if match is None or isinstance(value, bool):
        raise ValueError(f"invalid server version {value!r} (use e.g. 14, 16.2 or 160002)")
    major = int(match.group(1))  # the pattern's one mandatory group
    minor, patch = (int(p) if p is not None else None for p in match.groups()[1:])
    if major < 10:  # 9.6.3 -> 90603
        base = major * 10000 + (minor or 0) * 100
        return base + (patch if patch is not None else (99 if upper else 0))
    if minor is None:
        return major * 10000 + (9999 if upper else 0)
    return major * 10000 + minor


class CustomMetric(Model):
    """One metric column of a custom query."""

    column: str = Field(pattern=IDENTIFIER, description="result column holding the value")
    type: Literal["gauge", "counter"] = Field(description="counter: cumulative, exported with _total")
    help: str = Field(min_length=1, description="the metric's HELP text")
    name: str | None = Field(None, pattern=IDENTIFIER,
                             description="exported as vecmon_custom_<name>; default <query name>_<column>")
    labels: list[str] | None = Field(None, description="label columns of this metric; default the query's labels")


class CustomQuery(Model):
    """A SQL query whose result columns become metrics, run on the database targets."""

    name: str = Field(pattern=IDENTIFIER, description="query name; its jobs are collector query:<name>")
    sql: str = Field(min_length=1, description="one read-only statement (SELECT, VALUES, SHOW, TABLE...)")
    labels: list[str] = Field(default_factory=list, description="result columns used as labels")
    metrics: list[CustomMetric] = Field(min_length=1, description="result columns exported as metrics")
    scope: Literal["database", "server"] = Field(
        "database", description="database: on every target; server: once per PostgreSQL server (first target)")
    targets: list[str] | None = Field(None, description="database target names; default every target")
    interval: Duration | None = Field(None, description="default: the target's interval")
    timeout: Duration | None = Field(None, description="statement_timeout of a run; default the target's timeout")
    min_server_version: int | str | None = Field(None, description="e.g. 14 or 16.2: not run on older servers")
    max_server_version: int | str | None = Field(None, description="e.g. 17 (any 17.x): not run on newer servers")
    predicate: str | None = Field(None, description="SQL returning one boolean; false or no row skips the run")
    row_limit: int = Field(DEFAULT_ROW_LIMIT, ge=1, le=MAX_ROW_LIMIT,
                           description="rows read at most; the rest is not read and a warning is logged")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return check_labels(value)

    @field_validator("min_server_version", "max_server_version")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if value is not None:
            version_bound(value, upper=False)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CustomQuery:
        columns = [m.column for m in self.metrics]
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise ValueError(f"column(s) {', '.join(duplicated)} listed twice in metrics")
        for metric in self.metrics:
            labels = self.labels if metric.labels is None else check_labels(metric.labels)
            if metric.column in labels:
                raise ValueError(f"column {metric.column!r} is both a label and a metric")
        if (self.min_server_version is not None and self.max_server_version is not None
                and version_bound(self.min_server_version, False) > version_bound(self.max_server_version, True)):
            raise ValueError("min_server_version is above max_server_version")
        return self

    def plan(self, source: str) -> QueryPlan:
        conditions = []
        if self.min_server_version is not None:
            conditions.append((">=", version_bound(self.min_server_version, upper=False)))
        if self.max_server_version is not None:
            conditions.append(("<=", version_bound(self.max_server_version, upper=True)))
        versions: VersionRange = (tuple(conditions),) if conditions else ()
        return QueryPlan(
            name=self.name, sql=self.sql, source=source, labels=tuple(self.labels),
            metrics=tuple(self._column(m) for m in self.metrics), scope=self.scope,
            targets=tuple(self.targets or ()), interval=self.interval, timeout=self.timeout,
            versions=versions, predicate=self.predicate, row_limit=self.row_limit)

    def _column(self, metric: CustomMetric) -> ColumnPlan:
        name = CUSTOM_PREFIX + (metric.name or f"{self.name}_{metric.column}")
        if metric.type == "counter" and not name.endswith("_total"):
            name += "_total"
        labels = tuple(self.labels if metric.labels is None else metric.labels)
        return ColumnPlan(metric.column, MetricSpec(name, metric.type, metric.help, labels))


def check_labels(labels: list[str]) -> list[str]:
    for label in labels:
        if not re.match(IDENTIFIER, label) or label.startswith("__"):
            raise ValueError(f"invalid label name {label!r}")
        if label in RESERVED_LABELS:
            raise ValueError(f"label {label!r} is reserved: vecmon adds it to every metric")
    if len(set(labels)) != len(labels):
        raise ValueError("a label column is listed twice")
    return labels
