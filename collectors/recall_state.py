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

Approximate answers (``vecmon_recall_ann``) are kept per (index, filter, settings, query) under a
*marker* of everything they depend on besides the query (files, counters, vacuums, catalog) and
reused only under the same marker; the probe checks their rows like the exact results' neighbours.

Any SQLAlchemy URL works (``sqlite:///path``, ``postgresql+psycopg://...``); two vecmon
instances monitoring the same database can share one store, so the instance that wins the
advisory lock reuses what the other computed.

The store is a cache and never fails a probe (:class:`RecallStateStore`): a garbled, truncated or
deleted SQLite file is moved aside and rebuilt, a store that cannot be used (read-only directory,
unreachable server) is replaced by an in-memory one and retried; each fault is logged once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from collectors.recall_records import ApproximateAnswer, ExactResult, StoredQuerySet, TableSignature
from collectors.recall_store_files import (
    DELETED,
    FileIdentity,
    describe_error,
    file_identity,
    make_engine,
    memory_engine,
    move_aside,
    run_on,
    sqlite_file_health,
    unwritable_note,
)
from collectors.recall_store_tables import (
    ann_answers,
    chunks,
    exact_results,
    index_builds,
    json_floats,
    metadata,
    query_sets,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_RETRY_SECONDS = 300.0  # how often an unusable configured store is tried again


class RecallStateStore:
    """The exact-result cache behind one SQLAlchemy URL, thread-safe: one lock serialises the
    operations (each takes milliseconds), so a repair never races a write.

    The store is only a cache, so no fault of it fails a probe. Every operation goes through
    :meth:`_run`:

    * For a SQLite file it first compares the file (device, inode, size, mtime) with what this
      process last saw. When another hand changed it, a fresh connection checks it (header and
      ``PRAGMA quick_check``; the pooled connections may still serve cached pages of a damaged
      file). A deleted file is recreated (the open connections would go on writing into the
      unlinked inode); a damaged one is moved aside as ``<name>.bad-<UTC time>`` and rebuilt empty;
      a file replaced by a healthy one is reopened.
    * A failed operation gets the same diagnosis; a store that cannot be used at all (a read-only
      directory, an unreachable server, a locked file) is replaced by an in-memory SQLite store,
      and the configured one is tried again every ``retry_after`` seconds.

    Each fault is logged once, as an error naming the store and what was done; retries that fail
    again are quiet, a recovery is logged at INFO. Whatever is lost is recomputed, as on a cache miss.
    """

    def __init__(self, url: str, retry_after: float = STORE_RETRY_SECONDS):
        self.url = url
        self.retry_after = retry_after
        parsed = make_url(url)
        self._password = str(parsed.password) if parsed.password else None
        self._path: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            self._path = Path(parsed.database).expanduser()
        self.where = str(self._path) if self._path is not None else parsed.render_as_string(hide_password=True)
        self._lock = threading.RLock()
        self._engine: Engine | None = None  # the configured store, None while it is unusable
        self._seen: FileIdentity | None = None
        self._memory: Engine | None = None  # the fallback
        self._degraded_at: float | None = None
        with self._lock:
            try:
                self._open()
            except (SQLAlchemyError, OSError) as exc:
                self._recover(exc)

    @property
    def degraded(self) -> bool:
        """True while the in-memory fallback stands in for the configured store."""
        return self._degraded_at is not None

    # -- exact results ------------------------------------------------------------------
    def load_exact(self, database: str, index_key: str, filter_key: str, k: int, query_ids: Iterable[str],
                   signature: TableSignature, tolerance: float = 0.0) -> dict[str, ExactResult]:
        ids = list(query_ids)
        if not ids:
            return {}
        t = exact_results

        def load(conn: Connection) -> dict[str, ExactResult]:
            found: dict[str, ExactResult] = {}
            for chunk in chunks(ids, 500):
                rows = conn.execute(select(t.c.query_id, t.c.table_files, t.c.table_changes, t.c.distances,
                                           t.c.row_ids, t.c.duration_seconds).where(and_(
                    t.c.database == database, t.c.index_key == index_key, t.c.filter_key == filter_key,
                    t.c.k == k, t.c.query_id.in_(chunk))))
                for qid, files, changes, distances, row_ids, duration in rows:
                    if signature.allows_reuse(files, changes, tolerance):
                        found[qid] = ExactResult(tuple(json.loads(distances)), tuple(json.loads(row_ids)),
                                                 float(duration))
            return found

        return self._run(load)

    def save_exact(self, database: str, index_key: str, filter_key: str, k: int, signature: TableSignature,
                   results: dict[str, ExactResult]) -> None:
        if not results:
            return
        t = exact_results
        now = time.time()

        def save(conn: Connection) -> None:
            for chunk in chunks(list(results), 500):
                conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key,
                                                  t.c.filter_key == filter_key, t.c.k == k,
                                                  t.c.query_id.in_(chunk))))
            conn.execute(insert(t), [
                {"database": database, "index_key": index_key, "filter_key": filter_key, "k": k, "query_id": qid,
                 "table_files": signature.files, "table_changes": signature.changes,
                 "distances": json_floats(r.distances), "row_ids": json.dumps(list(r.row_ids)),
                 "duration_seconds": r.duration, "computed_at": now}
                for qid, r in results.items()])

        self._run(save, write=True)

    # -- approximate answers --------------------------------------------------------------
    def load_answers(self, database: str, index_key: str, filter_key: str, marker: str,
                     query_ids: Iterable[str]) -> dict[tuple[str, str], ApproximateAnswer]:
        """``(settings key, query id) -> answer`` stored under exactly this ``marker``."""
        ids = list(query_ids)
        if not ids:
            return {}
        t = ann_answers

        def load(conn: Connection) -> dict[tuple[str, str], ApproximateAnswer]:
            found: dict[tuple[str, str], ApproximateAnswer] = {}
            for chunk in chunks(ids, 500):
                rows = conn.execute(select(t.c.settings_key, t.c.query_id, t.c.distances, t.c.row_ids,
                                           t.c.duration_seconds).where(and_(
                    t.c.database == database, t.c.index_key == index_key, t.c.filter_key == filter_key,
                    t.c.marker == marker, t.c.query_id.in_(chunk))))
                for settings_key, qid, distances, row_ids, duration in rows:
                    found[(settings_key, qid)] = ApproximateAnswer(
                        tuple(zip(json.loads(row_ids), (float(d) for d in json.loads(distances)), strict=False)),
                        float(duration))
            return found

        return self._run(load)

    def save_answers(self, database: str, index_key: str, filter_key: str, marker: str,
                     answers: dict[tuple[str, str], ApproximateAnswer]) -> None:
        if not answers:
            return
        t = ann_answers
        now = time.time()
        keys = list(answers)

        def save(conn: Connection) -> None:
            for settings_key in sorted({s for s, _ in keys}):
                qids = [q for s, q in keys if s == settings_key]
                for chunk in chunks(qids, 500):
                    conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key,
                                                      t.c.filter_key == filter_key,
                                                      t.c.settings_key == settings_key, t.c.query_id.in_(chunk))))
            conn.execute(insert(t), [
                {"database": database, "index_key": index_key, "filter_key": filter_key, "settings_key": skey,
                 "query_id": qid, "marker": marker, "distances": json.dumps([d for _, d in a.rows]),
                 "row_ids": json.dumps([r for r, _ in a.rows]), "duration_seconds": a.duration,
                 "computed_at": now}
                for (skey, qid), a in answers.items()])

        self._run(save, write=True)

    # -- query sets -----------------------------------------------------------------------
    def load_queries(self, database: str, index_key: str) -> StoredQuerySet | None:
        t = query_sets

        def load(conn: Connection) -> Any:
            return conn.execute(select(t.c.requested, t.c.table_files, t.c.table_changes, t.c.created_at,
                                       t.c.queries).where(and_(t.c.database == database,
                                                               t.c.index_key == index_key))).first()

        row = self._run(load)
        if row is None:
            return None
        queries = tuple((q[0], q[1], q[2]) for q in json.loads(row.queries))
        return StoredQuerySet(int(row.requested), row.table_files, int(row.table_changes), float(row.created_at),
                              queries)

    def save_queries(self, database: str, index_key: str, requested: int, signature: TableSignature,
                     queries: Iterable[tuple[str, str | None, str]]) -> None:
        """Replace the query set of an index (and drop the exact results and answers of the old one)."""
        t = query_sets
        text = json.dumps([list(q) for q in queries])

        def save(conn: Connection) -> None:
            conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key)))
            for table in (exact_results, ann_answers):
                conn.execute(delete(table).where(and_(table.c.database == database,
                                                      table.c.index_key == index_key)))
            conn.execute(insert(t).values(database=database, index_key=index_key, requested=requested,
                                          table_files=signature.files, table_changes=signature.changes,
                                          created_at=time.time(), queries=text))

        self._run(save, write=True)

    # -- index builds ---------------------------------------------------------------------
    def rows_at_build(self, database: str, index_key: str, relfilenode: int, rows: float) -> float:
        """Table rows when this build (relfilenode) of the index was first seen; records ``rows`` for a new one."""
        t = index_builds

        def record(conn: Connection) -> float:
            row = conn.execute(select(t.c.relfilenode, t.c.rows).where(and_(
                t.c.database == database, t.c.index_key == index_key))).first()
            if row is not None and int(row.relfilenode) == relfilenode:
                return float(row.rows)
            conn.execute(delete(t).where(and_(t.c.database == database, t.c.index_key == index_key)))
            conn.execute(insert(t).values(database=database, index_key=index_key, relfilenode=relfilenode,
                                          rows=rows, seen_at=time.time()))
            return rows

        return self._run(record, write=True)

    def prune(self, older_than_seconds: float) -> int:
        """Delete exact results and approximate answers not recomputed for this long; returns the number
        of rows removed."""
        cutoff = time.time() - older_than_seconds
        return self._run(lambda conn: sum(conn.execute(delete(table).where(table.c.computed_at < cutoff)).rowcount
                                          or 0 for table in (exact_results, ann_answers)), write=True)

    def count_exact(self) -> int:
        return self._run(lambda conn: len(conn.execute(select(exact_results.c.query_id)).all()))

    def dispose(self) -> None:
        with self._lock:
            for engine in (self._engine, self._memory):
                if engine is not None:
                    engine.dispose()

    # -- faults ---------------------------------------------------------------------------
    def _run(self, operation: Callable[[Connection], T], write: bool = False) -> T:
        """Run ``operation`` in a connection (a transaction when ``write``) of the configured store,
        or of the fallback after one repair."""
        with self._lock:
            engine = None
            try:
                engine = self._engine_for_use()
                result = run_on(engine, operation, write)
            except (SQLAlchemyError, OSError) as exc:
                if engine is not None and engine is self._memory:
                    raise  # the in-memory store failed: a bug, not a fault of the store
                self._recover(exc)
                engine = None
                try:
                    engine = self._engine_for_use()
                    result = run_on(engine, operation, write)
                except (SQLAlchemyError, OSError) as again:
                    if engine is not None and engine is self._memory:
                        raise
                    self._fall_back(f"{describe_error(again, self._password)} (again, after a repair)")
                    engine = self._engine_for_use()
                    result = run_on(engine, operation, write)
            if engine is self._engine:
                self._seen = file_identity(self._path)
            return result

    def _open(self) -> None:
        """(Re)open the configured store and create its tables."""
        self._close_engine()
        engine = make_engine(self.url)
        try:
            metadata.create_all(engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        self._seen = file_identity(self._path)

    def _close_engine(self) -> None:
        if self._engine is not None:
            self._engine.dispose()  # for SQLite the last close checkpoints into, and lets go of, the old file
            self._engine = None

    def _engine_for_use(self) -> Engine:
        if self._degraded_at is not None:
            if time.monotonic() - self._degraded_at >= self.retry_after:
                try:
                    self._open()
                except (SQLAlchemyError, OSError):
                    self._degraded_at = time.monotonic()  # still unusable: already reported
                else:
                    log.info("recall state store %s is usable again", self.where)
                    self._degraded_at = None
                    if self._memory is not None:
                        self._memory.dispose()
                        self._memory = None
            if self._degraded_at is not None:
                assert self._memory is not None
                return self._memory
        if self._path is not None and file_identity(self._path) != self._seen:
            self._check_file()
        if self._engine is None:
            raise OSError("the store is closed")
        return self._engine

    def _check_file(self) -> None:
        """The SQLite file changed under this process: find out how, and repair what needs it."""
        assert self._path is not None
        if not self._path.exists():
            self._rebuild(DELETED, move=False)
            return
        health, reason = sqlite_file_health(self._path)
        if health == "damaged":
            self._rebuild(f"the file is damaged ({reason})", move=True)
        elif health == "ok":
            now = file_identity(self._path)
            if self._seen is None or now is None or now[:2] != self._seen[:2]:
                self._open()  # replaced by a healthy file: use it, not the old inode
            self._seen = file_identity(self._path)
        else:
            raise OSError(reason)

    def _recover(self, exc: BaseException) -> None:
        """After a failed operation (or open): repair a deleted or damaged SQLite file, else fall back
        to memory. Logs the fault's one error."""
        problem = describe_error(exc, self._password)
        if self._path is not None:
            if not self._path.exists() and self._seen is not None:
                self._rebuild(DELETED, move=False)
                return
            if self._path.exists():
                health, reason = sqlite_file_health(self._path)
                if health == "damaged":
                    self._rebuild(f"{problem}: the file is damaged ({reason})", move=True)
                    return
        self._fall_back(problem)

    def _rebuild(self, problem: str, move: bool) -> None:
        """Start an empty store at the configured path: the damaged file (and any -wal/-shm left of
        it) moved aside first; in memory when that fails too."""
        assert self._path is not None
        self._close_engine()
        try:
            moved = move_aside(self._path, include_main=move)
            self._open()
        except (SQLAlchemyError, OSError) as exc:
            self._fall_back(f"{problem}; it cannot be rebuilt: {describe_error(exc, self._password)}")
            return
        done = f"moved it aside to {moved[0]}, started an empty store" if move and moved else "started an empty store"
        log.error("recall state store %s: %s; %s (exact results are recomputed)", self.where, problem, done)

    def _fall_back(self, problem: str) -> None:
        if self._path is not None:
            problem += unwritable_note(self._path.parent)
        self._close_engine()
        if self._memory is None:
            self._memory = memory_engine()
        self._degraded_at = time.monotonic()
        log.error("recall state store %s: %s; using an in-memory store instead, the configured one is tried "
                  "again every %gs", self.where, problem, self.retry_after)

