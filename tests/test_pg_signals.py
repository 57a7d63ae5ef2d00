"""The operator signals against real servers (PostgreSQL 18 embedded and Debian 15): WAL archiving,
pg_stat_wal, pg_stat_io, wraparound, long-running queries, lock waits, VACUUM/CREATE INDEX progress
and vector-table bloat.

Each test causes the situation for real (a failing archive_command, a statement that sleeps, a
lock held by another session, a throttled VACUUM, a CREATE INDEX CONCURRENTLY waiting for a
writer, deleted rows) and checks what the collector, run as ``vecmon_monitor`` (pg_monitor only)
exactly as the daemon runs it, reports. Background sessions are bounded (statement_timeout,
joins with a timeout) and cancelled at the end of each test.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from collectors.base import CollectorDisabled
from collectors.pg_activity import (
    PG_LOCK_WAITS,
    PG_LONG_RUNNING_QUERIES,
    PG_LONG_RUNNING_QUERY_THRESHOLD_SECONDS,
    PG_OLDEST_QUERY_AGE_SECONDS,
)
from collectors.pg_archiver import (
    PG_ARCHIVER_ARCHIVED_TOTAL,
    PG_ARCHIVER_ENABLED,
    PG_ARCHIVER_FAILED_TOTAL,
    PG_ARCHIVER_FAILING,
    PG_ARCHIVER_LAST_ARCHIVED_AGE_SECONDS,
    PG_ARCHIVER_LAST_FAILED_AGE_SECONDS,
    PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS,
    PG_ARCHIVER_PENDING_FILES,
)
from collectors.pg_io import PG_IO_BYTES_TOTAL, PG_IO_OPERATIONS_TOTAL, PG_IO_TIME_SECONDS_TOTAL
from collectors.pg_progress import (
    PG_CREATE_INDEX_PROGRESS_RATIO,
    PG_CREATE_INDEX_RUNNING_SECONDS,
    PG_MAINTENANCE_OPERATIONS,
    PG_VACUUM_DEAD_TUPLE_MEMORY_RATIO,
    PG_VACUUM_HEAP_SCANNED_RATIO,
    PG_VACUUM_INDEX_PASSES,
    PG_VACUUM_RUNNING_SECONDS,
)
from collectors.pg_wal import (
    PG_WAL_BUFFERS_FULL_TOTAL,
    PG_WAL_BYTES_TOTAL,
    PG_WAL_FULL_PAGE_IMAGES_TOTAL,
    PG_WAL_RECORDS_TOTAL,
)
from collectors.pg_wraparound import (
    PG_AUTOVACUUM_FREEZE_MAX_AGE,
    PG_DATABASE_FREEZE_AGE,
    PG_DATABASE_WRAPAROUND_RATIO,
    PG_TABLE_FREEZE_AGE,
)
from collectors.registry import DATABASE_COLLECTORS, DEFAULT_INTERVALS, database_collector
from collectors.vector_bloat import VECTOR_TABLE_BLOAT_BYTES, VECTOR_TABLE_BLOAT_RATIO
from monitor.embedded import LocalPostgres
from tests.conftest import MONITOR_ROLE, PG15_BIN, Database, new_database
from tests.helpers import Families, make_target, require_tool, run_collector, wait_until

TARGET = {"target": "t"}
SIGNAL_COLLECTORS = ("archiver", "wal", "io", "wraparound", "wraparound_tables", "activity", "progress",
                     "vector_bloat")


def val(families: Families, metric: str, /, **labels) -> float | None:
    return families.value(metric, {**TARGET, **labels})


@contextmanager
def background(db: Database, *statements: str, timeout_s: int = 60) -> Iterator[int]:
    """Run ``statements`` in another session (a thread) and yield its backend pid; on exit the session's
    statement is cancelled and the thread joined (bounded)."""
    conn = psycopg.connect(db.admin_dsn, autocommit=True)
    pid = conn.info.backend_pid
    conn.execute(f"SET statement_timeout = '{timeout_s}s'")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for statement in statements:
                conn.execute(statement)
        except psycopg.errors.QueryCanceled:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield pid
    finally:
        with psycopg.connect(db.admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
        thread.join(timeout=30)
        conn.close()
    assert not thread.is_alive(), "background statement did not end"
    assert not errors, errors


def activity(db: Database, pid: int) -> dict:
    with db.admin() as conn:
        row = conn.execute("SELECT state, wait_event_type, query FROM pg_stat_activity WHERE pid = %s",
                           (pid,)).fetchone()
    return {"state": row[0], "wait_event_type": row[1], "query": row[2]} if row else {}


# -- archiver -------------------------------------------------------------------------------------


@pytest.fixture(params=["pg18", "pg15"])
def archiving_db(request, pg_root) -> Iterator[Database]:
    """A server of its own with archive_mode = on and an archive_command that fails (exit 1)."""
    bin_dir = None
    if request.param == "pg15":
        require_tool(PG15_BIN / "postgres", "postgresql-15")
        bin_dir = PG15_BIN
    server = LocalPostgres(pg_root / f"archiving-{request.param}", bin_dir=bin_dir)
    server.init({"archive_mode": "on", "archive_command": "'exit 1'"})
    server.start()
    server.wait_ready()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {MONITOR_ROLE} LOGIN IN ROLE pg_monitor")
        yield new_database(server, extensions=())
    finally:
        server.stop(mode="immediate")


def switch_wal(db: Database) -> None:
    with db.admin() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS wal_filler (id int)")
        conn.execute("INSERT INTO wal_filler VALUES (1)")
        conn.execute("SELECT pg_switch_wal()")


def test_archiver_reports_failing_then_recovered_archiving(archiving_db):
    db = archiving_db
    switch_wal(db)
    failing = wait_until(lambda: (f := run_collector(db.monitor_dsn, "archiver"))
                         and val(f, PG_ARCHIVER_FAILED_TOTAL.name) and f)
    assert failing, "the failing archive_command was never reported"
    assert val(failing, PG_ARCHIVER_ENABLED.name) == 1
    assert val(failing, PG_ARCHIVER_FAILING.name) == 1
    assert val(failing, PG_ARCHIVER_ARCHIVED_TOTAL.name) == 0
    assert val(failing, PG_ARCHIVER_PENDING_FILES.name) >= 1
    assert 0 <= val(failing, PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name) < 60
    assert 0 <= val(failing, PG_ARCHIVER_LAST_FAILED_AGE_SECONDS.name) < 60
    assert val(failing, PG_ARCHIVER_LAST_ARCHIVED_AGE_SECONDS.name) is None  # never archived
    assert "exit 1" not in failing.text()  # the archive command is never exported

    archive = Path(db.server.data_dir).parent / f"{db.server.data_dir.name}-wal-archive"
    archive.mkdir(exist_ok=True)
    archive.chmod(0o777)
    with db.admin() as conn:
        conn.execute("ALTER SYSTEM SET archive_command = " + sql.quote(f"cp %p {archive}/%f"))
        conn.execute("SELECT pg_reload_conf()")
    switch_wal(db)
    recovered = wait_until(lambda: (f := run_collector(db.monitor_dsn, "archiver"))
                           and val(f, PG_ARCHIVER_PENDING_FILES.name) == 0
                           and val(f, PG_ARCHIVER_FAILING.name) == 0 and f, timeout=30)
    assert recovered, "archiving did not recover after fixing archive_command"
    assert val(recovered, PG_ARCHIVER_ARCHIVED_TOTAL.name) >= 2
    assert 0 <= val(recovered, PG_ARCHIVER_LAST_ARCHIVED_AGE_SECONDS.name) < 60
    assert val(recovered, PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name) == 0
    assert val(recovered, PG_ARCHIVER_FAILED_TOTAL.name) >= val(failing, PG_ARCHIVER_FAILED_TOTAL.name)


def test_archiver_disabled_archiving_reads_zero(any_db):
    families = run_collector(any_db.monitor_dsn, "archiver")
    assert val(families, PG_ARCHIVER_ENABLED.name) == 0  # the shared test servers do not archive
    assert val(families, PG_ARCHIVER_FAILING.name) == 0
    assert val(families, PG_ARCHIVER_PENDING_FILES.name) == 0


# -- pg_stat_wal and pg_stat_io -------------------------------------------------------------------


def test_wal_counters_grow_with_writes(any_db):
    before = run_collector(any_db.monitor_dsn, "wal")
    with any_db.admin() as conn:
        conn.execute("CREATE TABLE w (id int, body text)")
        conn.execute("INSERT INTO w SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g")
        conn.execute("CHECKPOINT")
        conn.execute("UPDATE w SET id = id + 1")  # first change after a checkpoint: full-page images
        conn.execute("SELECT pg_stat_force_next_flush()")
    after = run_collector(any_db.monitor_dsn, "wal")
    for metric in (PG_WAL_RECORDS_TOTAL.name, PG_WAL_FULL_PAGE_IMAGES_TOTAL.name):
        assert val(after, metric) > val(before, metric), metric
    assert val(after, PG_WAL_BYTES_TOTAL.name) - val(before, PG_WAL_BYTES_TOTAL.name) > 2000 * 100
    assert val(after, PG_WAL_BUFFERS_FULL_TOTAL.name) >= val(before, PG_WAL_BUFFERS_FULL_TOTAL.name)


def test_io_operations_bytes_and_time_on_pg18(pg18):
    db = new_database(pg18, extensions=())
    with db.admin() as conn:
        conn.execute("CREATE TABLE r (id int, body text)")
        conn.execute("INSERT INTO r SELECT g, repeat('y', 200) FROM generate_series(1, 5000) g")
        conn.execute("SELECT count(*) FROM r")
        conn.execute("SELECT pg_stat_force_next_flush()")
    families = run_collector(db.monitor_dsn, "io")
    client = {"backend_type": "client backend", "object": "relation", "context": "normal"}
    assert val(families, PG_IO_OPERATIONS_TOTAL.name, **client, op="hit") > 0
    with db.admin() as conn:
        pages = conn.execute("SELECT pg_relation_size('r') / 8192").fetchone()[0]
    assert val(families, PG_IO_BYTES_TOTAL.name, **client, op="extend") >= pages * 8192
    # reads, writes and extends count blocks before 18 and calls from 18: bytes only
    assert {s.labels["op"] for s in families.samples(PG_IO_OPERATIONS_TOTAL.name)} <= {
        "hit", "eviction", "reuse", "writeback", "fsync"}
    # track_io_timing is on in the test servers, track_wal_io_timing is off: no WAL times
    assert val(families, PG_IO_TIME_SECONDS_TOTAL.name, **client, op="extend") is not None
    wal_times = [s for s in families.samples(PG_IO_TIME_SECONDS_TOTAL.name) if s.labels["object"] == "wal"]
    assert wal_times == []
    assert any(s.labels["object"] == "wal" for s in families.samples(PG_IO_OPERATIONS_TOTAL.name))
    # rows with no I/O at all are left out
    with db.admin() as conn:
        possible = conn.execute("SELECT count(*) FROM pg_stat_io").fetchone()[0]
    emitted = {(s.labels["backend_type"], s.labels["object"], s.labels["context"])
               for s in families.samples(PG_IO_OPERATIONS_TOTAL.name)}
    assert 0 < len(emitted) < possible


def test_io_disabled_before_16(pg15):
    db = new_database(pg15, extensions=())
    with pytest.raises(CollectorDisabled, match=r"pg_stat_io needs PostgreSQL 16 or later \(server is 15\."):
        run_collector(db.monitor_dsn, "io")


# -- wraparound -----------------------------------------------------------------------------------


def test_wraparound_database_ages_and_limits(any_db):
    with any_db.admin() as conn:
        earlier = conn.execute("SELECT age(datfrozenxid) FROM pg_database WHERE datname = %s",
                               (any_db.name,)).fetchone()[0]
    families = run_collector(any_db.monitor_dsn, "wraparound")
    with any_db.admin() as conn:
        later = conn.execute("SELECT age(datfrozenxid) FROM pg_database WHERE datname = %s",
                             (any_db.name,)).fetchone()[0]
    age = val(families, PG_DATABASE_FREEZE_AGE.name, datname=any_db.name, kind="xid")
    assert earlier <= age <= later
    assert val(families, PG_DATABASE_WRAPAROUND_RATIO.name, datname=any_db.name, kind="xid") == \
        pytest.approx(age / 2 ** 31)
    assert val(families, PG_DATABASE_FREEZE_AGE.name, datname="template0", kind="multixact") is not None
    assert val(families, PG_AUTOVACUUM_FREEZE_MAX_AGE.name, kind="xid") == 200_000_000
    assert val(families, PG_AUTOVACUUM_FREEZE_MAX_AGE.name, kind="multixact") == 400_000_000


def test_wraparound_tables_ranks_the_oldest_unfrozen_table_first(any_db):
    def age_of(conn: psycopg.Connection, table: str) -> int:
        return conn.execute("SELECT age(relfrozenxid) FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]

    with any_db.admin() as conn:
        conn.execute("CREATE TABLE old_rows (id int) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO old_rows VALUES (1)")
        for _ in range(30):  # consume transaction IDs
            conn.execute("SELECT txid_current()")
        conn.execute("CREATE TABLE young_rows (id int)")
        conn.execute("INSERT INTO young_rows VALUES (1)")
        # freeze everything else (the catalogs copied from template1 are as old as old_rows); the shared
        # catalogs freeze only up to the oldest snapshot of the cluster: wait out older ones elsewhere
        wait_until(lambda: conn.execute(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND greatest(age(backend_xmin), "
            "age(backend_xid)) >= (SELECT age(relfrozenxid) FROM pg_class WHERE oid = 'old_rows'::regclass)"
        ).fetchone()[0], 30, "no snapshot older than old_rows in the cluster")
        others = conn.execute("SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ') FROM pg_class c "
                              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') "
                              "AND c.relname <> 'old_rows'").fetchone()[0]
        conn.execute(f"VACUUM (FREEZE) {others}")
        before = age_of(conn, "old_rows")
    families = run_collector(any_db.monitor_dsn, "wraparound_tables", limits={"tables": 3})
    with any_db.admin() as conn:
        after = age_of(conn, "old_rows")
    xid = [s for s in families.samples(PG_TABLE_FREEZE_AGE.name) if s.labels["kind"] == "xid"]
    assert len(xid) == 3  # bounded by limits.tables
    top = max(xid, key=lambda s: s.value)
    assert (top.labels["schema"], top.labels["table"]) == ("public", "old_rows"), [(s.labels, s.value) for s in xid]
    assert before >= 30 and before <= top.value <= after
    young = val(families, PG_TABLE_FREEZE_AGE.name, schema="public", table="young_rows", kind="xid")
    assert young is None or young < 30


# -- activity -------------------------------------------------------------------------------------


def test_activity_counts_long_running_queries_over_the_threshold(any_db):
    with background(any_db, "SELECT pg_sleep(20)") as pid:
        wait_until(lambda: activity(any_db, pid).get("state") == "active"
                        and "pg_sleep" in activity(any_db, pid)["query"])
        time.sleep(1.3)
        families = run_collector(any_db.monitor_dsn, "activity", long_running_threshold="1s")
        relaxed = run_collector(any_db.monitor_dsn, "activity", long_running_threshold="1m")
    assert val(families, PG_LONG_RUNNING_QUERY_THRESHOLD_SECONDS.name) == 1
    assert val(families, PG_LONG_RUNNING_QUERIES.name, datname=any_db.name) == 1
    assert 1.3 <= val(families, PG_OLDEST_QUERY_AGE_SECONDS.name, datname=any_db.name) < 20
    assert val(relaxed, PG_LONG_RUNNING_QUERIES.name, datname=any_db.name) == 0
    assert val(relaxed, PG_LONG_RUNNING_QUERY_THRESHOLD_SECONDS.name) == 60
    after = run_collector(any_db.monitor_dsn, "activity", long_running_threshold="1s")
    assert val(after, PG_LONG_RUNNING_QUERIES.name, datname=any_db.name) == 0
    assert val(after, PG_OLDEST_QUERY_AGE_SECONDS.name, datname=any_db.name) == 0


def test_activity_lock_waits_by_mode(any_db):
    any_db.execute("CREATE TABLE locked (id int)")
    with any_db.admin(autocommit=False) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        with background(any_db, "SELECT * FROM locked") as pid:
            wait_until(lambda: activity(any_db, pid).get("wait_event_type") == "Lock")
            families = run_collector(any_db.monitor_dsn, "activity")
        holder.rollback()
    assert val(families, PG_LOCK_WAITS.name, mode="AccessShareLock") == 1
    modes = {s.labels["mode"]: s.value for s in families.samples(PG_LOCK_WAITS.name)}
    assert len(modes) == 8 and sum(modes.values()) == 1
    after = run_collector(any_db.monitor_dsn, "activity")
    assert val(after, PG_LOCK_WAITS.name, mode="AccessShareLock") == 0


def test_long_running_threshold_is_a_typed_setting():
    assert make_target("host=x", long_running_threshold="2m").long_running_threshold == 120
    assert make_target("host=x").long_running_threshold == 30  # the seeds' long-running query check
    with pytest.raises(Exception, match="long_running_threshold"):
        make_target("host=x", long_running_threshold="soon")


# -- progress -------------------------------------------------------------------------------------


def progress_rows(db: Database, view: str) -> int:
    with db.admin() as conn:
        return conn.execute(f"SELECT count(*) FROM {view} WHERE datname = current_database()").fetchone()[0]


def test_progress_of_a_throttled_vacuum(any_db):
    with any_db.admin() as conn:
        conn.execute("CREATE TABLE churn (id int, body text) WITH (autovacuum_enabled = off)")
        conn.execute("INSERT INTO churn SELECT g, repeat('z', 200) FROM generate_series(1, 20000) g")
        conn.execute("DELETE FROM churn WHERE id % 2 = 0")
    # every page costs at least 1 against a limit of 1: VACUUM sleeps 100 ms+ per page (about 600 pages)
    with background(any_db, "SET vacuum_cost_delay = 100", "SET vacuum_cost_limit = 1", "VACUUM churn"):
        wait_until(lambda: progress_rows(any_db, "pg_stat_progress_vacuum") == 1)
        time.sleep(1.1)
        families = run_collector(any_db.monitor_dsn, "progress")
    labels = {"schema": "public", "table": "churn", "vector": "false", "autovacuum": "false"}
    assert val(families, PG_MAINTENANCE_OPERATIONS.name, command="vacuum", vector="false") == 1
    assert val(families, PG_MAINTENANCE_OPERATIONS.name, command="create_index", vector="false") == 0
    scanned = [s for s in families.samples(PG_VACUUM_HEAP_SCANNED_RATIO.name)]
    assert len(scanned) == 1 and scanned[0].labels["phase"] == "scanning heap"
    assert 0 < scanned[0].value < 0.5
    assert val(families, PG_VACUUM_INDEX_PASSES.name, **labels) == 0
    assert 0 <= val(families, PG_VACUUM_DEAD_TUPLE_MEMORY_RATIO.name, **labels) < 1
    assert 1.1 <= val(families, PG_VACUUM_RUNNING_SECONDS.name, **labels) < 60
    after = run_collector(any_db.monitor_dsn, "progress")
    assert val(after, PG_MAINTENANCE_OPERATIONS.name, command="vacuum", vector="false") == 0
    assert after.samples(PG_VACUUM_RUNNING_SECONDS.name) == []


@contextmanager
def concurrent_index_waiting(db: Database, statement: str) -> Iterator[None]:
    """``statement`` (CREATE INDEX CONCURRENTLY) waits for an open writing transaction of another session."""
    with db.admin(autocommit=False) as writer:
        writer.execute("INSERT INTO items (id) VALUES (-1)")
        with background(db, statement):
            wait_until(lambda: progress_rows(db, "pg_stat_progress_create_index") == 1)
            yield
        writer.rollback()


def test_progress_of_create_index_concurrently(any_db):
    any_db.execute("CREATE TABLE items (id int, body text)")
    with concurrent_index_waiting(any_db, "CREATE INDEX CONCURRENTLY items_body ON items (body)"):
        families = run_collector(any_db.monitor_dsn, "progress")
    ratio = families.samples(PG_CREATE_INDEX_PROGRESS_RATIO.name)
    assert len(ratio) == 1
    assert ratio[0].labels["command"] == "CREATE INDEX CONCURRENTLY"
    assert ratio[0].labels["phase"].startswith("waiting for")
    assert ratio[0].labels["vector"] == "false"
    assert ratio[0].labels["index"] in ("items_body",) or ratio[0].labels["index"].startswith("oid ")
    assert val(families, PG_MAINTENANCE_OPERATIONS.name, command="create_index", vector="false") == 1
    assert [s.value >= 0 for s in families.samples(PG_CREATE_INDEX_RUNNING_SECONDS.name)] == [True]


def test_progress_marks_vector_tables(db18):
    db18.execute("CREATE TABLE items (id int, embedding vector(3))")
    db18.execute("INSERT INTO items SELECT g, ARRAY[g, g, g]::vector FROM generate_series(1, 100) g")
    with concurrent_index_waiting(db18, "CREATE INDEX CONCURRENTLY items_hnsw ON items USING hnsw "
                                        "(embedding vector_l2_ops)"):
        families = run_collector(db18.monitor_dsn, "progress")
    assert val(families, PG_MAINTENANCE_OPERATIONS.name, command="create_index", vector="true") == 1
    assert val(families, PG_MAINTENANCE_OPERATIONS.name, command="create_index", vector="false") == 0
    assert [s.labels["vector"] for s in families.samples(PG_CREATE_INDEX_PROGRESS_RATIO.name)] == ["true"]


# -- vector bloat ---------------------------------------------------------------------------------


def bloat(families: Families) -> dict[tuple[str, str], tuple[str, float, float]]:
    result = {}
    for sample in families.samples(VECTOR_TABLE_BLOAT_RATIO.name):
        key = (sample.labels["schema"], sample.labels["table"])
        size = val(families, VECTOR_TABLE_BLOAT_BYTES.name, **{k: v for k, v in sample.labels.items()
                                                                   if k != "target"})
        result[key] = (sample.labels["method"], sample.value, size)
    return result


def test_vector_bloat_statistics_then_pgstattuple(db18):
    db18.execute("CREATE TABLE items (id bigint, embedding vector(16)) WITH (autovacuum_enabled = off)")
    db18.execute("CREATE TABLE plain (id bigint)")
    db18.execute("INSERT INTO items SELECT g, array_fill(g::real, ARRAY[16])::vector FROM generate_series(1, 6000) g")
    # rows over the TOAST threshold keep their vectors out of line (pgvector's types are EXTERNAL)
    db18.execute("CREATE TABLE large (id bigint, embedding vector(1024))")
    db18.execute("INSERT INTO large SELECT g, array_fill(g::real, ARRAY[1024])::vector FROM generate_series(1, 1000) g")
    db18.execute("VACUUM ANALYZE items")
    db18.execute("VACUUM ANALYZE large")
    fresh = bloat(run_collector(db18.monitor_dsn, "vector_bloat"))
    assert set(fresh) == {("public", "items"), ("public", "large")}  # tables without a vector column: none
    for table in ("items", "large"):
        method, ratio, _ = fresh[("public", table)]
        # widths from the types: bigint 8, vector(16) 72 bytes, vector(1024) an 18-byte TOAST pointer
        assert method == "statistics" and ratio < 0.05, (table, ratio)

    db18.execute("DELETE FROM items WHERE id % 3 <> 0")
    db18.execute("VACUUM items")
    method, ratio, size = bloat(run_collector(db18.monitor_dsn, "vector_bloat"))[("public", "items")]
    assert method == "statistics" and 0.6 < ratio < 0.72 and size > 0

    db18.execute("CREATE EXTENSION pgstattuple")
    method, ratio, size = bloat(run_collector(db18.monitor_dsn, "vector_bloat"))[("public", "items")]
    assert method == "pgstattuple_approx" and 0.6 < ratio < 0.72 and size > 0


def test_vector_bloat_unknown_width_gives_no_statistics_estimate(db18):
    db18.execute("CREATE TABLE docs (id bigint, body text, embedding vector(4))")
    db18.execute("INSERT INTO docs SELECT g, 'chunk', '[1,2,3,4]' FROM generate_series(1, 500) g")
    db18.execute("ANALYZE docs")
    # pg_stats hides the text column's width from a pg_monitor-only role
    assert bloat(run_collector(db18.monitor_dsn, "vector_bloat")) == {}
    db18.execute(f"GRANT SELECT ON docs TO {MONITOR_ROLE}")
    assert bloat(run_collector(db18.monitor_dsn, "vector_bloat"))[("public", "docs")][0] == "statistics"


def test_vector_bloat_disabled_without_pgvector(any_db):
    with pytest.raises(CollectorDisabled, match=f"pgvector is not installed in database {any_db.name}"):
        run_collector(any_db.monitor_dsn, "vector_bloat")


# -- registry, declarations, exposition -----------------------------------------------------------


@pytest.mark.parametrize("collector", SIGNAL_COLLECTORS)
def test_signal_collectors_declare_scope_and_follow_naming_rules(collector):
    cls = database_collector(collector)
    assert cls.name == collector and collector in DATABASE_COLLECTORS
    assert cls.scope in ("server", "database") and f'scope = "{cls.scope}"' in cls.__doc__
    prefix = "vecmon_vector_" if collector.startswith("vector_") else "vecmon_pg_"
    for spec in cls.METRICS:
        assert spec.name.startswith(prefix), spec.name
        assert len(spec.help) > 20 and spec.help[0].isupper() and spec.help.endswith("."), spec.name
        assert (spec.kind == "counter") == spec.name.endswith("_total"), spec.name


def test_bloat_estimate_runs_slowly_by_default():
    # pgstattuple_approx reads every page that is not all-visible; as slow as the recall probe, not slower
    # (the longest default interval sets VecmonCollectorStale's threshold)
    assert DEFAULT_INTERVALS["vector_bloat"] == DEFAULT_INTERVALS["recall"] == 600


def test_exposition_passes_promtool_check_metrics(db18, tmp_path):
    promtool = require_tool("promtool", "prometheus")
    db18.execute("CREATE TABLE items (id bigint, embedding vector(16))")
    db18.execute("INSERT INTO items SELECT g, array_fill(1::real, ARRAY[16])::vector FROM generate_series(1, 100) g")
    db18.execute("ANALYZE items")
    text = "".join(run_collector(db18.monitor_dsn, name).text() for name in SIGNAL_COLLECTORS)
    assert VECTOR_TABLE_BLOAT_RATIO.name in text and PG_IO_OPERATIONS_TOTAL.name in text
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (result.stdout + result.stderr).strip() == ""
