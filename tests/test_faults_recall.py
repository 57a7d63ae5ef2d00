"""Faults of the recall probe's state store, and stale ground truth (real PostgreSQL 18 + pgvector).

The exact-result store is a cache: a garbled, truncated or deleted SQLite file and a read-only
state directory each get one clear error, and recall keeps producing the values it produces with a
healthy store. Stored exact results are not trusted on the statistics counters alone: rows deleted
a moment ago (their statistics not flushed yet) must not turn into a recall of 0.

Every test runs a handful of probe cycles on a small table (a few seconds each).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import psycopg
import pytest

from collectors.recall_metrics import (
    RECALL_ANN_QUERIES_TOTAL,
    RECALL_ANN_REUSED_TOTAL,
    RECALL_EXACT_CHECK_QUERIES_TOTAL,
    RECALL_EXACT_QUERIES_TOTAL,
    RECALL_EXACT_REUSED_TOTAL,
    RECALL_EXACT_STALE_TOTAL,
    RECALL_MEAN_RATIO,
    RECALL_PROBE_RUNS_TOTAL,
)
from collectors.recall_records import ExactResult
from collectors.recall_scoring import contradicts
from monitor.shared import SharedState
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import Families, require_tool, run_collector, wait_until

DIM = 32
ROWS = 4000
QUERIES = 12
K = 10
APP_EF = 10
STORE_LOGGER = "collectors.recall_state"


def vec_text(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def clustered(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(12, DIM))
    return (centers[rng.integers(0, 12, rows)] + rng.normal(scale=0.35, size=(rows, DIM))).astype(np.float32)


def make_items(db, data: np.ndarray, golden: np.ndarray, m: int = 4, ef_construction: int = 8,
               app_ef: int = APP_EF) -> None:
    with db.admin() as conn:
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, embedding vector({DIM}))")
        with conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(data):
                copy.write_row((i, vec_text(v)))
        conn.execute(f"CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops) "
                     f"WITH (m = {m}, ef_construction = {ef_construction})")
        conn.execute(f"CREATE TABLE golden (id int PRIMARY KEY, embedding vector({DIM}))")
        with conn.cursor().copy("COPY golden (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(golden):
                copy.write_row((i, vec_text(v)))
        conn.execute("VACUUM ANALYZE items")
        conn.execute("ANALYZE golden")
        conn.execute(f"ALTER DATABASE {db.name} SET hnsw.ef_search = {app_ef}")
        conn.execute(f"GRANT SELECT ON items, golden TO {MONITOR_ROLE}")
        conn.execute("SELECT pg_stat_force_next_flush()")


def ann_ids(db, query: np.ndarray, ef_search: int = APP_EF) -> list[int]:
    """The application's query, run here (not by vecmon), its plan checked to use the index."""
    with db.admin() as conn:
        conn.execute(f"SET hnsw.ef_search = {ef_search}")
        sql = f"SELECT id FROM items ORDER BY embedding <-> %s::vector LIMIT {K}"
        plan = conn.execute("EXPLAIN " + sql, [vec_text(query)]).fetchall()
        assert any("items_hnsw" in row[0] for row in plan), plan
        return [r[0] for r in conn.execute(sql, [vec_text(query)]).fetchall()]


def brute_force_recall(items: np.ndarray, alive: np.ndarray, query: np.ndarray, returned: list[int]) -> float:
    """recall@k by the same distance threshold as vecmon, the truth from numpy over the live rows."""
    distances = np.linalg.norm(items.astype(np.float64) - query.astype(np.float64), axis=1)
    distances[~alive] = np.inf
    kth = np.sort(distances)[K - 1]
    threshold = kth + 1e-6 * max(1.0, abs(kth))
    return sum(1 for i in returned[:K] if distances[i] <= threshold) / K


def mean_brute_force(db, items: np.ndarray, alive: np.ndarray, golden: np.ndarray, ef_search: int = APP_EF) -> float:
    return float(np.mean([brute_force_recall(items, alive, q, ann_ids(db, q, ef_search)) for q in golden]))


def overrides(state_url: str, **recall) -> dict:
    settings = {"state_url": state_url, "sample_size": QUERIES, "k": K, "ef_search_values": [APP_EF, 40],
                "queries": {"source": "table", "table": "golden", "column": "embedding", "order_by": "id"}}
    settings.update(recall)
    return {"vector": {"indexes": ["items_hnsw"], "recall": settings}}


def point(value: int = APP_EF) -> dict:
    return {"target": "t", "schema": "public", "table": "items", "index": "items_hnsw", "filter": "",
            "param": "ef_search", "value": str(value), "iterative": "off"}


POINT = point()
INDEX = {"target": "t", "schema": "public", "table": "items", "index": "items_hnsw"}


@pytest.fixture(scope="module")
def store_db(pg18):
    """items: 4000 clustered 32-d vectors under a weak HNSW index (recall clearly below 1 at
    ef_search 10); golden: 12 held-out queries; the brute-force recall of the application's setting."""
    db = new_database(pg18, ("vector",))
    data = clustered(ROWS + QUERIES, seed=11)
    db.items, db.golden = data[:ROWS], data[ROWS:]
    make_items(db, db.items, db.golden)
    db.truth = mean_brute_force(db, db.items, np.ones(ROWS, bool), db.golden)
    assert db.truth < 0.95  # the weak index really misses neighbours
    return db


class Cycles:
    """Probe cycles as the daemon runs them: one process (shared stores) and one collector state."""

    def __init__(self, db, state_url: str):
        self.db = db
        self.shared = SharedState()
        self.state: dict = {}
        self.overrides = overrides(state_url)

    def run(self) -> Families:
        return run_collector(self.db.monitor_dsn, "recall", state=self.state, shared=self.shared, timeout=30,
                             **self.overrides)

    def close(self) -> None:
        self.shared.close()


@pytest.fixture
def cycles(store_db, tmp_path):
    opened: list[Cycles] = []

    def make(state_url: str | None = None) -> Cycles:
        c = Cycles(store_db, state_url or f"sqlite:///{tmp_path / 'state' / 'recall.sqlite'}")
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


def store_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == STORE_LOGGER and r.levelno >= logging.ERROR]


def assert_correct(fam: Families, db) -> None:
    assert fam.value(RECALL_PROBE_RUNS_TOTAL.name, {**INDEX, "result": "ok"}) is not None
    assert fam.value(RECALL_MEAN_RATIO.name, POINT) == pytest.approx(db.truth, abs=0.01)


def stored_exact_rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT count(*) FROM vecmon_recall_exact").fetchone()[0]


# ----------------------------------------------------------------------------- store faults
def test_garbled_store_at_start_is_moved_aside_and_rebuilt(cycles, store_db, tmp_path, caplog):
    path = tmp_path / "state" / "recall.sqlite"
    path.parent.mkdir()
    path.write_bytes(b"not a database, garbled by hand\n" * 400)
    c = cycles()
    with caplog.at_level(logging.INFO):
        first = c.run()
        second = c.run()
    errors = store_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert str(path) in message and "moved" in message, message
    assert_correct(first, store_db)
    assert_correct(second, store_db)
    assert [p.name for p in path.parent.glob("recall.sqlite.bad-*")], list(path.parent.iterdir())
    assert second.value(RECALL_EXACT_REUSED_TOTAL.name, INDEX) == QUERIES  # the rebuilt store caches
    assert stored_exact_rows(path) == QUERIES


@pytest.mark.parametrize("damage", ["garbled", "truncated"])
def test_store_damaged_while_running_is_rebuilt(cycles, store_db, tmp_path, caplog, damage):
    path = tmp_path / "state" / "recall.sqlite"
    c = cycles()
    assert_correct(c.run(), store_db)
    with closing(sqlite3.connect(path)) as conn:  # the results in the file itself, not only in its WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # the same file (inode), as a disk or a careless tool would leave it
        if damage == "garbled":
            handle.write(os.urandom(size))
        else:
            handle.truncate(size // 3)
    with caplog.at_level(logging.INFO):
        second = c.run()
        third = c.run()
    errors = store_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert str(path) in errors[0].getMessage()
    assert_correct(second, store_db)
    assert_correct(third, store_db)
    assert third.value(RECALL_EXACT_REUSED_TOTAL.name, INDEX) >= QUERIES
    assert stored_exact_rows(path) == QUERIES


def test_store_deleted_while_running_is_recreated(cycles, store_db, tmp_path, caplog):
    path = tmp_path / "state" / "recall.sqlite"
    c = cycles()
    assert_correct(c.run(), store_db)
    path.unlink()
    with caplog.at_level(logging.INFO):
        second = c.run()
        third = c.run()
    errors = store_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert str(path) in errors[0].getMessage() and "deleted" in errors[0].getMessage()
    assert_correct(second, store_db)
    assert_correct(third, store_db)
    assert path.exists()  # written to a real file again, not to the unlinked one
    assert stored_exact_rows(path) == QUERIES
    assert third.value(RECALL_EXACT_REUSED_TOTAL.name, INDEX) >= QUERIES


def _make_read_only(directory: Path) -> list[str]:
    """A directory nobody can create files in: chmod for a normal user; root ignores modes, so
    the immutable attribute for root. Returns the command that undoes it."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return ["chmod", "755", str(directory)]
    chattr = require_tool("chattr", "e2fsprogs")
    subprocess.run([chattr, "+i", str(directory)], check=True, timeout=10)
    return [chattr, "-i", str(directory)]


def test_read_only_state_directory_falls_back_to_memory(cycles, store_db, tmp_path, caplog):
    directory = tmp_path / "readonly"
    directory.mkdir()
    undo = _make_read_only(directory)
    try:
        with pytest.raises(OSError):
            (directory / "probe").write_text("x")
        c = cycles(f"sqlite:///{directory / 'recall.sqlite'}")
        with caplog.at_level(logging.INFO):
            first = c.run()
            second = c.run()
    finally:
        subprocess.run(undo, check=True, timeout=10)
    errors = store_errors(caplog)
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert str(directory / "recall.sqlite") in message and "memory" in message, message
    assert_correct(first, store_db)
    assert_correct(second, store_db)
    assert second.value(RECALL_EXACT_REUSED_TOTAL.name, INDEX) == QUERIES  # memory still caches
    assert not (directory / "recall.sqlite").exists()


# ----------------------------------------------------------------------------- stale ground truth
def wait_counted(db, counter: str, at_least: int) -> None:
    with db.admin() as observer:
        wait_until(lambda: observer.execute(f"SELECT {counter} FROM pg_stat_user_tables WHERE relname = 'items'"
                                            ).fetchone()[0] >= at_least, 15, f"{counter} reaching {at_least}",
                   interval=0.2)


def lagging_write(db, statement: str, params: list, counter: str) -> LaggingWrite:
    return LaggingWrite(db, statement, params, counter)


class LaggingWrite:
    """Run a write whose statistics are not flushed for about 10 s: the writing backend flushed
    just before (at most once a second) and then stays idle, connected, until the block ends."""

    def __init__(self, db, statement: str, params: list, counter: str):
        self.db, self.statement, self.params, self.counter = db, statement, params, counter

    def counted(self) -> int:
        return self.observer.execute(f"SELECT {self.counter} FROM pg_stat_user_tables WHERE relname = 'items'"
                                     ).fetchone()[0]

    def __enter__(self) -> LaggingWrite:
        self.writer = psycopg.connect(self.db.admin_dsn, autocommit=True)
        self.observer = self.db.admin()
        self.before = self.counted()
        self.writer.execute("SELECT count(*) FROM golden")  # flushes this backend's statistics now ...
        self.writer.execute(self.statement, self.params)  # ... so this statement's wait for about 10 s
        self.at = time.monotonic()
        assert self.counted() == self.before  # the statistics really lag behind the table
        return self

    def still_lagging(self) -> None:
        assert time.monotonic() - self.at < 5
        assert self.counted() == self.before, "statistics flushed meanwhile: the case was not reproduced"

    def __exit__(self, *exc) -> None:
        self.writer.close()  # a backend flushes its statistics when it exits
        self.observer.close()


@pytest.mark.parametrize("change", ["delete", "insert"])
def test_changes_not_yet_in_the_statistics_are_not_scored_against_stale_truth(pg18, tmp_path, change):
    """Delete every query's true neighbours (or insert a nearer row for each query) and probe within
    a second, before the writer's statistics are flushed (pg_stat_user_tables lags while the writing
    backend is idle): recall must match brute force over the rows there are now, not be scored
    against the stored neighbours. Deleted neighbours are found by the check of the stored rows,
    inserted ones by an approximate answer closer than the stored k-th neighbour (so this case runs
    with fresh approximate answers: stored ones predate the insert too, see the next test)."""
    db = new_database(pg18, ("vector",))
    data = clustered(ROWS + QUERIES, seed=5)
    items, golden = data[:ROWS], data[ROWS:]
    app_ef = 100  # enough candidates past the dead tuples of deleted rows: the truth stays high
    make_items(db, items, golden, m=16, ef_construction=64, app_ef=app_ef)
    c = Cycles(db, f"sqlite:///{tmp_path / 'stale.sqlite'}")
    c.overrides["vector"]["recall"]["ef_search_values"] = [app_ef]
    c.overrides["vector"]["recall"]["reuse_approximate"] = change == "delete"
    try:
        first = c.run()
        assert first.value(RECALL_EXACT_QUERIES_TOTAL.name, INDEX) == QUERIES
        alive = np.ones(ROWS, bool)
        if change == "delete":
            distances = np.linalg.norm(items[None, :, :].astype(np.float64) - golden[:, None, :], axis=2)
            neighbours = sorted({int(i) for row in distances for i in np.argsort(row)[:K]})
            alive[neighbours] = False
            statement, params = "DELETE FROM items WHERE id = ANY(%s)", [neighbours]
            counter = "n_tup_del"
        else:
            nearer = (golden + np.float32(1e-3)).astype(np.float32)
            items = np.concatenate([items, nearer])
            alive = np.ones(len(items), bool)
            statement = "INSERT INTO items (id, embedding) SELECT * FROM unnest(%s::int[], %s::vector[])"
            params = [list(range(ROWS, ROWS + QUERIES)), [vec_text(v) for v in nearer]]
            counter = "n_tup_ins"
        with lagging_write(db, statement, params, counter) as write:
            second = c.run()
            write.still_lagging()
        truth = mean_brute_force(db, items, alive, golden, app_ef)
        assert truth > 0.5
        reported = second.value(RECALL_MEAN_RATIO.name, point(app_ef))
        assert reported == pytest.approx(truth, abs=0.02), (reported, truth)
        assert second.value(RECALL_EXACT_STALE_TOTAL.name, INDEX) == QUERIES
        assert second.value(RECALL_EXACT_QUERIES_TOTAL.name, INDEX) == 2 * QUERIES
        assert second.value(RECALL_EXACT_CHECK_QUERIES_TOTAL.name, INDEX) == 1  # one statement per cycle
        # the recomputed truth is reused in the next cycle (nothing changed since)
        third = c.run()
        assert third.value(RECALL_MEAN_RATIO.name, point(app_ef)) == pytest.approx(truth, abs=0.02)
        assert third.value(RECALL_EXACT_STALE_TOTAL.name, INDEX) == QUERIES
    finally:
        c.close()


def test_approximate_answers_are_reused_while_the_table_and_index_are_unchanged(pg18, tmp_path):
    """reuse_approximate (the default): a repeat cycle on an unchanged table reruns no approximate
    query and reports the same values. A delete is seen at once (the answers' rows are checked by
    TID); an insert only once its statistics are flushed: that is the freshness it trades."""
    db = new_database(pg18, ("vector",))
    data = clustered(ROWS + QUERIES, seed=9)
    items, golden = data[:ROWS], data[ROWS:]
    app_ef = 40
    make_items(db, items, golden, m=16, ef_construction=64, app_ef=app_ef)
    c = Cycles(db, f"sqlite:///{tmp_path / 'answers.sqlite'}")
    c.overrides["vector"]["recall"]["ef_search_values"] = [10, app_ef]
    alive = np.ones(ROWS, bool)
    try:
        first = c.run()
        ran = first.value(RECALL_ANN_QUERIES_TOTAL.name, INDEX)
        assert ran == 2 * QUERIES and first.value(RECALL_ANN_REUSED_TOTAL.name, INDEX) == 0
        second = c.run()
        assert second.value(RECALL_ANN_QUERIES_TOTAL.name, INDEX) == ran  # none rerun
        assert second.value(RECALL_ANN_REUSED_TOTAL.name, INDEX) == 2 * QUERIES
        for value in (10, app_ef):
            assert second.value(RECALL_MEAN_RATIO.name, point(value)) == first.value(
                RECALL_MEAN_RATIO.name, point(value))
        # delete the nearest answer row of every query: those answers are rerun at once
        nearest = sorted({int(np.argmin(np.linalg.norm(items - q, axis=1))) for q in golden})
        alive[nearest] = False
        with lagging_write(db, "DELETE FROM items WHERE id = ANY(%s)", [nearest], "n_tup_del") as write:
            third = c.run()
            write.still_lagging()
        rerun = third.value(RECALL_ANN_QUERIES_TOTAL.name, INDEX) - ran
        assert 0 < rerun <= 2 * QUERIES
        assert third.value(RECALL_MEAN_RATIO.name, point(app_ef)) == pytest.approx(
            mean_brute_force(db, items, alive, golden, app_ef), abs=0.02)
        wait_counted(db, "n_tup_del", len(nearest))  # the writer has exited: the delete is counted
        settled = c.run()  # the counters moved: everything is rerun once
        ran = settled.value(RECALL_ANN_QUERIES_TOTAL.name, INDEX)
        # an insert not yet counted: the stored answers still stand (the traded freshness) ...
        nearer = (golden + np.float32(1e-3)).astype(np.float32)
        insert = "INSERT INTO items (id, embedding) SELECT * FROM unnest(%s::int[], %s::vector[])"
        with lagging_write(db, insert, [list(range(ROWS, ROWS + QUERIES)), [vec_text(v) for v in nearer]],
                           "n_tup_ins") as write:
            fourth = c.run()
            write.still_lagging()
        assert fourth.value(RECALL_ANN_QUERIES_TOTAL.name, INDEX) == ran
        # ... until the statistics count it: then everything is rerun
        wait_counted(db, "n_tup_ins", ROWS + QUERIES)
        fifth = c.run()
        assert fifth.value(RECALL_ANN_QUERIES_TOTAL.name, INDEX) == ran + 2 * QUERIES
        items = np.concatenate([items, nearer])
        alive = np.concatenate([alive, np.ones(QUERIES, bool)])
        assert fifth.value(RECALL_MEAN_RATIO.name, point(app_ef)) == pytest.approx(
            mean_brute_force(db, items, alive, golden, app_ef), abs=0.02)
    finally:
        c.close()


def test_an_answer_closer_than_the_stored_kth_neighbour_contradicts_it():
    truth = ExactResult((0.1, 0.2, 0.3), ("1:(0,1)", "1:(0,2)", "1:(0,3)"), 0.01)
    assert not contradicts([("1:(0,1)", 0.1), ("1:(0,2)", 0.2), ("1:(0,3)", 0.3)], truth, 3, 1e-6)
    assert not contradicts([("1:(0,1)", 0.1), ("1:(0,9)", 0.3)], truth, 3, 1e-6)  # a tie at the k-th: fine
    assert not contradicts([("1:(0,9)", 0.5)], truth, 3, 1e-6)  # farther: a miss, not a contradiction
    assert contradicts([("1:(0,9)", 0.05)], truth, 3, 1e-6)  # nearer than the k-th, unknown: stale
    # the exact search found fewer than k rows: any other row it returns is one the truth lacks
    assert contradicts([("1:(0,9)", 0.9)], ExactResult((0.1,), ("1:(0,1)",), 0.01), 3, 1e-6)
    assert contradicts([("1:(0,9)", 0.9)], ExactResult((), (), 0.01), 3, 1e-6)
