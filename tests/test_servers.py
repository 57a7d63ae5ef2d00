"""Many databases on one server: cluster-wide collectors once per server, database-local ones per
database, one connection budget per server, database auto-discovery. Real PostgreSQL 15 and 18."""

from __future__ import annotations

import time

import psycopg
import pytest

from collectors.pg_connections import PG_CONNECTIONS_MAX
from collectors.pg_databases import PG_DATABASE_XACT_COMMIT_TOTAL
from collectors.pg_tables import PG_TABLE_LIVE_TUPLES
from monitor.daemon import Daemon
from monitor.exposition import SnapshotCollector
from monitor.loader import parse_config
from monitor.scheduler import Runtime
from monitor.servers import ServerRunner
from monitor.snapshot import SnapshotStore
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import wait_until

PG_ONLY = ("vector_indexes", "recall", "ann_latency", "vector_freshness", "vector_bloat")
OFF = ", ".join(f"{name}: {{enabled: false}}" for name in PG_ONLY)


def _entries(server, names, extra=""):
    return "\n".join(f"  - {{name: {n}, dsn: '{server.dsn(db, user=MONITOR_ROLE)}', collectors: {{{OFF}}}{extra}}}"
                     for n, db in names)


def _samples(store, name):
    families, _ = SnapshotCollector(store, 300).build(store.clock())
    return [s for f in families for s in f.samples if s.name == name]


def _sessions(server) -> int:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", [MONITOR_ROLE]).fetchone()[0]


def test_cluster_wide_series_once_per_server(any_pg):
    """Three targets of one server: pg_stat_database rows once (not three times), with a server
    label; tables per target. Before: 3 x the databases' rows, no server label."""
    dbs = [new_database(any_pg) for _ in range(3)]
    dbs[1].execute("CREATE TABLE t (id int)")
    config = parse_config("databases:\n" + _entries(any_pg, [(f"t{i}", d.name) for i, d in enumerate(dbs)]))
    store = SnapshotStore()
    runtime = Runtime(config, store)
    try:
        results = runtime.run_once()
    finally:
        runtime.stop()
    assert results[("t0", "databases")] == "success"
    servers = {id(job.connector.server): job.connector.server for job in runtime.jobs
               if isinstance(job.connector, ServerRunner)}.values()
    assert len(servers) == 1 and next(iter(servers)).system_identifier.isdigit()  # pg_monitor may read it
    assert ("t1", "databases") not in results and ("t2", "connections") not in results
    commits = _samples(store, PG_DATABASE_XACT_COMMIT_TOTAL.name)
    keys = [(s.labels["datname"], s.labels.get("server")) for s in commits]
    assert len(keys) == len(set(keys)), "a cluster-wide series is served twice"
    assert {s.labels["target"] for s in commits} == {"t0"}
    assert {s.labels["server"] for s in commits} == {f"127.0.0.1:{any_pg.port}"}
    assert {d.name for d in dbs} <= {s.labels["datname"] for s in commits}
    assert {s.labels["target"] for s in _samples(store, PG_TABLE_LIVE_TUPLES.name)} == {"t1"}
    assert "server" not in _samples(store, PG_TABLE_LIVE_TUPLES.name)[0].labels
    assert store.target_up() == {"t0": True, "t1": True, "t2": True}


def test_cluster_wide_jobs_move_when_their_database_is_dropped(pg15):
    first, second = new_database(pg15), new_database(pg15)
    config = parse_config("databases:\n" + _entries(pg15, [("a", first.name), ("b", second.name)]))
    store = SnapshotStore()
    runtime = Runtime(config, store)
    try:
        assert runtime.run_once()[("a", "connections")] == "success"
        with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {first.name} WITH (FORCE)")
        results = runtime.run_once()
    finally:
        runtime.stop()
    assert results[("a", "connections")] == "success"  # ran on b's database
    assert results[("a", "tables")] == "error"  # a's own database is gone
    assert store.target_up() == {"a": False, "b": True}
    datnames = {s.labels["datname"] for s in _samples(store, PG_DATABASE_XACT_COMMIT_TOTAL.name)}
    assert first.name not in datnames and second.name in datnames


def test_server_budget_bounds_sessions(pg15):
    """Six targets, server_max_connections 3: at most 3 sessions, none held between runs."""
    dbs = [new_database(pg15) for _ in range(6)]
    entries = _entries(pg15, [(f"b{i}", d.name) for i, d in enumerate(dbs)], ", server_max_connections: 3")
    config = parse_config("databases:\n" + entries)
    store = SnapshotStore()
    runtime = Runtime(config, store)
    peak = 0
    try:
        import threading

        done = threading.Event()
        thread = threading.Thread(target=lambda: (runtime.run_once(), done.set()), daemon=True)
        thread.start()
        while not done.wait(0.02):
            peak = max(peak, _sessions(pg15))
        results = runtime.store.entries()
        assert all(e.state in ("ok", "disabled") for e in results), [(e.key, e.last_error) for e in results
                                                                      if e.state not in ("ok", "disabled")]
        # unpooled: every run closed its session (backends exit just after)
        wait_until(lambda: _sessions(pg15) == 0, 3, "the sessions closed", interval=0.2)
    finally:
        runtime.stop()
    # a closed session's backend leaves pg_stat_activity a moment after the client closed it: +1
    assert 1 <= peak <= 3 + 1, peak


def test_default_budget_one_session_per_target(pg18):
    dbs = [new_database(pg18) for _ in range(4)]
    config = parse_config("databases:\n" + _entries(pg18, [(f"d{i}", d.name) for i, d in enumerate(dbs)]))
    runtime = Runtime(config, SnapshotStore())
    try:
        runtime.run_once()
        time.sleep(0.5)
        assert _sessions(pg18) <= 4  # before: 2 per target (8)
    finally:
        runtime.stop()


def test_discovery_follows_created_and_dropped_databases(any_pg, tmp_path):
    prefix = f"disc{any_pg.port}"
    with psycopg.connect(any_pg.dsn(), autocommit=True) as conn:
        for i in range(2):
            conn.execute(f"DROP DATABASE IF EXISTS {prefix}_{i}")
            conn.execute(f"CREATE DATABASE {prefix}_{i}")
    path = tmp_path / "vecmon.yaml"
    path.write_text(f"""
daemon: {{listen: "127.0.0.1:0"}}
databases:
  - name: fleet
    dsn: '{any_pg.dsn("postgres", user=MONITOR_ROLE)}'
    interval: 2s
    collectors: {{{OFF}}}
    discover: {{include: ["{prefix}_*", "template*"], exclude: ["{prefix}_9"], interval: 2s}}
""")
    from monitor.loader import load_config

    daemon = Daemon(load_config(path), path)
    targets = lambda: {e.target for e in daemon.store.entries()}  # noqa: E731
    serve = __import__("threading").Thread(target=daemon.serve_forever, daemon=True)
    daemon.start()
    serve.start()
    try:
        assert {f"fleet/{prefix}_0", f"fleet/{prefix}_1"} <= targets()
        assert not any("template" in t for t in targets())  # templates excluded by default
        with psycopg.connect(any_pg.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {prefix}_2")
            conn.execute(f"CREATE DATABASE {prefix}_9")
        created = time.monotonic()
        wait_until(lambda: f"fleet/{prefix}_2" in targets(), 10, "the created database", interval=0.2)
        appeared = time.monotonic() - created
        with psycopg.connect(any_pg.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {prefix}_0 WITH (FORCE)")
        dropped = time.monotonic()
        wait_until(lambda: f"fleet/{prefix}_0" not in targets(), 10, "the dropped database gone", interval=0.2)
        gone = time.monotonic() - dropped
        assert f"fleet/{prefix}_9" not in targets()
        assert appeared < 2 + 2 and gone < 2 + 2  # within one refresh interval (+ the rebuild)
        wait_until(lambda: _samples(daemon.store, PG_CONNECTIONS_MAX.name), 10, "the server's series", interval=0.2)
        servers = {(s.labels["target"], s.labels["server"]) for s in _samples(daemon.store, PG_CONNECTIONS_MAX.name)}
        assert servers == {("fleet", f"127.0.0.1:{any_pg.port}")}  # the entry's name: stable while databases change
        print(f"discovery: created database appeared after {appeared:.1f}s, dropped one gone after {gone:.1f}s")
    finally:
        daemon.request_stop()
        serve.join(timeout=15)
        with psycopg.connect(any_pg.dsn(), autocommit=True) as conn:
            for i in (0, 1, 2, 9):
                conn.execute(f"DROP DATABASE IF EXISTS {prefix}_{i} WITH (FORCE)")


def test_discover_needs_a_pattern():
    with pytest.raises(Exception, match="include needs at least one pattern"):
        parse_config("databases:\n  - {name: x, dsn: 'host=h dbname=postgres', discover: {include: []}}")


@pytest.mark.integration
def test_discovery_keeps_the_databases_listed_before_while_the_server_is_unreachable():
    from monitor.embedded import free_port
    from monitor.shared import SharedState

    config = parse_config(f"""
databases:
  - {{name: fleet, dsn: 'host=127.0.0.1 port={free_port()} dbname=postgres user=u', connect_timeout: 1s,
      timeout: 1s, collectors: {{{OFF}}}, discover: {{include: ["app_*"]}}}}
""")
    shared = SharedState()
    assert not {job.target.name for job in Runtime(config, SnapshotStore(), shared).jobs} - {"fleet"}
    shared.rediscovery.known["fleet"] = ["app_1", "app_2"]  # what an earlier listing found
    names = {job.target.name for job in Runtime(config, SnapshotStore(), shared).jobs}
    assert {"fleet/app_1", "fleet/app_2", "fleet"} == names
