"""Shards and HA pairs, against real PostgreSQL 18, the fake provider and Prometheus.

- ``--shard 0/2`` and ``--shard 1/2`` (real ``vecmon collect`` processes) cover six targets
  exactly once, and the split is the one Prometheus' own ``hashmod`` relabelling makes.
- Two ``vecmon run`` daemons of one shard with ``daemon.ha``: only the leader runs the recall
  probe and the paid model-API probe; when the leader is killed, the standby takes the
  advisory lock within one ``daemon.ha.interval`` and runs them.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict

from collectors.self_metrics import COLLECTOR_DISABLED, COLLECTOR_RUNS_TOTAL, UP
from monitor.embedded import free_port
from monitor.leader import lock_key
from monitor.loader import parse_config
from monitor.shard import Shard, assignment, effective_shard, for_shard, hashmod
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import require_tool, wait_until

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["orders", "catalog", "search", "users", "billing", "events"]
HA_INTERVAL = 1.0


def _db_yaml(db, name: str, extra: str = "") -> str:
    return (f"  - name: {name}\n    host: 127.0.0.1\n    port: {db.server.port}\n    dbname: {db.name}\n"
            f"    user: {MONITOR_ROLE}\n    interval: 1s\n    timeout: 3s\n{extra}")


def _targets(exposition: str) -> set[str]:
    return {s.labels["target"] for family in text_string_to_metric_families(exposition)
            for s in family.samples if s.name == UP.name}


def _value(exposition: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


# ----------------------------------------------------------------------------- shards


def test_shard_parsing_and_errors():
    assert Shard.parse("1/3") == Shard(1, 3) and str(Shard.parse(" 2 / 4 ")) == "2/4"
    for bad, message in [("2/2", "below the count"), ("0/0", "at least 1"), ("x", "expected I/N"), ("-1/2", "I/N")]:
        with pytest.raises(ValueError, match=message):
            Shard.parse(bad)
    config = parse_config("daemon: {shard: 1/2}\n")
    assert effective_shard(config, env={}) == Shard(1, 2)
    assert effective_shard(config, env={"VECMON_SHARD": "0/3"}) == Shard(0, 3)  # --shard wins
    with pytest.raises(Exception, match="below the count"):
        parse_config("daemon: {shard: 3/2}\n")


def test_dependent_targets_share_a_shard():
    config = parse_config("""
databases:
  - {name: vectors, dsn: "host=x dbname=y"}
endpoints:
  - {name: embed, provider: openai, url: "http://127.0.0.1:1/v1/embeddings", model: m, api_key: k,
     dimensions_from: {database: vectors, table: public.items, column: embedding}}
  - {name: rerank, provider: cohere, kind: rerank, url: "http://127.0.0.1:1/v2/rerank", model: r, api_key: k}
budgets:
  - {name: spend, sources: [embed, rerank], daily_usd: 5}
""")
    for count in (2, 3, 5, 7):
        owner = assignment(config, count)
        assert owner["vectors"] == owner["embed"] == owner["rerank"] == owner["spend"]
        kept = [for_shard(config, Shard(i, count)) for i in range(count)]
        assert sorted(t.name for c in kept for t in [*c.databases, *c.endpoints, *c.budgets]) == sorted(owner)


def test_two_collect_processes_cover_six_targets_exactly_once(pg18, pg15, tmp_path):
    """Six targets on two servers: each server's databases on one shard, placed by the first of
    their names (billing: hashmod 0; catalog: 1)."""
    on_18, on_15 = new_database(pg18), new_database(pg15)
    servers = {"billing": on_18, "orders": on_18, "search": on_18, "catalog": on_15, "events": on_15, "users": on_15}
    config = tmp_path / "vecmon.yaml"
    config.write_text("databases:\n" + "".join(_db_yaml(servers[name], name) for name in NAMES))
    seen = []
    for index in (0, 1):
        proc = subprocess.run([sys.executable, "-m", "monitor", "collect", "-c", str(config), "--shard", f"{index}/2"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen.append(_targets(proc.stdout))
        assert all(_value(proc.stdout, UP.name, target=t) == 1 for t in seen[-1])
    assert seen[0] and seen[1], seen
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(NAMES)
    assert seen[0] == {"billing", "orders", "search"} and hashmod("billing", 2) == 0
    assert seen[1] == {"catalog", "events", "users"} and hashmod("catalog", 2) == 1

    bad = subprocess.run([sys.executable, "-m", "monitor", "collect", "-c", str(config), "--shard", "2/2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "the index must be below the count" in bad.stderr


@pytest.mark.integration
def test_shards_match_prometheus_hashmod_relabelling(tmp_path):
    """Prometheus places each target label in the same shard as vecmon does."""
    from tests.webhook import start_prometheus

    require_tool("prometheus", "prometheus")
    names = NAMES + [f"db-{i:02d}" for i in range(20)]
    config = {"global": {"scrape_interval": "1h"}, "scrape_configs": [{
        "job_name": "shards",
        "static_configs": [{"targets": [f"127.0.0.1:{i + 1}"], "labels": {"target": name}}
                           for i, name in enumerate(names)],
        "relabel_configs": [{"source_labels": ["target"], "modulus": 3, "target_label": "shard",
                             "action": "hashmod"}]}]}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    server = start_prometheus(tmp_path, path).wait_ready(30)
    try:
        deadline = time.monotonic() + 20
        while True:
            active = server.get_json("/api/v1/targets")["data"]["activeTargets"]
            if len(active) == len(names) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        prometheus_shard = {t["labels"]["target"]: int(t["labels"]["shard"]) for t in active}
    finally:
        server.stop()
    assert prometheus_shard == {name: hashmod(name, 3) for name in names}


# ----------------------------------------------------------------------------- HA


@pytest.fixture
def vector_db(pg18):
    db = new_database(pg18, ("pg_stat_statements", "vector"))
    with db.admin() as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(8))")
        conn.execute("INSERT INTO items SELECT g, ARRAY(SELECT sin(g * 7 + d) FROM generate_series(1, 8) d)::vector "
                     "FROM generate_series(1, 300) g")
        conn.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
        conn.execute("ANALYZE items")
        conn.execute(f"GRANT SELECT ON items TO {MONITOR_ROLE}")
    return db


def _ha_config(path: Path, db, fake_url: str, port: int) -> None:
    vector = ("    collectors: {recall: {interval: 3s, timeout: 3s}}\n"
              f"    vector: {{recall: {{sample_size: 3, k: 5, ef_search_values: [10, 40], "
              f"state_url: \"sqlite:///{path.parent / f'recall-{port}.sqlite'}\"}}}}\n")
    path.write_text(f"""
daemon: {{listen: "127.0.0.1:{port}", shutdown_timeout: 3s, ha: {{database: app, interval: {HA_INTERVAL}s}}}}
databases:
{_db_yaml(db, "app", vector)}
endpoints:
  - {{name: embed, provider: openai, url: "{fake_url}", model: text-embedding-3-small, dimensions: 8,
      interval: 1s, timeout: 3s}}
""")


def _scrape(port: int) -> str:
    """The exposition, or "" while the daemon is not listening (yet, or any more)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return ""


def _runs(exposition: str, collector: str, result: str = "success") -> float:
    return _value(exposition, COLLECTOR_RUNS_TOTAL.name, collector=collector, result=result) or 0.0


def test_ha_pair_runs_paid_and_recall_probes_on_the_leader_only_and_fails_over(vector_db, tmp_path):
    from tests.fake_providers import FakeProvider

    ports = [free_port(), free_port()]
    procs: list[subprocess.Popen] = []
    with FakeProvider("openai", dims=8) as fake:
        try:
            for port in ports:
                config = tmp_path / f"vecmon-{port}.yaml"
                _ha_config(config, vector_db, fake.url, port)
                procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config)], cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
                if port == ports[0]:  # the first one up takes the lock
                    wait_until(lambda port=port: _runs(_scrape(port), "model_probe") >= 1, 30,
                               "the first daemon's probe")

            def settled():
                texts = [_scrape(p) for p in ports]
                return texts if all(_runs(t, "connections") >= 2 and _runs(t, "recall", "disabled") + _runs(
                    t, "recall") >= 2 for t in texts) else None

            leader_text, standby_text = wait_until(settled, 30, "both daemons running")
            # Cheap collectors run on both; recall and the paid probe on the leader only.
            assert _runs(standby_text, "connections") >= 2 and _runs(leader_text, "connections") >= 2
            assert _runs(leader_text, "model_probe") >= 1 and _runs(leader_text, "recall") >= 1
            assert _runs(standby_text, "model_probe") == 0 and _runs(standby_text, "recall") == 0
            assert _runs(standby_text, "model_probe", "disabled") >= 1
            assert _value(standby_text, COLLECTOR_DISABLED.name, target="embed", collector="model_probe") == 1
            assert _value(leader_text, COLLECTOR_DISABLED.name, target="embed", collector="model_probe") == 0
            assert _value(leader_text, "vecmon_recall_mean_ratio", index="items_hnsw") is not None
            assert _value(standby_text, "vecmon_recall_mean_ratio", index="items_hnsw") is None

            # Every probe the provider saw came from the leader: its count matches the leader's runs.
            billed_before = len(fake.requests)
            assert billed_before <= _runs(_scrape(ports[0]), "model_probe") + 1

            # The leader dies without a goodbye; the standby holds the lock within one interval.
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(10)
            killed = time.monotonic()
            wait_until(lambda: _runs(_scrape(ports[1]), "model_probe") >= 1, 10 * HA_INTERVAL + 10, "the takeover")
            took_over = time.monotonic() - killed
            print(f"takeover after the leader's SIGKILL: {took_over:.2f}s (ha.interval {HA_INTERVAL}s)")
            # one lock interval, plus the probe job's own 1 s interval and its run
            assert took_over < HA_INTERVAL + 1.0 + 3.0
            def recall_ran() -> str | None:
                text = _scrape(ports[1])
                return text if _runs(text, "recall") >= 1 else None

            after = wait_until(recall_ran, 10, "recall on the new leader")
            assert _value(after, COLLECTOR_DISABLED.name, target="embed", collector="model_probe") == 0
            assert len(fake.requests) > billed_before
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
    logs = procs[1].stderr.read()
    assert "leader lock taken on app" in logs
    assert re.search(r"leader lock released on app", logs), logs[-2000:]


def test_leader_lock_session_follows_vecmon_rules(vector_db):
    """One session holds the lock: read-only, application_name=vecmon; a second elector waits."""
    from monitor.leader import LeaderElector

    config = parse_config(f"daemon: {{ha: {{database: app, interval: 1s}}}}\ndatabases:\n{_db_yaml(vector_db, 'app')}")
    target = config.databases[0]
    key = lock_key("vecmon", None)
    first, second = LeaderElector(target, key, 1.0), LeaderElector(target, key, 1.0)
    try:
        first.open()
        second.open()
        assert first.is_leader and not second.is_leader
        assert second.standby_reason().startswith("standby")
        options = conninfo_to_dict(first._conninfo)["options"]
        assert "default_transaction_read_only=on" in options and "statement_timeout=" in options
        rows = vector_db.execute(
            "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()")
        assert [r[1] for r in rows] == ["vecmon"]  # one holder: the first elector
        vector_db.execute("SELECT pg_terminate_backend(%s)", (rows[0][0],))  # its session is killed
        assert wait_until(lambda: second.is_leader, 3 * 1.0 + 2, "the second elector taking over")
        assert wait_until(lambda: not first.is_leader, 3 * 1.0 + 2, "the first elector stepping down")
    finally:
        first.close()
        second.close()


def test_the_databases_of_one_server_share_a_shard():
    """Cluster-wide series come once per server (monitor.servers): a server split over shards would
    serve them from each. Before: each database placed by its own name (the three on two shards)."""
    config = parse_config("""
databases:
  - {name: a, dsn: "host=db1 port=5432 dbname=a"}
  - {name: b, dsn: "host=db1 port=5432 dbname=b"}
  - {name: e, dsn: "host=db1 port=5432 dbname=e"}
  - {name: other, dsn: "host=db2 port=5432 dbname=a"}
""")
    assert len({hashmod(n, 2) for n in ("a", "b", "e")}) == 2  # the names alone would split the server
    for count in (2, 3, 5):
        owner = assignment(config, count)
        assert owner["a"] == owner["b"] == owner["e"] == hashmod("a", count)  # placed by its first name
        assert owner["other"] == hashmod("other", count)
        kept = [for_shard(config, Shard(i, count)) for i in range(count)]
        assert sorted(t.name for c in kept for t in c.databases) == ["a", "b", "e", "other"]
