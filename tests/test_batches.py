"""Batches (monitor.batches): a target's collectors of vecmon's own SQL with one schedule run in
one transaction, each with its own timeout and outcome. Real PostgreSQL."""

from __future__ import annotations

import re

import psycopg

from collectors.base import CollectContext, CollectionTimeout, CollectorDisabled, CollectorError
from monitor.batches import BatchJob
from monitor.loader import parse_config
from monitor.pg import DatabaseConnector
from monitor.scheduler import Runtime
from monitor.servers import ServerRunner
from monitor.snapshot import SnapshotStore
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import make_target


def _ctx(connector: DatabaseConnector) -> CollectContext:
    return CollectContext(target="t", settings=connector.target, state={})


def _transaction(ctx: CollectContext):
    assert ctx.conn is not None
    return ctx.conn.execute("SELECT pg_backend_pid(), now(), current_setting('statement_timeout')").fetchone()


def test_a_batch_runs_in_one_transaction_and_a_failure_costs_only_itself(pg18):
    db = new_database(pg18)
    connector = DatabaseConnector(make_target(db.monitor_dsn))
    connector.open()

    def bad_sql(ctx: CollectContext):
        ctx.conn.execute("SELECT * FROM no_such_table")

    def disabled(ctx: CollectContext):
        raise CollectorDisabled("not here")

    def slow(ctx: CollectContext):
        ctx.conn.execute("SELECT pg_sleep(5)")

    try:
        items = [(_transaction, _ctx(connector), 5.0), (_transaction, _ctx(connector), 7.0),
                 (disabled, _ctx(connector), 5.0), (_transaction, _ctx(connector), 5.0),
                 (bad_sql, _ctx(connector), 5.0), (_transaction, _ctx(connector), 5.0),
                 (slow, _ctx(connector), 0.3), (_transaction, _ctx(connector), 5.0)]
        outcomes = [outcome for outcome, _ in connector.run_batch(items)]
    finally:
        connector.close()
    first, second, off, third, failed, fourth, cancelled, fifth = outcomes
    assert first[0] == second[0] == third[0] == fourth[0] == fifth[0]  # one session
    assert first[1] == second[1] == third[1]  # one transaction, until the SQL error
    assert (first[2], second[2]) == ("5s", "7s")  # each its own statement_timeout
    assert isinstance(off, CollectorDisabled)
    assert isinstance(failed, CollectorError) and "no_such_table" in str(failed)
    assert fourth[1] != third[1]  # the error ended that transaction; the next one started a new one
    assert isinstance(cancelled, CollectionTimeout)
    assert fifth[1] != fourth[1] and fifth[2] == "5s"


def test_a_targets_collectors_with_one_schedule_are_one_job(pg15):
    """Before: one job and one transaction per collector (statements, indexes, tables... each their
    own BEGIN, timeouts, ROLLBACK and scheduler dispatch)."""
    db = new_database(pg15)
    off = ", ".join(f"{n}: {{enabled: false}}" for n in ("vector_indexes", "recall", "ann_latency",
                                                          "vector_freshness", "vector_bloat"))
    config = parse_config(f"databases:\n  - {{name: a, dsn: '{pg15.dsn(db.name, user=MONITOR_ROLE)}', "
                          f"collectors: {{{off}}}}}\n")
    store = SnapshotStore()
    runtime = Runtime(config, store)
    try:
        batches = [u for u in runtime.units if isinstance(u, BatchJob)]
        assert len(batches) == 2  # the database's own collectors, and the server's cluster-wide ones
        local, cluster = sorted(batches, key=lambda b: isinstance(b.connector, ServerRunner))
        assert {"connections", "databases", "activity"} <= {m.collector.name for m in cluster.members}
        names = {m.collector.name for m in local.members}
        assert {"tables", "indexes", "progress"} <= names and "wraparound_tables" not in names  # another schedule
        results = runtime.run_once()
    finally:
        runtime.stop()
    assert all(results[("a", name)] in ("success", "disabled") for name in names), results
    assert results[("a", "connections")] == results[("a", "databases")] == "success"
    assert store.entries() and all(e.last_run is not None for e in store.entries())


def _read_only_state(ctx: CollectContext):
    assert ctx.conn is not None
    row = ctx.conn.execute("SELECT current_setting('transaction_read_only'), current_setting('statement_timeout'),"
                           " now()").fetchone()
    try:
        ctx.conn.execute("CREATE TEMP TABLE written (id int)")
    except psycopg.errors.ReadOnlySqlTransaction:
        return (*row, "refused")
    return (*row, "written")


def test_a_batch_of_vecmons_own_sql_begins_read_only_in_its_first_round_trip(pg18, tmp_path):
    """BEGIN READ ONLY travels with the batch's first statement: two collectors of one statement
    each cost 4 round trips (open, 2, commit), not 5 (counted in libpq's protocol trace); the
    transaction is read-only all the same, with each collector's timeout. SQL from the config keeps
    psycopg's own BEGIN (a COMMIT in it starts a new read-only transaction)."""
    db = new_database(pg18)
    connector = DatabaseConnector(make_target(db.monitor_dsn))
    connector.open()
    trace = (tmp_path / "libpq.trace").open("w")

    def start_trace(ctx: CollectContext):
        ctx.conn.pgconn.trace(trace.fileno())  # stays on the kept session

    def one_statement(ctx: CollectContext):
        return ctx.conn.execute("SELECT 1").fetchone()

    def commit_then_write(ctx: CollectContext):  # what a hostile custom query could try
        ctx.conn.execute("COMMIT")
        return _read_only_state(ctx)

    def round_trips() -> int:  # a simple Query, or the Sync that ends an extended-protocol one
        trace.flush()
        lines = (tmp_path / "libpq.trace").read_text().splitlines()
        return sum(1 for line in lines if re.search(r"\tF\t\d+\t(Query|Sync)\b", line))

    try:
        connector.run_batch([(start_trace, _ctx(connector), 5.0)])
        for _ in range(3):  # the last in the steady state (a statement is prepared once, at its second run)
            before = round_trips()
            connector.run_batch([(one_statement, _ctx(connector), 5.0), (one_statement, _ctx(connector), 5.0)])
            batch = round_trips() - before
        own = [outcome for outcome, _ in connector.run_batch([(_read_only_state, _ctx(connector), 5.0),
                                                               (_read_only_state, _ctx(connector), 7.0)])]
        config = [outcome for outcome, _ in connector.run_batch([(commit_then_write, _ctx(connector), 5.0)],
                                                                 reset=True)]
    finally:
        connector.close()
        trace.close()
    assert batch == 4, (tmp_path / "libpq.trace").read_text()[-3000:]
    assert [o[0] for o in own] == ["on", "on"] and [o[3] for o in own] == ["refused", "refused"]
    assert (own[0][1], own[1][1]) == ("5s", "7s")
    assert config[0][0] == "on" and config[0][3] == "refused"


def _prepared_after_runs(db, **target) -> list[str]:
    connector = DatabaseConnector(make_target(db.monitor_dsn, **target))
    connector.open()

    def catalog_query(ctx: CollectContext):
        return ctx.conn.execute("SELECT count(*) FROM pg_class WHERE relkind = %s", ["r"]).fetchone()

    def prepared(ctx: CollectContext):
        return [r[0] for r in ctx.conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)]

    try:
        for _ in range(2):
            connector.run_batch([(catalog_query, _ctx(connector), 5.0)])
        return connector.run_batch([(prepared, _ctx(connector), 5.0)])[0][0]
    finally:
        connector.close()


def test_a_kept_session_plans_vecmons_queries_once(pg18):
    """psycopg forgets its prepared statements on every rollback(): batches that ended with one
    planned every query every interval (the progress query alone: 7 ms of planning per database).
    A read-only batch of vecmon's own SQL now ends with COMMIT (the same for a read-only
    transaction), so from their second run a kept session runs its queries prepared; behind a pooler that
    does not keep prepared statements, ``prepared_statements: false`` turns this off."""
    db = new_database(pg18)
    assert any("FROM pg_class WHERE relkind" in s for s in _prepared_after_runs(db))
    assert _prepared_after_runs(db, prepared_statements=False) == []


def test_prepared_statements_survive_a_reset_run_on_the_same_session(pg18):
    """A run of SQL from the config resets its session (DISCARD ALL drops the server's prepared
    statements): vecmon's own queries prepared on that session before must not fail after it."""
    db = new_database(pg18)
    connector = DatabaseConnector(make_target(db.monitor_dsn, max_connections=1))
    connector.open()

    def catalog_query(ctx: CollectContext):
        return ctx.conn.execute("SELECT count(*) FROM pg_class WHERE relkind = %s", ["r"]).fetchone()[0]

    def pid(ctx: CollectContext):
        return ctx.conn.execute("SELECT pg_backend_pid()").fetchone()[0]

    try:
        first = [connector.run_batch([(catalog_query, _ctx(connector), 5.0), (pid, _ctx(connector), 5.0)])
                 for _ in range(7)]
        connector.run_batch([(catalog_query, _ctx(connector), 5.0)], reset=True)
        after = [connector.run_batch([(catalog_query, _ctx(connector), 5.0), (pid, _ctx(connector), 5.0)])
                 for _ in range(7)]
    finally:
        connector.close()
    outcomes = [outcome for batch in first + after for outcome, _ in batch]
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert len({batch[1][0] for batch in first + after}) == 1  # one kept session throughout
