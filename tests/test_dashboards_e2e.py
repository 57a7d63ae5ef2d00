"""End to end: a real Prometheus 2.42 scrapes a running vecmon and answers every dashboard query.

The stack, started once for this module (bounded to about a minute):

- a fresh database on the embedded PostgreSQL 18 with pgvector and pg_stat_statements: a table of
  vectors with an HNSW index, vacuumed and analysed, and a thread of application-like traffic
  (ANN searches, filtered searches, lookups, writes);
- when the model-API side exists (``monitor/api_jobs.py`` and ``tests/fake_providers.py``): local
  fake provider servers (OpenAI embeddings + costs API, Cohere re-rank), a budget, and a real
  ``redis-server`` with cache traffic;
- vecmon's :class:`~monitor.daemon.Daemon` in-process on a free port, everything at 1 s intervals;
- the dashboards and (when ``alerts/render.py`` exists) the rule files generated for that config;
- Prometheus 2.42 loading the rule files and scraping vecmon every second.

Then every query of every panel of every generated dashboard is sent to ``/api/v1/query`` with
the dashboard's variables resolved the way Grafana resolves them (``label_values`` through the
Prometheus API, first value) and must return at least one series: no panel may show "No data".
A missing ``prometheus`` or ``redis-server`` binary fails the test (never a skip).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import random
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import yaml

from dashboards import lint
from dashboards.render import write_dashboards
from monitor import __version__
from monitor.daemon import Daemon
from monitor.embedded import free_port
from monitor.loader import parse_config
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import require_tool, wait_until

ROOT = Path(__file__).resolve().parent.parent
JOB = "vecmon"
DIMS = 8
HAS_API = importlib.util.find_spec("monitor.api_jobs") is not None and (ROOT / "tests/fake_providers.py").exists()
HAS_ALERTS = importlib.util.find_spec("alerts.render") is not None
# What Grafana's globals become in the instant queries (scrapes every 1 s, so 1 m holds ~60 samples).
GLOBALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "__auto": "15s",
           "__interval_ms": "15000", "__range_s": "300", "__range_ms": "300000"}
DEADLINE = 75.0  # seconds to wait for every query to answer (normally ~15 s)


def require(binary: str) -> str:
    return require_tool(binary, "prometheus" if binary == "prometheus" else binary)


def http_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


# --------------------------------------------------------------------------- the monitored stack


def prepare_database(db) -> None:
    rng = random.Random(7)
    with db.admin() as conn:
        conn.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, tenant_id int NOT NULL, "
                     f"embedding vector({DIMS}), model text NOT NULL DEFAULT 'm1', "
                     f"updated_at timestamptz NOT NULL DEFAULT now())")
        with conn.cursor().copy("COPY items (id, tenant_id, embedding) FROM STDIN") as copy:
            for i in range(1, 3001):
                vector = "[" + ",".join(f"{rng.gauss(0, 1):.4f}" for _ in range(DIMS)) + "]"
                copy.write_row((i, i % 10, vector))
        conn.execute("INSERT INTO items (id, tenant_id, embedding) "
                     "SELECT g, 0, NULL FROM generate_series(3001, 3010) g")
        conn.execute("CREATE INDEX items_embedding_hnsw ON items USING hnsw (embedding vector_l2_ops) "
                     "WITH (m = 8, ef_construction = 32)")
        conn.execute("CREATE INDEX items_tenant ON items (tenant_id)")
        conn.execute("VACUUM ANALYZE items")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {MONITOR_ROLE}")


def app_traffic(db, stop: threading.Event) -> None:
    """ANN searches, filtered searches, lookups and a few writes, like an application."""
    rng = random.Random(11)
    with psycopg.connect(db.admin_dsn, autocommit=True, application_name="app") as conn:
        while not stop.wait(0.2):
            vector = "[" + ",".join(f"{rng.gauss(0, 1):.4f}" for _ in range(DIMS)) + "]"
            conn.execute("SELECT id FROM items ORDER BY embedding <-> %s::vector LIMIT 10", (vector,)).fetchall()
            conn.execute("SELECT id FROM items WHERE tenant_id = %s ORDER BY embedding <-> %s::vector LIMIT 10",
                         (rng.randrange(10), vector)).fetchall()
            conn.execute("SELECT * FROM items WHERE id = %s", (rng.randrange(1, 3000),)).fetchall()
            conn.execute("UPDATE items SET updated_at = now() WHERE id = %s", (rng.randrange(1, 3000),))


def resp(*parts: str) -> bytes:
    return f"*{len(parts)}\r\n".encode() + b"".join(f"${len(p)}\r\n{p}\r\n".encode() for p in parts)


def cache_traffic(port: int, stop: threading.Event) -> None:
    """Embedding-cache lookups: sets and gets (hits and misses) under the emb: prefix."""
    rng = random.Random(3)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        while not stop.wait(0.1):
            key = f"emb:{rng.randrange(40)}"
            sock.sendall(resp("GET", key) + resp("SET", key, "[0.1,0.2]", "EX", "600"))
            sock.recv(65536)


@dataclass
class Stack:
    prometheus: str
    boards: dict[str, dict]
    config: object
    scrape_target: str
    rule_files: list[Path] = field(default_factory=list)


def endpoints_yaml(fakes: dict, redis_port: int | None) -> str:
    openai, cohere = fakes["openai"], fakes["cohere"]
    text = f"""
endpoints:
  - {{name: embed, provider: openai, url: "{openai.url}", model: text-embedding-3-small, api_key: sk-test,
      interval: 1s, timeout: 3s, dimensions_from: {{database: main, table: public.items, column: embedding}}}}
  - {{name: rerank, kind: rerank, provider: cohere, url: "{cohere.url}", model: rerank-v3.5, api_key: co-test,
      interval: 1s, timeout: 3s}}
cost_apis:
  - {{name: openai-org, url: "{openai.url}", api_key: sk-admin, interval: 2s, timeout: 5s}}
budgets:
  - {{name: probes, sources: [embed, rerank, openai-org], daily_usd: 1, monthly_usd: 20, interval: 1s}}
"""
    if redis_port:
        text += f"""redis:
  - {{name: cache, host: 127.0.0.1, port: {redis_port}, key_prefixes: ["emb:"], interval: 1s, timeout: 2s}}
"""
    return text


def slos_yaml(with_apis: bool) -> str:
    text = """
slos:
  - name: recall-at-5
    service: search
    objective: 0.9
    sli:
      events:
        good: vecmon_recall_good_queries_total{target="main", filter=""}
        total: vecmon_recall_queries_total{target="main", filter=""}
  - name: ann-latency
    service: search
    objective: 0.99
    sli:
      latency:
        histogram: vecmon_ann_query_duration_seconds{target="main", filter=""}
        threshold: 100ms
"""
    if not with_apis:
        return text
    return text + """
  - name: embedding-availability
    service: rag
    objective: 0.99
    sli:
      events:
        good: vecmon_model_api_requests_total{target="embed", outcome="success"}
        total: vecmon_model_api_requests_total{target="embed"}
  - name: embedding-latency
    service: rag
    objective: 0.95
    sli:
      latency:
        histogram: vecmon_model_api_request_duration_seconds{target="embed"}
        threshold: 500ms
"""


def vecmon_config(db, fakes: dict, redis_port: int | None, state_dir: Path) -> str:
    text = f"""
daemon: {{listen: "127.0.0.1:0", stale_after: 1m, shutdown_timeout: 3s}}
databases:
  - name: main
    host: 127.0.0.1
    port: {db.server.port}
    dbname: {db.name}
    user: {MONITOR_ROLE}
    interval: 1s
    timeout: 5s
    lock_timeout: 1s
    collectors:
      vector_indexes: {{interval: 1s}}
      recall: {{interval: 3s, timeout: 3s}}
      ann_latency: {{interval: 1s}}
      vector_freshness: {{interval: 1s}}
    vector:
      recall: {{sample_size: 5, k: 5, ef_search_values: [10, 40], exact_timeout: 2s, state_dir: "{state_dir}"}}
      filters:
        - {{name: tenant_3, table: public.items, where: "tenant_id = 3"}}
      freshness:
        - {{table: public.items, timestamp_column: updated_at, model_version_column: model,
            embedding_column: embedding}}
      ann_latency: {{queries: 3}}
"""
    if fakes:
        text += endpoints_yaml(fakes, redis_port)
    if HAS_ALERTS:
        text += slos_yaml(bool(fakes))
    return text


def start_prometheus(binary: str, workdir: Path, scrape_target: str, rule_files: list[Path]) -> tuple:
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [scrape_target]}]}],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    log = open(workdir / "prometheus.log", "w")  # noqa: SIM115 - Prometheus writes to it until the module ends
    proc = subprocess.Popen([binary, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {(workdir / 'prometheus.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return proc, url, log
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("prometheus did not become ready within 20s")


def wait_for_scrapes(prometheus: str, count: int, timeout: float = 20.0) -> None:
    """Until Prometheus has scraped vecmon ``count`` times (so rate() has samples to work with)."""
    query = urllib.parse.urlencode({"query": f'count_over_time(up{{job="{JOB}"}}[1m]) >= {count}'})
    wait_until(lambda: http_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"], timeout,
               f"Prometheus scraping vecmon {count} times", interval=0.5)


@pytest.fixture(scope="module")
def stack(pg18, tmp_path_factory):
    prometheus_bin = require("prometheus")
    workdir = tmp_path_factory.mktemp("e2e")
    db = new_database(pg18, ("pg_stat_statements", "vector"))
    prepare_database(db)
    stop = threading.Event()
    threads = [threading.Thread(target=app_traffic, args=(db, stop), daemon=True)]
    fakes: dict = {}
    redis_proc = redis_port = None
    cleanups = []
    try:
        if HAS_API:
            from tests.fake_providers import FakeProvider

            fakes = {"openai": FakeProvider("openai", dims=DIMS, api_key="sk-test", admin_key="sk-admin").start(),
                     "cohere": FakeProvider("cohere", api_key="co-test").start()}
            today = fakes["openai"].today
            fakes["openai"].cost_days[today] = [("embeddings", 0.42)]
            fakes["openai"].usage_days[today] = [("text-embedding-3-small", 12000, 30)]
            cleanups += [f.stop for f in fakes.values()]
            redis_bin = require("redis-server")
            redis_port = free_port()
            redis_proc = subprocess.Popen([redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cleanups.append(lambda: (redis_proc.terminate(), redis_proc.wait(5)))
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            threads.append(threading.Thread(target=cache_traffic, args=(redis_port, stop), daemon=True))
        for thread in threads:
            thread.start()
        config = parse_config(vecmon_config(db, fakes, redis_port, workdir / "state"))
        daemon = Daemon(config)
        daemon.start()
        cleanups.append(daemon.stop)
        scrape_target = daemon.url.removeprefix("http://")
        out = workdir / "generated"
        paths = write_dashboards(config, out)
        boards = {p.stem: json.loads(p.read_text()) for p in paths}
        rule_files: list[Path] = []
        if HAS_ALERTS:
            from alerts.render import write_alerting

            rule_files = [p for p in write_alerting(config, out, __version__) if p.name.endswith(".rules.yml")]
        proc, url, log = start_prometheus(prometheus_bin, workdir, scrape_target, rule_files)
        cleanups.append(lambda: (proc.terminate(), proc.wait(10), log.close()))
        wait_for_scrapes(url, 3)
        yield Stack(url, boards, config, scrape_target, rule_files)
    finally:
        stop.set()
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):  # best effort; the next cleanup must still run
                cleanup()


# --------------------------------------------------------------------------- Grafana's side


def substitute(expr: str, values: dict[str, str]) -> str:
    def repl(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in GLOBALS:
            return GLOBALS[name]
        if name in values:
            return values[name]
        raise AssertionError(f"query uses unknown variable ${name}: {expr}")
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


def label_values(prometheus: str, query: str, values: dict[str, str]) -> list[str]:
    """Grafana's ``label_values(selector, label)`` / ``label_values(label)`` through the Prometheus API."""
    match = re.fullmatch(r"\s*label_values\((.*?)(?:,\s*(\w+))?\)\s*", query, re.S)
    assert match, f"unsupported variable query {query!r}"
    selector, label = match.groups()
    if label is None:
        selector, label = None, selector.strip()
    params = {"start": str(time.time() - 300), "end": str(time.time())}
    if selector:
        params["match[]"] = substitute(selector, values)
    data = http_json(f"{prometheus}/api/v1/label/{label}/values?{urllib.parse.urlencode(params)}")
    return sorted(data["data"])


def resolve_variables(prometheus: str, board: dict) -> tuple[dict[str, str], list[str]]:
    """Each query variable's first value (in order, as Grafana does); returns (values, empty variables)."""
    values: dict[str, str] = {}
    empty = []
    for var in board["templating"]["list"]:
        if var["type"] == "datasource":
            values[var["name"]] = "prometheus"
        elif var["type"] == "query":
            found = label_values(prometheus, var["query"], values)
            if not found:
                empty.append(var["name"])
                values[var["name"]] = ".+"
            else:
                values[var["name"]] = found[0]
    return values, empty


def all_selected(board: dict) -> dict[str, str]:
    """The view a dashboard opens with: every query variable on All (``allValue``)."""
    values = {}
    for var in board["templating"]["list"]:
        values[var["name"]] = "prometheus" if var["type"] == "datasource" else var.get("allValue") or ".+"
    return values


def empty_queries(stack: Stack) -> list[str]:
    """Queries without a series, for each dashboard as it opens (All) and with the first value of each
    variable selected."""
    problems = []
    for uid, board in sorted(stack.boards.items()):
        values, empty_vars = resolve_variables(stack.prometheus, board)
        problems += [f"{uid}: variable ${name} has no values" for name in empty_vars]
        for view, selection in (("first values", values), ("All", all_selected(board))):
            for panel, target in lint.targets(board):
                expr = substitute(target["expr"], selection)
                where = f"{uid} / {panel['title']} [{target['refId']}] ({view})"
                url = f"{stack.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
                try:
                    result = http_json(url)["data"]["result"]
                except urllib.error.HTTPError as exc:
                    problems.append(f"{where}: HTTP {exc.code} {exc.read().decode()[:300]}: {expr}")
                    continue
                if not result:
                    problems.append(f"{where}: no series: {expr}")
    return problems


# --------------------------------------------------------------------------- tests


def test_every_panel_query_returns_series(stack):
    """Polls until every query answers (the slowest source, the recall probe, needs a few seconds)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        problems = empty_queries(stack)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not problems, "panels that would show No data:\n" + "\n".join(problems)
    queries = sum(1 for board in stack.boards.values() for _ in lint.targets(board))
    assert queries > 80


def test_a_missing_binary_fails_in_ci_and_elsewhere(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="prometheus not found"):
        require("prometheus")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.fail.Exception, match="prometheus not found"):
        require("prometheus")


def test_prometheus_loaded_every_rule_file_and_scraped_vecmon(stack):
    targets = http_json(f"{stack.prometheus}/api/v1/targets")["data"]["activeTargets"]
    assert [t["health"] for t in targets if t["labels"]["job"] == JOB] == ["up"]
    groups = http_json(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]
    assert {g["file"] for g in groups} == {str(p) for p in stack.rule_files}
    if stack.rule_files:
        deadline = time.monotonic() + 15
        while True:
            groups = http_json(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]
            bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r.get("health") == "err"]
            if not bad or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not bad, f"rules failing in Prometheus: {bad}"


def test_the_expected_dashboards_were_generated(stack):
    expected = {"vecmon-overview", "vecmon-postgres", "vecmon-self"}
    from dashboards.render import _vector_enabled

    if _vector_enabled(stack.config):
        expected.add("vecmon-vector")
    if HAS_API:
        expected.add("vecmon-model-apis")
    if getattr(stack.config, "slos", None):
        expected.add("vecmon-slos")
    assert set(stack.boards) == expected
