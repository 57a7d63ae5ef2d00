"""Embedding freshness per configured table (``vector.freshness``).

For each entry:

* ``timestamp_column``: age of the newest row (``max(column)``; cheap with a btree on it);
* ``model_version_column``: rows per embedding-model version (``GROUP BY``; the
  ``max_versions`` largest groups by name, the rest as ``__other__`` and NULL as ``__null__``:
  reserved values, so a real version called ``other`` or ``null`` keeps its own series), to
  follow a re-embedding;
* ``embedding_column``: rows whose embedding is NULL, i.e. waiting for one (a partial index
  ``WHERE embedding IS NULL`` keeps this cheap).

These are real counts (full scans without a supporting index), bounded by the collector's
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
from psycopg import sql
from prometheus_client.core import Metric

from collectors.base import CollectContext, CollectorDisabled, Emitter, MetricSpec
from collectors.pgvector_catalog import RunDeadline, parse_qualified, require_pgvector

log = logging.getLogger(__name__)
T = ("schema", "table")
# Reserved model-version label values (a real value equal to one is merged into it, so no series repeats).
NULL_VERSION = "__null__"
OTHER_VERSIONS = "__other__"


class VectorFreshnessCollector:
    """Newest-row age, rows per embedding-model version and rows waiting for an embedding."""

    name = "vector_freshness"
    needs_connection = True
    METRICS: tuple[MetricSpec, ...] = (
        MetricSpec("vecmon_vector_newest_row_timestamp_seconds", "gauge",
                   "Unix time of the newest row by the configured timestamp column.", (*T, "column")),
        MetricSpec("vecmon_vector_newest_row_age_seconds", "gauge",
                   "Age of the newest row by the configured timestamp column (server clock).", (*T, "column")),
        MetricSpec("vecmon_vector_model_version_rows", "gauge",
                   "Rows per value of the embedding-model version column: the largest groups by name, the "
                   "rest summed as '__other__' and NULL as '__null__' (reserved values).", (*T, "version")),
        MetricSpec("vecmon_vector_embedding_pending_rows", "gauge",
                   "Rows whose embedding column is NULL (waiting for an embedding).", (*T, "column")),
        MetricSpec("vecmon_vector_freshness_errors_total", "counter",
                   "Freshness queries that failed for the table (missing column, privilege...); the run's own "
                   "timeout is reported as the collector's, not here.", T),
        MetricSpec("vecmon_vector_freshness_query_duration_seconds", "gauge",
                   "Time the table's freshness queries took in the last run.", T),
    )

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
            target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            started = time.perf_counter()
            try:
                with conn.transaction():
                    samples = []
                    if entry.timestamp_column:
                        col = sql.Identifier(entry.timestamp_column)
                        deadline.set_statement_timeout(conn)
                        newest, age = conn.execute(sql.SQL(
                            "SELECT extract(epoch FROM max({col})::timestamptz)::float8, "
                            "extract(epoch FROM now() - max({col})::timestamptz)::float8 FROM {t}").format(
                            col=col, t=target)).fetchone()
                        samples.append(("vecmon_vector_newest_row_timestamp_seconds", newest, entry.timestamp_column))
                        samples.append(("vecmon_vector_newest_row_age_seconds",
                                        max(0.0, age) if age is not None else None, entry.timestamp_column))
                    if entry.embedding_column:
                        deadline.set_statement_timeout(conn)
                        pending = conn.execute(sql.SQL("SELECT count(*) FROM {t} WHERE {col} IS NULL").format(
                            t=target, col=sql.Identifier(entry.embedding_column))).fetchone()[0]
                        samples.append(("vecmon_vector_embedding_pending_rows", pending, entry.embedding_column))
                    versions: list[tuple[str, int]] = []
                    if entry.model_version_column:
                        deadline.set_statement_timeout(conn)
                        rows = conn.execute(sql.SQL(
                            "SELECT {col}::text, count(*) FROM {t} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10000").format(
                            col=sql.Identifier(entry.model_version_column), t=target)).fetchall()
                        versions = _version_counts(rows, entry.max_versions)
            except psycopg.Error as exc:
                if conn.broken or deadline.ends_run(exc):
                    raise  # the run's time is up: the connector reports the run's timeout
                errors[labels] += 1
                log.warning("freshness of %s.%s on %s failed: %s", schema, table, ctx.target, str(exc).strip())
                continue
            for name, value, column in samples:
                em.add(name, value, *labels, column)
            for version, count in versions:
                em.add("vecmon_vector_model_version_rows", count, *labels, version)
            em.add("vecmon_vector_freshness_query_duration_seconds", time.perf_counter() - started, *labels)
        for labels, count in errors.items():
            em.add("vecmon_vector_freshness_errors_total", count, *labels)
        return em.families()


def _version_counts(rows: list[tuple[str | None, int]], max_versions: int) -> list[tuple[str, int]]:
    """Rows per version label: the ``max_versions`` largest groups by name (NULL as ``__null__``), the
    rest summed as ``__other__``; counts landing on the same label are added up, never repeated."""
    counts: dict[str, int] = {}
    for i, (version, count) in enumerate(rows):
        if i >= max_versions:
            label = OTHER_VERSIONS
        else:
            label = NULL_VERSION if version is None else version
        counts[label] = counts.get(label, 0) + int(count)
    return list(counts.items())
