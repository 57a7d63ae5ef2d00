"""Sessions kept between runs (monitor.sessions): reused, replaced when the server closed them,
reset only after SQL from the config, and no background thread per target. Real PostgreSQL."""

from __future__ import annotations

import threading

import psycopg

from collectors.base import CollectContext
from monitor.loader import parse_config
from monitor.pg import DatabaseConnector
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore
from monitor.workers import THREAD_CAP
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import make_target


def _backend(ctx: CollectContext) -> int:
    assert ctx.conn is not None
    return ctx.conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def _run(connector: DatabaseConnector, collect, reset: bool = False):
    ctx = CollectContext(target="t", settings=connector.target, state={})
    return connector.run(collect, ctx, 5.0, reset=reset)


def test_a_kept_session_is_reused_and_one_the_server_closed_is_replaced_without_a_failed_run(pg18):
    db = new_database(pg18)
    connector = DatabaseConnector(make_target(db.monitor_dsn))
    connector.open()
    try:
        first = _run(connector, _backend)
        assert _run(connector, _backend) == first  # the same session, no new connection
        with psycopg.connect(pg18.dsn(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
        replaced = _run(connector, _backend)  # the kept session is gone: replaced, the run succeeds
        assert replaced != first
        assert connector.health.is_up
    finally:
        connector.close()


def test_session_changes_from_a_run_do_not_survive_it(pg18):
    """Rolled back: settings; reset (runs with SQL from the config): session advisory locks too."""
    db = new_database(pg18)
    connector = DatabaseConnector(make_target(db.monitor_dsn, max_connections=1))
    connector.open()

    def hostile(ctx: CollectContext):
        ctx.conn.execute("SELECT set_config('statement_timeout', '0', false), pg_advisory_lock(4242)")
        return None

    def observe(ctx: CollectContext):
        return ctx.conn.execute("SELECT current_setting('statement_timeout'), "
                                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND pid = pg_backend_pid())").fetchone()

    try:
        _run(connector, hostile, reset=True)
        timeout, locks = _run(connector, observe)
        assert timeout != "0" and locks == 0
    finally:
        connector.close()


def test_many_database_targets_add_no_thread_per_target(pg15):
    """Before: a psycopg_pool pool per target, with a worker and a scheduler thread each, and a
    worker thread per target when runs overlap (69 threads more for 20 targets). Now the worker
    threads are capped (THREAD_CAP) and sessions are kept without threads."""
    dbs = [new_database(pg15) for _ in range(20)]
    off = ", ".join(f"{n}: {{enabled: false}}" for n in ("vector_indexes", "recall", "ann_latency",
                                                          "vector_freshness", "vector_bloat"))
    entries = "\n".join(f"  - {{name: t{i}, dsn: '{pg15.dsn(d.name, user=MONITOR_ROLE)}', collectors: {{{off}}}}}"
                        for i, d in enumerate(dbs))
    before = threading.active_count()
    runtime = Runtime(parse_config("databases:\n" + entries), SnapshotStore())
    try:
        results = runtime.run_once()
        during = threading.active_count()
    finally:
        runtime.stop()
    assert results and set(results.values()) <= {"success", "disabled"}, results
    assert ("t19", "tables") in results
    assert during - before <= THREAD_CAP + 2, f"{during - before} threads for 20 targets"
