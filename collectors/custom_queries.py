"""Custom SQL queries: the operator's own metrics, from vecmon's ``queries:`` or a postgres_exporter queries.yaml.

Each query is planned once at config time (:class:`QueryPlan`: SQL, label columns, one
:class:`ColumnPlan` with a declared :class:`MetricSpec` per metric column) and runs as its own
scheduled job, ``query:<name>`` on each target it applies to, through
:meth:`monitor.pg.DatabaseConnector.run` like every other collector: one read-only transaction
bounded by the query's ``statement_timeout``. Inside it:

1. the server version gate (``min/max_server_version`` or queries.yaml ``runonserver``) and the
   ``predicate`` query: when either says no, the job is reported *disabled*, not failed;
2. the query is sent with the extended protocol (one statement only: ``SELECT 1; COMMIT; ...`` is
   refused by the server) and read row by row; at ``row_limit`` rows vecmon stops reading and the
   server-side query is cancelled, inside a savepoint so the transaction stays usable;
3. every cell is converted on its own: a NULL, text in a number column, an unmapped MAPPEDMETRIC
   value... skips that one sample, with one warning per run naming the query and column; the other
   rows and columns are still exported. Rows with the same label values as an earlier row are
   dropped (a duplicate series would make the scrape ambiguous).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from collectors.base import CollectContext, CollectorDisabled, CollectorError, Emitter, MetricSpec

log = logging.getLogger(__name__)

QUERY_COLLECTOR_PREFIX = "query:"
# What every custom query job reports about its own last result, next to the query's metrics.
QUERY_ROWS = MetricSpec("vecmon_query_rows", "gauge",
                        "Rows the custom query returned in its last run (at most its row_limit).", ("query",))
QUERY_TRUNCATED = MetricSpec("vecmon_query_truncated", "gauge",
                             "Whether the custom query's last result had more rows than its row_limit (1) or not (0).",
                             ("query",))
QUERY_SKIPPED_VALUES = MetricSpec(
    "vecmon_query_skipped_values", "gauge",
    "Cells of the custom query's last result not exported because they were NULL, not a number "
    "or unmapped, by metric column.", ("query", "column"))


QUERY_METRICS = (
    QUERY_ROWS,
    QUERY_TRUNCATED,
    QUERY_SKIPPED_VALUES,
)
# A version range: alternatives (OR) of conditions (AND), each (operator, server_version_num).
VersionRange = tuple[tuple[tuple[str, int], ...], ...]
_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}


def version_in(ranges: VersionRange, version_num: int) -> bool:
    """Whether ``version_num`` satisfies one of the alternatives; an empty range allows every version."""
    return not ranges or any(all(_OPS[op](version_num, bound) for op, bound in alt) for alt in ranges)


def describe_range(ranges: VersionRange) -> str:
    def num(v: int) -> str:
        return f"{v // 10000}.{v % 10000}" if v >= 100000 else f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    return " || ".join(" ".join(f"{op}{num(bound)}" for op, bound in alt) for alt in ranges)


@dataclass(frozen=True)
class ColumnPlan:
    """How one result column becomes samples of one declared metric."""

    column: str
    spec: MetricSpec
    convert: str = "number"  # number | duration_ms (Go duration text) | mapped (text -> value) | histogram
    mapping: tuple[tuple[str, float], ...] = ()  # for ``mapped``
    versions: VersionRange = ()  # server versions on which the column is read (queries.yaml pg_version)


@dataclass(frozen=True)
class QueryPlan:
    """One custom query, ready to run; built from the config by monitor.config_queries."""

    name: str
    sql: str
    source: str  # where it is defined, for messages: "queries[1] (orders)", "queries.yaml: pg_foo"
    labels: tuple[str, ...]
    metrics: tuple[ColumnPlan, ...]
    scope: str = "database"  # database | server
    targets: tuple[str, ...] = ()  # empty: every database target
    interval: float | None = None  # None: the target's interval
    min_interval: float = 0.0  # queries.yaml cache_seconds: never run more often than this
    timeout: float | None = None  # None: the target's timeout
    versions: VersionRange = ()
    predicate: str | None = None
    row_limit: int = 1000
    strict_columns: bool = True  # a metric column missing from the result is an error (else: skipped)
    warn_null: bool = True  # False for queries.yaml, where NULL is a legal value (postgres_exporter: NaN)

    @property
    def collector_name(self) -> str:
        return QUERY_COLLECTOR_PREFIX + self.name

    def specs(self) -> tuple[MetricSpec, ...]:
        return tuple(column.spec for column in self.metrics)

    def applies_to(self, target: str) -> bool:
        """Every target, or the ones named; a discovered target ``<entry>/<datname>`` by its entry's name too."""
        return not self.targets or target in self.targets or target.split("/", 1)[0] in self.targets


class _Truncated(Exception):
    """Raised inside the savepoint to leave it after stopping a result early."""


def fetch_limited(conn: psycopg.Connection, sql: str, limit: int) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Column names, at most ``limit`` rows, and whether the result had more.

    The statement is sent with the extended protocol (so a single statement) and read row by row;
    stopping early cancels it on the server, which aborts the (sub)transaction: the savepoint keeps
    the surrounding run's transaction usable."""
    rows: list[tuple[Any, ...]] = []
    columns: list[str] = []
    truncated = False
    cursor = conn.cursor()
    try:
        with conn.transaction():
            stream = cursor.stream(sql)
            try:
                for row in stream:
                    if not columns and cursor.description:
                        columns = [c.name for c in cursor.description]
                    if len(rows) >= limit:
                        truncated = True
                        break
                    rows.append(row)
            finally:
                # runs the cancel now, not when the generator is collected; psycopg annotates stream() as
                # an Iterator, but it returns a generator, which has close()
                stream.close()  # type: ignore[attr-defined]
            if truncated:
                raise _Truncated
            if not columns and cursor.description:
                columns = [c.name for c in cursor.description]
    except _Truncated:
        pass
    finally:
        cursor.close()
    return columns, rows, truncated


# -- cell conversion --------------------------------------------------------------------------------

_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def go_duration_ms(text: str) -> float | None:
    """Go's time.ParseDuration ("1h2m3.5s", "150ms", "-2s", "0") in milliseconds; None if invalid."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    if not body or _GO_DURATION.sub("", body):
        return None
    return sign * sum(float(n) * _GO_UNITS_MS[u] for n, u in _GO_DURATION.findall(body))


def to_number(value: Any) -> tuple[float | None, str | None]:
    """A SQL cell as a sample value, or None and why it was skipped (never the value: it may be anything)."""
    if value is None:
        return None, "NULL"
    if isinstance(value, bool):
        return (1.0 if value else 0.0), None
    if isinstance(value, (int, float, Decimal)):
        number = float(value)
    elif isinstance(value, dt.datetime):  # postgres_exporter exports timestamps as unix seconds
        number = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    elif isinstance(value, dt.timedelta):
        number = value.total_seconds()
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None, "text"
    else:
        return None, type(value).__name__
    if not math.isfinite(number):
        return None, "not finite"
    return number, None


def convert_cell(column: ColumnPlan, value: Any) -> tuple[float | None, str | None]:
    if column.convert == "mapped":
        if value is None:
            return None, "NULL"
        for text, mapped in column.mapping:
            if text == str(value):
                return mapped, None
        return None, "unmapped value"
    if column.convert == "duration_ms":
        if isinstance(value, dt.timedelta):
            return value.total_seconds() * 1000, None
        if not isinstance(value, str):
            return (None, "NULL") if value is None else (None, f"{type(value).__name__}, not a duration text")
        if value.strip() == "-1":
            return None, "-1"
        millis = go_duration_ms(value)
        return (millis, None) if millis is not None else (None, "not a duration")
    return to_number(value)


# -- the collector ------------------------------------------------------------------------------------

@dataclass
class _Skips:
    """Skipped cells of one run, for one warning per column."""

    reasons: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, column: str, reason: str) -> None:
        self.reasons.setdefault(column, Counter())[reason] += 1

    def lines(self, warn_null: bool) -> Iterator[str]:
        for column, counted in sorted(self.reasons.items()):
            reasons = Counter({r: n for r, n in counted.items() if warn_null or r != "NULL"})
            if not reasons:
                continue
            total = sum(reasons.values())
            detail = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common(3))
            more = f", {len(reasons) - 3} other reason(s)" if len(reasons) > 3 else ""
            yield f"column {column}: skipped {total} value(s) ({detail}{more})"


class CustomQueryCollector:
    """Runs one :class:`QueryPlan`; its name is ``query:<name>`` and its METRICS come from the plan."""

    runs_config_sql = True  # the connector resets the session (DISCARD ALL) after each run

    def __init__(self, plan: QueryPlan):
        self.plan = plan
        self.name = plan.collector_name
        self.METRICS = plan.specs() + QUERY_METRICS

    def collect(self, ctx: CollectContext) -> list[Metric]:
        plan = self.plan
        assert ctx.conn is not None and ctx.facts is not None
        version_num = ctx.facts.version_num
        if not version_in(plan.versions, version_num):
            raise CollectorDisabled(f"{plan.source}: server version {ctx.facts.version} is outside "
                                    f"{describe_range(plan.versions)}")
        if plan.predicate is not None:
            self._check_predicate(ctx.conn)
        columns, rows, truncated = fetch_limited(ctx.conn, plan.sql, plan.row_limit)
        index = {name: i for i, name in enumerate(columns)}
        active = [c for c in plan.metrics if version_in(c.versions, version_num)]
        if rows:  # an empty result has no column names (psycopg's stream() drops them)
            self._check_columns(index, active, ctx)
        emitter = Emitter(ctx.target, self.METRICS)
        skips = _Skips()
        seen: dict[str, set[tuple[str, ...]]] = {}
        duplicates = 0
        for row in rows:
            for column in active:
                if column.column not in index:
                    continue
                labels = tuple("" if row[index[label]] is None else str(row[index[label]])
                               for label in column.spec.labels)
                keys = seen.setdefault(column.spec.name, set())
                if labels in keys:
                    duplicates += 1
                    continue
                if column.convert == "histogram":
                    reason = self._histogram(emitter, column, row, index, labels)
                else:
                    value, reason = convert_cell(column, row[index[column.column]])
                    if reason is None:
                        emitter.add(column.spec.name, value, *labels)
                if reason is not None:
                    skips.add(column.column, reason)
                else:
                    keys.add(labels)
        self._report(ctx, len(rows), truncated, skips, duplicates)
        emitter.add(QUERY_ROWS.name, len(rows), plan.name)
        emitter.add(QUERY_TRUNCATED.name, 1 if truncated else 0, plan.name)
        for column in plan.metrics:
            emitter.add(QUERY_SKIPPED_VALUES.name, sum(skips.reasons.get(column.column, {}).values()),
                        plan.name, column.column)
        return emitter.families()

    def _check_predicate(self, conn: psycopg.Connection) -> None:
        plan = self.plan
        try:
            columns, rows, _ = fetch_limited(conn, plan.predicate or "", 2)
        except psycopg.OperationalError:  # timeouts (QueryCanceled) and lost connections: the run's own errors
            raise
        except psycopg.Error as exc:
            raise CollectorError(f"{plan.source}: predicate failed: {type(exc).__name__}: "
                                 f"{str(exc).strip()}") from None
        if not rows:
            raise CollectorDisabled(f"{plan.source}: predicate returned no row")
        if len(columns) != 1 or len(rows) > 1:
            raise CollectorError(f"{plan.source}: the predicate must return one row with one boolean column "
                                 f"(got {len(rows)} row(s), {len(columns)} column(s))")
        if not rows[0][0]:
            raise CollectorDisabled(f"{plan.source}: predicate returned {rows[0][0]!r}")

    def _check_columns(self, index: dict[str, int], active: list[ColumnPlan], ctx: CollectContext) -> None:
        plan = self.plan
        wanted_labels = {label for column in active for label in column.spec.labels}
        missing = sorted(label for label in wanted_labels if label not in index)
        if plan.strict_columns:
            missing += sorted(c.column for c in active if c.column not in index)
        if missing:
            raise CollectorError(f"{plan.source}: the result has no column(s) {', '.join(missing)} "
                                 f"(it has: {', '.join(index) or 'none'})")
        known = {c.column for c in plan.metrics} | set(plan.labels)
        known |= {c.column + suffix for c in plan.metrics if c.convert == "histogram"
                  for suffix in ("_bucket", "_sum", "_count")}
        unknown = sorted(set(index) - known)
        if unknown and ctx.state.get("_unknown_columns") != unknown:
            ctx.state["_unknown_columns"] = unknown
            log.warning("target %s: %s: column(s) %s are neither labels nor metrics; not exported",
                        ctx.target, plan.source, ", ".join(unknown))

    @staticmethod
    def _histogram(emitter: Emitter, column: ColumnPlan, row: tuple[Any, ...], index: dict[str, int],
                   labels: tuple[str, ...]) -> str | None:
        """postgres_exporter's HISTOGRAM: <col> bucket bounds, <col>_bucket cumulative counts, _sum, _count."""
        name = column.column
        for part in ("_bucket", "_sum", "_count"):
            if name + part not in index:
                return f"no column {name}{part}"
        bounds, counts = row[index[name]], row[index[name + "_bucket"]]
        total, reason = to_number(row[index[name + "_count"]])
        sum_value, sum_reason = to_number(row[index[name + "_sum"]])
        if not isinstance(bounds, list) or not isinstance(counts, list):
            return "buckets are not arrays"
        if reason or sum_reason:
            return reason or sum_reason
        assert total is not None and sum_value is not None  # to_number gives a reason with every None
        try:  # arrays of different lengths: the extra bounds or counts are ignored
            buckets = sorted((float(b), float(c)) for b, c in zip(bounds, counts, strict=False))
        except (TypeError, ValueError):
            return "non-numeric bucket"
        # floatToGoString: prometheus_client leaves it unannotated
        rendered = [(floatToGoString(bound), count)  # type: ignore[no-untyped-call]
                    for bound, count in buckets if math.isfinite(bound)]
        emitter.histogram(column.spec.name, [*rendered, ("+Inf", total)], sum_value, *labels)
        return None

    def _report(self, ctx: CollectContext, rows: int, truncated: bool, skips: _Skips, duplicates: int) -> None:
        plan = self.plan
        problems = list(skips.lines(plan.warn_null))
        if truncated:
            problems.append(f"more than {plan.row_limit} rows (row_limit); exported the first {rows}")
        if duplicates:
            problems.append(f"dropped {duplicates} sample(s) repeating the label values of an earlier row")
        # The same problems every run are logged once; a change (or their end) is logged again.
        if problems != ctx.state.get("_problems", []):
            for problem in problems:
                log.warning("target %s: %s: %s", ctx.target, plan.source, problem)
            if not problems:
                log.info("target %s: %s: no skipped values any more", ctx.target, plan.source)
        ctx.state["_problems"] = problems
