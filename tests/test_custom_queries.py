"""Custom SQL queries (``queries:``), postgres_exporter's queries.yaml (``--extend.query-path``),
collector switches and the query-exporter importer, against real PostgreSQL 15 and 18.

Queries run exactly as the daemon runs them: a CollectionJob per (query, target) through the
target's DatabaseConnector (read-only transaction, the query's statement_timeout).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from collectors.custom_queries import (
    QUERY_ROWS,
    QUERY_SKIPPED_VALUES,
    QUERY_TRUNCATED,
    CustomQueryCollector,
    go_duration_ms,
    version_in,
)
from collectors.self_metrics import COLLECTOR_UP, UP
from collectors.settings.custom_queries import version_bound
from monitor.cli_overrides import ConfigOverrides, UsageError, split_collector_switches
from monitor.config_queries import plans_for_target, query_target
from monitor.jobs import CollectionJob
from monitor.loader import ConfigError, load_config, parse_config
from monitor.pg import DatabaseConnector
from monitor.pgexporter_queries import parse_semver_range, plans_from_text
from monitor.snapshot import SnapshotStore
from tests.conftest import Database, new_database
from tests.helpers import Families, require_tool

ROOT = Path(__file__).resolve().parent.parent


def config_text(db: Database, queries: str, extra: str = "") -> str:
    return (f"databases:\n  - name: app\n    dsn: '{db.monitor_dsn}'\n    timeout: 5s\n{extra}"
            f"queries:\n{queries}")


def run_queries(config, target_name: str = "app") -> tuple[dict[str, str], dict[str, object], Families]:
    """Run every custom query job of one target once; (result per query, store entry per query, families)."""
    target = next(t for t in config.databases if t.name == target_name)
    connector = DatabaseConnector(target)
    connector.open()
    store = SnapshotStore()
    try:
        jobs = [CollectionJob(query_target(target, plan), CustomQueryCollector(plan), connector, store)
                for plan in plans_for_target(config, target)]
        store.expect([job.key for job in jobs])
        results = {job.collector.name: job.run() for job in jobs}
    finally:
        connector.close()
    entries = {e.collector: e for e in store.entries()}
    return results, entries, Families([f for e in store.entries() for f in e.families])


def orders_table(db: Database) -> None:
    db.execute("CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric, note text)")
    db.execute("INSERT INTO orders VALUES (1, 'open', 10.5, '1'), (2, 'open', 4.5, 'x'), (3, 'paid', 7, NULL),"
               " (4, NULL, 1, '2')")
    db.execute("GRANT SELECT ON orders TO vecmon_monitor")


# -- vecmon's own queries ---------------------------------------------------------------------------

def test_custom_query_gauges_counters_labels(any_db):
    orders_table(any_db)
    config = parse_config(config_text(any_db, """
  - name: orders
    sql: SELECT coalesce(status, 'none') AS status, count(*) AS open, sum(total) AS amount
         FROM orders GROUP BY 1 ORDER BY 1
    labels: [status]
    metrics:
      - {column: open, type: gauge, help: Orders by status.}
      - {column: amount, type: counter, help: Order value by status., name: order_amount}
"""))
    results, _, families = run_queries(config)
    assert results == {"query:orders": "success"}
    assert families.value("vecmon_custom_orders_open", {"target": "app", "status": "open"}) == 2
    assert families.value("vecmon_custom_orders_open", {"target": "app", "status": "none"}) == 1
    assert families.value("vecmon_custom_order_amount_total", {"target": "app", "status": "open"}) == 15.0
    assert "# TYPE vecmon_custom_order_amount_total counter" in families.text()
    assert "# HELP vecmon_custom_orders_open Orders by status." in families.text()


def test_bad_values_are_skipped_with_a_warning_and_other_rows_served(any_db, caplog):
    orders_table(any_db)
    config = parse_config(config_text(any_db, """
  - name: notes
    sql: SELECT id::text AS id, note AS value, total FROM orders ORDER BY id
    labels: [id]
    metrics:
      - {column: value, type: gauge, help: The note as a number.}
      - {column: total, type: gauge, help: The total.}
"""))
    with caplog.at_level(logging.WARNING, logger="collectors.custom_queries"):
        results, _, families = run_queries(config)
    assert results == {"query:notes": "success"}
    value = lambda i: families.value("vecmon_custom_notes_value", {"target": "app", "id": str(i)})  # noqa: E731
    assert (value(1), value(2), value(3), value(4)) == (1.0, None, None, 2.0)  # 'x' and NULL skipped
    assert [families.value("vecmon_custom_notes_total", {"target": "app", "id": str(i)}) for i in (1, 2, 3, 4)] \
        == [10.5, 4.5, 7.0, 1.0]  # the other column of the same rows is still served
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "queries[0] (notes)" in warning and "column value: skipped 2 value(s)" in warning
    assert families.value(QUERY_SKIPPED_VALUES.name, {"target": "app", "query": "notes", "column": "value"}) == 2
    assert families.value(QUERY_SKIPPED_VALUES.name, {"target": "app", "query": "notes", "column": "total"}) == 0
    assert "NULL: 1" in warning and "text: 1" in warning and "'x'" not in warning  # values are not logged


def test_100k_rows_are_capped_at_the_row_limit(any_db, caplog):
    config = parse_config(config_text(any_db, """
  - name: big
    sql: SELECT g::text AS n, g AS v FROM generate_series(1, 100000) g
    labels: [n]
    row_limit: 500
    metrics:
      - {column: v, type: gauge, help: Row number.}
"""))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="collectors.custom_queries"):
        results, entries, families = run_queries(config)
    elapsed = time.monotonic() - start
    print(f"100k-row query capped at 500 rows in {elapsed:.3f}s "
          f"(job {entries['query:big'].last_duration:.3f}s)")
    assert results == {"query:big": "success"}
    assert len(families.samples("vecmon_custom_big_v")) == 500
    assert families.value(QUERY_ROWS.name, {"target": "app", "query": "big"}) == 500
    assert families.value(QUERY_TRUNCATED.name, {"target": "app", "query": "big"}) == 1
    assert "more than 500 rows (row_limit)" in caplog.text
    assert elapsed < 10


def test_query_past_its_timeout_is_cancelled(any_db):
    config = parse_config(config_text(any_db, """
  - name: slow
    sql: SELECT 1 AS v FROM pg_sleep(30)
    timeout: 500ms
    metrics:
      - {column: v, type: gauge, help: Never.}
  - name: quick
    sql: SELECT 1 AS v
    metrics:
      - {column: v, type: gauge, help: Always.}
"""))
    start = time.monotonic()
    results, entries, families = run_queries(config)
    elapsed = time.monotonic() - start
    print(f"pg_sleep(30) with timeout 500ms ended after {entries['query:slow'].last_duration:.3f}s")
    assert results == {"query:slow": "timeout", "query:quick": "success"}
    assert "statement timeout" in entries["query:slow"].last_error
    assert entries["query:slow"].last_duration < 3 and elapsed < 10
    assert families.value("vecmon_custom_quick_v", {"target": "app"}) == 1


def test_a_query_that_writes_fails_because_the_transaction_is_read_only(any_db):
    orders_table(any_db)
    any_db.execute("GRANT INSERT, UPDATE ON orders TO vecmon_monitor")  # privilege is not what stops it
    config = parse_config(config_text(any_db, """
  - name: sneaky
    sql: INSERT INTO orders VALUES (99, 'evil', 0, NULL) RETURNING id AS v
    metrics:
      - {column: v, type: gauge, help: Never.}
  - name: stacked
    sql: SELECT 1 AS v; COMMIT; UPDATE orders SET total = 0 RETURNING 1 AS v
    metrics:
      - {column: v, type: gauge, help: Never.}
  - name: cte
    sql: WITH w AS (UPDATE orders SET total = 0 RETURNING 1 AS v) SELECT v FROM w
    metrics:
      - {column: v, type: gauge, help: Never.}
"""))
    results, entries, _ = run_queries(config)
    assert results == {"query:sneaky": "error", "query:stacked": "error", "query:cte": "error"}
    assert "cannot execute INSERT in a read-only transaction" in entries["query:sneaky"].last_error
    assert "in a read-only transaction" in entries["query:cte"].last_error  # PG names it SELECT
    assert "multiple commands" in entries["query:stacked"].last_error
    assert any_db.execute("SELECT count(*), sum(total) FROM orders") == [(4, 23)]


def test_predicate_and_server_version_gate_the_query(any_db):
    version = int(any_db.execute("SHOW server_version_num")[0][0])
    major = version // 10000
    config = parse_config(config_text(any_db, f"""
  - name: gated_off
    sql: SELECT 1 AS v
    predicate: SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'no_such_extension')
    metrics: [{{column: v, type: gauge, help: x}}]
  - name: gated_on
    sql: SELECT 1 AS v
    predicate: SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
    metrics: [{{column: v, type: gauge, help: x}}]
  - name: too_new
    sql: SELECT 1 AS v
    min_server_version: {major + 1}
    metrics: [{{column: v, type: gauge, help: x}}]
  - name: too_old
    sql: SELECT 1 AS v
    max_server_version: {major - 1}
    metrics: [{{column: v, type: gauge, help: x}}]
  - name: this_major
    sql: SELECT 1 AS v
    min_server_version: {major}
    max_server_version: {major}
    metrics: [{{column: v, type: gauge, help: x}}]
"""))
    results, entries, families = run_queries(config)
    assert results == {"query:gated_off": "disabled", "query:gated_on": "success", "query:too_new": "disabled",
                       "query:too_old": "disabled", "query:this_major": "success"}
    assert "predicate returned False" in entries["query:gated_off"].last_error
    assert f"is outside >={major + 1}.0" in entries["query:too_new"].last_error


def test_scope_server_runs_once_per_server(pg18):
    first, second = new_database(pg18, ()), new_database(pg18, ())
    config = parse_config(f"""
databases:
  - {{name: one, dsn: '{first.monitor_dsn}'}}
  - {{name: two, dsn: '{second.monitor_dsn}'}}
queries:
  - name: uptime
    scope: server
    sql: SELECT extract(epoch FROM now() - pg_postmaster_start_time()) AS seconds
    metrics: [{{column: seconds, type: gauge, help: Server uptime.}}]
  - name: dbsize
    sql: SELECT pg_database_size(current_database()) AS bytes
    metrics: [{{column: bytes, type: gauge, help: Size.}}]
""")
    assert [p.name for p in plans_for_target(config, config.databases[0])] == ["uptime", "dbsize"]
    assert [p.name for p in plans_for_target(config, config.databases[1])] == ["dbsize"]
    results, _, families = run_queries(config, "two")
    assert results == {"query:dbsize": "success"}
    assert families.value("vecmon_custom_dbsize_bytes", {"target": "two"}) > 0


# -- config errors ------------------------------------------------------------------------------------

def test_config_errors_are_located(tmp_path):
    (tmp_path / "q.yaml").write_text("vecmon:\n  query: SELECT 1 AS up\n  metrics:\n    - up: {usage: GAUGE}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config("""
databases:
  - {name: app, host: h, dbname: d}
queries:
  - name: a
    sql: SELECT 1
    labels: [target]
    metrics: [{column: v, type: gauge, help: x}]
  - name: b
    sql: SELECT 1
    metrics: [{column: v, type: histogram, help: x}]
  - name: c
    sql: SELECT 1
    min_server_version: fifteen
    metrics: [{column: v, type: gauge, help: ''}]
""")
    text = str(caught.value)
    assert "line 7: queries[0].labels: label 'target' is reserved" in text
    assert "line 11: queries[1].metrics[0].type: Input should be 'gauge' or 'counter'" in text
    assert "line 14: queries[2].min_server_version: invalid server version 'fifteen'" in text
    assert "queries[2].metrics[0].help" in text
    with pytest.raises(ConfigError) as caught:
        parse_config(f"""
databases:
  - {{name: app, host: h, dbname: d}}
extend_query_path: {tmp_path / 'q.yaml'}
queries:
  - {{name: a, sql: SELECT 1, targets: [nope], metrics: [{{column: v, type: gauge, help: x}}]}}
  - {{name: a, sql: SELECT 1, metrics: [{{column: w, type: gauge, help: x}}]}}
""")
    text = str(caught.value)
    assert "queries[0] (a): unknown database target(s) nope" in text
    assert "queries[1] (a): query name 'a' is already used by queries[0] (a)" in text
    assert f"q.yaml: vecmon: metric {UP.name} collides with vecmon's own metrics" in text


def test_queries_yaml_errors_name_file_and_line(tmp_path):
    text = "pg_a:\n  query: SELECT 1\n  metrics:\n    - x:\n        usage: GAUGEE\n    - y:\n        usage: GAUGE\n" \
           "pg_b:\n  metrics: []\n"
    with pytest.raises(ValueError) as caught:
        plans_from_text(text, "queries.yaml")
    message = str(caught.value)
    assert "queries.yaml:5: pg_a.metrics[0].x.usage: Input should be 'DISCARD'" in message
    assert "queries.yaml:8: pg_b.query: Field required" in message
    assert "queries.yaml:9: pg_b.metrics: List should have at least 1 item" in message


def test_version_parsing():
    assert version_bound("16", upper=True) == 169999 and version_bound(14, upper=False) == 140000
    assert version_bound("9.6", upper=False) == 90600 and version_bound(160002, upper=True) == 160002
    ranges = parse_semver_range(">=10.0.0 <13.0.0 || >=15")
    assert [version_in(ranges, v) for v in (90624, 100000, 120017, 130000, 150004, 180001)] == \
        [False, True, True, False, True, True]
    assert version_in(parse_semver_range("<9.2.0"), 90100) and not version_in(parse_semver_range("<9.2.0"), 90200)
    assert version_in(parse_semver_range("15.x"), 150004) and not version_in(parse_semver_range("15.x"), 160000)
    assert [go_duration_ms(t) for t in ("1h2m3.5s", "150ms", "0", "-2s", "30", "abc")] == \
        [3723500.0, 150.0, 0.0, -2000.0, None, None]


# -- postgres_exporter's queries.yaml ---------------------------------------------------------------

QUERIES_YAML = """\
pg_orders:
  query: |
    SELECT current_database() AS datname, coalesce(status, 'none') AS status,
           count(*) AS orders, sum(total) AS amount, max(id) AS last_id
    FROM orders GROUP BY 1, 2
  master: true
  metrics:
    - datname:
        usage: "LABEL"
        description: "Name of current database"
    - status:
        usage: "LABEL"
        description: "Order status"
    - orders:
        usage: "GAUGE"
        description: "Orders by status"
    - amount:
        usage: "COUNTER"
        description: "Order value by status"
    - last_id:
        usage: "DISCARD"
        description: "not exported"
pg_settings_custom:
  query: "SELECT current_setting('statement_timeout') AS statement_timeout, 'on' AS fsync_mode"
  cache_seconds: 60
  metrics:
    - statement_timeout:
        usage: "DURATION"
        description: "statement_timeout of the monitoring session"
    - fsync_mode:
        usage: "MAPPEDMETRIC"
        description: "fsync as a number"
        metric_mapping:
          "on": 1
          "off": 0
pg_postmaster:
  query: "SELECT pg_postmaster_start_time() AS start_time_seconds"
  master: true
  metrics:
    - start_time_seconds:
        usage: "GAUGE"
        description: "Time at which postmaster started"
"""
EXPECTED_NAMES = {"pg_orders_orders", "pg_orders_amount", "pg_settings_custom_statement_timeout_milliseconds",
                  "pg_settings_custom_fsync_mode", "pg_postmaster_start_time_seconds"}


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def _disable_builtin() -> list[str]:
    from collectors.registry import DATABASE_COLLECTORS

    return [f"--no-collector.{name}" for name in DATABASE_COLLECTORS]


def test_queries_yaml_unchanged_with_extend_query_path(any_db, tmp_path):
    orders_table(any_db)
    (tmp_path / "queries.yaml").write_text(QUERIES_YAML)
    config = tmp_path / "vecmon.yaml"
    config.write_text(f"databases:\n  - name: app\n    dsn: '{any_db.monitor_dsn}'\n    timeout: 5s\n")
    result = _cli("collect", "-c", str(config), "--extend.query-path", str(tmp_path / "queries.yaml"),
                  *_disable_builtin())
    assert result.returncode == 0, result.stderr
    families = {f.name: f for f in text_string_to_metric_families(result.stdout)}
    assert set(families) >= EXPECTED_NAMES
    assert not any(name.startswith("pg_orders_last_id") for name in families)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("pg_orders_orders", (("datname", any_db.name), ("status", "open"), ("target", "app")))] == 2
    assert samples[("pg_orders_amount", (("datname", any_db.name), ("status", "open"), ("target", "app")))] == 15
    assert samples[("pg_settings_custom_statement_timeout_milliseconds", (("target", "app"),))] == 5000
    assert samples[("pg_settings_custom_fsync_mode", (("target", "app"),))] == 1
    assert families["pg_orders_amount"].type == "unknown"  # untyped: a counter type would add _total
    assert "# TYPE pg_orders_amount untyped" in result.stdout
    assert f'{COLLECTOR_UP.name}{{collector="query:pg_orders",target="app"}} 1.0' in result.stdout
    print("postgres_exporter names produced:", sorted(n for n in families if n.startswith("pg_")))


def scrape_postgres_exporter(dsn: str, queries: Path) -> str:
    """One scrape of Debian's prometheus-postgres-exporter (0.11.1) running ``queries``."""
    exporter = require_tool("prometheus-postgres-exporter", "prometheus-postgres-exporter")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATA_SOURCE_NAME": dsn + " sslmode=disable"}
    proc = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:{port}", "--disable-default-metrics",
                             "--disable-settings-metrics", f"--extend.query-path={queries}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
                if "pg_exporter_user_queries_load_error" in text:
                    return text
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("postgres_exporter did not answer within 20s")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def labels_by_name(exposition: str, namespaces: tuple[str, ...], ignore: str) -> dict[str, set[str]]:
    """Metric name -> label names (without postgres_exporter's ``server`` / vecmon's ``target``)."""
    return {f.name: {label for s in f.samples for label in s.labels} - {ignore}
            for f in text_string_to_metric_families(exposition) if f.name.startswith(namespaces)}


def vecmon_collect(dsn: str, queries: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "vecmon.yaml"
    config.write_text(f"databases:\n  - name: app\n    dsn: '{dsn}'\n")
    return _cli("collect", "-c", str(config), "--extend.query-path", str(queries), *_disable_builtin())


def test_names_match_the_real_postgres_exporter(pg15, tmp_path):
    """The Debian prometheus-postgres-exporter (0.11.1) reading the same queries.yaml: same names."""
    db = new_database(pg15, ())
    orders_table(db)
    queries = tmp_path / "queries.yaml"
    queries.write_text(QUERIES_YAML)
    namespaces = ("pg_orders", "pg_settings_custom", "pg_postmaster")
    theirs = labels_by_name(scrape_postgres_exporter(db.monitor_dsn, queries), namespaces, "server")
    result = vecmon_collect(db.monitor_dsn, queries, tmp_path)
    assert result.returncode == 0, result.stderr
    ours = labels_by_name(result.stdout, namespaces, "target")
    print("postgres_exporter:", sorted(theirs), "vecmon:", sorted(ours))
    # 0.11.1 cannot convert MAPPEDMETRIC text from lib/pq ("Unexpected error parsing column ... fsync_mode on")
    assert set(theirs) == EXPECTED_NAMES - {"pg_settings_custom_fsync_mode"}
    assert set(ours) == EXPECTED_NAMES
    assert all(ours[name] == labels for name, labels in theirs.items())  # same labels, target for server


DEBIAN_EXAMPLE = Path("/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml")


def test_the_debian_example_queries_yaml_gives_postgres_exporters_names(pg15, tmp_path):
    """The queries.yaml Debian ships with postgres_exporter, unchanged: the same metric names and labels.

    Its pg_stat_statements query reads columns PostgreSQL 13 renamed, so it fails in both."""
    require_tool(DEBIAN_EXAMPLE, "prometheus-postgres-exporter")
    db = new_database(pg15, ())
    db.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")  # an index and a TOAST table: no NULLs
    db.execute("INSERT INTO docs VALUES (1, 'x')")
    namespaces = tuple(yaml.safe_load(DEBIAN_EXAMPLE.read_text()))
    with db.admin() as idle:  # an idle session, so pg_process_idle has a row in both runs
        idle.execute("SELECT 1")
        theirs = labels_by_name(scrape_postgres_exporter(db.monitor_dsn, DEBIAN_EXAMPLE), namespaces, "server")
        result = vecmon_collect(db.monitor_dsn, DEBIAN_EXAMPLE, tmp_path)
    assert result.returncode == 1 and "app/query:pg_stat_statements failed" in result.stderr
    ours = labels_by_name(result.stdout, namespaces, "target")
    print(f"{len(theirs)} names from postgres_exporter, {len(ours)} from vecmon; only theirs: "
          f"{sorted(set(theirs) - set(ours))}, only ours: {sorted(set(ours) - set(theirs))}")
    assert len(theirs) >= 25 and "pg_stat_user_tables_seq_scan" in theirs and "pg_process_idle_seconds" in theirs
    assert ours == theirs


# -- collector switches --------------------------------------------------------------------------------

@pytest.mark.integration
def test_collector_switches_override_the_config(tmp_path):
    path = tmp_path / "vecmon.yaml"
    path.write_text("databases:\n  - {name: a, host: h, dbname: d, collectors: {statements: {enabled: true},"
                    " recall: {enabled: false, interval: 5m}}}\n  - {name: b, host: h, dbname: e}\n")
    argv, switches = split_collector_switches(["check-config", "--no-collector.statements", "-c", str(path),
                                               "--collector.recall"])
    assert argv == ["check-config", "-c", str(path)]
    config = load_config(path, overrides=ConfigOverrides(None, switches))
    for target in config.databases:
        assert "statements" not in target.enabled_collectors() and "recall" in target.enabled_collectors()
    assert config.databases[0].interval_for("recall") == 300  # the rest of the file's settings stay
    with pytest.raises(UsageError, match="unknown collector 'stat_statement'.*known: .*ann_latency"):
        split_collector_switches(["run", "--collector.stat_statement"])
    def collector_jobs(*args: str) -> int:
        result = _cli("check-config", "-c", str(path), *args)
        assert result.returncode == 0, result.stderr
        return int(re.search(r"(\d+) (?:database )?collector job", result.stdout).group(1))

    full = collector_jobs()
    assert collector_jobs("--no-collector.statements", "--no-collector.tables") == full - 4  # 2 targets x 2
    assert collector_jobs("--no-collector.recall") == full - 1  # the file already disables it on a
    assert collector_jobs("--collector.recall") == full + 1  # and the switch enables it there
    wrong = _cli("check-config", "-c", str(path), "--no-collector.nope")
    assert wrong.returncode == 2 and "unknown collector 'nope'" in wrong.stderr


@pytest.mark.integration
def test_reload_keeps_command_line_overrides(tmp_path):
    from monitor.daemon import Daemon

    (tmp_path / "q.yaml").write_text(QUERIES_YAML)
    path = tmp_path / "vecmon.yaml"
    path.write_text("daemon: {listen: '127.0.0.1:0'}\ndatabases:\n  - {name: a, host: 127.0.0.1, port: 1, dbname: d}\n")
    overrides = ConfigOverrides(str(tmp_path / "q.yaml"), (("statements", False),))
    daemon = Daemon(load_config(path, overrides=overrides), path, overrides=overrides)
    daemon.start()
    try:
        assert daemon.reload()
        assert daemon.config.extend_query_path is not None
        assert "statements" not in daemon.config.databases[0].enabled_collectors()
        assert "a/query:pg_orders" in {job.job_id for job in daemon.runtime.jobs}
    finally:
        daemon.stop()


# -- query-exporter import ------------------------------------------------------------------------------

def query_exporter_config(db: Database) -> str:
    url = f"postgresql+psycopg2://vecmon_monitor:hunter2@127.0.0.1:{db.server.port}/{db.name}"
    return f"""\
databases:
  app:
    dsn: {url}
    labels: {{region: eu}}
  warehouse:
    dsn: mysql://user:secret@mysql.example/shop
metrics:
  orders_open:
    type: gauge
    description: Open orders by status
    labels: [status]
  orders_amount:
    type: counter
    description: Order value by status
    labels: [status]
  order_size:
    type: histogram
    buckets: [1, 10]
queries:
  orders:
    interval: 30s
    timeout: 2
    databases: [app]
    metrics: [orders_open, orders_amount, order_size]
    sql: |
      SELECT coalesce(status, 'none') AS status, count(*) AS orders_open, sum(total) AS orders_amount
      FROM orders GROUP BY 1
  shop:
    databases: [warehouse]
    metrics: [orders_open]
    sql: SELECT 1 AS orders_open, 'x' AS status
  per_param:
    databases: [app]
    metrics: [orders_open]
    sql: SELECT :n AS orders_open, 'x' AS status
    parameters: [{{n: 1}}]
"""


def test_import_query_exporter(any_db, tmp_path):
    orders_table(any_db)
    source = tmp_path / "query-exporter.yaml"
    source.write_text(query_exporter_config(any_db))
    result = _cli("import", "query-exporter", str(source))
    assert result.returncode == 0, result.stderr
    output = result.stdout
    print(f"--- input\n{source.read_text()}--- output\n{output}")
    data = yaml.safe_load(output)
    assert [d["name"] for d in data["databases"]] == ["app"]
    assert data["databases"][0]["dsn"].startswith("postgresql://")
    assert "secret" not in output and "hunter2" not in output
    assert "database warehouse: left out, mysql is not PostgreSQL" in output
    assert "order_size (histogram) left out" in output and "query per_param: left out, parameters" in output
    assert "orders_amount -> vecmon_custom_orders_amount_total" in output
    assert data["databases"][0]["password"] == "${VECMON_APP_PASSWORD}"
    imported = tmp_path / "vecmon.yaml"
    imported.write_text(output)
    config = load_config(imported, env={"VECMON_APP_PASSWORD": "hunter2"})  # trust auth: any password works
    assert [q.name for q in config.queries] == ["orders"]
    results, _, families = run_queries(config)
    assert results == {"query:orders": "success"}
    assert families.value("vecmon_custom_orders_open", {"target": "app", "status": "open"}) == 2
    assert families.value("vecmon_custom_orders_amount_total", {"target": "app", "status": "open"}) == 15


@pytest.mark.integration
def test_import_moves_a_password_out_of_the_file(tmp_path):
    source = tmp_path / "qe.yaml"
    (tmp_path / "q.sql").write_text("SELECT 1 AS up\n")
    source.write_text("databases:\n  db-1:\n    dsn: postgresql://mon:s3cret@db.example:5433/app?sslmode=require\n"
                      "  db2:\n    dsn: !env DB2_DSN\nmetrics:\n  up: {type: gauge}\nqueries:\n"
                      "  q:\n    databases: [db-1, db2]\n    metrics: [up]\n    sql: !file q.sql\n"
                      "    schedule: '*/5 * * * *'\n")
    result = _cli("import", "query-exporter", str(source))
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert data["databases"][0] == {"name": "db-1", "dsn": "postgresql://mon@db.example:5433/app?sslmode=require",
                                    "password": "${VECMON_DB_1_PASSWORD}"}
    assert data["databases"][1] == {"name": "db2", "dsn": "${DB2_DSN}"}
    assert data["queries"][0]["sql"] == "SELECT 1 AS up"
    assert "s3cret" not in result.stdout and "set VECMON_DB_1_PASSWORD" in result.stdout
    assert "schedule '*/5 * * * *' (cron) is not supported" in result.stdout
    env = {"VECMON_DB_1_PASSWORD": "x", "DB2_DSN": "postgresql://h/d"}
    (tmp_path / "v.yaml").write_text(result.stdout)
    assert load_config(tmp_path / "v.yaml", env=env).queries[0].metrics[0].column == "up"
    missing = _cli("import", "query-exporter", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "nope.yaml" in missing.stderr


def test_queries_yaml_histogram_and_version_ranges(any_db, tmp_path):
    version = int(any_db.execute("SHOW server_version_num")[0][0])
    major = version // 10000
    (tmp_path / "queries.yaml").write_text(f"""\
pg_sizes:
  query: "SELECT ARRAY[1, 10, 100]::float8[] AS size, ARRAY[2, 5, 9]::int8[] AS size_bucket,
          123.5 AS size_sum, 11 AS size_count, 7 AS old_col, 8 AS new_col"
  metrics:
    - size: {{usage: "HISTOGRAM", description: "Sizes"}}
    - old_col: {{usage: "GAUGE", description: "only before 10", pg_version: "<10.0.0"}}
    - new_col: {{usage: "GAUGE", description: "from this major on", pg_version: ">={major}.0.0"}}
pg_future:
  query: "SELECT 1 AS one"
  runonserver: ">={major + 1}.0.0"
  metrics:
    - one: {{usage: "GAUGE", description: "never here"}}
""")
    config = parse_config(f"databases:\n  - name: app\n    dsn: '{any_db.monitor_dsn}'\n"
                          f"extend_query_path: {tmp_path / 'queries.yaml'}\n")
    results, entries, families = run_queries(config)
    assert results == {"query:pg_sizes": "success", "query:pg_future": "disabled"}
    assert f"outside >={major + 1}.0" in entries["query:pg_future"].last_error
    assert families.value("pg_sizes_size_bucket", {"target": "app", "le": "10.0"}) == 5
    assert families.value("pg_sizes_size_bucket", {"target": "app", "le": "+Inf"}) == 11
    assert families.value("pg_sizes_size_sum", {"target": "app"}) == 123.5
    assert families.value("pg_sizes_new_col", {"target": "app"}) == 8
    assert families.samples("pg_sizes_old_col") == []


def test_duplicate_label_values_keep_the_first_row(any_db, caplog):
    config = parse_config(config_text(any_db, """
  - name: dup
    sql: SELECT 'a' AS k, 1 AS v UNION ALL SELECT 'a', 2 UNION ALL SELECT 'b', 3
    labels: [k]
    metrics: [{column: v, type: gauge, help: x}]
"""))
    with caplog.at_level(logging.WARNING, logger="collectors.custom_queries"):
        results, _, families = run_queries(config)
    assert results == {"query:dup": "success"}
    assert [s.value for s in families.samples("vecmon_custom_dup_v")] == [1, 3]
    assert "dropped 1 sample(s) repeating the label values" in caplog.text


def test_custom_prefix_is_not_used_by_vecmon():
    from collectors.settings.custom_queries import CUSTOM_PREFIX
    from monitor.config_queries import vecmon_metric_names

    names = vecmon_metric_names()
    assert len(names) > 50 and not any(name.startswith(CUSTOM_PREFIX) for name in names)


def test_an_empty_result_exports_nothing_and_succeeds(any_db):
    config = parse_config(config_text(any_db, """
  - name: empty
    sql: SELECT 'a' AS k, 1 AS v WHERE false
    labels: [k]
    metrics: [{column: v, type: gauge, help: x}]
  - name: nothing_here
    sql: SELECT 1 AS v
    predicate: SELECT true WHERE false
    metrics: [{column: v, type: gauge, help: x}]
"""))
    results, entries, families = run_queries(config)
    assert results == {"query:empty": "success", "query:nothing_here": "disabled"}, entries
    assert families.samples("vecmon_custom_empty_v") == []
    assert "predicate returned no row" in entries["query:nothing_here"].last_error
