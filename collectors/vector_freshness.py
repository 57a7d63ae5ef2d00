"""Embedding freshness per configured table (``vector.freshness``).

For each entry:

* ``timestamp_column``: age of the newest row (``max(column)``; cheap with a btree on it);
* ``model_version_column``: rows per embedding-model version (``GROUP BY``; the
  ``max_versions`` largest groups by name, the rest as ``__other__`` and NULL as ``__null__``:
  reserved values, so a real version called ``other`` or ``null`` keeps its own series), to
  follow a re-embedding;
* ``embedding_column``: rows whose embedding is NULL, i.e. waiting for one (a partial index
  ``WHERE embedding IS NULL`` keeps this cheap).

These are real counts. A part an index answers (``max(timestamp)`` with a btree on the column, the
NULL count with a partial index ``WHERE embedding IS NULL``; the planner decides, checked with
EXPLAIN every ten minutes) gets its own cheap query; every other part shares ONE pass over the
table (a ``GROUP BY GROUPING SETS`` on the version column whose grand-total row carries the newest
timestamp and the NULL count), and a warning names each column that has no index, once. The
model-version counts always need that pass (or an index-only scan). All of it is bounded by the collector's
timeout: each statement's statement_timeout is the run's time left, and when that is spent (or the
connector's watchdog cancels a statement) the run ends as a timeout. Each table is measured in its
own savepoint, so one failing table (missing column, privilege) is counted in
``vecmon_vector_freshness_errors_total`` and the others are still reported. Needs SELECT on the
tables.
"""

from __future__ import annotations

import logging
import time

import psycopg
from prometheus_client.core import Metric
from psycopg import sql

from collectors.base import CollectContext, CollectorDisabled, Emitter, MetricSpec
from collectors.run_deadline import RunDeadline
from collectors.settings.vector import FreshnessTable
from collectors.vector_catalog import require_pgvector
from collectors.vector_names import parse_qualified

log = logging.getLogger(__name__)
T = ("schema", "table")
PLAN_RECHECK_SECONDS = 600.0  # how long an "is there an index for this?" answer is trusted
# Reserved model-version label values (a real value equal to one is merged into it, so no series repeats).
NULL_VERSION = "__null__"
OTHER_VERSIONS = "__other__"


VECTOR_NEWEST_ROW_TIMESTAMP_SECONDS = MetricSpec(
    "vecmon_vector_newest_row_timestamp_seconds", "gauge",
    "Unix time of the newest row by the configured timestamp column.", (*T, "column"))
VECTOR_NEWEST_ROW_AGE_SECONDS = MetricSpec(
    "vecmon_vector_newest_row_age_seconds", "gauge",
    "Age of the newest row by the configured timestamp column (server clock).", (*T, "column"))
VECTOR_MODEL_VERSION_ROWS = MetricSpec(
    "vecmon_vector_model_version_rows", "gauge",
    "Rows per value of the embedding-model version column: the largest groups by name, the "
    "rest summed as '__other__' and NULL as '__null__' (reserved values).", (*T, "version"))
VECTOR_EMBEDDING_PENDING_ROWS = MetricSpec(
    "vecmon_vector_embedding_pending_rows", "gauge",
    "Rows whose embedding column is NULL (waiting for an embedding).", (*T, "column"))
VECTOR_FRESHNESS_ERRORS_TOTAL = MetricSpec(
    "vecmon_vector_freshness_errors_total", "counter",
    "Freshness queries that failed for the table (missing column, privilege...); the run's own "
    "timeout is reported as the collector's, not here.", T)
VECTOR_FRESHNESS_QUERY_DURATION_SECONDS = MetricSpec("vecmon_vector_freshness_query_duration_seconds", "gauge",
                                                     "Time the table's freshness queries took in the last run.", T)


PlanKey = tuple[str, str, str, str]  # schema, table, which query, column


class VectorFreshnessCollector:
    """Newest-row age, rows per embedding-model version and rows waiting for an embedding."""

    name = "vector_freshness"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        VECTOR_NEWEST_ROW_TIMESTAMP_SECONDS,
        VECTOR_NEWEST_ROW_AGE_SECONDS,
        VECTOR_MODEL_VERSION_ROWS,
        VECTOR_EMBEDDING_PENDING_ROWS,
        VECTOR_FRESHNESS_ERRORS_TOTAL,
        VECTOR_FRESHNESS_QUERY_DURATION_SECONDS,
    )

    def _measure(self, ctx: CollectContext, deadline: RunDeadline, entry: FreshnessTable, schema: str, table: str
                 ) -> tuple[list[tuple[str, float | None, str]], list[tuple[str, int]]]:
        """The entry's samples: parts an index answers get their own query; the rest share one pass."""
        conn = ctx.conn
        assert conn is not None
        target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        ts_column, emb_column = entry.timestamp_column, entry.embedding_column
        ts = sql.Identifier(ts_column) if ts_column else None
        emb = sql.Identifier(emb_column) if emb_column else None
        newest_sql = sql.SQL("SELECT extract(epoch FROM max({col})::timestamptz)::float8, "
                             "extract(epoch FROM now() - max({col})::timestamptz)::float8 FROM {t}")
        pending_sql = sql.SQL("SELECT count(*) FROM {t} WHERE {col} IS NULL")
        samples: list[tuple[str, float | None, str]] = []
        scan_ts: str | None = None  # the columns no index answers for, left to the one pass below
        scan_emb: str | None = None
        if ts_column:
            query = newest_sql.format(col=ts, t=target)
            if _indexed(ctx, deadline, query, (schema, table, "newest", ts_column)):
                deadline.set_statement_timeout(conn)
                row = conn.execute(query).fetchone()
                assert row is not None  # an aggregate without GROUP BY returns one row
                newest, age = row
                samples += self._newest(newest, age, ts_column)
            else:
                scan_ts = ts_column
                self._warn_once(ctx, schema, table, ts_column, f"CREATE INDEX ON {schema}.{table} ({ts_column})")
        if emb_column:
            query = pending_sql.format(col=emb, t=target)
            if _indexed(ctx, deadline, query, (schema, table, "pending", emb_column)):
                deadline.set_statement_timeout(conn)
                row = conn.execute(query).fetchone()
                assert row is not None  # an aggregate without GROUP BY returns one row
                samples.append((VECTOR_EMBEDDING_PENDING_ROWS.name, row[0], emb_column))
            else:
                scan_emb = emb_column
                self._warn_once(ctx, schema, table, emb_column,
                                f"CREATE INDEX ON {schema}.{table} (id) WHERE {emb_column} IS NULL")
        versions: list[tuple[str, int]] = []
        if not (scan_ts or scan_emb or entry.model_version_column):
            return samples, versions
        # One pass for whatever no index answers: per-version counts (when configured) and, in the
        # grand-total row of the grouping sets, the newest timestamp and the rows still without an embedding.
        version = (sql.SQL("{}::text").format(sql.Identifier(entry.model_version_column))
                   if entry.model_version_column else sql.SQL("NULL::text"))
        newest = (sql.SQL("extract(epoch FROM max({c})::timestamptz)::float8, "
                          "extract(epoch FROM now() - max({c})::timestamptz)::float8").format(c=ts)
                  if scan_ts else sql.SQL("NULL::float8, NULL::float8"))
        pending = (sql.SQL("count(*) FILTER (WHERE {c} IS NULL)").format(c=emb) if scan_emb
                   else sql.SQL("NULL::bigint"))
        if entry.model_version_column:
            query = sql.SQL("SELECT {v}, count(*), {newest}, {pending}, GROUPING({v}) FROM {t} "
                            "GROUP BY GROUPING SETS (({v}), ()) ORDER BY GROUPING({v}) DESC, 2 DESC, 1 "
                            "LIMIT 10001").format(v=version, newest=newest, pending=pending, t=target)
        else:
            query = sql.SQL("SELECT NULL::text, count(*), {newest}, {pending}, 1 FROM {t}").format(
                newest=newest, pending=pending, t=target)
        deadline.set_statement_timeout(conn)
        rows = conn.execute(query).fetchall()
        # columns: version, rows, newest (epoch), newest age, pending, whether it is the grand-total row
        total = next((row for row in rows if row[5] == 1), None)
        if total is not None:
            if scan_ts:
                samples += self._newest(total[2], total[3], scan_ts)
            if scan_emb:
                samples.append((VECTOR_EMBEDDING_PENDING_ROWS.name, total[4], scan_emb))
        if entry.model_version_column:
            versions = _version_counts([(row[0], row[1]) for row in rows if row[5] == 0], entry.max_versions)
        return samples, versions

    @staticmethod
    def _newest(newest: float | None, age: float | None, column: str) -> list[tuple[str, float | None, str]]:
        return [(VECTOR_NEWEST_ROW_TIMESTAMP_SECONDS.name, newest, column),
                (VECTOR_NEWEST_ROW_AGE_SECONDS.name, max(0.0, age) if age is not None else None, column)]

    @staticmethod
    def _warn_once(ctx: CollectContext, schema: str, table: str, column: str, remedy: str) -> None:
        warned: set[tuple[str, str, str]] = ctx.state.setdefault("warned", set())
        if (schema, table, column) not in warned:
            warned.add((schema, table, column))
            log.warning("freshness of %s.%s on %s: no index serves column %s, so every run scans the table "
                        "(once for all such columns); an index would make it cheap: %s",
                        schema, table, ctx.target, column, remedy)

    def collect(self, ctx: CollectContext) -> list[Metric]:
        started_run = time.monotonic()
        require_pgvector(ctx)
        entries = list(ctx.settings.vector.freshness)
        if not entries:
            raise CollectorDisabled("no vector.freshness tables configured")
        conn = ctx.conn
        assert conn is not None
        deadline = RunDeadline.for_run(ctx, self.name, started_run)
        errors: dict[tuple[str, str], int] = ctx.state.setdefault("errors", {})
        em = Emitter(ctx.target, self.METRICS)
        for entry in entries:
            schema, table = parse_qualified(entry.table)
            schema = schema or "public"
            labels = (schema, table)
            errors.setdefault(labels, 0)
            started = time.perf_counter()
            try:
                with conn.transaction():
                    samples, versions = self._measure(ctx, deadline, entry, schema, table)
            except psycopg.Error as exc:
                if conn.broken or deadline.ends_run(exc):
                    raise  # the run's time is up: the connector reports the run's timeout
                errors[labels] += 1
                log.warning("freshness of %s.%s on %s failed: %s", schema, table, ctx.target, str(exc).strip())
                continue
            for name, value, column in samples:
                em.add(name, value, *labels, column)
            for version, count in versions:
                em.add(VECTOR_MODEL_VERSION_ROWS.name, count, *labels, version)
            em.add(VECTOR_FRESHNESS_QUERY_DURATION_SECONDS.name, time.perf_counter() - started, *labels)
        for labels, count in errors.items():
            em.add(VECTOR_FRESHNESS_ERRORS_TOTAL.name, count, *labels)
        return em.families()


def _indexed(ctx: CollectContext, deadline: RunDeadline, query: sql.Composed, key: PlanKey) -> bool:
    """Whether the planner answers ``query`` without a sequential scan (EXPLAIN only, nothing runs);
    remembered for ``PLAN_RECHECK_SECONDS``, so an index created later is noticed."""
    plans: dict[PlanKey, tuple[bool, float]] = ctx.state.setdefault("plans", {})
    known = plans.get(key)
    if known is not None and time.monotonic() - known[1] < PLAN_RECHECK_SECONDS:
        return known[0]
    conn = ctx.conn
    assert conn is not None
    deadline.set_statement_timeout(conn)
    explained = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + query).fetchone()
    assert explained is not None  # EXPLAIN returns one row
    plan = explained[0]
    indexed = "Seq Scan" not in _node_types(plan)
    plans[key] = (indexed, time.monotonic())
    return indexed


def _node_types(plan: object) -> set[str]:
    found: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "Node Type" in node:
                found.add(str(node["Node Type"]))
            stack.extend(v for v in node.values() if isinstance(v, (list, dict)))
    return found


def _version_counts(rows: list[tuple[str | None, int]], max_versions: int) -> list[tuple[str, int]]:
    """Rows per version label: the ``max_versions`` largest groups by name (NULL as ``__null__``), the
    rest summed as ``__other__``; counts landing on the same label are added up, never repeated."""
    counts: dict[str, int] = {}
    for i, (version, count) in enumerate(rows):
        label = OTHER_VERSIONS if i >= max_versions else NULL_VERSION if version is None else version
        counts[label] = counts.get(label, 0) + int(count)
    return list(counts.items())
