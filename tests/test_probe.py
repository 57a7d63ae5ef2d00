"""Multi-target ``/probe``: a configured target's series from the snapshot, and databases that are
not in the config collected on demand through an auth module (postgres_exporter's ``/probe``).

Everything runs against the session's real PostgreSQL 18 and 15 and an in-process daemon on a
free port; the last test has a real Prometheus 2.42 scrape both kinds with the documented
relabelling.
"""

from __future__ import annotations

import gzip
import logging
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from collectors.pg_connections import PG_CONNECTIONS_MAX
from collectors.pg_databases import PG_DATABASE_SIZE_BYTES
from collectors.self_metrics import COLLECTOR_DURATION_SECONDS, COLLECTOR_UP, TARGET_UNREACHABLE_REASON, UP
from monitor.daemon import Daemon
from monitor.loader import ConfigError, parse_config
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import Families, wait_until
from tests.webhook import require_binary, start_prometheus

PASSWORD = "probe-secret-7f3a9c"  # the auth module's password: must never show up anywhere
URL_PASSWORD = "url-secret-41d2e8"


def get(url: str, headers: dict | None = None, timeout: float = 15.0) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def probe_url(daemon: Daemon, target: str, auth_module: str | None = None) -> str:
    params = {"target": target, **({"auth_module": auth_module} if auth_module else {})}
    return f"{daemon.url}/probe?{urllib.parse.urlencode(params)}"


def parse(body: bytes) -> Families:
    from prometheus_client.parser import text_string_to_metric_families

    return Families(text_string_to_metric_families(body.decode()))


def sample_lines(body: bytes) -> set[str]:
    return {line for line in body.decode().splitlines() if line and not line.startswith("#")}


def config_text(databases: list, *, probe: str = "{}", collectors: str = "[connections, server, databases]",
                extra_modules: str = "") -> str:
    dbs = "\n".join(f"""  - name: {name}
    host: 127.0.0.1
    port: {db.server.port}
    dbname: {db.name}
    user: {MONITOR_ROLE}
    interval: 1s
    collectors: {{tables: {{enabled: false}}, indexes: {{enabled: false}}, statements: {{enabled: false}},
                 vector_indexes: {{enabled: false}}, recall: {{enabled: false}}, ann_latency: {{enabled: false}},
                 vector_freshness: {{enabled: false}}, vector_bloat: {{enabled: false}}}}""" for name, db in databases)
    return f"""
daemon: {{listen: "127.0.0.1:0", allow_no_targets: true, shutdown_timeout: 3s}}
databases:
{dbs if databases else "  []"}
probe: {probe}
auth_modules:
  mon:
    type: userpass
    userpass: {{username: {MONITOR_ROLE}, password: "${{PROBE_PASSWORD}}"}}
    options: {{sslmode: disable}}
    collectors: {collectors}
{extra_modules}
"""


def start(text: str) -> Daemon:
    daemon = Daemon(parse_config(text, env={"PROBE_PASSWORD": PASSWORD}))
    daemon.start()
    return daemon


@pytest.fixture
def daemons():
    started: list[Daemon] = []

    def make(text: str) -> Daemon:
        daemon = start(text)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.stop()


def dsn_of(db) -> str:
    return f"127.0.0.1:{db.server.port}/{db.name}"


def vecmon_sessions(db) -> int:
    return db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'vecmon'",
                      [db.name])[0][0]


# -- configured targets -------------------------------------------------------------------------

def test_configured_target_serves_only_its_own_series(pg18, daemons):
    a, b = new_database(pg18), new_database(pg18)
    daemon = daemons(config_text([("alpha", a), ("beta", b)]))
    wait_until(lambda: get(f"{daemon.url}/ready")[0] == 200, 30, "both targets collected")

    status, headers, body = get(probe_url(daemon, "alpha"))
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = parse(body)
    targets = {s.labels.get("target") for f in families.families for s in f.samples}
    assert targets == {"alpha"}, targets
    assert families.value(UP.name, {"target": "alpha"}) == 1
    assert families.value(COLLECTOR_UP.name, {"target": "alpha", "collector": "connections"}) == 1
    sizes = [x.value for x in families.samples(PG_DATABASE_SIZE_BYTES.name)
             if x.labels["target"] == "alpha" and x.labels["datname"] == a.name]
    assert sizes and sizes[0] > 0  # cluster-wide series also carry the server label
    assert "beta" not in body.decode()
    # exactly /metrics' lines of that target, from the same render (retried when a collection ran in between)
    for _ in range(10):
        _, _, before = get(probe_url(daemon, "alpha"))
        _, _, metrics = get(f"{daemon.url}/metrics")
        _, _, after = get(probe_url(daemon, "alpha"))
        if before == after:
            break
    of_alpha = {line for line in sample_lines(metrics) if 'target="alpha"' in line}
    assert sample_lines(after) == of_alpha

    # content negotiation and gzip as /metrics
    status, headers, zipped = get(probe_url(daemon, "beta"), {"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert {s.labels["target"] for f in parse(gzip.decompress(zipped)).families for s in f.samples} == {"beta"}
    status, headers, body = get(probe_url(daemon, "beta"), {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    assert daemon.probe.dsn.collections == 0  # nothing ran on a request


def test_configured_target_is_rendered_once_per_change():
    from collectors.base import Emitter, MetricSpec
    from monitor.exposition import ExpositionCache, SnapshotCollector
    from monitor.snapshot import SnapshotStore

    spec = (MetricSpec("vecmon_demo_value", "gauge", "demo"),)
    store = SnapshotStore()
    store.expect([("a", "demo"), ("b", "demo")])
    for target, value in (("a", 1), ("b", 2)):
        emitter = Emitter(target, spec)
        emitter.add("vecmon_demo_value", value)
        store.record_success((target, "demo"), emitter.families(), 0.01)
    cache = ExpositionCache(SnapshotCollector(store, 300))
    first, _, _ = cache.target_body("a", None, None)
    assert cache.target_body("a", None, None)[0] is first and cache.renders == 1  # bytes kept per change
    assert b'vecmon_demo_value{target="a"} 1.0' in first and b'target="b"' not in first
    assert cache.target_body("c", None, None) is None
    emitter = Emitter("a", spec)
    emitter.add("vecmon_demo_value", 5)
    store.record_success(("a", "demo"), emitter.families(), 0.01)
    assert b'vecmon_demo_value{target="a"} 5.0' in cache.target_body("a", None, None)[0] and cache.renders == 2


def test_unknown_target_and_missing_parameters(pg18, daemons):
    db = new_database(pg18)
    daemon = daemons(config_text([("alpha", db)]))
    status, _, body = get(probe_url(daemon, "nope"))
    assert status == 404 and b"unknown target 'nope'" in body
    # a DSN without auth_module: told what is missing, the text is not echoed (it may hold a password)
    status, _, body = get(probe_url(daemon, f"u:{URL_PASSWORD}@127.0.0.1:5432/x"))
    assert status == 400 and b"auth_module" in body and URL_PASSWORD.encode() not in body
    status, _, body = get(f"{daemon.url}/probe")
    assert status == 400 and b"target=" in body
    status, _, body = get(probe_url(daemon, dsn_of(db), "nosuch"))
    assert status == 400 and b"unknown auth_module 'nosuch' (known: mon)" in body


# -- DSN targets through an auth module --------------------------------------------------------

def test_dsn_target_values(any_pg, daemons):
    db = new_database(any_pg)
    daemon = daemons(config_text([]))
    status, _, body = get(probe_url(daemon, dsn_of(db), "mon"))
    assert status == 200, body
    families = parse(body)
    label = {"target": dsn_of(db)}
    assert families.value(UP.name, label) == 1
    max_connections = int(db.execute("SHOW max_connections")[0][0])
    assert families.value(PG_CONNECTIONS_MAX.name, label) == max_connections
    size = db.execute("SELECT pg_database_size(current_database())")[0][0]
    assert abs(families.value(PG_DATABASE_SIZE_BYTES.name, {**label, "datname": db.name}) - size) < 1e6
    for name in ("connections", "server", "databases"):
        assert families.value(COLLECTOR_UP.name, {**label, "collector": name}) == 1
    assert {s.labels["target"] for f in families.families for s in f.samples} == {dsn_of(db)}
    # the session it used is vecmon's, read-only and bounded like a configured target's
    settings = db.execute("SELECT application_name FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                          [db.name, MONITOR_ROLE])
    assert settings and all(row[0] == "vecmon" for row in settings)


def test_dsn_target_is_cached_for_the_ttl_and_shared_by_concurrent_requests(pg18, daemons):
    db = new_database(pg18)
    daemon = daemons(config_text([], probe="{ttl: 1500ms}"))
    url = probe_url(daemon, dsn_of(db), "mon")
    results: list[tuple[int, float]] = []

    def one() -> None:
        started = time.monotonic()
        status = get(url)[0]
        results.append((status, time.monotonic() - started))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [s for s, _ in results] == [200] * 6
    assert daemon.probe.dsn.collections == 1  # six concurrent requests, one collection
    started = time.monotonic()
    status, _, cached = get(url)
    cached_seconds = time.monotonic() - started
    assert status == 200 and daemon.probe.dsn.collections == 1  # within the TTL: from memory
    time.sleep(1.6)
    assert get(url)[0] == 200 and daemon.probe.dsn.collections == 2  # after it: collected again
    print(f"\n[probe] first (6 concurrent) {max(t for _, t in results) * 1000:.1f} ms, "
          f"cached {cached_seconds * 1000:.2f} ms")


def test_dsn_targets_are_bounded_and_evicted_ones_disconnect(pg18, daemons):
    dbs = [new_database(pg18) for _ in range(3)]
    daemon = daemons(config_text([], probe="{max_targets: 2}"))
    for db in dbs:
        assert get(probe_url(daemon, dsn_of(db), "mon"))[0] == 200
    assert len(daemon.probe.dsn) == 2 and daemon.probe.dsn.evicted == 1
    wait_until(lambda: vecmon_sessions(dbs[0]) == 0, 10, "the evicted target's session closed")
    assert vecmon_sessions(dbs[2]) == 1  # kept targets keep their one session
    # the evicted one comes back as a new collection (and evicts the least recently used)
    collections = daemon.probe.dsn.collections
    assert get(probe_url(daemon, dsn_of(dbs[0]), "mon"))[0] == 200
    assert daemon.probe.dsn.collections == collections + 1 and len(daemon.probe.dsn) == 2
    wait_until(lambda: vecmon_sessions(dbs[1]) == 0, 10, "the next evicted target's session closed")


class Blackhole:
    """A TCP server that accepts connections and never answers: a database that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_hanging_database_answers_an_error_within_the_scrape_timeout(pg18, daemons):
    db = new_database(pg18)
    daemon = daemons(config_text([("alpha", db)], probe="{timeout: 10s}"))
    wait_until(lambda: get(f"{daemon.url}/ready")[0] == 200, 30, "target collected")
    hole = Blackhole()
    try:
        answers: list[tuple[int, float]] = []

        def hang() -> None:
            started = time.monotonic()
            status = get(probe_url(daemon, f"127.0.0.1:{hole.port}/app", "mon"),
                         {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})[0]
            answers.append((status, time.monotonic() - started))

        thread = threading.Thread(target=hang)
        thread.start()
        time.sleep(0.3)
        # meanwhile the server answers everything else at once
        started = time.monotonic()
        assert get(probe_url(daemon, "alpha"))[0] == 200
        assert get(f"{daemon.url}/metrics")[0] == 200
        assert time.monotonic() - started < 1.0
        thread.join(10)
        [(status, seconds)] = answers
        assert status == 504 and 1.0 < seconds < 2.5, (status, seconds)  # the header's 1.5 s less a margin
    finally:
        hole.close()


def test_a_locked_table_ends_that_collector_not_the_probe(pg18, daemons):
    db = new_database(pg18)
    db.execute("CREATE TABLE locked (id int)")
    db.execute(f"GRANT SELECT ON locked TO {MONITOR_ROLE}")
    daemon = daemons(config_text([], probe="{timeout: 5s, lock_timeout: 300ms}",
                                 collectors="[tables, connections]"))
    with db.admin(autocommit=False) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        status, _, body = get(probe_url(daemon, dsn_of(db), "mon"))
        seconds = time.monotonic() - started
    assert status == 200 and seconds < 3.0, seconds
    families = parse(body)
    label = {"target": dsn_of(db)}
    assert families.value(UP.name, label) == 1
    assert families.value(COLLECTOR_UP.name, {**label, "collector": "tables"}) == 0
    assert families.value(COLLECTOR_UP.name, {**label, "collector": "connections"}) == 1


def test_the_deadline_bounds_the_whole_collection_not_each_collector(pg18, daemons, caplog):
    """A lock held longer than probe.timeout: `tables` uses up the whole budget, the collector after
    it is not started, the request answers 504 at the deadline; the finished (failed) result is
    served to the next scrape from memory."""
    db = new_database(pg18)
    db.execute("CREATE TABLE locked (id int)")
    db.execute(f"GRANT SELECT ON locked TO {MONITOR_ROLE}")
    daemon = daemons(config_text([], probe="{timeout: 1s, lock_timeout: 5s}", collectors="[tables, connections]"))
    with db.admin(autocommit=False) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        status, _, body = get(probe_url(daemon, dsn_of(db), "mon"))
        seconds = time.monotonic() - started
        assert status == 504 and b"did not finish within 1s" in body and seconds < 2.0, (status, seconds)
        wait_until(lambda: daemon.probe.dsn.collections == 1 and get(probe_url(daemon, dsn_of(db), "mon"))[0] == 200,
                 5, "the late result cached")
        families = parse(get(probe_url(daemon, dsn_of(db), "mon"))[2])
    label = {"target": dsn_of(db)}
    assert families.value(COLLECTOR_UP.name, {**label, "collector": "tables"}) == 0
    assert families.value(COLLECTOR_UP.name, {**label, "collector": "connections"}) == 0
    assert families.value(COLLECTOR_DURATION_SECONDS.name, {**label, "collector": "connections"}) is None
    assert daemon.probe.dsn.collections == 1
    assert "the deadline passed before collectors connections" in caplog.text


def test_unreachable_dsn_target_reports_the_reason(pg18, daemons):
    db = new_database(pg18)
    daemon = daemons(config_text([]))
    status, _, body = get(probe_url(daemon, f"127.0.0.1:{db.server.port}/no_such_db", "mon"))
    assert status == 200
    families = parse(body)
    label = {"target": f"127.0.0.1:{db.server.port}/no_such_db"}
    assert families.value(UP.name, label) == 0
    assert families.value(TARGET_UNREACHABLE_REASON.name, {**label, "reason": "database_missing"}) == 1


@pytest.mark.parametrize("target", [
    f"probe_user:{URL_PASSWORD}@127.0.0.1:5432/app",
    f"127.0.0.1:5432/app?password={URL_PASSWORD}",
    f"postgresql://x:{URL_PASSWORD}@127.0.0.1/app",
    "someone@127.0.0.1:5432/app",
])
def test_credentials_in_the_url_are_refused_and_never_logged(pg18, daemons, caplog, target):
    caplog.set_level(logging.DEBUG)
    daemon = daemons(config_text([]))
    status, _, body = get(probe_url(daemon, target, "mon"))
    assert status == 400 and b"must not carry credentials" in body
    assert URL_PASSWORD not in body.decode() and URL_PASSWORD not in caplog.text
    assert daemon.probe.dsn.collections == 0


def test_url_parameters_are_limited(pg18, daemons):
    db = new_database(pg18)
    daemon = daemons(config_text([]))
    status, _, body = get(probe_url(daemon, dsn_of(db) + "?options=-c%20default_transaction_read_only%3Doff", "mon"))
    assert status == 400 and b"parameter 'options' is not allowed" in body
    status, _, body = get(probe_url(daemon, dsn_of(db) + "?sslmode=disable", "mon"))
    assert status == 200


def test_allowed_targets_restrict_an_auth_module(pg18, daemons):
    db = new_database(pg18)
    daemon = daemons(config_text([], extra_modules=f"""  narrow:
    userpass: {{username: {MONITOR_ROLE}}}
    allowed_targets: ["10.0.0.*:5432/*"]
"""))
    status, _, body = get(probe_url(daemon, dsn_of(db), "narrow"))
    assert status == 403 and b"not allowed for" in body and daemon.probe.dsn.collections == 0


def test_secrets_stay_out_of_logs_and_exposition(pg18, daemons, caplog):
    caplog.set_level(logging.DEBUG)
    db = new_database(pg18)
    daemon = daemons(config_text([("alpha", db)]))
    bodies = [get(probe_url(daemon, dsn_of(db), "mon"))[2],
              get(probe_url(daemon, f"127.0.0.1:{db.server.port}/missing_db", "mon"))[2],
              get(probe_url(daemon, "127.0.0.1:1/x", "mon"))[2]]
    wait_until(lambda: get(f"{daemon.url}/ready")[0] == 200, 30, "target collected")
    bodies += [get(probe_url(daemon, "alpha"))[2], get(f"{daemon.url}/metrics")[2], get(f"{daemon.url}/api/status")[2]]
    assert any(UP.name.encode() in b for b in bodies)
    for body in bodies:
        assert PASSWORD.encode() not in body
    assert PASSWORD not in caplog.text
    assert "127.0.0.1:1/x" in caplog.text  # the failing probe was logged (by its label)


def test_a_reload_that_changes_the_auth_modules_drops_kept_targets(pg18, write_config, monkeypatch):
    db = new_database(pg18)
    monkeypatch.setenv("PROBE_PASSWORD", PASSWORD)
    path = write_config(config_text([]))
    daemon = Daemon(parse_config(path.read_text()), config_path=path)
    daemon.start()
    try:
        assert get(probe_url(daemon, dsn_of(db), "mon"))[0] == 200 and len(daemon.probe.dsn) == 1
        assert daemon.reload() and len(daemon.probe.dsn) == 1  # same modules: kept
        path.write_text(config_text([], collectors="[connections]"))
        assert daemon.reload() and len(daemon.probe.dsn) == 0
        wait_until(lambda: vecmon_sessions(db) == 0, 10, "the dropped target's session closed")
        families = parse(get(probe_url(daemon, dsn_of(db), "mon"))[2])
        assert families.value(COLLECTOR_UP.name, {"target": dsn_of(db), "collector": "connections"}) == 1
        assert families.value(COLLECTOR_UP.name, {"target": dsn_of(db), "collector": "server"}) is None
    finally:
        daemon.stop()


def test_auth_module_config_errors():
    base = "daemon: {allow_no_targets: true}\nauth_modules:\n  m:\n"
    with pytest.raises(ConfigError, match=r"auth_modules\.m\.options: .*option 'password' is not allowed"):
        parse_config(base + "    userpass: {username: u}\n    options: {password: x}\n")
    with pytest.raises(ConfigError, match=r"auth_modules\.m\.userpass: .*password or password_file, not both"):
        parse_config(base + "    userpass: {username: u, password: x, password_file: /dev/null}\n")
    with pytest.raises(ConfigError, match=r"auth_modules\.m\.collectors\[0\]: Input should be 'connections'"):
        parse_config(base + "    userpass: {username: u}\n    collectors: [nope]\n")
    with pytest.raises(ConfigError, match=r"auth_modules\.m\.type"):
        parse_config(base + "    type: tls\n    userpass: {username: u}\n")
    config = parse_config(base + "    userpass: {username: u, password: '${PW}'}\n", env={"PW": "s3"})
    assert config.auth_modules["m"].userpass.password_value() == "s3" and "s3" not in repr(config)


# -- a real Prometheus with the documented relabelling ----------------------------------------

def relabel(vecmon_address: str) -> list[dict]:
    """The README's relabelling: the listed target becomes ?target=, and the instance label."""
    return [{"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": vecmon_address}]


def test_prometheus_scrapes_probe_for_both_kinds(pg18, daemons, tmp_path):
    require_binary("prometheus")
    configured, other = new_database(pg18), new_database(pg18)
    daemon = daemons(config_text([("alpha", configured)]))
    address = daemon.url.removeprefix("http://")
    dsn = dsn_of(other) + "?sslmode=disable"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [
            {"job_name": "vecmon-targets", "metrics_path": "/probe",
             "static_configs": [{"targets": ["alpha"]}], "relabel_configs": relabel(address)},
            {"job_name": "vecmon-dsn", "metrics_path": "/probe", "params": {"auth_module": ["mon"]},
             "static_configs": [{"targets": [dsn]}], "relabel_configs": relabel(address)},
        ]}))
    prometheus = start_prometheus(tmp_path, config)
    try:
        prometheus.wait_ready()

        def query(expr: str) -> list:
            return prometheus.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]

        wait_until(lambda: query('up{job="vecmon-targets", instance="alpha"} == 1')
                   and query(f'{PG_CONNECTIONS_MAX.name}{{job="vecmon-targets", instance="alpha", target="alpha"}}'),
                   60, "the configured target scraped through /probe")
        wait_until(lambda: query(f'up{{job="vecmon-dsn", instance="{dsn}"}} == 1')
                   and query(f'{UP.name}{{job="vecmon-dsn", instance="{dsn}", target="{dsn_of(other)}"}} == 1')
                   and query(f'{PG_DATABASE_SIZE_BYTES.name}{{job="vecmon-dsn", datname="{other.name}"}}'),
                 60, "the DSN target scraped through /probe")
        # each job saw only its own target's series
        assert not query(f'{UP.name}{{job="vecmon-targets", target!="alpha"}}')
        assert not query(f'{UP.name}{{job="vecmon-dsn", target!="{dsn_of(other)}"}}')
        assert not query('up{job=~"vecmon-.*"} == 0')
    finally:
        prometheus.stop()
