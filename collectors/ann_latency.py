"""ANN query latency: a few approximate queries per index, as the application runs them.

Every run (default every 30 s) times ``vector.ann_latency.queries`` k-NN queries per probed index
(and per configured filter, unless ``ann_latency.filters`` is false) with the application's
``hnsw.*``/``ivfflat.*`` settings, into a cumulative histogram for p50/p99 latency SLOs. Query
vectors are stored rows of the table (sampled cheaply and kept for ``resample_after``) or the
recall probe's fixed query set when ``recall.queries.source`` is ``table``. Each query runs in its
own savepoint with ``ann_latency.timeout`` as statement_timeout; failures are counted by reason
(``timeout`` or ``error``) and do not stop the others. A query that hits its timeout is also
observed in the histogram's ``+Inf`` bucket only (its duration is not known, only that it exceeded
every bound a latency SLO can use): p50/p99 and latency SLIs count it as slow instead of dropping
it, so they cannot go quiet exactly when queries are slowest. ``vecmon_ann_queries_total`` counts
every attempt, the denominator of the probe's error ratio. The run as a whole is bounded by the
collector's timeout: every statement's timeout is cut to the time left, no query starts once it is
spent, and a cancel caused by it (or by the connector's watchdog) ends the run as a timeout instead
of being counted as a query's. The plan is not checked here (the recall probe reports whether the
index is used): this measures what the application experiences.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.query_vectors import QueryVector, sample_query_vectors, table_query_vectors
from collectors.run_deadline import RunDeadline
from collectors.vector_catalog import get_catalog
from collectors.vector_model import VectorIndex
from collectors.vector_plans import ann_query, local_settings
from collectors.vector_selection import MISCONFIGURED, filters_for, report_config_problems, selected_indexes

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("schema", "table", "index", "filter")

_ROWS_SQL = """
SELECT greatest(coalesce(sum(greatest(c.reltuples, 0)), 0), coalesce(sum(s.n_live_tup), 0))::float8
FROM (SELECT relid FROM pg_partition_tree(%(oid)s::oid::regclass) WHERE isleaf
      UNION SELECT %(oid)s::oid WHERE (SELECT relkind FROM pg_class WHERE oid = %(oid)s::oid) <> 'p') AS leaf
JOIN pg_class c ON c.oid = leaf.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
"""


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
        self.counts[-1] += 1
        self.total += seconds

    def observe_timeout(self, seconds: float) -> None:
        """A query cancelled after ``seconds``: slower than any bucket, so in ``+Inf`` only."""
        self.counts[-1] += 1
        self.total += seconds


@dataclass
class LatencyState:
    histograms: dict[tuple[str, ...], _Histogram] = field(default_factory=dict)
    errors: dict[tuple[str, ...], int] = field(default_factory=dict)
    attempts: dict[tuple[str, ...], int] = field(default_factory=dict)
    returned: dict[tuple[str, ...], float] = field(default_factory=dict)
    vectors: dict[str, tuple[float, list[QueryVector]]] = field(default_factory=dict)  # probe_key -> (at, set)


ANN_QUERY_DURATION_SECONDS = MetricSpec(
    "vecmon_ann_query_duration_seconds", "histogram",
    "Duration of approximate k-NN probe queries with the application's settings "
    "(client-side, cumulative), for p50/p99 latency SLOs; queries that hit their timeout are "
    "counted in the +Inf bucket only.", LABELS)
ANN_QUERIES_TOTAL = MetricSpec("vecmon_ann_queries_total", "counter",
                               "Approximate k-NN probe queries attempted (succeeded, timed out or failed).", LABELS)
ANN_QUERY_ERRORS_TOTAL = MetricSpec(
    "vecmon_ann_query_errors_total", "counter",
    "Approximate k-NN probe queries that failed, by reason (timeout, error).", (*LABELS, "reason"))
ANN_QUERY_RETURNED_ROWS = MetricSpec(
    "vecmon_ann_query_returned_rows", "gauge",
    "Mean number of rows the latency probe queries returned in the last run (k at most).", LABELS)


class AnnLatencyCollector:
    """Latency histogram of approximate k-NN queries with the application's settings."""

    name = "ann_latency"
    scope = "database"
    runs_config_sql = True  # filters[].where from the config: the session is reset (DISCARD ALL) after each run
    METRICS: tuple[MetricSpec, ...] = (
        ANN_QUERY_DURATION_SECONDS,
        ANN_QUERIES_TOTAL,
        ANN_QUERY_ERRORS_TOTAL,
        ANN_QUERY_RETURNED_ROWS,
        MISCONFIGURED,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        started = time.monotonic()
        catalog, refreshed = get_catalog(ctx)
        conn = ctx.conn
        assert conn is not None
        deadline = RunDeadline.for_run(ctx, self.name, started)
        vs = ctx.settings.vector
        cfg = vs.ann_latency
        k = cfg.k or vs.recall.k
        state: LatencyState = ctx.state.setdefault("ann_latency", LatencyState())
        if refreshed:
            state.vectors.clear()
        app_query_settings = catalog.app_query_settings(vs.app_role)  # hnsw.* and ivfflat.*, as the app plans
        em = Emitter(ctx.target, self.METRICS)
        report_config_problems(ctx, self.name, catalog, em)
        indexes = [i for i in selected_indexes(catalog, vs) if i.valid and i.ready and i.can_select and i.operator]
        for idx in indexes:
            vectors = self._vectors(conn, idx, vs, cfg, state, deadline)
            if not vectors:
                continue
            settings = app_query_settings
            filters: list[tuple[str | None, str]] = [(None, "")]
            if cfg.filters:
                filters += [(f.where, f.name) for f in filters_for(idx, vs)]
            for where, fname in filters:
                self._time_queries(conn, idx, where, fname, vectors, k, cfg, settings, state, deadline)
        current = {i.labels for i in indexes}
        for key, hist in state.histograms.items():
            if key[:3] in current:
                buckets = [(repr(b), hist.counts[i]) for i, b in enumerate(LATENCY_BUCKETS)]
                buckets.append(("+Inf", hist.counts[-1]))
                em.histogram(ANN_QUERY_DURATION_SECONDS.name, buckets, hist.total, *key)
        for key, count in state.attempts.items():
            if key[:3] in current:
                em.add(ANN_QUERIES_TOTAL.name, count, *key)
        for key, count in state.errors.items():
            if key[:3] in current:
                em.add(ANN_QUERY_ERRORS_TOTAL.name, count, *key)
        for key, rows in state.returned.items():
            if key[:3] in current:
                em.add(ANN_QUERY_RETURNED_ROWS.name, rows, *key)
        return em.families()

    def _vectors(self, conn: psycopg.Connection, idx: VectorIndex, vs: Any, cfg: Any,
                 state: LatencyState, deadline: RunDeadline) -> list[QueryVector]:
        cached = state.vectors.get(idx.probe_key)
        if cached is not None and time.time() - cached[0] < cfg.resample_after:
            return cached[1]
        try:
            with conn.transaction():
                deadline.set_statement_timeout(conn)  # sampling has no timeout of its own: the time left
                if vs.recall.queries.source == "table":
                    q = vs.recall.queries
                    vectors = table_query_vectors(conn, q.table, q.column, cfg.queries, q.order_by)
                else:
                    total = conn.execute(_ROWS_SQL, {"oid": idx.table_oid}).fetchone()
                    assert total is not None  # an aggregate returns one row
                    rows = float(total[0] or 0)
                    vectors = sample_query_vectors(conn, idx, max(cfg.queries, 10), rows)
        except psycopg.Error as exc:
            if conn.broken or deadline.ends_run(exc):
                raise
            log.warning("ann latency probe of %s.%s: cannot sample query vectors: %s", idx.schema, idx.name,
                        str(exc).strip())
            key = (*idx.labels, "", "error")
            state.errors[key] = state.errors.get(key, 0) + 1
            state.attempts[key[:-1]] = state.attempts.get(key[:-1], 0) + 1
            return []
        state.vectors[idx.probe_key] = (time.time(), vectors)
        return vectors

    @staticmethod
    def _time_queries(conn: psycopg.Connection, idx: VectorIndex, where: str | None, fname: str,
                      vectors: list[QueryVector], k: int, cfg: Any, settings: dict[str, str],
                      state: LatencyState, deadline: RunDeadline) -> None:
        key = (*idx.labels, fname)
        hist = state.histograms.setdefault(key, _Histogram())
        query_sql = ann_query(idx, where, k)
        chosen = random.sample(vectors, min(len(vectors), cfg.queries))
        returned = []
        # statement_timeout is listed so that local_settings restores it afterwards; each query
        # then gets its own, cut to the run's time left.
        with local_settings(conn, {**settings, "statement_timeout": deadline.statement_timeout(cfg.timeout)}):
            for vector in chosen:
                started = time.perf_counter()
                try:
                    with conn.transaction():
                        deadline.set_statement_timeout(conn, cfg.timeout)
                        started = time.perf_counter()
                        rows = conn.execute(query_sql, {"q": vector.vector}, prepare=False).fetchall()
                        seconds = time.perf_counter() - started
                except psycopg.Error as exc:
                    if conn.broken or deadline.ends_run(exc):
                        raise  # the run's time is up: the connector reports the run's timeout
                    reason = "timeout" if isinstance(exc, psycopg.errors.QueryCanceled) else "error"
                    err_key = (*key, reason)
                    state.errors[err_key] = state.errors.get(err_key, 0) + 1
                    state.attempts[key] = state.attempts.get(key, 0) + 1
                    if reason == "timeout":
                        hist.observe_timeout(time.perf_counter() - started)
                    continue
                state.attempts[key] = state.attempts.get(key, 0) + 1
                hist.observe(seconds)
                returned.append(len(rows))
        for reason in ("timeout", "error"):
            state.errors.setdefault((*key, reason), 0)
        state.attempts.setdefault(key, 0)
        if returned:
            state.returned[key] = sum(returned) / len(returned)

