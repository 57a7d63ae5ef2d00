"""Benchmark of the recall probe: database time of a first and a repeat cycle, and the recall/latency curve.

For each ``--rows`` value: starts (or reuses) an embedded PostgreSQL 18 + pgvector, loads clustered
vectors with binary COPY, builds an HNSW index, then runs vecmon's ``recall`` collector twice exactly
as the daemon does (read-only, as a pg_monitor role with SELECT on the table). The database time of
each cycle comes from pg_stat_statements (total_exec_time of the monitoring role's statements,
split into exact and approximate probe queries and the check of stored results by their tags); the
repeat cycle on the unchanged table reuses the stored exact results and approximate answers (after
checking their rows by TID) and runs EXPLAINs and that check only.

    python bench/recall_probe.py --rows 100000 1000000 --dim 384
    python bench/recall_probe.py --rows 100000 --dim 384 --filter "tenant_id = 7" --keep --data-dir /tmp/rb

1M x 384 needs about 1.6 GB of table and 2 GB of index; the build takes a while on few cores
(``--maintenance-work-mem`` should hold the graph, see the printed estimate).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.base import CollectContext  # noqa: E402
from collectors.recall_probe import RecallCollector  # noqa: E402
from collectors.vector_memory import hnsw_memory_estimate  # noqa: E402
from monitor.config import DatabaseTarget  # noqa: E402
from monitor.embedded import LocalPostgres  # noqa: E402
from monitor.pg import DatabaseConnector  # noqa: E402
from monitor.shared import SharedState  # noqa: E402

MONITOR = "vecmon_bench"
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def copy_chunk(start: int, vectors: np.ndarray, tenants: int) -> bytes:
    """Rows (id int8, tenant_id int4, embedding vector) in PostgreSQL's binary COPY format."""
    n, dim = vectors.shape
    dtype = np.dtype([("nfields", ">i2"), ("l_id", ">i4"), ("id", ">i8"), ("l_tenant", ">i4"), ("tenant", ">i4"),
                      ("l_vec", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (dim,))])
    rows = np.zeros(n, dtype=dtype)
    ids = np.arange(start, start + n, dtype=np.int64)
    rows["nfields"] = 3
    rows["l_id"] = 8
    rows["id"] = ids
    rows["l_tenant"] = 4
    rows["tenant"] = ids % tenants
    rows["l_vec"] = 4 + 4 * dim
    rows["dim"] = dim
    rows["vec"] = vectors
    return rows.tobytes()


def clustered(rng: np.random.Generator, centers: np.ndarray, basis: np.ndarray, n: int, noise: float) -> np.ndarray:
    """Clusters on a low-dimensional manifold, like real embeddings (neighbours are meaningful, not
    all equidistant as with isotropic noise in 384 dimensions)."""
    labels = rng.integers(0, len(centers), n)
    latent = rng.normal(size=(n, basis.shape[0]))
    return (centers[labels] + latent @ basis + rng.normal(scale=noise, size=(n, basis.shape[1]))).astype(np.float32)


def load(conn: psycopg.Connection, rows: int, dim: int, args: argparse.Namespace) -> float:
    rng = np.random.default_rng(args.seed)
    centers = rng.normal(size=(args.clusters, dim))
    basis = rng.normal(size=(args.latent_dim, dim)) / np.sqrt(args.latent_dim) * args.spread
    started = time.perf_counter()
    conn.execute(f"CREATE TABLE items (id bigint PRIMARY KEY, tenant_id int NOT NULL, embedding vector({dim}))")
    with conn.cursor().copy("COPY items (id, tenant_id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.write(COPY_HEADER)
        chunk = 50000
        for start in range(0, rows, chunk):
            copy.write(copy_chunk(start, clustered(rng, centers, basis, min(chunk, rows - start), args.noise),
                                  100))
        copy.write(COPY_TRAILER)
    return time.perf_counter() - started


def wait_for_stats(conn: psycopg.Connection, rows: int) -> None:
    """Statistics are flushed asynchronously: wait until the inserts are counted (the probe's table signature)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn.execute("SELECT pg_stat_force_next_flush()")
        n = conn.execute("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'items'").fetchone()
        if n and n[0] >= rows:
            return
        time.sleep(0.5)


def statements(conn: psycopg.Connection) -> dict[str, tuple[int, float]]:
    rows = conn.execute("""
        SELECT CASE WHEN query LIKE '%%vecmon:recall:exact%%' AND query NOT LIKE 'EXPLAIN%%' THEN 'exact'
                    WHEN query LIKE '%%vecmon:recall:ann%%' AND query NOT LIKE 'EXPLAIN%%' THEN 'ann'
                    WHEN query LIKE '%%vecmon:recall:check%%' THEN 'check'
                    ELSE 'other' END, sum(calls)::bigint, sum(total_exec_time)::float8
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
        WHERE r.rolname = %s AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        GROUP BY 1""", [MONITOR]).fetchall()
    return {kind: (int(calls), ms / 1000.0) for kind, calls, ms in rows}


def run_cycle(target: DatabaseTarget, state: dict, shared: SharedState, timeout: float) -> tuple[float, list]:
    connector = DatabaseConnector(target)
    connector.open()
    try:
        ctx = CollectContext(target=target.name, settings=target, state=state, shared=shared)
        started = time.perf_counter()
        families = connector.run(RecallCollector().collect, ctx, timeout)
        return time.perf_counter() - started, families
    finally:
        connector.close()


def samples(families: list, name: str) -> list:
    return [s for f in families for s in f.samples if s.name == name]


def bench(server: LocalPostgres, rows: int, args: argparse.Namespace, state_dir: Path) -> None:
    dbname = f"recall_{rows}_{args.dim}"
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if exists and not args.reuse:
            conn.execute(f"DROP DATABASE {dbname} WITH (FORCE)")
            exists = None
        if not exists:
            conn.execute(f"CREATE DATABASE {dbname}")
        conn.execute(f"DO $$BEGIN CREATE ROLE {MONITOR} LOGIN IN ROLE pg_monitor; "
                     "EXCEPTION WHEN duplicate_object THEN NULL; END$$")
        conn.execute(f"GRANT CONNECT ON DATABASE {dbname} TO {MONITOR}")
    with psycopg.connect(server.dsn(dbname), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        built = conn.execute("SELECT 1 FROM pg_class WHERE relname = 'items_hnsw'").fetchone()
        load_s = build_s = 0.0
        if not built:
            load_s = load(conn, rows, args.dim, args)
            conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
            conn.execute(f"SET max_parallel_maintenance_workers = {args.build_workers}")
            started = time.perf_counter()
            conn.execute(f"CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops) "
                         f"WITH (m = {args.m}, ef_construction = {args.ef_construction})")
            build_s = time.perf_counter() - started
            conn.execute("VACUUM ANALYZE items")
        conn.execute(f"GRANT SELECT ON items TO {MONITOR}")
        conn.execute(f"ALTER DATABASE {dbname} SET hnsw.ef_search = {args.app_ef_search}")
        wait_for_stats(conn, rows)
        index_bytes, table_bytes, shared_buffers = conn.execute(
            "SELECT pg_relation_size('items_hnsw'), pg_total_relation_size('items'), "
            "pg_size_bytes(current_setting('shared_buffers'))").fetchone()
        estimate = hnsw_memory_estimate(rows, args.m, 4 * args.dim + 8)
        print(f"\n== rows={rows:,} dim={args.dim} m={args.m} ef_construction={args.ef_construction} "
              f"clusters={args.clusters}")
        print(f"load {load_s:.1f}s  build {build_s:.1f}s  table {table_bytes / 2**20:,.0f} MB  "
              f"index {index_bytes / 2**20:,.0f} MB (estimate {estimate / 2**20:,.0f} MB)  "
              f"shared_buffers {shared_buffers / 2**20:,.0f} MB")

        target = DatabaseTarget.model_validate({
            "name": "bench", "dsn": server.dsn(dbname, user=MONITOR), "timeout": args.timeout,
            "vector": {"recall": {
                "sample_size": args.sample_size, "k": args.k, "ef_search_values": args.ef_search,
                "target": args.target, "exact_timeout": args.exact_timeout,
                "state_url": f"sqlite:///{state_dir / f'{dbname}.sqlite'}"},
                "filters": [{"name": "filter", "table": "items", "where": args.filter}] if args.filter else []}})
        state: dict = {}
        shared = SharedState()  # the recall state stores, shared between runs as the daemon does
        print(f"{'cycle':8} {'wall_s':>8} {'db_s':>8} {'exact_q':>8} {'exact_db_s':>11} {'ann_q':>7} "
              f"{'ann_db_s':>9} {'check_q':>8} {'check_ms':>9} {'other_db_s':>11}")
        last = []
        db_seconds: dict[str, float] = {}
        try:
            for cycle in ("first", "repeat"):
                conn.execute("SELECT pg_stat_statements_reset()")
                wall, families = run_cycle(target, state, shared, args.timeout)
                stats = statements(conn)
                exact, ann, check, other = (stats.get(k, (0, 0.0)) for k in ("exact", "ann", "check", "other"))
                total = exact[1] + ann[1] + check[1] + other[1]
                print(f"{cycle:8} {wall:8.2f} {total:8.2f} {exact[0]:8d} {exact[1]:11.2f} {ann[0]:7d} "
                      f"{ann[1]:9.2f} {check[0]:8d} {check[1] * 1000:9.2f} {other[1]:11.2f}")
                last = families
                db_seconds[cycle] = total
                skipped = samples(families, "vecmon_recall_probe_skipped")
                if skipped:
                    print("  skipped:", [(s.labels["index"], s.labels["reason"]) for s in skipped])
        finally:
            shared.close()
        if db_seconds.get("first"):
            print(f"repeat cycle DB time = {100 * db_seconds.get('repeat', 0.0) / db_seconds['first']:.1f}% of the "
                  f"first cycle's ({db_seconds.get('repeat', 0.0):.2f} s vs {db_seconds['first']:.2f} s)")
        print_curve(last, args)


def print_curve(families: list, args: argparse.Namespace) -> None:
    def by_point(name: str) -> dict:
        return {(s.labels["filter"], s.labels["iterative"], int(s.labels["value"])): s.value
                for s in samples(families, name)}

    used = by_point("vecmon_vector_index_used")
    recall = by_point("vecmon_recall_mean_ratio")
    good = by_point("vecmon_recall_good_queries_ratio")
    latency = by_point("vecmon_recall_ann_query_duration_seconds")
    returned = by_point("vecmon_recall_returned_rows")
    app = samples(families, "vecmon_recall_app_setting")
    exact = {s.labels["filter"]: s.value for s in samples(families, "vecmon_recall_exact_query_duration_seconds")}
    print(f"application ef_search = {int(app[0].value) if app else '?'}; k = {args.k}; "
          f"{args.sample_size} queries (stored rows, each excluded from its own results)")
    for key_filter in sorted({k[0] for k in used}):
        label = key_filter or "(no filter)"
        print(f"-- {label}: exact query {exact.get(key_filter, float('nan')) * 1000:.1f} ms mean")
        print(f"{'iterative':>14} {'ef_search':>9} {'index':>6} {'recall@k':>9} {'>=target':>9} {'rows':>6} "
              f"{'ann_ms':>8}")
        for key in sorted(k for k in used if k[0] == key_filter):
            print(f"{key[1]:>14} {key[2]:9d} {'yes' if used[key] else 'NO':>6} "
                  f"{recall.get(key, float('nan')):9.3f} {good.get(key, float('nan')):9.2f} "
                  f"{returned.get(key, float('nan')):6.1f} {latency.get(key, float('nan')) * 1000:8.2f}")
    for s in samples(families, "vecmon_recall_recommended_setting"):
        print(f"recommended ef_search for mean recall@{args.k} >= {args.target} "
              f"(filter {s.labels['filter'] or '-'}, iterative {s.labels['iterative']}): {int(s.value)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--latent-dim", type=int, default=24, help="intrinsic dimension of each cluster")
    parser.add_argument("--spread", type=float, default=1.0, help="cluster size along the latent directions")
    parser.add_argument("--noise", type=float, default=0.05, help="isotropic noise (centers are N(0, 1))")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--app-ef-search", type=int, default=40, help="ALTER DATABASE ... SET hnsw.ef_search")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[10, 20, 40, 80, 160, 320])
    parser.add_argument("--sample-size", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--filter", default=None, help="also probe this filter, e.g. 'tenant_id = 7' (1%%)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="the recall run's budget (s)")
    parser.add_argument("--exact-timeout", type=float, default=120.0)
    parser.add_argument("--shared-buffers", default="1GB")
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument("--build-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the server here (default: temporary)")
    parser.add_argument("--keep", action="store_true", help="leave the server running")
    parser.add_argument("--reuse", action="store_true", help="reuse a database loaded by an earlier run")
    args = parser.parse_args(argv)

    root = args.data_dir or Path(tempfile.mkdtemp(prefix="vecmon-recall-bench-"))
    server = LocalPostgres(root / "pg")
    server.init({"shared_buffers": f"'{args.shared_buffers}'", "max_wal_size": "'8GB'",
                 "max_parallel_maintenance_workers": str(args.build_workers)})
    server.start()
    server.wait_ready()
    state_dir = root / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        for rows in args.rows:
            bench(server, rows, args, state_dir)
    finally:
        if not args.keep:
            server.stop()
            if args.data_dir is None:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
