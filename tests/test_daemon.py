"""The daemon against a real PostgreSQL 18: readiness, isolation of a hung target, reload, stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors.pg_connections import PG_CONNECTIONS_MAX
from collectors.self_metrics import COLLECTOR_INTERVAL_SECONDS, COLLECTOR_UP, UP
from monitor.daemon import Daemon
from monitor.loader import parse_config
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore
from tests.conftest import new_database
from tests.helpers import Families, require_tool, wait_until

pytestmark = pytest.mark.integration  # servers, sockets or processes without a server fixture

ROOT = Path(__file__).resolve().parent.parent


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):  # not listening (yet)
        return 0, ""


def sample(text: str, name: str, labels: dict) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def db_config(db, name: str = "main", extra: str = "", listen: str = "127.0.0.1:0") -> str:
    server = db.server
    return f"""
daemon: {{listen: "{listen}", shutdown_timeout: 3s}}
databases:
  - name: {name}
    host: 127.0.0.1
    port: {server.port}
    dbname: {db.name}
    user: vecmon_monitor
    interval: 1s
    timeout: 2s
{extra}"""


def test_ready_status_page_and_metrics(db18):
    daemon = Daemon(parse_config(db_config(db18)))
    daemon.http.start()
    try:
        status, body = get(f"{daemon.url}/ready")
        assert status == 503
        waiting = json.loads(body)["waiting_for"]
        assert {"target": "main", "collector": "connections"} in waiting
        assert get(f"{daemon.url}/health")[0] == 200
        daemon.runtime.start()
        wait_until(lambda: get(f"{daemon.url}/ready")[0] == 200)
        status, text = get(f"{daemon.url}/metrics")
        assert status == 200
        assert sample(text, UP.name, {"target": "main"}) == 1
        assert sample(text, COLLECTOR_UP.name, {"target": "main", "collector": "databases"}) == 1
        assert sample(text, PG_CONNECTIONS_MAX.name, {"target": "main"}) == 100
        status, page = get(f"{daemon.url}/")
        assert status == 200 and "connections" in page and f"/{db18.name}" in page
        assert get(f"{daemon.url}/nope")[0] == 404
    finally:
        daemon.stop()


def test_metrics_over_keep_alive_head_and_gzip(db18):
    import gzip
    import http.client

    daemon = Daemon(parse_config(db_config(db18, extra="    collectors: {recall: {enabled: false}}\n")))
    daemon.start()
    try:
        wait_until(lambda: get(f"{daemon.url}/ready")[0] == 200)
        conn = http.client.HTTPConnection("127.0.0.1", daemon.http.port, timeout=5)
        conn.request("GET", "/metrics")
        first = conn.getresponse()
        body = first.read()
        sock = conn.sock
        assert first.status == 200 and first.version == 11 and first.getheader("Connection") is None
        conn.request("HEAD", "/metrics")  # the same connection: kept alive
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b"" and conn.sock is sock
        assert abs(int(head.getheader("Content-Length")) - len(body)) < len(body) // 2  # may be a newer snapshot
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip",
                                                 "Accept": "application/openmetrics-text; version=1.0.0"})
        zipped = conn.getresponse()
        assert zipped.getheader("Content-Encoding") == "gzip" and conn.sock is sock
        assert zipped.getheader("Content-Type").startswith("application/openmetrics-text; version=1.0.0")
        text = gzip.decompress(zipped.read()).decode()
        assert text.endswith("# EOF\n") and COLLECTOR_INTERVAL_SECONDS.name in text
        conn.request("POST", "/metrics", body=b"x")
        assert conn.getresponse().status == 501
        conn.close()
        assert sample(get(f"{daemon.url}/metrics")[1], COLLECTOR_INTERVAL_SECONDS.name,
                      {"target": "main", "collector": "connections"}) == 1
    finally:
        daemon.stop()


def test_a_hung_target_does_not_delay_another(pg18):
    healthy, blocked = new_database(pg18), new_database(pg18)
    blocked.execute("CREATE TABLE locked (id int)")
    blocked.execute("GRANT SELECT ON locked TO vecmon_monitor")
    # lock_timeout as long as the timeout: the monitoring query really hangs until cancelled.
    extra = "    lock_timeout: 2s\n    collectors: {tables: {interval: 1s}}\n"
    text = (db_config(healthy, "healthy", extra) + db_config(blocked, "blocked", extra).split("databases:")[1])
    config = parse_config(text)
    store = SnapshotStore()
    runtime = Runtime(config, store)
    holder = psycopg.connect(blocked.admin_dsn)
    holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
    try:
        runtime.start()
        entries = lambda: {(e.target, e.collector): e for e in store.entries()}  # noqa: E731
        wait_until(lambda: entries()[("blocked", "tables")].count("timeout") >= 1, timeout=15)
        before = entries()[("healthy", "connections")].count("success")
        time.sleep(3.0)
        after = entries()[("healthy", "connections")]
        assert after.count("success") >= before + 2, "the healthy target stopped updating"
        hung = entries()[("blocked", "tables")]
        assert hung.state == "failed" and "cancelled" in hung.last_error
        assert hung.last_duration < 3.5
        # only the blocked queries fail (connections runs once per server, on healthy)
        assert entries()[("blocked", "statements")].state == "ok"
        assert store.target_up()["blocked"] is True
    finally:
        holder.close()
        runtime.stop()
    # once the lock is gone the collector recovers
    runtime = Runtime(config, store)
    try:
        runtime.run_once()
        assert {(e.target, e.collector): e for e in store.entries()}[("blocked", "tables")].state == "ok"
    finally:
        runtime.stop()


def test_unreachable_target_is_reported_down(pg18, unused_port):
    from collectors.registry import DATABASE_COLLECTORS

    disabled = ", ".join(f"{name}: {{enabled: false}}" for name in DATABASE_COLLECTORS if name != "connections")
    config = parse_config(f"""
databases:
  - {{name: gone, host: 127.0.0.1, port: {unused_port}, dbname: x, user: u, connect_timeout: 1s, timeout: 1s,
      collectors: {{{disabled}}}}}
""")
    store = SnapshotStore()
    runtime = Runtime(config, store)
    try:
        results = runtime.run_once()
    finally:
        runtime.stop()
    assert results == {("gone", "connections"): "error"}
    assert store.target_up() == {"gone": False}
    assert "cannot connect" in store.entries()[0].last_error


@pytest.fixture
def unused_port():
    from monitor.embedded import free_port

    return free_port()


def start_daemon(config_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config_path), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sighup_reloads_and_rejects_invalid_config_then_sigterm_stops(db18, tmp_path, unused_port):
    config_path = tmp_path / "vecmon.yaml"
    url = f"http://127.0.0.1:{unused_port}"
    config_path.write_text(db_config(db18, "first", listen=f"127.0.0.1:{unused_port}"))
    proc = start_daemon(config_path)
    try:
        wait_until(lambda: get(f"{url}/ready")[0] == 200 if _alive(proc) else pytest.fail(_output(proc)))
        config_path.write_text("databases:\n  - name: first\n    interval: fast\n")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert proc.poll() is None
        assert sample(get(f"{url}/metrics")[1], UP.name, {"target": "first"}) == 1
        config_path.write_text(db_config(db18, "second", listen=f"127.0.0.1:{unused_port}"))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: sample(get(f"{url}/metrics")[1], UP.name, {"target": "second"}) == 1)
        assert sample(get(f"{url}/metrics")[1], UP.name, {"target": "first"}) is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert "reload rejected" in stderr and "databases[0].interval: invalid duration 'fast'" in stderr
    # no vecmon backend is left behind
    with psycopg.connect(db18.admin_dsn) as conn:
        left = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vecmon'").fetchone()
    assert left[0] == 0


def test_reloads_while_jobs_run_record_no_false_failures(db18, tmp_path):
    config_path = tmp_path / "vecmon.yaml"
    config_path.write_text(db_config(db18, "main", "    collectors: {recall: {enabled: false}}\n"))
    from monitor.loader import load_config

    daemon = Daemon(load_config(config_path), config_path)
    daemon.start()
    try:
        wait_until(lambda: not daemon.store.not_ready())
        for _ in range(5):
            assert daemon.reload()
            time.sleep(0.3)
        wait_until(lambda: not daemon.store.not_ready())
        failures = {(e.target, e.collector): (e.count("error"), e.count("timeout"), e.last_error)
                    for e in daemon.store.entries() if e.count("error") or e.count("timeout")}
        assert failures == {}
        assert daemon.store.target_up() == {"main": True}
    finally:
        daemon.stop()


def test_sigterm_during_a_hung_query_stops_within_5s(db18, tmp_path, unused_port):
    db18.execute("CREATE TABLE locked (id int)")
    config_path = tmp_path / "vecmon.yaml"
    config_path.write_text(db_config(db18, "main", "    timeout: 30s\n    lock_timeout: 30s\n    interval: 60s\n",
                                     listen=f"127.0.0.1:{unused_port}").replace("    timeout: 2s\n", "", 1))
    holder = psycopg.connect(db18.admin_dsn)
    holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
    proc = start_daemon(config_path)
    try:
        watcher = psycopg.connect(db18.admin_dsn, autocommit=True)  # outside the lock's snapshot

        def tables_waiting():
            rows = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vecmon' "
                                  "AND wait_event_type = 'Lock'").fetchone()
            return rows[0] > 0
        wait_until(tables_waiting, timeout=20)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=6)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        holder.close()


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def _output(proc: subprocess.Popen) -> str:
    return f"daemon exited with {proc.returncode}: {proc.stderr.read()}"


def test_collect_prints_exposition_that_promtool_accepts(db18, tmp_path):
    db18.execute("CREATE TABLE docs (id int primary key, body text)")
    db18.execute("INSERT INTO docs SELECT g, 'x' FROM generate_series(1, 100) g")
    db18.execute("SELECT count(*) FROM docs")
    config_path = tmp_path / "vecmon.yaml"
    config_path.write_text(db_config(db18))
    result = subprocess.run([sys.executable, "-m", "monitor", "collect", "-c", str(config_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    parsed = Families(list(text_string_to_metric_families(result.stdout)))
    assert parsed.samples(PG_CONNECTIONS_MAX.name)
    check = subprocess.run([require_tool("promtool", "prometheus"), "check", "metrics"], input=result.stdout,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == "", check.stdout + check.stderr


def test_collect_exits_1_and_keeps_what_succeeded(db18, tmp_path, unused_port):
    config_path = tmp_path / "vecmon.yaml"
    config_path.write_text(db_config(db18, "good") + f"""
  - name: bad
    host: 127.0.0.1
    port: {unused_port}
    dbname: nope
    user: nobody
    password: "hunter2-secret"
    connect_timeout: 1s
""")
    result = subprocess.run([sys.executable, "-m", "monitor", "collect", "-c", str(config_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert sample(result.stdout, UP.name, {"target": "good"}) == 1
    assert sample(result.stdout, UP.name, {"target": "bad"}) == 0
    assert "bad/connections failed" in result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr


def test_sigterm_during_a_stalled_http_probe_stops_within_5s(tmp_path, unused_port):
    from fake_providers import FakeProvider, Fault

    with FakeProvider("openai", dims=8) as fake:
        fake.default = Fault(delay=15.0)  # the endpoint answers after 15 s, inside the 20 s timeout
        config_path = tmp_path / "vecmon.yaml"
        config_path.write_text(f"""
daemon: {{listen: "127.0.0.1:{unused_port}", shutdown_timeout: 3s}}
endpoints:
  - {{name: slow, provider: openai, url: "{fake.url}", model: text-embedding-3-small, dimensions: 8,
      interval: 60s, timeout: 20s}}
""")
        proc = start_daemon(config_path)
        try:
            wait_until(lambda: fake.requests, timeout=20)  # the probe is in flight
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            fake.stopping.set()


def test_listens_on_an_ipv6_address(db18):
    """`--listen [::1]:PORT` (issue: the bracketed form failed)."""
    daemon = Daemon(parse_config(db_config(db18, extra="    collectors: {recall: {enabled: false}}\n")),
                    listen="[::1]:0")
    daemon.start()
    try:
        assert daemon.url.startswith("http://[::1]:")
        wait_until(lambda: get(f"{daemon.url}/ready")[0] == 200)
        status, text = get(f"{daemon.url}/metrics")
        assert status == 200 and sample(text, UP.name, {"target": "main"}) == 1
    finally:
        daemon.stop()
