"""Live recall of HNSW and IVFFlat indexes: approximate search against exact search, per index.

For every probed index (``vector.indexes``, default all top-level HNSW/IVFFlat indexes the
monitoring role can SELECT from) and every filter configured for it:

1. **Query vectors**: ``recall.queries.source: sample`` takes stored rows of the table (the
   index key's own value, so an expression index is probed in its own space) and excludes each
   row from its own results (LIMIT k+1 on both sides, then the row is dropped: otherwise it would
   sit at distance 0 in its own top-k). The row also takes one of HNSW's ``ef_search``
   candidates, so an HNSW point labelled ``ef_search = e`` runs at ``e + 1`` (at most 1000): the
   other rows get the e candidates an application's query for a vector not in the table gets
   (without it, at ``ef_search = k`` a healthy index returned k-1 rows and recall was capped at
   (k-1)/k). A fixed query set (``source: table``) needs neither. The sampled set is
   kept in the state store and replaced only when the table was rewritten, or has changed and
   the set is older than ``resample_after`` (a sampled row updated meanwhile moves to a new ctid
   and is no longer excluded until then).
2. **Plan check**: the approximate query is built from the catalog exactly as an application
   would write it (the index key or expression, the opclass's ``OPERATOR(schema.op)``, the
   partial-index predicate, the filter, ``ORDER BY ... LIMIT k``) and run with the settings the
   application gets (every ``hnsw.*`` and ``ivfflat.*`` value, whatever the index's method: the
   planner weighs both methods' indexes; database and role overrides included, see
   :meth:`collectors.vector_model.VectorCatalog.app_query_settings`). ``EXPLAIN (FORMAT JSON)``
   must show an index scan on that index (or its partitions); otherwise the probe reports
   ``vecmon_vector_index_used 0`` and no recall: a sequential scan is exact and would read 1.0.
3. **Exact side**: the same query with ``enable_indexscan`` off and ``ORDER BY (distance) + 0``
   (which no vector index can answer), verified with EXPLAIN, bounded by ``exact_timeout``. The
   results are stored (SQLAlchemy, :mod:`collectors.recall_state`) and reused while the table's
   insert/update/delete counters and relfilenodes are unchanged, so a cycle on an unchanged table
   runs approximate queries only. The counters lag behind the table (a backend flushes its
   statistics at most once a second, up to ~10 s later while it is idle), so a stored result is
   also checked before it is scored: one statement per index and filter fetches every stored
   neighbour by (tableoid, ctid) with its distance now (a deleted or updated row, or one that no
   longer matches, is gone: its query is recomputed), and after the approximate queries a stored
   result that an answer contradicts (a row nearer than its k-th neighbour that it lacks: an
   insert) is recomputed too. Both count in ``vecmon_recall_exact_stale_total``.
4. **Recall@k by distance**: a returned row counts when its distance is at most the k-th exact
   distance plus ``epsilon * max(1, |d_k|)``, so any of several rows tied at the k-th distance is
   a correct answer; the denominator is ``min(k, rows the exact search found)``.
5. **Curve**: the same at each configured ``ef_search`` (HNSW) or ``probes`` (IVFFlat) value, and
   for filters also with an iterative scan when the application's is off (pgvector >= 0.8), so the
   recall/latency curve and the smallest setting meeting ``target`` are visible.

Approximate answers are stored too (``recall.reuse_approximate``, default on), per query and
setting, and reused while the table's files, write counters and vacuums, the catalog signature and
the settings and SQL are unchanged and the rows they returned pass the same TID check: a repeat
cycle on an unchanged table runs the EXPLAINs and the check only. An insert is then seen once its
statistics are flushed (about 10 s); a delete or update of a returned row at once.

Cost control: the run's own ``statement_timeout`` is its budget (``DEFAULT_TIMEOUTS['recall']``);
indexes are probed least-recently-attempted first and a run stops starting work when the budget
is spent (the rest is reported as skipped ``budget``). Exact results computed before a timeout are
kept, so a large table converges over a few cycles. ``replica_dsn`` runs the probe queries on a
standby (the advisory lock and the table signature still come from the target connection, where
the statistics live; results are stored only when the standby has replayed past the signature).
The standby session (:mod:`collectors.recall_replica`) follows the target's session rules, runs in
one read-only transaction and is cancelled when the run's time is up; its password never reaches
logs or metrics.
``lock`` takes ``pg_try_advisory_xact_lock(recall_lock_key(schema, index))`` per index, so of two
vecmon instances monitoring the same database only one probes an index at a time; the other
reports ``vecmon_recall_probe_skipped{reason="locked"}`` and re-exports its last results.

Needs ``SELECT`` on the probed tables (e.g. ``GRANT SELECT`` or ``pg_read_all_data``); indexes
without it are skipped with reason ``no_privilege``. Every statement is read-only.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import ExitStack
from typing import Any

import psycopg
from prometheus_client.core import Metric
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from collectors.base import CollectContext, CollectorError, Emitter, MetricSpec
from collectors.query_vectors import QueryVector, sample_query_vectors, table_query_vectors
from collectors.recall_budget import BudgetExhausted, ProbeSkipped, is_fatal, probe_deadline
from collectors.recall_curve import measure_filter
from collectors.recall_export import emit_counters, emit_index
from collectors.recall_metrics import (
    RECALL_ANN_QUERIES_TOTAL,
    RECALL_ANN_QUERY_DURATION_SECONDS,
    RECALL_ANN_REUSED_TOTAL,
    RECALL_APP_RETURNED_ROWS,
    RECALL_APP_SETTING,
    RECALL_CYCLES_TOTAL,
    RECALL_EXACT_CHECK_QUERIES_TOTAL,
    RECALL_EXACT_QUERIES_TOTAL,
    RECALL_EXACT_QUERY_DURATION_SECONDS,
    RECALL_EXACT_REUSED_TOTAL,
    RECALL_EXACT_STALE_TOTAL,
    RECALL_EXPECTED_ROWS,
    RECALL_GOOD_CYCLES_TOTAL,
    RECALL_GOOD_QUERIES_RATIO,
    RECALL_GOOD_QUERIES_TOTAL,
    RECALL_K,
    RECALL_LAST_SUCCESS_TIMESTAMP_SECONDS,
    RECALL_MEAN_RATIO,
    RECALL_PROBE_DURATION_SECONDS,
    RECALL_PROBE_QUERIES,
    RECALL_PROBE_RUNS_TOTAL,
    RECALL_PROBE_SKIPPED,
    RECALL_QUERIES_TOTAL,
    RECALL_QUERY_ERRORS_TOTAL,
    RECALL_QUERY_RECALL_RATIO,
    RECALL_RECOMMENDED_SETTING,
    RECALL_RETURNED_ROWS,
    RECALL_SHORTFALL_RATIO,
    RECALL_TARGET,
    RECALL_TARGET_MET,
    VECTOR_INDEX_USED,
)
from collectors.recall_queries import table_signature
from collectors.recall_records import TableSignature
from collectors.recall_replica import error_text, probe_connection
from collectors.recall_results import IndexResult, Point, RecallState
from collectors.recall_scoring import RECALL_BUCKETS, reaches
from collectors.recall_state import RecallStateStore
from collectors.run_deadline import RunDeadline
from collectors.vector_catalog import database_key, get_catalog
from collectors.vector_model import GUC_DEFAULTS, GUC_MAXIMA, VectorCatalog, VectorIndex
from collectors.vector_plans import fetch_value, local_settings
from collectors.vector_selection import MISCONFIGURED, filters_for, report_config_problems, selected_indexes

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0
PRUNE_AFTER = 7 * 86400.0  # exact results not recomputed for a week are dropped (and recomputed if needed)


def recall_lock_key(schema: str, index: str) -> int:
    """The advisory-lock key of the probe of ``schema.index`` (advisory locks are per database)."""
    digest = hashlib.blake2b(f"vecmon:recall:{schema}.{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)



# --------------------------------------------------------------------------- collector
class RecallCollector:
    """Recall@k of HNSW/IVFFlat indexes (approximate vs exact search), the curve over ef_search/probes."""

    name = "recall"
    scope = "database"
    runs_config_sql = True  # filters[].where from the config: the session is reset (DISCARD ALL) after each run
    METRICS: tuple[MetricSpec, ...] = (
        VECTOR_INDEX_USED,
        RECALL_MEAN_RATIO,
        RECALL_GOOD_QUERIES_RATIO,
        RECALL_RETURNED_ROWS,
        RECALL_SHORTFALL_RATIO,
        RECALL_ANN_QUERY_DURATION_SECONDS,
        RECALL_APP_RETURNED_ROWS,
        RECALL_EXPECTED_ROWS,
        RECALL_EXACT_QUERY_DURATION_SECONDS,
        RECALL_TARGET_MET,
        RECALL_RECOMMENDED_SETTING,
        RECALL_APP_SETTING,
        RECALL_QUERY_RECALL_RATIO,
        RECALL_QUERIES_TOTAL,
        RECALL_GOOD_QUERIES_TOTAL,
        RECALL_CYCLES_TOTAL,
        RECALL_GOOD_CYCLES_TOTAL,
        RECALL_PROBE_QUERIES,
        RECALL_EXACT_QUERIES_TOTAL,
        RECALL_EXACT_REUSED_TOTAL,
        RECALL_EXACT_STALE_TOTAL,
        RECALL_EXACT_CHECK_QUERIES_TOTAL,
        RECALL_ANN_QUERIES_TOTAL,
        RECALL_ANN_REUSED_TOTAL,
        RECALL_QUERY_ERRORS_TOTAL,
        RECALL_PROBE_RUNS_TOTAL,
        RECALL_PROBE_SKIPPED,
        RECALL_LAST_SUCCESS_TIMESTAMP_SECONDS,
        RECALL_PROBE_DURATION_SECONDS,
        RECALL_TARGET,
        RECALL_K,
        MISCONFIGURED,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        started = time.monotonic()
        url = ctx.settings.vector.recall.resolved_state_url()
        parsed = make_url(url)  # validated by the config: it parses
        try:
            return self._collect(ctx, url, started)
        except (SQLAlchemyError, OSError) as exc:
            message = f"{type(exc).__name__}: {exc}"
            if parsed.password:
                message = message.replace(str(parsed.password), "***")
            raise CollectorError(f"recall state store {parsed.render_as_string(hide_password=True)}: "
                                 f"{message}") from None

    def _collect(self, ctx: CollectContext, url: str, started: float) -> list[Metric]:
        catalog, _ = get_catalog(ctx)
        conn = ctx.conn
        assert conn is not None
        vs = ctx.settings.vector
        rc = vs.recall
        state: RecallState = ctx.state.setdefault("recall", RecallState())
        em = Emitter(ctx.target, self.METRICS)
        em.add(RECALL_TARGET.name, rc.target)
        em.add(RECALL_K.name, rc.k)
        fallback = ctx.settings.timeout_for(self.name) if hasattr(ctx.settings, "timeout_for") else 60.0
        budget = probe_deadline(conn, fallback, started)
        store = ctx.shared.state_stores.open(url)
        if time.time() - state.last_prune > PRUNE_EVERY:
            store.prune(PRUNE_AFTER)  # e.g. results of dropped databases or indexes
            state.last_prune = time.time()
        if state.database_key is None:
            state.database_key = database_key(conn)
        in_recovery = bool(ctx.facts.in_recovery) if ctx.facts else False

        report_config_problems(ctx, self.name, catalog, em)
        indexes = selected_indexes(catalog, vs)
        indexes.sort(key=lambda i: state.last_attempt.get(i.probe_key, 0.0))
        skipped: dict[str, str] = {}
        with ExitStack() as stack:
            probe_conn, replica_error = (probe_connection(ctx, rc, catalog, stack, budget) if indexes
                                         else (None, None))
            for idx in indexes:
                labels = idx.labels
                reason = self._precheck(idx, replica_error)
                if reason is None and budget.remaining() < 1.0:
                    reason = "budget"
                if reason is None:
                    state.last_attempt[idx.probe_key] = time.time()
                    if rc.lock and not fetch_value(conn, "SELECT pg_try_advisory_xact_lock(%s)",
                                                   [recall_lock_key(idx.schema, idx.name)]):
                        reason = "locked"
                if reason is None:
                    try:
                        result = self._probe_with_savepoints(ctx, probe_conn or conn, idx, catalog, store, state,
                                                             budget, in_recovery, probe_conn is not None)
                        state.results[idx.probe_key] = result
                        state.bump(state.runs, (*labels, "ok"))
                        continue
                    except BudgetExhausted:
                        reason = "budget"
                    except ProbeSkipped as skip:
                        reason = skip.reason
                    except psycopg.Error as exc:
                        if is_fatal(conn) or (probe_conn is not None and is_fatal(probe_conn)):
                            raise
                        if budget.spent_by(exc):
                            reason = "budget"
                        else:
                            log.warning("recall probe of %s.%s on %s failed: %s", idx.schema, idx.name, ctx.target,
                                        error_text(exc, ctx.settings))
                            reason = "error"
                skipped[idx.probe_key] = reason
                state.bump(state.runs, (*labels, reason))

        for idx in indexes:
            emit_index(em, idx, state, skipped.get(idx.probe_key), rc)
        emit_counters(em, state, indexes)
        return em.families()

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _precheck(idx: VectorIndex, replica_error: str | None) -> str | None:
        if not idx.valid or not idx.ready:
            return "not_ready"
        if not idx.can_select:
            return "no_privilege"
        if not idx.operator or not idx.operator_schema:
            return "error"
        if replica_error is not None:
            return "replica_unavailable"
        return None

    def _probe_with_savepoints(self, ctx: CollectContext, pconn: psycopg.Connection, idx: VectorIndex,
                               catalog: VectorCatalog, store: RecallStateStore, state: RecallState,
                               budget: RunDeadline, in_recovery: bool, replica: bool) -> IndexResult:
        """One index's probe inside savepoints, so a failure leaves the run's transaction usable."""
        conn = ctx.conn
        assert conn is not None
        with conn.transaction():
            if replica:
                with pconn.transaction():
                    return self._probe_index(ctx, pconn, idx, catalog, store, state, budget, in_recovery, replica)
            return self._probe_index(ctx, pconn, idx, catalog, store, state, budget, in_recovery, replica)

    def _probe_index(self, ctx: CollectContext, pconn: psycopg.Connection, idx: VectorIndex, catalog: VectorCatalog,
                     store: RecallStateStore, state: RecallState, budget: RunDeadline, in_recovery: bool,
                     replica: bool) -> IndexResult:
        conn = ctx.conn
        assert conn is not None
        vs = ctx.settings.vector
        rc = vs.recall
        started = time.monotonic()
        db_key = state.database_key or "?"
        labels = idx.labels
        signature = table_signature(conn, idx, in_recovery)
        cache_ok = True
        if replica and not in_recovery:
            primary_lsn = fetch_value(conn, "SELECT pg_current_wal_lsn()::text")
            caught_up = fetch_value(pconn, "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, true)",
                                    [primary_lsn])
            cache_ok = bool(caught_up)

        queries = self._query_set(pconn, idx, rc, store, db_key, signature, state, budget)
        if not queries:
            raise ProbeSkipped("no_queries")
        state.queries[(idx.schema, idx.name)] = queries

        method, param = idx.method, idx.param
        base = catalog.app_query_settings(vs.app_role)  # both methods': the planner weighs every index
        app_value = int(float(base.get(f"{method}.{param}", GUC_DEFAULTS[f"{method}.{param}"])))
        candidates = rc.ef_search_values if method == "hnsw" else rc.probes_values
        values = sorted({app_value, *candidates})
        if method == "ivfflat":
            lists = idx.options.get("lists", 100)
            values = [v for v in values if v <= lists or v == app_value]
        iterative_guc = f"{method}.iterative_scan"
        supports_iterative = iterative_guc in base
        app_iterative = base.get(iterative_guc, "off") if supports_iterative else "off"
        alternative = None
        if supports_iterative and app_iterative == "off":
            alternative = rc.iterative_scan if method == "hnsw" else "relaxed_order"
        force = {"enable_seqscan": "off", "enable_bitmapscan": "off"} if rc.force_index else {}
        self_exclusion = any(q.self_id for q in queries)
        fetch = rc.k + 1 if self_exclusion else rc.k
        # A sampled query's own row is one of HNSW's ef_search candidates (the nearest, at distance
        # 0) and is dropped afterwards: one more candidate leaves the other rows as many as an
        # application's query (for a vector not in the table) gets at ef_search. IVFFlat returns
        # every row of the probed lists, so LIMIT k + 1 is enough there.
        extra_candidate = 1 if self_exclusion and method == "hnsw" else 0

        result = IndexResult(index=idx, param=param, app_value=app_value, app_iterative=app_iterative,
                             queries=len(queries))
        filters: list[tuple[str | None, str]] = [(None, "")]
        filters += [(f.where, f.name) for f in filters_for(idx, vs)]
        vector_index_names = {i.name for i in catalog.indexes}
        # What an approximate answer depends on, besides the query and its settings: the table's files,
        # write counters and vacuums (a vacuum rewires an HNSW graph) and the catalog (index builds,
        # options, overrides). Answers are stored only from a connection that is current.
        marker = (f"{signature.files}|{signature.changes}|{signature.vacuums}|{catalog.signature}"
                  if cache_ok else None)
        for where, fname in filters:
            modes = [app_iterative] + ([alternative] if where and alternative else [])
            points = []
            for mode in modes:
                for value in values:
                    searched = min(value + extra_candidate, GUC_MAXIMA.get(f"{method}.{param}", value))
                    settings = {**base, f"{method}.{param}": str(searched), **force}
                    if supports_iterative:
                        settings[iterative_guc] = mode
                    points.append(Point(fname, mode, param, value, settings))
            result.points.extend(points)
            try:
                measure_filter(pconn, idx, where, fname, points, queries, fetch, rc, store, state, budget,
                                     db_key, signature, cache_ok, result, vector_index_names, marker)
            except BudgetExhausted:
                raise
            except psycopg.Error as exc:
                if is_fatal(pconn):
                    raise
                if budget.spent_by(exc):
                    raise BudgetExhausted() from None
                log.warning("recall probe of %s.%s (filter %r) failed: %s", idx.schema, idx.name, fname,
                            error_text(exc, ctx.settings))
            except CollectorError as exc:
                log.warning("recall probe of %s.%s (filter %r): %s", idx.schema, idx.name, fname, exc)
                state.bump(state.errors, (*labels, fname, "exact"))

        # Per-query recall at the application's settings feeds the SLO histogram and counters.
        for _, fname in filters:
            point = result.app_point(fname)
            if point is None or not point.used:
                continue
            key = (*labels, fname)
            hist = state.hist.setdefault(key, [0.0] * (len(RECALL_BUCKETS) + 2))
            for value in point.recalls:
                for i, bound in enumerate(RECALL_BUCKETS):
                    if reaches(bound, value):
                        hist[i] += 1
                hist[-2] += 1
                hist[-1] += value
                state.bump(state.total, key)
                if reaches(value, rc.target):
                    state.bump(state.good, key)
            state.good.setdefault(key, 0)
            state.total.setdefault(key, 0)
        result.finished_at = time.time()
        result.duration = time.monotonic() - started
        return result

    def _query_set(self, pconn: psycopg.Connection, idx: VectorIndex, rc: Any, store: RecallStateStore,
                   db_key: str, signature: TableSignature, state: RecallState,
                   budget: RunDeadline) -> list[QueryVector]:
        labels = idx.labels
        try:
            with local_settings(pconn, {"statement_timeout": budget.statement_timeout(rc.exact_timeout)}):
                if rc.queries.source == "table":
                    return table_query_vectors(pconn, rc.queries.table, rc.queries.column, rc.sample_size,
                                               rc.queries.order_by)
                stored = store.load_queries(db_key, idx.probe_key)
                if stored is not None and stored.requested == rc.sample_size and stored.files == signature.files and (
                        signature.allows_reuse(stored.files, stored.changes, rc.max_changed_fraction)
                        or time.time() - stored.created_at < rc.resample_after):
                    return [QueryVector(*q) for q in stored.queries]
                vectors = sample_query_vectors(pconn, idx, rc.sample_size, signature.rows)
                store.save_queries(db_key, idx.probe_key, rc.sample_size, signature,
                                   [(q.qid, q.self_id, q.vector) for q in vectors])
                return vectors
        except psycopg.Error as exc:
            if is_fatal(pconn):
                raise
            if budget.spent_by(exc):
                raise BudgetExhausted() from None
            state.bump(state.errors, (*labels, "", "sample"))
            raise
