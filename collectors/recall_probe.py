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
   :meth:`collectors.pgvector_catalog.VectorCatalog.app_query_settings`). ``EXPLAIN (FORMAT JSON)``
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
The standby session follows the target's session rules (:func:`replica_conninfo`: application_name
``vecmon``, read-only, statement/lock timeouts, the target's connect_timeout), runs in one read-only
transaction and is cancelled when the run's time is up; its password never reaches logs or metrics.
``lock`` takes ``pg_try_advisory_xact_lock(recall_lock_key(schema, index))`` per index, so of two
vecmon instances monitoring the same database only one probes an index at a time; the other
reports ``vecmon_recall_probe_skipped{reason="locked"}`` and re-exports its last results.

Needs ``SELECT`` on the probed tables (e.g. ``GRANT SELECT`` or ``pg_read_all_data``); indexes
without it are skipped with reason ``no_privilege``. Every statement is read-only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg
from prometheus_client.core import Metric
from psycopg import conninfo as pg_conninfo
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from collectors.base import CollectContext, CollectorError, Emitter, MetricSpec
from collectors.pg_session import build_conninfo, secrets_of
from collectors.pgvector_catalog import (
    GUC_DEFAULTS,
    GUC_MAXIMA,
    MISCONFIGURED,
    QueryVector,
    VectorCatalog,
    VectorIndex,
    ann_query,
    database_key,
    explain_json,
    filters_for,
    get_catalog,
    load_library,
    local_settings,
    plan_index_names,
    plan_uses_index,
    report_config_problems,
    row_id,
    sample_query_vectors,
    selected_indexes,
    table_query_vectors,
)
from collectors.recall_state import ApproximateAnswer, ExactResult, RecallStateStore, TableSignature
from collectors.redaction import redact

log = logging.getLogger(__name__)

RECALL_BUCKETS = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0)
# Recall values are ratios like 9/10 and means of them: a value "reaches" a target or bucket bound
# within this much, so 0.8999999999999999 (float rounding of a mean of 0.9s) reaches 0.9.
RECALL_TOLERANCE = 1e-9
PRUNE_EVERY = 3600.0
PRUNE_AFTER = 7 * 86400.0  # exact results not recomputed for a week are dropped (and recomputed if needed)
P = ("schema", "table", "index")
PF = (*P, "filter")
PT = (*PF, "param", "value", "iterative")
# Inside the statement (pg_stat_statements drops leading comments), so probe queries are easy to find.
EXACT_TAG = "/* vecmon:recall:exact */"
CHECK_TAG = "/* vecmon:recall:check */"
# Stored and recomputed distances come from the same expression; this only absorbs float noise.
DISTANCE_TOLERANCE = 1e-9


def reaches(value: float, target: float) -> bool:
    """``value >= target`` up to :data:`RECALL_TOLERANCE` (float rounding never decides)."""
    return value >= target - RECALL_TOLERANCE


def recall_lock_key(schema: str, index: str) -> int:
    """The advisory-lock key of the probe of ``schema.index`` (advisory locks are per database)."""
    digest = hashlib.blake2b(f"vecmon:recall:{schema}.{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def recall_at_k(ann: Sequence[tuple[str, float]], exact_distances: Sequence[float], k: int,
                epsilon: float) -> float | None:
    """Distance-threshold recall@k (None when the exact search found nothing).

    ``ann``: (row id, distance) of the approximate results, self row already removed;
    ``exact_distances``: the exact top distances, ascending.
    """
    truth = [d for d in exact_distances if not math.isnan(d)][:k]
    if not truth:
        return None
    kth = truth[-1]
    threshold = kth + epsilon * max(1.0, abs(kth))
    hits = sum(1 for _, d in ann[:k] if d is not None and not math.isnan(d) and d <= threshold)
    return min(1.0, hits / len(truth))


def contradicts(ann: Sequence[tuple[str, float]], truth: ExactResult, k: int, epsilon: float) -> bool:
    """Whether an approximate answer proves a stored exact result stale: it returned a row that the
    exact search would have had to return (closer than the k-th exact distance, or any row when the
    exact search found fewer than k) and that the stored result lacks."""
    known = set(truth.row_ids)
    distances = [d for d in truth.distances if not math.isnan(d)]
    kth = distances[-1] if distances else math.inf
    below = kth - epsilon * max(1.0, abs(kth)) if distances else math.inf
    for rid, distance in ann:
        if rid in known or distance is None or math.isnan(distance):
            continue
        if len(distances) < k or distance < below:
            return True
    return False


def result_rows(rows: Sequence[tuple[Any, Any, Any]], self_id: str | None) -> list[tuple[str, float]]:
    """(row id, distance) of a probe query's (tableoid, ctid, distance) rows, the query's own row
    dropped. A row whose distance is NULL (a NULL key value) is skipped: it is no neighbour, and
    ``float(None)`` must not abort the run."""
    pairs = [(row_id(rel, ctid), float(d)) for rel, ctid, d in rows if d is not None]
    if self_id is not None:
        pairs = [(rid, d) for rid, d in pairs if rid != self_id]
    return pairs


# --------------------------------------------------------------------------- standby session
REPLICA_SESSION_KEYS = ("application_name", "connect_timeout", "options")


def replica_conninfo(target: Any, replica_dsn: str) -> str:
    """The standby's conninfo: its own address and credentials from ``replica_dsn``, with exactly the
    session settings :func:`collectors.pg_session.build_conninfo` gives the target's sessions (application_name,
    connect_timeout, ``options``: read-only default, statement, lock and idle-in-transaction timeouts)."""
    session = pg_conninfo.conninfo_to_dict(build_conninfo(target))
    return pg_conninfo.make_conninfo(replica_dsn, **{k: session[k] for k in REPLICA_SESSION_KEYS if k in session})


def run_secrets(settings: Any) -> list[str]:
    """Passwords of the target and of ``recall.replica_dsn``: never logged."""
    secrets = list(secrets_of(settings)) if hasattr(settings, "password_value") else []
    replica = settings.vector.recall.replica_dsn
    if replica is not None:
        try:
            password = pg_conninfo.conninfo_to_dict(replica.get_secret_value()).get("password")
        except psycopg.ProgrammingError:
            password = None
        if password:
            secrets.append(str(password))
    return secrets


def _error_text(exc: BaseException, settings: Any, first_line: bool = False) -> str:
    """An error's text for a log, passwords redacted."""
    text = str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0] if first_line else text, run_secrets(settings))


def _cancel(conn: psycopg.Connection) -> None:
    try:
        conn.cancel_safe(timeout=1.0)
    except Exception:  # noqa: BLE001 - the run reports the cancelled statement itself
        pass


# --------------------------------------------------------------------------- SQL builders
def exact_query(index: VectorIndex, filter_where: str | None, limit: int) -> sql.Composable:
    """Exact k-NN: ``+ 0`` keeps any vector index from answering the ORDER BY."""
    conditions = index.conditions(filter_where, not_null=True)
    return sql.SQL("SELECT " + EXACT_TAG + " tableoid::oid, ctid::text, ({dist}) + 0 AS distance FROM {table} "
                   "WHERE {where} ORDER BY 3 LIMIT {limit}").format(
        dist=index.distance_sql(), table=index.table_sql(), where=sql.SQL(" AND ").join(conditions),
        limit=sql.Literal(limit))


def settings_key(settings: Mapping[str, str], query_sql: str) -> str:
    """Identifies how an approximate query ran: its settings and its SQL (LIMIT, filter, predicate)."""
    return hashlib.md5(json.dumps([sorted(settings.items()), query_sql]).encode()).hexdigest()


def stored_neighbours_query(index: VectorIndex, filter_where: str | None) -> sql.Composable:
    """The stored neighbours of several queries, fetched by (tableoid, ctid) with their distance now.

    Parameters: ``vectors`` (the query vectors, text), and per stored neighbour ``rels``, ``tids``
    and ``numbers`` (1-based position of its query in ``vectors``). A row that was deleted or
    updated since (a new version has a new ctid) or no longer matches the filter is not returned.
    """
    conditions = [sql.SQL("t.ctid = ANY(%(tids)s::tid[])"), *index.conditions(filter_where, not_null=True)]
    # the query vectors are cast once (a constant array), not once per fetched row
    distance = sql.SQL("{key} {op} ((%(vectors)s::text[])::{type}[])[vecmon_n.vecmon_number]").format(
        key=index.key_composable(), op=index.operator_sql(), type=sql.SQL(index.key_type))
    return sql.SQL(
        "SELECT " + CHECK_TAG + " vecmon_n.vecmon_number, t.tableoid::oid, t.ctid::text, ({dist}) + 0 "
        "FROM {table} AS t JOIN unnest(%(rels)s::oid[], %(tids)s::tid[], %(numbers)s::int[]) "
        "AS vecmon_n(vecmon_rel, vecmon_tid, vecmon_number) "
        "ON vecmon_n.vecmon_tid = t.ctid AND vecmon_n.vecmon_rel = t.tableoid "
        "WHERE {where}").format(dist=distance, table=index.table_sql(), where=sql.SQL(" AND ").join(conditions))


_SIGNATURE_SQL = """
SELECT coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::bigint AS changes,
       coalesce(string_agg(c.oid::text || ':' || c.relfilenode::text, ',' ORDER BY c.oid), '') AS files,
       coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 AS reltuples,
       coalesce(sum(s.n_live_tup), 0)::float8 AS live,
       coalesce(sum(s.vacuum_count + s.autovacuum_count), 0)::bigint AS vacuums
FROM (SELECT relid FROM pg_partition_tree(%(oid)s::oid::regclass) WHERE isleaf
      UNION SELECT %(oid)s::oid WHERE (SELECT relkind FROM pg_class WHERE oid = %(oid)s::oid) <> 'p') AS leaf
JOIN pg_class c ON c.oid = leaf.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
"""


def table_signature(conn: psycopg.Connection, index: VectorIndex, in_recovery: bool) -> TableSignature:
    row = conn.execute(_SIGNATURE_SQL, {"oid": index.table_oid}).fetchone()
    changes, files, reltuples, live, vacuums = row
    if in_recovery:  # a standby's statistics do not see replayed writes: only an unchanged replay position counts
        lsn = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]
        files = f"{files}@{lsn}"
    return TableSignature(files=files, changes=int(changes), rows=max(float(reltuples), float(live)),
                          vacuums=int(vacuums))


# --------------------------------------------------------------------------- results
@dataclass
class Point:
    """One (filter, iterative mode, setting value) of one index."""

    filter: str
    iterative: str
    param: str
    value: int
    settings: dict[str, str]
    used: bool | None = None  # None: could not be determined (error)
    recalls: list[float] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def mean(self, values: Sequence[float]) -> float | None:
        return math.fsum(values) / len(values) if values else None  # fsum: thirty 0.9s average to 0.9

    @property
    def recall_mean(self) -> float | None:
        return self.mean(self.recalls)

    def good_fraction(self, target: float) -> float | None:
        return self.mean([1.0 if reaches(r, target) else 0.0 for r in self.recalls])

    @property
    def shortfall_fraction(self) -> float | None:
        pairs = list(zip(self.returned, self.expected))
        return self.mean([1.0 if got < want else 0.0 for got, want in pairs]) if pairs else None

    def meets(self, target: float, fraction: float | None) -> bool:
        if not self.used or not self.recalls:
            return False
        if fraction is None:
            return reaches(self.recall_mean or 0.0, target)
        return reaches(self.good_fraction(target) or 0.0, fraction)


@dataclass
class IndexResult:
    index: VectorIndex
    param: str
    app_value: int
    app_iterative: str
    points: list[Point] = field(default_factory=list)
    exact_seconds: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    finished_at: float = 0.0
    duration: float = 0.0

    def app_point(self, filter_name: str) -> Point | None:
        for p in self.points:
            if p.filter == filter_name and p.iterative == self.app_iterative and p.value == self.app_value:
                return p
        return None


@dataclass
class RecallState:
    """Per-target state kept across runs in ``ctx.state['recall']``."""

    results: dict[str, IndexResult] = field(default_factory=dict)
    hist: dict[tuple[str, ...], list[float]] = field(default_factory=dict)  # [count per bucket..., sum]
    good: dict[tuple[str, ...], int] = field(default_factory=dict)
    total: dict[tuple[str, ...], int] = field(default_factory=dict)
    exact_queries: dict[tuple[str, ...], int] = field(default_factory=dict)
    exact_reused: dict[tuple[str, ...], int] = field(default_factory=dict)
    exact_stale: dict[tuple[str, ...], int] = field(default_factory=dict)
    ann_reused: dict[tuple[str, ...], int] = field(default_factory=dict)
    check_queries: dict[tuple[str, ...], int] = field(default_factory=dict)
    ann_queries: dict[tuple[str, ...], int] = field(default_factory=dict)
    errors: dict[tuple[str, ...], int] = field(default_factory=dict)
    runs: dict[tuple[str, ...], int] = field(default_factory=dict)
    cycles: dict[tuple[str, ...], int] = field(default_factory=dict)  # per-cycle judgements (recall SLO)
    good_cycles: dict[tuple[str, ...], int] = field(default_factory=dict)
    last_attempt: dict[str, float] = field(default_factory=dict)
    queries: dict[tuple[str, str], list[QueryVector]] = field(default_factory=dict)
    database_key: str | None = None
    last_prune: float = 0.0

    def bump(self, table: dict[tuple[str, ...], int], key: tuple[str, ...], amount: int = 1) -> None:
        table[key] = table.get(key, 0) + amount

    @property
    def total_exact_queries(self) -> int:
        return sum(self.exact_queries.values())


class _Skip(Exception):
    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason


class _BudgetExhausted(Exception):
    pass


class _Budget:
    """The run's time budget, from its statement_timeout (set by the connector to the collector timeout).

    ``deadline``: no work starts after it; ``end``: the run's time is up (the standby session is
    cancelled then; the connector's watchdog cancels the target's a little later)."""

    def __init__(self, conn: psycopg.Connection, fallback: float, started: float | None = None):
        setting = conn.execute("SELECT setting::float8 FROM pg_settings WHERE name = 'statement_timeout'").fetchone()
        total = (setting[0] / 1000.0) if setting and setting[0] else fallback
        self.total = total
        now = time.monotonic()
        self.deadline = now + max(1.0, total * 0.9 - 0.5)
        self.end = (started if started is not None else now) + total

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def spent_by(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a cancel due to the spent budget (a statement_timeout cut to it, the
        connector's watchdog, the standby's timer), not a failure of the statement itself."""
        return isinstance(exc, psycopg.errors.QueryCanceled) and self.remaining() < 0.2

    def timeout_ms(self, wanted: float) -> str:
        """statement_timeout for the next statement(s): the configured one, cut to what is left."""
        left = self.remaining()
        if left < 0.2:
            raise _BudgetExhausted()
        return f"{max(1, int(min(wanted, left) * 1000))}ms"


def _is_fatal(conn: psycopg.Connection) -> bool:
    return conn.closed or conn.broken


class _ExactRun:
    """Exact results of one (index, filter) in one probe: loaded from the store and checked against
    the table, or computed (and stored)."""

    def __init__(self, pconn: psycopg.Connection, idx: VectorIndex, where: str | None, fname: str, fetch: int,
                 rc: Any, store: RecallStateStore, state: RecallState, budget: _Budget, db_key: str,
                 signature: TableSignature, cache_ok: bool, result: IndexResult, vector_index_names: set[str]):
        self.pconn, self.idx, self.where, self.fname, self.fetch = pconn, idx, where, fname, fetch
        self.rc, self.store, self.state, self.budget = rc, store, state, budget
        self.db_key, self.signature, self.cache_ok, self.result = db_key, signature, cache_ok, result
        self.vector_index_names = vector_index_names
        self.filter_key = f"{fname}:{hashlib.md5((where or '').encode()).hexdigest()[:12]}"

    def load(self, queries: list[QueryVector]) -> dict[str, ExactResult]:
        """Stored exact results whose table signature allows reuse (not yet checked against the table)."""
        return self.store.load_exact(self.db_key, self.idx.probe_key, self.filter_key, self.rc.k,
                                     [q.qid for q in queries], self.signature, self.rc.max_changed_fraction)

    def changed(self, queries: list[QueryVector], entries: dict[Any, tuple[str, Sequence[tuple[str, float]]]]
                ) -> set[Any]:
        """Keys of ``entries`` (``key -> (query id, stored (row id, distance) pairs)``) whose rows are
        not all still in the table (same row version, matching the filter) at the stored distance:
        one statement fetching them by TID. The statistics counters that key the store lag behind
        the table by up to seconds, this does not."""
        vectors = {q.qid: q.vector for q in queries}
        order = sorted({qid for qid, _ in entries.values() if qid in vectors})
        number = {qid: n for n, qid in enumerate(order, start=1)}
        wanted: dict[tuple[int, str], float] = {}
        for qid, pairs in entries.values():
            for rid, distance in pairs:
                if qid in number and distance is not None and not math.isnan(distance):
                    wanted[(number[qid], rid)] = distance
        rels, tids, numbers = [], [], []
        for n, rid in wanted:
            rel, _, ctid = rid.partition(":")
            rels.append(int(rel))
            tids.append(ctid)
            numbers.append(n)
        if not tids:
            return {key for key, (qid, _) in entries.items() if qid not in number}
        seen: dict[tuple[int, str], float] = {}
        try:
            # a TID scan, however small the table: the check must not cost a full scan on a large one
            with local_settings(self.pconn, {"enable_seqscan": "off",
                                             "statement_timeout": self.budget.timeout_ms(self.rc.ann_timeout)}):
                rows = self.pconn.execute(stored_neighbours_query(self.idx, self.where), {
                    "vectors": [vectors[qid] for qid in order], "rels": rels, "tids": tids, "numbers": numbers},
                    prepare=False).fetchall()
            self.state.bump(self.state.check_queries, self.idx.labels)
        except psycopg.Error as exc:
            if _is_fatal(self.pconn):
                raise
            self.state.bump(self.state.check_queries, self.idx.labels)
            if self.budget.spent_by(exc):
                raise _BudgetExhausted() from None
            self.state.bump(self.state.errors, (*self.idx.labels, self.fname, "check"))
            return set(entries)  # unchecked: recompute rather than trust
        for n, rel, ctid, distance in rows:
            if distance is not None:
                seen[(int(n), row_id(rel, ctid))] = float(distance)
        changed = set()
        for key, (qid, pairs) in entries.items():
            n = number.get(qid)
            if n is None:
                changed.add(key)
                continue
            for rid, distance in pairs:
                if (n, rid) not in wanted:  # a NaN distance: nothing to compare
                    continue
                now = seen.get((n, rid))
                if now is None or abs(now - distance) > DISTANCE_TOLERANCE * max(1.0, abs(distance)):
                    changed.add(key)
                    break
        return changed

    def compute(self, missing: list[QueryVector]) -> dict[str, ExactResult]:
        """Exact results of ``missing`` by full scans, stored when the probe connection is current."""
        if not missing:
            return {}
        pconn, rc, budget, state, labels = self.pconn, self.rc, self.budget, self.state, self.idx.labels
        computed: dict[str, ExactResult] = {}
        exact_sql = exact_query(self.idx, self.where, self.fetch)
        settings: dict[str, str | None] = {
            "enable_indexscan": "off", "enable_indexonlyscan": "off",
            "statement_timeout": budget.timeout_ms(rc.exact_timeout),
            "max_parallel_workers_per_gather": (str(rc.exact_parallel_workers)
                                                if rc.exact_parallel_workers is not None else None),
        }
        try:
            with local_settings(pconn, settings):
                plan = explain_json(pconn, exact_sql, {"q": missing[0].vector})
                approximate = plan_index_names(plan) & self.vector_index_names
                if approximate:
                    raise CollectorError(f"exact plan uses approximate index {', '.join(sorted(approximate))}")
                for query in missing:
                    timeout = budget.timeout_ms(rc.exact_timeout)
                    try:
                        with pconn.transaction():
                            pconn.execute("SELECT set_config('statement_timeout', %s, true)", [timeout])
                            started = time.perf_counter()
                            rows = pconn.execute(exact_sql, {"q": query.vector}, prepare=False).fetchall()
                            seconds = time.perf_counter() - started
                    except psycopg.Error as exc:
                        if _is_fatal(pconn):
                            raise
                        state.bump(state.exact_queries, labels)
                        if budget.spent_by(exc):
                            break
                        state.bump(state.errors, (*labels, self.fname, "exact"))
                        if budget.remaining() < 0.2:
                            break
                        continue
                    state.bump(state.exact_queries, labels)
                    pairs = [(rid, d) for rid, d in result_rows(rows, query.self_id) if not math.isnan(d)][:rc.k]
                    computed[query.qid] = ExactResult(tuple(d for _, d in pairs), tuple(r for r, _ in pairs),
                                                      seconds)
        except psycopg.Error as exc:
            if _is_fatal(pconn):
                raise
            if budget.spent_by(exc):
                raise _BudgetExhausted() from None
            state.bump(state.errors, (*labels, self.fname, "explain"))
            raise
        finally:
            if computed and self.cache_ok:
                self.store.save_exact(self.db_key, self.idx.probe_key, self.filter_key, rc.k, self.signature,
                                      computed)
        if len(computed) < len(missing) and budget.remaining() < 0.2:
            raise _BudgetExhausted()
        return computed

    def record_durations(self, exact: dict[str, ExactResult]) -> None:
        durations = [r.duration for r in exact.values()]
        if durations:
            self.result.exact_seconds[self.fname] = sum(durations) / len(durations)


# --------------------------------------------------------------------------- collector
class RecallCollector:
    """Recall@k of HNSW/IVFFlat indexes (approximate vs exact search), the curve over ef_search/probes."""

    name = "recall"
    scope = "database"
    runs_config_sql = True  # filters[].where from the config: the session is reset (DISCARD ALL) after each run
    METRICS: tuple[MetricSpec, ...] = (
        MetricSpec("vecmon_vector_index_used", "gauge",
                   "Whether EXPLAIN shows the approximate probe query scanning the index (or its partitions) at "
                   "this setting (1) or another plan (0; then no recall is reported: a scan without the index "
                   "is exact).", PT),
        MetricSpec("vecmon_recall_mean_ratio", "gauge",
                   "Mean recall@k over the probe queries: returned rows whose distance is within the k-th exact "
                   "distance (ties count), divided by min(k, rows the exact search found).", PT),
        MetricSpec("vecmon_recall_good_queries_ratio", "gauge",
                   "Share of probe queries whose recall@k reached the configured target, 0..1.", PT),
        MetricSpec("vecmon_recall_returned_rows", "gauge",
                   "Mean number of rows the approximate query returned (at most k); fewer than "
                   "vecmon_recall_expected_rows means overfiltering or ef_search below k.", PT),
        MetricSpec("vecmon_recall_shortfall_ratio", "gauge",
                   "Share of probe queries that returned fewer rows than the exact search, 0..1.", PT),
        MetricSpec("vecmon_recall_ann_query_duration_seconds", "gauge",
                   "Mean duration of one approximate probe query at this setting (client-side).", PT),
        MetricSpec("vecmon_recall_app_returned_rows", "gauge",
                   "Mean number of rows the approximate query returned at the application's settings, over the "
                   "same queries as vecmon_recall_expected_rows (their ratio is the filtered-query shortfall).", PF),
        MetricSpec("vecmon_recall_expected_rows", "gauge",
                   "Mean number of rows the exact search found, min(k, matching rows).", PF),
        MetricSpec("vecmon_recall_exact_query_duration_seconds", "gauge",
                   "Mean duration of one exact (full scan) probe query when it was last computed.", PF),
        MetricSpec("vecmon_recall_target_met", "gauge",
                   "Whether recall at the application's setting meets the configured target (1) or not (0).", PF),
        MetricSpec("vecmon_recall_recommended_setting", "gauge",
                   "Smallest measured ef_search/probes value whose recall meets the target (absent when none "
                   "does).", (*PF, "param", "iterative")),
        MetricSpec("vecmon_recall_app_setting", "gauge",
                   "The ef_search/probes value the application's sessions get (database/role overrides "
                   "included).", (*P, "param")),
        MetricSpec("vecmon_recall_query_recall_ratio", "histogram",
                   "Per-query recall@k at the application's settings (cumulative over probe cycles), for SLOs "
                   "such as 99% of queries reaching 0.9.", PF),
        MetricSpec("vecmon_recall_queries_total", "counter",
                   "Probe queries measured at the application's settings.", PF),
        MetricSpec("vecmon_recall_good_queries_total", "counter",
                   "Probe queries at the application's settings whose recall@k reached the target.", PF),
        MetricSpec("vecmon_recall_cycles_total", "counter",
                   "Probe cycles that measured recall at the application's settings (one judgement each, for "
                   "per-cycle recall SLOs).", PF),
        MetricSpec("vecmon_recall_good_cycles_total", "counter",
                   "Probe cycles whose recall at the application's settings met the target (mean recall, or "
                   "target_fraction of the queries, as vecmon_recall_target_met).", PF),
        MetricSpec("vecmon_recall_probe_queries", "gauge",
                   "Query vectors in the index's probe set.", P),
        MetricSpec("vecmon_recall_exact_queries_total", "counter",
                   "Exact (full scan) queries run; 0 per cycle while the table is unchanged.", P),
        MetricSpec("vecmon_recall_exact_reused_total", "counter",
                   "Exact results reused from the state store instead of being recomputed.", P),
        MetricSpec("vecmon_recall_exact_stale_total", "counter",
                   "Stored exact results found stale and recomputed although the table's statistics counters "
                   "were unchanged: a stored neighbour deleted, updated or no longer matching, or an "
                   "approximate answer closer than the stored k-th neighbour.", P),
        MetricSpec("vecmon_recall_exact_check_queries_total", "counter",
                   "Statements checking stored exact results against the table (one per index, filter and "
                   "cycle that reuses results; fetches the stored neighbours by TID).", P),
        MetricSpec("vecmon_recall_ann_queries_total", "counter",
                   "Approximate probe queries run.", P),
        MetricSpec("vecmon_recall_ann_reused_total", "counter",
                   "Approximate answers reused from the state store instead of being rerun (the table, its "
                   "counters and vacuums, the index and the settings unchanged, the returned rows still there).",
                   P),
        MetricSpec("vecmon_recall_query_errors_total", "counter",
                   "Failed probe statements by side (sample, explain, exact, check, ann), e.g. timeouts or "
                   "a bad filter.", (*PF, "side")),
        MetricSpec("vecmon_recall_probe_runs_total", "counter",
                   "Probe attempts per index by result: ok, locked (another vecmon holds it), budget, error, "
                   "no_privilege, not_ready, no_queries, replica_unavailable.", (*P, "result")),
        MetricSpec("vecmon_recall_probe_skipped", "gauge",
                   "Set to 1 when this run did not probe the index, with the reason (the last results are "
                   "re-exported).",
                   (*P, "reason")),
        MetricSpec("vecmon_recall_last_success_timestamp_seconds", "gauge",
                   "Unix time the index's last successful probe finished.", P),
        MetricSpec("vecmon_recall_probe_duration_seconds", "gauge",
                   "Wall-clock duration of the index's last successful probe.", P),
        MetricSpec("vecmon_recall_target", "gauge",
                   "The configured recall@k target.", ()),
        MetricSpec("vecmon_recall_k", "gauge",
                   "The configured k of recall@k (LIMIT of the probe queries).", ()),
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
        em.add("vecmon_recall_target", rc.target)
        em.add("vecmon_recall_k", rc.k)
        fallback = ctx.settings.timeout_for(self.name) if hasattr(ctx.settings, "timeout_for") else 60.0
        budget = _Budget(conn, fallback, started)
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
            probe_conn, replica_error = (self._probe_connection(ctx, rc, catalog, stack, budget) if indexes
                                         else (None, None))
            for idx in indexes:
                labels = idx.labels
                reason = self._precheck(idx, replica_error)
                if reason is None and budget.remaining() < 1.0:
                    reason = "budget"
                if reason is None:
                    state.last_attempt[idx.probe_key] = time.time()
                    if rc.lock and not conn.execute("SELECT pg_try_advisory_xact_lock(%s)",
                                                    [recall_lock_key(idx.schema, idx.name)]).fetchone()[0]:
                        reason = "locked"
                if reason is None:
                    try:
                        result = self._probe_with_savepoints(ctx, probe_conn or conn, idx, catalog, store, state,
                                                             budget, in_recovery, probe_conn is not None)
                        state.results[idx.probe_key] = result
                        state.bump(state.runs, (*labels, "ok"))
                        continue
                    except _BudgetExhausted:
                        reason = "budget"
                    except _Skip as skip:
                        reason = skip.reason
                    except psycopg.Error as exc:
                        if _is_fatal(conn) or (probe_conn is not None and _is_fatal(probe_conn)):
                            raise
                        if budget.spent_by(exc):
                            reason = "budget"
                        else:
                            log.warning("recall probe of %s.%s on %s failed: %s", idx.schema, idx.name, ctx.target,
                                        _error_text(exc, ctx.settings))
                            reason = "error"
                skipped[idx.probe_key] = reason
                state.bump(state.runs, (*labels, reason))

        for idx in indexes:
            self._emit_index(em, idx, state, skipped.get(idx.probe_key), rc)
        self._emit_counters(em, state, indexes)
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

    @staticmethod
    def _probe_connection(ctx: CollectContext, rc: Any, catalog: VectorCatalog, stack: ExitStack,
                          budget: _Budget) -> tuple[psycopg.Connection | None, str | None]:
        """The standby connection for probe queries, if configured: vecmon's session settings, one
        read-only transaction bounded by the budget, cancelled by a timer when the run's time is up
        (the connector's watchdog only knows the target's connection). Returns (connection, None) or
        (None, the reason it is unavailable, passwords redacted)."""
        if rc.replica_dsn is None:
            return None, None
        try:
            with ExitStack() as setup:
                conn = psycopg.connect(replica_conninfo(ctx.settings, rc.replica_dsn.get_secret_value()),
                                       autocommit=False)
                setup.callback(conn.close)
                timer = threading.Timer(max(0.0, budget.end - time.monotonic()), _cancel, args=(conn,))
                timer.daemon = True
                timer.start()
                setup.callback(timer.cancel)
                conn.read_only = True
                setup.enter_context(conn.transaction())
                conn.execute("SELECT set_config('statement_timeout', %s, true)", [budget.timeout_ms(budget.total)])
                load_library(conn, catalog.extension_schema)
                stack.enter_context(setup.pop_all())  # closed (timer stopped first) when the run ends
        except (psycopg.Error, _BudgetExhausted) as exc:
            reason = (_error_text(exc, ctx.settings, first_line=True) if isinstance(exc, psycopg.Error)
                      else "no time left in the run")
            log.warning("recall probe replica unavailable: %s", reason)
            return None, reason
        return conn, None

    def _probe_with_savepoints(self, ctx: CollectContext, pconn: psycopg.Connection, idx: VectorIndex,
                               catalog: VectorCatalog, store: RecallStateStore, state: RecallState,
                               budget: _Budget, in_recovery: bool, replica: bool) -> IndexResult:
        """One index's probe inside savepoints, so a failure leaves the run's transaction usable."""
        conn = ctx.conn
        assert conn is not None
        with conn.transaction():
            if replica:
                with pconn.transaction():
                    return self._probe_index(ctx, pconn, idx, catalog, store, state, budget, in_recovery, replica)
            return self._probe_index(ctx, pconn, idx, catalog, store, state, budget, in_recovery, replica)

    def _probe_index(self, ctx: CollectContext, pconn: psycopg.Connection, idx: VectorIndex, catalog: VectorCatalog,
                     store: RecallStateStore, state: RecallState, budget: _Budget, in_recovery: bool,
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
            primary_lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
            caught_up = pconn.execute("SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, true)",
                                      [primary_lsn]).fetchone()[0]
            cache_ok = bool(caught_up)

        queries = self._query_set(pconn, idx, rc, store, db_key, signature, state, budget)
        if not queries:
            raise _Skip("no_queries")
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
                self._measure_filter(pconn, idx, where, fname, points, queries, fetch, rc, store, state, budget,
                                     db_key, signature, cache_ok, result, vector_index_names, marker)
            except _BudgetExhausted:
                raise
            except psycopg.Error as exc:
                if _is_fatal(pconn):
                    raise
                if budget.spent_by(exc):
                    raise _BudgetExhausted() from None
                log.warning("recall probe of %s.%s (filter %r) failed: %s", idx.schema, idx.name, fname,
                            _error_text(exc, ctx.settings))
            except CollectorError as exc:
                log.warning("recall probe of %s.%s (filter %r): %s", idx.schema, idx.name, fname, exc)
                state.bump(state.errors, (*labels, fname, "exact"))

        # Per-query recall at the application's settings feeds the SLO histogram and counters.
        for where, fname in filters:
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
                   db_key: str, signature: TableSignature, state: RecallState, budget: _Budget) -> list[QueryVector]:
        labels = idx.labels
        try:
            with local_settings(pconn, {"statement_timeout": budget.timeout_ms(rc.exact_timeout)}):
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
            if _is_fatal(pconn):
                raise
            if budget.spent_by(exc):
                raise _BudgetExhausted() from None
            state.bump(state.errors, (*labels, "", "sample"))
            raise

    def _measure_filter(self, pconn: psycopg.Connection, idx: VectorIndex, where: str | None, fname: str,
                        points: list[Point], queries: list[QueryVector], fetch: int, rc: Any,
                        store: RecallStateStore, state: RecallState, budget: _Budget, db_key: str,
                        signature: TableSignature, cache_ok: bool, result: IndexResult,
                        vector_index_names: set[str], marker: str | None) -> None:
        labels = idx.labels
        ann_sql = ann_query(idx, where, fetch)
        # 1. Which settings does the planner answer with the index?
        try:
            for point in points:
                with local_settings(pconn, {**point.settings, "statement_timeout": budget.timeout_ms(rc.ann_timeout)}):
                    plan = explain_json(pconn, ann_sql, {"q": queries[0].vector})
                point.used = plan_uses_index(plan, idx.scan_index_names(), idx.scan_table_names())
        except psycopg.Error as exc:
            if budget.spent_by(exc):
                raise _BudgetExhausted() from None
            state.bump(state.errors, (*labels, fname, "explain"))
            raise
        if not any(p.used for p in points):
            return
        exact_run = _ExactRun(pconn, idx, where, fname, fetch, rc, store, state, budget, db_key, signature,
                              cache_ok, result, vector_index_names)
        query_ids = [q.qid for q in queries]
        # 2. Stored exact results and approximate answers, checked against the table (one statement).
        stored_exact = exact_run.load(queries)
        reuse_answers = rc.reuse_approximate and marker is not None
        sql_text = ann_sql.as_string(pconn)
        skeys = {n: settings_key(point.settings, sql_text) for n, point in enumerate(points) if point.used}
        stored_answers: dict[tuple[str, str], ApproximateAnswer] = {}
        if reuse_answers:
            wanted_keys = set(skeys.values())
            stored_answers = {key: answer for key, answer in store.load_answers(
                db_key, idx.probe_key, exact_run.filter_key, marker, query_ids).items() if key[0] in wanted_keys}
        entries: dict[Any, tuple[str, Sequence[tuple[str, float]]]] = {
            ("exact", qid): (qid, tuple(zip(r.row_ids, r.distances))) for qid, r in stored_exact.items()}
        entries.update({("ann", *key): (key[1], answer.rows) for key, answer in stored_answers.items()})
        changed = exact_run.changed(queries, entries) if entries else set()
        stale_exact = {key[1] for key in changed if key[0] == "exact"}
        if stale_exact:
            state.bump(state.exact_stale, labels, len(stale_exact))
        stored_exact = {qid: r for qid, r in stored_exact.items() if qid not in stale_exact}
        stored_answers = {key: a for key, a in stored_answers.items() if ("ann", *key) not in changed}
        exact = {**stored_exact, **exact_run.compute([q for q in queries if q.qid not in stored_exact])}
        stored = set(stored_exact)
        # 3. Approximate queries at each setting the index answers, unless a checked answer is stored.
        measured: dict[int, list[tuple[QueryVector, list[tuple[str, float]], float]]] = {}
        fresh: dict[tuple[str, str], ApproximateAnswer] = {}
        for n, point in enumerate(points):
            if not point.used:
                continue
            skey = skeys[n]
            answers = [(q, list(stored_answers[(skey, q.qid)].rows), stored_answers[(skey, q.qid)].duration)
                       for q in queries if (skey, q.qid) in stored_answers]
            ran = self._run_answers(pconn, idx, fname, point, ann_sql, [
                q for q in queries if (skey, q.qid) not in stored_answers], rc, state, budget)
            if ran is None:
                continue
            state.bump(state.ann_reused, labels, len(answers))
            fresh.update({(skey, q.qid): ApproximateAnswer(tuple(ann), seconds) for q, ann, seconds in ran})
            measured[n] = answers + ran
        # 4. A stored truth that an approximate answer contradicts (a row closer than its k-th
        # neighbour that it lacks: inserted since, its statistics not flushed yet) is recomputed, and
        # so are the stored answers of that query (they predate the insert as well).
        contradicted = {query.qid for answers in measured.values() for query, ann, _ in answers
                        if query.qid in stored and contradicts(ann, exact[query.qid], rc.k, rc.epsilon)}
        if contradicted:
            state.bump(state.exact_stale, labels, len(contradicted))
            for qid in contradicted:
                exact.pop(qid)
            exact.update(exact_run.compute([q for q in queries if q.qid in contradicted]))
            for n, answers in list(measured.items()):
                redo = [q for q, _, _ in answers if q.qid in contradicted and (skeys[n], q.qid) in stored_answers]
                if not redo:
                    continue
                ran = self._run_answers(pconn, idx, fname, points[n], ann_sql, redo, rc, state, budget)
                if ran is None:
                    measured.pop(n)
                    continue
                state.bump(state.ann_reused, labels, -len(redo))
                fresh.update({(skeys[n], q.qid): ApproximateAnswer(tuple(ann), sec) for q, ann, sec in ran})
                measured[n] = [a for a in answers if a[0].qid not in contradicted or
                               (skeys[n], a[0].qid) not in stored_answers] + ran
        if reuse_answers and fresh:
            store.save_answers(db_key, idx.probe_key, exact_run.filter_key, marker, fresh)
        state.bump(state.exact_reused, labels, len(stored - contradicted))
        exact_run.record_durations(exact)
        # 5. Recall per query and setting.
        for n, answers in measured.items():
            point = points[n]
            for query, ann, seconds in answers:
                point.seconds.append(seconds)
                truth = exact.get(query.qid)
                if truth is None:
                    continue
                value = recall_at_k(ann, truth.distances, rc.k, rc.epsilon)
                if value is None:
                    continue
                point.recalls.append(value)
                point.returned.append(len(ann))
                point.expected.append(min(rc.k, len(truth.distances)))

    def _run_answers(self, pconn: psycopg.Connection, idx: VectorIndex, fname: str, point: Point,
                     ann_sql: sql.Composable, todo: list[QueryVector], rc: Any, state: RecallState,
                     budget: _Budget) -> list[tuple[QueryVector, list[tuple[str, float]], float]] | None:
        """Run the approximate query for ``todo`` at ``point``'s settings: ``(query, answer, seconds)``
        each, or None when a statement failed (the point is then unmeasured this cycle)."""
        labels = idx.labels
        answers: list[tuple[QueryVector, list[tuple[str, float]], float]] = []
        if not todo:
            return answers
        try:
            with local_settings(pconn, {**point.settings, "statement_timeout": budget.timeout_ms(rc.ann_timeout)}):
                for query in todo:
                    started = time.perf_counter()
                    rows = pconn.execute(ann_sql, {"q": query.vector}, prepare=False).fetchall()
                    answers.append((query, result_rows(rows, query.self_id)[:rc.k], time.perf_counter() - started))
        except psycopg.Error as exc:
            if _is_fatal(pconn):
                raise
            state.bump(state.ann_queries, labels, len(answers) + 1)
            if budget.spent_by(exc):
                raise _BudgetExhausted() from None
            state.bump(state.errors, (*labels, fname, "ann"))
            point.used = None
            if budget.remaining() < 0.2:
                raise _BudgetExhausted() from None
            return None
        state.bump(state.ann_queries, labels, len(answers))
        return answers

    # -- emission ------------------------------------------------------------------------
    def _emit_index(self, em: Emitter, idx: VectorIndex, state: RecallState, skipped: str | None, rc: Any) -> None:
        labels = idx.labels
        if skipped is not None:
            em.add("vecmon_recall_probe_skipped", 1, *labels, skipped)
        result = state.results.get(idx.probe_key)
        if result is None or skipped in ("no_privilege", "not_ready"):
            return
        em.add("vecmon_recall_app_setting", result.app_value, *labels, result.param)
        em.add("vecmon_recall_probe_queries", result.queries, *labels)
        em.add("vecmon_recall_last_success_timestamp_seconds", result.finished_at, *labels)
        em.add("vecmon_recall_probe_duration_seconds", result.duration, *labels)
        groups: dict[tuple[str, str], list[Point]] = {}
        for p in result.points:
            pt = (*labels, p.filter, p.param, str(p.value), p.iterative)
            if p.used is not None:
                em.add("vecmon_vector_index_used", 1 if p.used else 0, *pt)
            if p.used and p.recalls:
                em.add("vecmon_recall_mean_ratio", p.recall_mean, *pt)
                em.add("vecmon_recall_good_queries_ratio", p.good_fraction(rc.target), *pt)
                em.add("vecmon_recall_returned_rows", p.mean(p.returned), *pt)
                em.add("vecmon_recall_shortfall_ratio", p.shortfall_fraction, *pt)
            if p.used and p.seconds:
                em.add("vecmon_recall_ann_query_duration_seconds", p.mean(p.seconds), *pt)
            groups.setdefault((p.filter, p.iterative), []).append(p)
        filters = sorted({p.filter for p in result.points})
        for fname in filters:
            pf = (*labels, fname)
            if fname in result.exact_seconds:
                em.add("vecmon_recall_exact_query_duration_seconds", result.exact_seconds[fname], *pf)
            app = result.app_point(fname)
            if app is not None and app.used and app.recalls:
                em.add("vecmon_recall_expected_rows", app.mean(app.expected), *pf)
                em.add("vecmon_recall_app_returned_rows", app.mean(app.returned), *pf)
                em.add("vecmon_recall_target_met", 1 if app.meets(rc.target, rc.target_fraction) else 0, *pf)
                if skipped is None:  # measured in this run: one per-cycle judgement
                    state.bump(state.cycles, pf)
                    if app.meets(rc.target, rc.target_fraction):
                        state.bump(state.good_cycles, pf)
                    state.good_cycles.setdefault(pf, 0)
            for name, table in (("vecmon_recall_cycles_total", state.cycles),
                                ("vecmon_recall_good_cycles_total", state.good_cycles)):
                if pf in table:
                    em.add(name, table[pf], *pf)
        for (fname, mode), points in groups.items():
            for p in sorted(points, key=lambda x: x.value):
                if p.meets(rc.target, rc.target_fraction):
                    em.add("vecmon_recall_recommended_setting", p.value, *labels, fname, p.param, mode)
                    break

    @staticmethod
    def _emit_counters(em: Emitter, state: RecallState, indexes: list[VectorIndex]) -> None:
        current = {idx.labels for idx in indexes}
        for key, hist in state.hist.items():
            if key[:3] not in current:
                continue
            buckets = [(_bound(b), hist[i]) for i, b in enumerate(RECALL_BUCKETS)]
            buckets.append(("+Inf", hist[-2]))
            em.histogram("vecmon_recall_query_recall_ratio", buckets, hist[-1], *key)
        for name, table in (("vecmon_recall_queries_total", state.total),
                            ("vecmon_recall_good_queries_total", state.good)):
            for key, value in table.items():
                if key[:3] in current:
                    em.add(name, value, *key)
        for idx in indexes:
            labels = idx.labels
            for name, table in (("vecmon_recall_exact_queries_total", state.exact_queries),
                                ("vecmon_recall_exact_reused_total", state.exact_reused),
                                ("vecmon_recall_exact_stale_total", state.exact_stale),
                                ("vecmon_recall_exact_check_queries_total", state.check_queries),
                                ("vecmon_recall_ann_queries_total", state.ann_queries),
                                ("vecmon_recall_ann_reused_total", state.ann_reused)):
                em.add(name, table.get(labels, 0), *labels)
        for key, value in state.errors.items():
            if key[:3] in current:
                em.add("vecmon_recall_query_errors_total", value, *key)
        for key, value in state.runs.items():
            if key[:3] in current:
                em.add("vecmon_recall_probe_runs_total", value, *key)


def _bound(value: float) -> str:
    return repr(float(value))
