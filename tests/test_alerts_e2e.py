"""End to end: real conditions on a real PostgreSQL 18 reach a webhook through the generated rules
and the generated Alertmanager config, and resolve again.

vecmon's :class:`~monitor.daemon.Daemon` runs in-process on a free port and monitors a fresh database
on the session's embedded PostgreSQL 18 every second; ``write_alerting`` generates the rule file and
``alertmanager.yml`` from the same config (thresholds and ``for`` made short through
``alerting.alerts``); Prometheus 2.42 evaluates the rules every second and sends to Alertmanager
0.25, whose webhook receiver (with a bearer token read from a file) is an HTTP server in this test.

1. Connections: hold enough idle connections to push ``vecmon_pg_connections_used_ratio`` over a
   threshold set just above the current usage -> ``PgConnectionsHigh`` arrives with its labels and
   annotations; close them -> the resolved notification arrives.
2. A collector failing: lock a table ``ACCESS EXCLUSIVE`` so the ``tables`` collector runs into
   ``lock_timeout`` -> ``VecmonCollectorFailing{collector="tables"}``; release -> resolved.
3. Recall: an HNSW index with a small graph (m=8) meets the 0.9 target at the application's
   ``hnsw.ef_search = 200`` (an ``ALTER DATABASE`` override, which the recall probe reproduces);
   dropping the override to 1 (one candidate for k=10) -> ``VectorRecallBelowTarget``; back to
   200 -> resolved.

Each wait is bounded (60 s); the measured times are printed. In CI a missing binary fails.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psycopg
import pytest
import yaml

from alerts.render import write_alerting
from monitor import __version__
from monitor.daemon import Daemon
from monitor.loader import parse_config
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import wait_until
from tests.webhook import WebhookReceiver, require_binary, start_alertmanager, start_prometheus

RUNBOOKS = "https://runbooks.example.org/vecmon/README.md"
HEALTHY_EF, BROKEN_EF = 200, 1
TOKEN = "e2e-webhook-token-8c1f"
WAIT = 60.0


def client_connections(db) -> tuple[int, int]:
    rows = db.execute("SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
                      "current_setting('max_connections')::int")
    return rows[0][0], rows[0][1]


def prepare(db) -> None:
    """docs (for the lock); items: 3000 clustered 16-d vectors under an HNSW index with m=8."""
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(12, 16))
    vectors = centers[rng.integers(0, 12, 3000)] + rng.normal(scale=0.3, size=(3000, 16))
    with db.admin() as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO docs SELECT g, 'x' FROM generate_series(1, 100) g")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(16))")
        with conn.cursor().copy("COPY items (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i, "[" + ",".join(f"{x:.5f}" for x in v) + "]"))
        conn.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops) "
                     "WITH (m = 8, ef_construction = 64)")
        conn.execute("ANALYZE items")
        conn.execute(f"GRANT SELECT ON docs, items TO {MONITOR_ROLE}")
        conn.execute(f"ALTER DATABASE {db.name} SET hnsw.ef_search = {HEALTHY_EF}")


def vecmon_config(db, threshold: float, webhook: str, token_file: Path, state: Path) -> str:
    off = "{enabled: false}"
    return f"""
daemon: {{listen: "127.0.0.1:0", stale_after: 1m, shutdown_timeout: 3s}}
databases:
  - name: main
    host: 127.0.0.1
    port: {db.server.port}
    dbname: {db.name}
    user: {MONITOR_ROLE}
    interval: 1s
    timeout: 2s
    lock_timeout: 300ms
    collectors:
      statements: {off}
      vector_indexes: {off}
      recall: {{interval: 2s, timeout: 10s}}
      ann_latency: {off}
      vector_freshness: {off}
    vector:
      indexes: [items_hnsw]
      recall: {{sample_size: 10, k: 10, ef_search_values: [10], force_index: true,
                state_url: "sqlite:///{state}"}}
alerting:
  runbook_base_url: {RUNBOOKS}
  alerts:
    PgConnectionsHigh: {{threshold: {threshold}, for: 1s}}
    VecmonCollectorFailing: {{for: 1s}}
    VectorRecallBelowTarget: {{window: 6s, for: 1s}}
alertmanager:
  receiver: hook
  group_by: [alertname, target]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  receivers:
    - name: hook
      webhook: [{{url: "{webhook}", credentials_file: "{token_file}"}}]
"""


def prometheus_config(path: Path, rules: Path, vecmon: str, alertmanager: str) -> Path:
    path.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "vecmon", "static_configs": [{"targets": [vecmon]}]}],
    }))
    return path


def query(prometheus, expr: str) -> list:
    import urllib.parse

    return prometheus.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]


@pytest.fixture(scope="module")
def stack(pg18, tmp_path_factory):
    """vecmon + Prometheus + Alertmanager + webhook, with the generated files; yields a namespace."""
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    tmp_path = tmp_path_factory.mktemp("alerts-e2e")
    db18 = new_database(pg18, ("pg_stat_statements", "vector"))
    prepare(db18)
    used, max_connections = client_connections(db18)
    # vecmon adds up to 2 sessions; 20 held connections must cross the threshold, 0 must not
    threshold = round((used + 2 + 8) / max_connections, 2)
    hook = WebhookReceiver().start()
    token_file = tmp_path / "hook-token"
    token_file.write_text(TOKEN + "\n")
    config = parse_config(vecmon_config(db18, threshold, hook.url, token_file, tmp_path / "recall.sqlite"))
    files = {p.name: p for p in write_alerting(config, tmp_path / "generated", __version__)}
    daemon = Daemon(config)
    servers = []
    try:
        daemon.start()
        alertmanager = start_alertmanager(tmp_path, files["alertmanager.yml"])
        servers.append(alertmanager)
        prometheus = start_prometheus(tmp_path, prometheus_config(
            tmp_path / "prometheus.yml", files["vecmon-alerts.rules.yml"], daemon.url.removeprefix("http://"),
            f"127.0.0.1:{alertmanager.port}"))
        servers.append(prometheus)
        alertmanager.wait_ready()
        prometheus.wait_ready()
        wait_until(lambda: query(prometheus, 'vecmon_pg_connections_used_ratio{target="main"}')
                   and query(prometheus, 'vecmon_collector_up{collector="tables"} == 1')
                   and query(prometheus, "vecmon_recall_query_recall_ratio_count"),
                   WAIT, "vecmon scraped by Prometheus")
        yield type("Stack", (), {"db": db18, "threshold": threshold, "hook": hook, "prometheus": prometheus,
                                 "alertmanager": alertmanager, "max_connections": max_connections})
    finally:
        for server in reversed(servers):
            server.stop()
        daemon.stop()
        hook.stop()


def report(capsys, text: str) -> None:
    with capsys.disabled():
        print(f"\n[e2e timing] {text}")


def test_held_connections_page_and_resolve(stack, capsys):
    assert not query(stack.prometheus, 'ALERTS{alertname="PgConnectionsHigh"}')
    held: list[psycopg.Connection] = []
    try:
        started = time.monotonic()
        for _ in range(20):
            held.append(psycopg.connect(stack.db.admin_dsn, autocommit=True))
        arrived, payload, alert = stack.hook.wait_for("firing", "PgConnectionsHigh", WAIT)
        fired_after = arrived - started
    finally:
        released = time.monotonic()
        for conn in held:
            conn.close()
    assert payload["receiver"] == "hook" and payload["status"] == "firing"
    assert stack.hook.token == f"Bearer {TOKEN}"  # read by Alertmanager from credentials_file
    assert alert["labels"] == {"alertname": "PgConnectionsHigh", "target": "main", "severity": "warning",
                               "service": "postgres", "instance": alert["labels"]["instance"], "job": "vecmon",
                               "server": f"127.0.0.1:{stack.db.server.port}"}  # cluster-wide: the server too
    annotations = alert["annotations"]
    assert annotations["summary"] == "main is running out of connections."
    threshold = f"{stack.threshold * 100:.4g}%"
    assert annotations["description"].startswith("main uses ")
    assert annotations["description"].endswith(
        f"of max_connections (threshold {threshold}); new connections fail once the remaining slots are taken.")
    used = float(annotations["description"].split()[2].rstrip("%"))
    assert used > stack.threshold * 100
    assert annotations["runbook_url"] == f"{RUNBOOKS}#pgconnectionshigh"

    arrived, payload, alert = stack.hook.wait_for("resolved", "PgConnectionsHigh", WAIT)
    resolved_after = arrived - released
    assert alert["labels"]["alertname"] == "PgConnectionsHigh" and alert["labels"]["target"] == "main"
    assert not query(stack.prometheus, 'ALERTS{alertname="PgConnectionsHigh", alertstate="firing"}')
    report(capsys, f"PgConnectionsHigh: connections opened -> firing notification {fired_after:.1f}s; "
                   f"closed -> resolved notification {resolved_after:.1f}s")
    assert fired_after < WAIT and resolved_after < WAIT


def test_a_locked_table_fails_the_tables_collector_and_recovers(stack, capsys):
    holder = psycopg.connect(stack.db.admin_dsn)
    try:
        started = time.monotonic()
        holder.execute("LOCK TABLE docs IN ACCESS EXCLUSIVE MODE")
        arrived, payload, alert = stack.hook.wait_for("firing", "VecmonCollectorFailing", WAIT)
        fired_after = arrived - started
    finally:
        holder.rollback()
        released = time.monotonic()
        holder.close()
    assert alert["labels"]["collector"] == "tables" and alert["labels"]["target"] == "main"
    assert alert["labels"]["severity"] == "warning" and alert["labels"]["service"] == "vecmon"
    assert alert["annotations"]["summary"] == "Collector tables fails on main."
    assert "(vecmon_collector_up = 0)" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#vecmoncollectorfailing"
    arrived, payload, alert = stack.hook.wait_for("resolved", "VecmonCollectorFailing", WAIT)
    resolved_after = arrived - released
    report(capsys, f"VecmonCollectorFailing: table locked -> firing notification {fired_after:.1f}s; "
                   f"released -> resolved notification {resolved_after:.1f}s")


def test_recall_degraded_by_a_low_ef_search_alerts_and_resolves(stack, capsys):
    mean = ('sum(increase(vecmon_recall_query_recall_ratio_sum[6s]))'
            ' / sum(increase(vecmon_recall_query_recall_ratio_count[6s]))')
    healthy = wait_until(lambda: [r for r in query(stack.prometheus, mean) if float(r["value"][1]) >= 0.95], WAIT,
                         f"recall at ef_search={HEALTHY_EF} above the target")
    assert not query(stack.prometheus, 'ALERTS{alertname="VectorRecallBelowTarget"}')
    started = time.monotonic()
    stack.db.execute(f"ALTER DATABASE {stack.db.name} SET hnsw.ef_search = {BROKEN_EF}")
    try:
        arrived, payload, alert = stack.hook.wait_for("firing", "VectorRecallBelowTarget", WAIT)
        fired_after = arrived - started
    finally:
        released = time.monotonic()
        stack.db.execute(f"ALTER DATABASE {stack.db.name} SET hnsw.ef_search = {HEALTHY_EF}")
    labels = alert["labels"]
    assert (labels["alertname"], labels["target"], labels["schema"], labels["table"], labels["index"]) == (
        "VectorRecallBelowTarget", "main", "public", "items", "items_hnsw")
    assert labels["severity"] == "warning" and labels["service"] == "pgvector" and "filter" not in labels
    description = alert["annotations"]["description"]
    assert description.startswith("Probe queries on index public.items_hnsw of main reach a mean recall@k of 0.")
    assert description.endswith("with the application's settings over the last 6s "
                                "(target the database's vector.recall.target).")
    assert float(description.split("recall@k of ")[1].split()[0]) < 0.9
    assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#vectorrecallbelowtarget"
    arrived, payload, alert = stack.hook.wait_for("resolved", "VectorRecallBelowTarget", WAIT)
    resolved_after = arrived - released
    report(capsys, f"VectorRecallBelowTarget: ef_search {HEALTHY_EF} -> {BROKEN_EF} (recall "
                   f"{float(healthy[0]['value'][1]):.2f} before) -> firing notification {fired_after:.1f}s; "
                   f"back to {HEALTHY_EF} -> resolved notification {resolved_after:.1f}s")
