"""State store of the recall probe: query sets and exact (ground-truth) results, via SQLAlchemy.

Exact search is a full scan per query, so its results are kept and reused while the probed
table has not changed. A result is keyed by (database, index probe key, filter key, k, query
id) and stored with the table's *signature*:

* ``files``: ``oid:relfilenode`` of every leaf table (a rewrite such as VACUUM FULL, CLUSTER or
  TRUNCATE changes it, and with it every ctid used to exclude a query's own row);
* ``changes``: ``n_tup_ins + n_tup_upd + n_tup_del`` summed over the leaf tables
  (``pg_stat_user_tables``).

A stored result is reused when ``files`` is equal and ``changes`` has not grown by more than
``max_changed_fraction`` of the rows (0 by default: not at all). Statistics are flushed by
backends asynchronously (at most about once a second, later when a backend stays busy), so a
write may become visible in the counters a little after it is visible in the table; the exact
result is then recomputed one cycle later. A reset of the statistics makes the counters go down,
which also counts as a change.

Any SQLAlchemy URL works (``sqlite:///path``, ``postgresql+psycopg://...``); two vecmon
instances monitoring the same database can share one store, so the instance that wins the
advisory lock reuses what the other computed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import (BigInteger, Column, Float, Integer, MetaData, String, Table, Text, and_, create_engine,
                        delete, event, insert, select)
from sqlalchemy.engine import Engine, make_url

metadata = MetaData()

exact_results = Table(
    "vecmon_recall_exact", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("filter_key", String(200), primary_key=True),
    Column("k", Integer, primary_key=True),
    Column("query_id", String(64), primary_key=True),
    Column("table_files", Text, nullable=False),
    Column("table_changes", BigInteger, nullable=False),
    Column("distances", Text, nullable=False),  # JSON list of floats, ascending
    Column("row_ids", Text, nullable=False),  # JSON list of "tableoid:ctid"
    Column("duration_seconds", Float, nullable=False),
    Column("computed_at", Float, nullable=False),
)

query_sets = Table(
    "vecmon_recall_queries", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("requested", Integer, nullable=False),
    Column("table_files", Text, nullable=False),
    Column("table_changes", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("queries", Text, nullable=False),  # JSON [[qid, self_id, vector], ...]
)

index_builds = Table(
    "vecmon_index_builds", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("relfilenode", BigInteger, nullable=False),
    Column("rows", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)


@dataclass(frozen=True)
class TableSignature:
    files: str
    changes: int
    rows: float

    def allows_reuse(self, stored_files: str, stored_changes: int, tolerance: float) -> bool:
        """True when results computed at (stored_files, stored_changes) still describe the table."""
        if stored_files != self.files:
            return False
        delta = self.changes - int(stored_changes)
        if delta < 0:  # statistics reset: unknown, recompute
            return False
        if tolerance <= 0:
            return delta == 0
        return delta <= tolerance * max(self.rows, 1.0)


@dataclass(frozen=True)
class ExactResult:
    distances: tuple[float, ...]
    row_ids: tuple[str, ...]
    duration: float


@dataclass(frozen=True)
class StoredQuerySet:
    requested: int
    files: str
    changes: int
    created_at: float
    queries: tuple[tuple[str, str | None, str], ...]


def _json_floats(values: Iterable[float]) -> str:
    # NaN is excluded before storing; repr keeps float8 values exact.
    return json.dumps([float(v) for v in values])


class RecallStateStore:
    """Thread-safe (SQLAlchemy pools connections; SQLite runs in WAL mode with a busy timeout)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
        metadata.create_all(self.engine)

    # -- exact results ------------------------------------------------------------------
    def load_exact(self, database: str, index_key: str, filter_key: str, k: int, query_ids: Iterable[str],
                   signature: TableSignature, tolerance: float = 0.0) -> dict[str, ExactResult]:
        ids = list(query_ids)
        if not ids:
            return {}
        t = exact_results
        found: dict[str, ExactResult] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                rows = conn.execute(select(t.c.query_id, t.c.table_files, t.c.table_changes, t.c.distances,
                                           t.c.row_ids, t.c.duration_seconds).where(and_(
                    t.c.database == database, t.c.index_key == index_key, t.c.filter_key == filter_key,
                    t.c.k == k, t.c.query_id.in_(chunk))))
                for qid, files, changes, distances, row_ids, duration in rows:
                    if signature.allows_reuse(files, changes, tolerance):
                        found[qid] = ExactResult(tuple(json.loads(distances)), tuple(json.loads(row_ids)),
                                                 float(duration))
        return found

    def save_exact(self, database: str, index_key: str, filter_key: str, k: int, signature: TableSignature,
                   results: dict[str, ExactResult]) -> None:
        if not results:
            return
        t = exact_results
        now = time.time()
        with self.engine.begin() as conn:
            for chunk in _chunks(list(results), 500):
                conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key,
                                                  t.c.filter_key == filter_key, t.c.k == k,
                                                  t.c.query_id.in_(chunk))))
            conn.execute(insert(t), [
                {"database": database, "index_key": index_key, "filter_key": filter_key, "k": k, "query_id": qid,
                 "table_files": signature.files, "table_changes": signature.changes,
                 "distances": _json_floats(r.distances), "row_ids": json.dumps(list(r.row_ids)),
                 "duration_seconds": r.duration, "computed_at": now}
                for qid, r in results.items()])

    # -- query sets -----------------------------------------------------------------------
    def load_queries(self, database: str, index_key: str) -> StoredQuerySet | None:
        t = query_sets
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.requested, t.c.table_files, t.c.table_changes, t.c.created_at,
                                      t.c.queries).where(and_(t.c.database == database,
                                                              t.c.index_key == index_key))).first()
        if row is None:
            return None
        queries = tuple((q[0], q[1], q[2]) for q in json.loads(row.queries))
        return StoredQuerySet(int(row.requested), row.table_files, int(row.table_changes), float(row.created_at),
                              queries)

    def save_queries(self, database: str, index_key: str, requested: int, signature: TableSignature,
                     queries: Iterable[tuple[str, str | None, str]]) -> None:
        """Replace the query set of an index (and drop the exact results of the old one)."""
        t = query_sets
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key)))
            conn.execute(delete(exact_results).where(and_(exact_results.c.database == database,
                                                          exact_results.c.index_key == index_key)))
            conn.execute(insert(t).values(database=database, index_key=index_key, requested=requested,
                                          table_files=signature.files, table_changes=signature.changes,
                                          created_at=time.time(), queries=json.dumps([list(q) for q in queries])))

    # -- index builds ---------------------------------------------------------------------
    def rows_at_build(self, database: str, index_key: str, relfilenode: int, rows: float) -> float:
        """Table rows when this build (relfilenode) of the index was first seen; records ``rows`` for a new one."""
        t = index_builds
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.relfilenode, t.c.rows).where(and_(
                t.c.database == database, t.c.index_key == index_key))).first()
            if row is not None and int(row.relfilenode) == relfilenode:
                return float(row.rows)
            conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key)))
            conn.execute(insert(t).values(database=database, index_key=index_key, relfilenode=relfilenode,
                                          rows=rows, seen_at=time.time()))
            return rows

    def prune(self, older_than_seconds: float) -> int:
        """Delete exact results not recomputed for this long; returns the number of rows removed."""
        cutoff = time.time() - older_than_seconds
        with self.engine.begin() as conn:
            return conn.execute(delete(exact_results).where(exact_results.c.computed_at < cutoff)).rowcount or 0

    def count_exact(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(exact_results.c.query_id)).all())

    def dispose(self) -> None:
        self.engine.dispose()


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class StateStores:
    """One store (engine) per URL, shared by the jobs of a process (via ``ctx.shared``) and
    disposed when the process stops."""

    def __init__(self) -> None:
        self._stores: dict[str, RecallStateStore] = {}
        self._lock = threading.Lock()

    def open(self, url: str) -> RecallStateStore:
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                store = RecallStateStore(url)
                self._stores[url] = store
            return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.dispose()
