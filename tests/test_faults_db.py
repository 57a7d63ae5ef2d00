"""Faults and hostile input on the database side, against the real PostgreSQL servers.

Every case is bounded in time: outages are a few seconds to a minute, waits poll with deadlines.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import psycopg
import pytest
from prometheus_client import generate_latest

from collectors.base import CollectContext, CollectionTimeout
from collectors.pg_statements import PG_STATEMENT_CALLS_TOTAL
from collectors.registry import database_collector
from collectors.self_metrics import COLLECTOR_DISABLED, COLLECTOR_UP, TARGET_UNREACHABLE_REASON, UP
from monitor.config import Config
from monitor.embedded import LocalPostgres, free_port
from monitor.exposition import build_registry
from monitor.pg import DatabaseConnector
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import make_target, run_collector, wait_until

HOSTILE_OFF = "set_config('default_transaction_read_only', 'off', false) IS NOT NULL"


def add_audit(db):
    """The monitoring role holds one INSERT grant (as monitoring roles often do); a function inserts."""
    db.execute("CREATE TABLE audit (at timestamptz DEFAULT now())")
    db.execute(f"GRANT INSERT ON audit TO {MONITOR_ROLE}")
    db.execute("CREATE FUNCTION write_audit() RETURNS boolean LANGUAGE sql AS "
               "'INSERT INTO public.audit DEFAULT VALUES RETURNING true'")
    return db


@pytest.fixture
def writable(db18):
    """add_audit, and a small table with an HNSW index the ANN probe filters on."""
    add_audit(db18)
    db18.execute("CREATE TABLE items (id int PRIMARY KEY, tenant_id int, embedding vector(3))")
    db18.execute("INSERT INTO items SELECT i, i % 10, ARRAY[random(), random(), random()]::vector(3)"
                 " FROM generate_series(1, 200) i")
    db18.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
    db18.execute(f"GRANT SELECT ON items TO {MONITOR_ROLE}")
    return db18


def audit_rows(db) -> int:
    return db.execute("SELECT count(*) FROM audit")[0][0]


def test_hostile_filter_cannot_switch_read_only_off(writable):
    """filters[].where switching the session default read-write, then a filter that inserts."""
    overrides = {"max_connections": 1, "vector": {"ann_latency": {"queries": 2}, "filters": [
        {"name": "flip", "table": "items", "where": HOSTILE_OFF},
        {"name": "write", "table": "items", "where": "public.write_audit()"}]}}
    target = make_target(writable.monitor_dsn, **overrides)
    connector = DatabaseConnector(target)
    connector.open()
    try:
        for _ in range(3):  # the same pooled session every time (max_connections 1)
            ctx = CollectContext(target=target.name, settings=target, state={})
            with contextlib.suppress(Exception):  # the run may fail; what matters is what was written
                connector.run(database_collector("ann_latency")().collect, ctx, 10.0)
    finally:
        connector.close()
    assert audit_rows(writable) == 0


def _run_sql(connector: DatabaseConnector, target, statements: list[str]) -> list:
    def collect(ctx: CollectContext):
        out = []
        for statement in statements:
            try:
                with ctx.conn.transaction():  # a savepoint, as collectors use them
                    out.append(ctx.conn.execute(statement).fetchone())
            except psycopg.Error as exc:
                out.append(type(exc).__name__)
        return out
    return connector.run(collect, CollectContext(target=target.name, settings=target, state={}), 5.0)


def test_every_transaction_is_read_only_and_returned_sessions_are_reset(any_db):
    writable = add_audit(any_db)
    target = make_target(writable.monitor_dsn, max_connections=1, timeout="3s")
    connector = DatabaseConnector(target)
    connector.open()
    try:
        _run_sql(connector, target, [
            "SELECT set_config('default_transaction_read_only', 'off', false)",
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT set_config('application_name', 'evil', false)",
        ])
        _run_sql(connector, target, ["SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"])
        seen = _run_sql(connector, target, [
            "SELECT current_setting('transaction_read_only')",
            "SELECT current_setting('default_transaction_read_only')",
            "SELECT current_setting('application_name')",
            "SELECT set_config('transaction_read_only', 'off', true)",
            "INSERT INTO audit DEFAULT VALUES RETURNING 1",
            "SELECT public.write_audit()",
        ])
    finally:
        connector.close()
    assert seen[0] == ("on",) and seen[1] == ("on",) and seen[2] == ("vecmon",)
    assert seen[3:] == ["ActiveSqlTransaction", "ReadOnlySqlTransaction", "ReadOnlySqlTransaction"]
    assert audit_rows(writable) == 0


# -- a server of our own that these tests stop, restart and misconfigure ----------------------------

PASSWORD = "s3cret-Pa55"
INTERVAL = 2.0


@pytest.fixture(scope="module")
def own_server(pg_root):
    """An embedded PostgreSQL 18 only this module uses; a role with a password (scram) and one
    with pg_monitor only, a database without pg_stat_statements (so `statements` is disabled)."""
    server = LocalPostgres(pg_root / "faults")
    server.init()
    hba = server.data_dir / "pg_hba.conf"
    hba.write_text("host all pw_user 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    server.start()
    server.wait_ready()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {MONITOR_ROLE} LOGIN IN ROLE pg_monitor")
        conn.execute(f"CREATE ROLE pw_user LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_monitor")
        conn.execute("CREATE DATABASE faults")
    with psycopg.connect(server.dsn("faults"), autocommit=True) as conn:
        conn.execute("CREATE TABLE locked (id int)")
    yield server
    server.stop(mode="immediate")


def runtime_config(dsn: str, **target) -> Config:
    collectors = {name: {"enabled": False} for name in ("tables", "indexes", "server", "vector_indexes", "recall",
                                                        "ann_latency", "vector_freshness")}
    collectors.update({"connections": {"interval": INTERVAL}, "databases": {"interval": INTERVAL},
                       "statements": {"interval": INTERVAL}})
    return Config.model_validate({"databases": [{
        "name": "db", "dsn": dsn, "connect_timeout": "2s", "timeout": "2s", "lock_timeout": "500ms",
        "jitter": 0, "collectors": collectors, **target}]})


class WarningCounter(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if record.name.startswith(("monitor", "collectors")):
            self.records.append(record)


@pytest.fixture
def warnings_log():
    handler = WarningCounter()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if previous > logging.DEBUG else previous)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.parametrize("outage", [5.0, 45.0], ids=["short", "long"])
def test_outage_recovery_within_one_interval(own_server, outage, warnings_log):
    """Stop the database, keep it down for `outage` s, start it again: vecmon_up is 1 again within
    one collection interval of its return, whatever the outage's length; meanwhile the target-down
    cause is shown, one warning is logged (not one per run) and no collector is reported failing."""
    store = SnapshotStore()
    runtime = Runtime(runtime_config(own_server.dsn("faults", user=MONITOR_ROLE)), store)
    registry = build_registry(store, stale_after=300)
    up = lambda: store.target_up().get("db") is True  # noqa: E731
    down = lambda: store.target_up().get("db") is False  # noqa: E731
    runtime.start()
    try:
        wait_until(lambda: up() and not store.not_ready(), 30, "the first runs", interval=0.05)
        assert registry.get_sample_value(COLLECTOR_DISABLED.name, {"target": "db", "collector": "statements"}) == 1
        warnings_log.records.clear()
        own_server.stop(mode="fast")
        stopped = time.monotonic()
        wait_until(down, INTERVAL + 10, "vecmon_up=0", interval=0.05)
        time.sleep(max(0.0, outage - (time.monotonic() - stopped)))
        # while down: only the target is down; collectors keep their state (asserted below, after the
        # recovery figure, so the test prints it on any code)
        sample = lambda name, **labels: registry.get_sample_value(name, {"target": "db", **labels})  # noqa: E731
        seen = {"up": sample(UP.name), "reason": sample(TARGET_UNREACHABLE_REASON.name, reason="refused"),
                "statements_disabled": sample(COLLECTOR_DISABLED.name, collector="statements"),
                "statements_up": sample(COLLECTOR_UP.name, collector="statements"),
                "connections_up": sample(COLLECTOR_UP.name, collector="connections")}
        entry = {e.collector: e for e in store.entries()}["connections"]
        down_warnings = len(warnings_log.records)
        own_server.start()
        returned = time.monotonic()
        wait_until(up, 4 * INTERVAL + 120, "vecmon_up=1 after the database returned", interval=0.05)
        lag = time.monotonic() - returned
        print(f"outage {outage:.0f}s: {UP.name}=1 {lag}s after the database returned; "
              f"{down_warnings} warnings while down ({down_warnings / (returned - stopped) * 60:.1f}/min)")
        assert lag is not None and lag <= INTERVAL + 1.5, f"{UP.name}=1 only {lag}s after the database returned"
        assert down_warnings <= 2, [r.getMessage() for r in warnings_log.records]
        assert seen == {"up": 0, "reason": 1, "statements_disabled": 1, "statements_up": None, "connections_up": 1}
        assert entry.state == "target-down" and "Connection refused" in entry.last_error, entry
        wait_until(lambda: sample(TARGET_UNREACHABLE_REASON.name, reason="refused") is None, 1,
                   "the unreachable reason cleared", interval=0.05)
    finally:
        runtime.stop()
        if not own_server.running():
            own_server.start()


def test_target_down_at_start_comes_back(own_server):
    port = free_port()
    store = SnapshotStore()
    runtime = Runtime(runtime_config(f"host=127.0.0.1 port={port} dbname=faults user={MONITOR_ROLE}"), store)
    runtime.start()
    proxy = None
    try:
        wait_until(lambda: store.target_up().get("db") is False, INTERVAL + 5, "vecmon_up=0", interval=0.05)
        proxy = TcpForwarder(port, own_server.port)  # the "server" appears on the port
        appeared = time.monotonic()
        wait_until(lambda: store.target_up().get("db") is True, 4 * INTERVAL + 10, "vecmon_up=1", interval=0.05)
        lag = time.monotonic() - appeared
        assert lag is not None and lag <= INTERVAL + 1.5, lag
    finally:
        runtime.stop()
        if proxy:
            proxy.close()


class TcpForwarder:
    """A loopback TCP proxy to the real server (so a target can appear on a port that was refused)."""

    def __init__(self, port: int, to_port: int):
        self.to_port = to_port
        self.sock = socket.create_server(("127.0.0.1", port))
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.to_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self):
        self.closed = True
        self.sock.close()


class Blackhole:
    """A loopback listener that accepts connections and never answers (or never accepts)."""

    def __init__(self, accept: bool):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=0 if not accept else 16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        if not accept:  # fill the backlog so further handshakes go unanswered
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", self.port))
                self.held.append(s)
        else:
            threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        for s in self.held:
            s.close()
        self.sock.close()


def run_job(dsn: str, collector: str = "connections", **target) -> tuple[str, float, SnapshotStore]:
    config = runtime_config(dsn, **target)
    store = SnapshotStore()
    runtime = Runtime(config, store)
    job = next(j for j in runtime.jobs if j.collector.name == collector)
    store.expect(runtime.keys())
    started = time.monotonic()
    try:
        result = job.run()
    finally:
        runtime.stop()
    return result, time.monotonic() - started, store


@pytest.mark.parametrize("accept", [True, False], ids=["accepts-never-answers", "never-accepts"])
@pytest.mark.integration
def test_blackholed_target_fails_within_connect_timeout(accept):
    hole = Blackhole(accept)
    try:
        result, seconds, store = run_job(f"host=127.0.0.1 port={hole.port} dbname=x user=x")
    finally:
        hole.close()
    entry = {e.collector: e for e in store.entries()}["connections"]
    assert result == "error" and store.target_up()["db"] is False
    assert seconds < 2.0 + 1.5, f"took {seconds:.1f}s with connect_timeout 2s"
    assert store.target_reasons()["db"] == "timeout"
    assert "timeout" in entry.last_error and entry.state == "target-down"


def cause_cases(server: LocalPostgres) -> dict[str, tuple[str, str, str]]:
    """class -> (dsn, expected reason, a phrase the cause must contain)"""
    base = f"host=127.0.0.1 port={server.port}"
    return {
        "auth_failed": (f"{base} dbname=faults user=pw_user password=wrong-{PASSWORD}", "auth_failed",
                        "password authentication failed"),
        "refused": (f"host=127.0.0.1 port={free_port()} dbname=faults user=x", "refused", "Connection refused"),
        "dns": ("host=no-such-host.invalid port=5432 dbname=faults user=x", "dns", "no-such-host.invalid"),
        "database_missing": (f"{base} dbname=no_such_db user={MONITOR_ROLE}", "database_missing",
                             'database "no_such_db" does not exist'),
        "tls": (f"{base} dbname=faults user={MONITOR_ROLE} sslmode=require", "tls", "SSL"),
    }


@pytest.mark.parametrize("case", ["auth_failed", "refused", "dns", "database_missing", "tls"])
def test_cause_of_a_failed_connection_is_shown(own_server, case, warnings_log):
    dsn, reason, phrase = cause_cases(own_server)[case]
    result, seconds, store = run_job(dsn)
    entry = {e.collector: e for e in store.entries()}["connections"]
    registry = build_registry(store, stale_after=300)
    logged = " ".join(r.getMessage() for r in warnings_log.records)
    print(f"{case}: {entry.last_error}")
    assert result == "error" and seconds < 4
    assert phrase in entry.last_error and "couldn't get a connection" not in entry.last_error
    assert phrase in logged
    assert registry.get_sample_value(TARGET_UNREACHABLE_REASON.name, {"target": "db", "reason": reason}) == 1
    assert PASSWORD not in entry.last_error and PASSWORD not in logged
    assert PASSWORD.encode() not in generate_latest(registry)


def test_right_password_connects(own_server):
    result, _, store = run_job(f"host=127.0.0.1 port={own_server.port} dbname=faults user=pw_user",
                               password=PASSWORD)
    assert result == "success" and store.target_up()["db"] is True


def test_lock_on_a_monitored_table_ends_the_run_as_a_timeout(own_server):
    """An ACCESS EXCLUSIVE lock on a table `tables` sizes: the run waits at most lock_timeout and
    is recorded as a timeout, well within its statement timeout."""
    with psycopg.connect(own_server.dsn("faults")) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        result, seconds, store = run_job(own_server.dsn("faults", user=MONITOR_ROLE), "tables",
                                         collectors={"tables": {"interval": INTERVAL}})
        holder.rollback()
    entry = {e.collector: e for e in store.entries()}["tables"]
    assert result == "timeout", entry.last_error
    assert seconds < 0.5 + 1.5, f"run took {seconds:.1f}s with lock_timeout 500ms"
    assert "lock timeout" in entry.last_error and store.target_up()["db"] is True


def test_statement_timeout_bounds_a_run(own_server):
    target = make_target(own_server.dsn("faults", user=MONITOR_ROLE), timeout="1s", lock_timeout="500ms")
    connector = DatabaseConnector(target)
    connector.open()
    started = time.monotonic()
    try:
        with pytest.raises(CollectionTimeout):
            connector.run(lambda ctx: ctx.conn.execute("SELECT pg_sleep(30)"),
                          CollectContext(target="t", settings=target), 1.0)
    finally:
        connector.close()
    assert time.monotonic() - started < 1.0 + 2.0


# -- legacy server encodings -----------------------------------------------------------------------

CAFE_LATIN1 = b"caf\xe9"  # not UTF-8: a LATIN1 name
NAIVE_UTF8 = "naïve".encode()


@pytest.fixture
def legacy_db(own_server):
    """A SQL_ASCII database (the driver returns its names as bytes) with non-ASCII names: a LATIN1
    table and a UTF-8 one with a vector column and an HNSW index, a non-ASCII column. On this
    module's own server: its LATIN1 statement texts reach every database's pg_stat_statements."""
    pg18 = own_server
    name = f"legacy_{time.monotonic_ns()}"
    with psycopg.connect(pg18.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} WITH ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
        conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {MONITOR_ROLE}")
    with psycopg.connect(pg18.dsn(name), autocommit=True) as conn:
        for statement in (b"CREATE EXTENSION vector", b"CREATE EXTENSION pg_stat_statements",
                          b'CREATE TABLE "' + CAFE_LATIN1 + b'" (id int PRIMARY KEY, "r\xe9sum\xe9" text)',
                          b'INSERT INTO "' + CAFE_LATIN1 + b'" SELECT i, \'x\' FROM generate_series(1, 50) i',
                          b'CREATE TABLE "' + NAIVE_UTF8 + b'" (id int PRIMARY KEY, emb vector(3), at timestamptz)',
                          b'INSERT INTO "' + NAIVE_UTF8 + b'" SELECT i, ARRAY[random(), random(), random()]::vector(3),'
                          b' now() FROM generate_series(1, 300) i',
                          b'CREATE INDEX "' + NAIVE_UTF8 + b'_hnsw" ON "' + NAIVE_UTF8
                          + b'" USING hnsw (emb vector_l2_ops)',
                          b'ANALYZE', f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {MONITOR_ROLE}".encode()):
            conn.execute(statement)
    return pg18.dsn(name, user=MONITOR_ROLE)


def test_every_database_collector_runs_on_a_sql_ascii_database(legacy_db):
    overrides = {"vector": {"recall": {"sample_size": 5}, "ann_latency": {"queries": 2},
                            "freshness": [{"table": "public.naïve", "timestamp_column": "at"}]}}
    labels: set[str] = set()
    for name in database_collector.__globals__["DATABASE_COLLECTORS"]:
        families = run_collector(legacy_db, name, timeout=20, **overrides)
        text = families.text()  # renders: every label is valid text
        assert "b'" not in text and "\\x" not in text, f"{name}: {text[:500]}"
        labels |= {v for f in families.families for s in f.samples for v in s.labels.values()}
    assert {"café", "naïve", "naïve_hnsw"} <= labels, sorted(v for v in labels if not v.isascii())


def test_progress_names_a_latin1_table_of_a_sql_ascii_database(legacy_db, own_server):
    """The progress views come back as JSON text: a LATIN1 table name (not UTF-8) still reads as itself."""
    from collectors.pg_progress import PG_CREATE_INDEX_PROGRESS_RATIO

    dbname = psycopg.conninfo.conninfo_to_dict(legacy_db)["dbname"]
    errors: list[BaseException] = []

    def build() -> None:
        try:
            with psycopg.connect(own_server.dsn(dbname), autocommit=True) as conn:
                conn.execute(b'CREATE INDEX CONCURRENTLY "' + CAFE_LATIN1 + b'_r" ON "' + CAFE_LATIN1
                             + b'" ("r\xe9sum\xe9")')
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)

    with psycopg.connect(own_server.dsn(dbname)) as writer, psycopg.connect(own_server.dsn(dbname),
                                                                            autocommit=True) as observer:
        writer.execute(b'INSERT INTO "' + CAFE_LATIN1 + b'" (id) VALUES (-1)')  # the build waits for it
        builder = threading.Thread(target=build, daemon=True)
        builder.start()
        wait_until(lambda: observer.execute("SELECT count(*) FROM pg_stat_progress_create_index").fetchone()[0] == 1,
                   10, "the index build waiting for the writer")
        families = run_collector(legacy_db, "progress")
        writer.rollback()
    builder.join(timeout=30)
    assert not errors
    assert [s.labels["table"] for s in families.samples(PG_CREATE_INDEX_PROGRESS_RATIO.name)] == ["café"]
    assert "b'" not in families.text()


def test_statements_of_a_utf8_database_beside_a_sql_ascii_one(legacy_db, own_server):
    """pg_stat_statements is cluster-wide: reading the LATIN1 texts the legacy database left there
    fails in a UTF-8 database; the counters are still exported (vector_op unknown for such rows)."""
    name = f"neighbour_{time.monotonic_ns()}"
    with psycopg.connect(own_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(own_server.dsn(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("SELECT count(*) FROM pg_class")
    with psycopg.connect(legacy_db, autocommit=True) as conn:  # a fresh non-UTF-8 text, whatever ran before
        conn.execute(b'SELECT count(*) FROM "' + CAFE_LATIN1 + b'" WHERE id > 0')
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire), psycopg.connect(own_server.dsn(name)) as conn:
        conn.execute("SELECT query FROM pg_stat_statements").fetchall()
    families = run_collector(own_server.dsn(name, user=MONITOR_ROLE), "statements")
    assert families.samples(PG_STATEMENT_CALLS_TOTAL.name)


# -- what the monitoring role could write ----------------------------------------------------------

def test_write_capabilities_are_reported(writable, pg18, caplog):
    assert DatabaseConnector(make_target(new_database(pg18).monitor_dsn)).check_access().writes == []
    report = DatabaseConnector(make_target(writable.monitor_dsn)).check_access()
    assert report.reachable and report.writes == ["INSERT/UPDATE/DELETE/TRUNCATE on public.audit (INSERT)"]
    writable.execute(f"GRANT CREATE ON SCHEMA public TO {MONITOR_ROLE}")
    writable.execute(f"GRANT pg_write_all_data TO {MONITOR_ROLE}")
    try:
        writes = DatabaseConnector(make_target(writable.monitor_dsn)).check_access().writes
    finally:
        writable.execute(f"REVOKE pg_write_all_data FROM {MONITOR_ROLE}")
    assert writes[0] == "member of pg_write_all_data" and writes[-1] == "CREATE on schema public"
    assert DatabaseConnector(make_target(writable.admin_dsn)).check_access().writes == ["superuser"]
    with caplog.at_level(logging.WARNING, logger="monitor.pg"):  # and at start, once per connector
        run_collector(writable.monitor_dsn, "connections")
    assert "the monitoring role could write (INSERT/UPDATE/DELETE/TRUNCATE on public.audit (INSERT)" in caplog.text


def test_check_config_connect(own_server, write_config, capsys):
    from monitor.cli import main
    refused = free_port()
    path = write_config(f"""
databases:
  - name: ok
    dsn: "{own_server.dsn('faults', user=MONITOR_ROLE)}"
  - name: admin
    dsn: "{own_server.dsn('faults')}"
  - name: wrongpw
    dsn: "host=127.0.0.1 port={own_server.port} dbname=faults user=pw_user password=nope-{PASSWORD}"
    connect_timeout: 2s
  - name: gone
    dsn: "host=127.0.0.1 port={refused} dbname=faults user=x"
""")
    started = time.monotonic()
    assert main(["check-config", "-c", str(path), "--connect"]) == 1
    assert time.monotonic() - started < 10
    out = capsys.readouterr().out
    assert "ok: connected: PostgreSQL 18" in out
    assert "admin: warning: the monitoring role could write: superuser" in out
    assert "wrongpw: cannot connect (auth_failed):" in out
    assert 'password authentication failed for user "pw_user"' in out
    assert "gone: cannot connect (refused):" in out and "Connection refused" in out
    assert PASSWORD not in out and "ok: warning" not in out


@pytest.mark.parametrize("dsn, message", [
    ("host=db port=abc dbname=x", "invalid port 'abc' in dsn"),
    ("postgresql://u:hunter2@db:99999/x", "invalid port '99999' in dsn"),
    ("host=db,db2 port=5432,0 dbname=x", "invalid port '0' in dsn"),
    ("host=db dbname=x sslmode=requir", "unknown sslmode 'requir' in dsn"),
    ("postgresql://u:hunter2@db/x?sslmode=on", "unknown sslmode 'on' in dsn"),
    ("host=db dbname=x connect_timeout=5s", "invalid connect_timeout '5s' in dsn"),
])
def test_check_config_rejects_impossible_dsn_parts(write_config, capsys, dsn, message):
    from monitor.cli import main
    path = write_config(f'databases:\n  - name: app\n    dsn: "{dsn}"\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["check-config", "-c", str(path), "--connect"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"databases[0].dsn: {message}" in err, err
    assert "hunter2" not in err


def test_target_health_logs_state_changes_and_rare_reminders(caplog):
    from monitor.target_health import REMINDER_INTERVAL, TargetHealth

    now = [1000.0]
    health = TargetHealth("app", "db:5432/app", clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="monitor.pg"):
        health.up()  # the first contact: nothing to say
        for _ in range(599):  # ten minutes of runs every second
            health.down("refused", "cannot connect to db:5432/app: Connection refused")
            now[0] += 1
        health.up()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert REMINDER_INTERVAL == 300 and len(warnings) == 3, warnings  # down, one reminder (t=300 s), up
    assert warnings[0] == ("target app (db:5432/app) is down (refused): "
                           "cannot connect to db:5432/app: Connection refused")
    assert warnings[1].startswith("target app (db:5432/app) still down after 300s (refused)")
    assert warnings[-1] == "target app (db:5432/app) is up again after 599.0s down (last cause: refused)"
