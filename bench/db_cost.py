"""Benchmark: what monitoring costs the database, vecmon against postgres_exporter in the same run.

Two figures, each over interleaved repetitions (median, with min-max):

1. **Catalog queries at many tables**: vecmon's tables and indexes queries against the exporter's
   ``pg_stat_user_tables`` and ``pg_statio_user_tables`` queries (from the queries.yaml Debian ships
   with prometheus-postgres-exporter 0.11.1), on a database of ``--tables`` tables with an index each.
2. **DB time per minute**: server-side execution time (pg_stat_statements, by role) of every vecmon
   collector on the demo corpus, each at a 15 s interval (recall at its own 10 min default), against
   postgres_exporter scraped every 15 s with its defaults plus the example queries.yaml (per-table,
   statio and statement queries), for coverage comparable to vecmon's.

    python bench/db_cost.py [--tables 10000] [--rows 20000] [--dim 128] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
import yaml  # noqa: E402

from collectors.base import CollectContext  # noqa: E402
from collectors.pg_indexes import INDEXES_SQL  # noqa: E402
from collectors.pg_tables import TABLES_SQL  # noqa: E402
from collectors.registry import DEFAULT_INTERVALS, database_collector  # noqa: E402
from monitor.demo import DEMO_DB, MONITOR_ROLE, demo_config, prepare  # noqa: E402
from monitor.embedded import free_port  # noqa: E402
from monitor.loader import parse_config  # noqa: E402
from monitor.pg import DatabaseConnector  # noqa: E402
from monitor.shared import SharedState  # noqa: E402

EXPORTER = "/usr/bin/prometheus-postgres-exporter"
EXPORTER_QUERIES = Path("/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml")
EXPORTER_ROLE = "exporter_bench"
MANY_DB = "manytables"
SCRAPE_INTERVAL = 15.0
PGVECTOR = ("vector_indexes", "recall", "ann_latency", "vector_freshness", "vector_bloat")


def spread(values: list[float], scale: float = 1000.0, unit: str = "ms") -> str:
    return (f"{statistics.median(values) * scale:.1f} {unit} "
            f"({min(values) * scale:.1f}-{max(values) * scale:.1f})")


def ratio(ours: list[float], theirs: list[float]) -> str:
    return f"{statistics.median(ours) / statistics.median(theirs):.2f}" if statistics.median(theirs) else "n/a"


def make_many_tables(admin_dsn: str, tables: int) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (MANY_DB,)).fetchone():
            return
        conn.execute(f"CREATE DATABASE {MANY_DB}")
    dsn = admin_dsn.replace("dbname=postgres", f"dbname={MANY_DB}")
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for first in range(0, tables, 500):
            conn.execute(f"""DO $$ BEGIN FOR i IN {first}..{min(tables, first + 500) - 1} LOOP
                EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, note text)', i);
                EXECUTE format('INSERT INTO t%s SELECT g, md5(g::text) FROM generate_series(1, 1 + %s %% 50) g', i, i);
                END LOOP; END $$""")
        conn.execute("ANALYZE")
        conn.execute(f"GRANT CONNECT ON DATABASE {MANY_DB} TO {MONITOR_ROLE}, {EXPORTER_ROLE}")
    print(f"created {tables} tables with an index each in {time.perf_counter() - started:.0f}s")


def exporter_queries() -> dict:
    return yaml.safe_load(EXPORTER_QUERIES.read_text()) if EXPORTER_QUERIES.exists() else {}


def bench_catalog(server, tables: int, reps: int) -> None:
    make_many_tables(server.dsn(), tables)
    queries = exporter_queries()
    theirs = {name: queries[name]["query"] for name in ("pg_stat_user_tables", "pg_statio_user_tables")
              if name in queries}
    ours = {"tables": (TABLES_SQL, {"limit": 50}), "indexes": (INDEXES_SQL, {"limit": 50})}
    times: dict[str, list[float]] = {name: [] for name in [*ours, *theirs]}
    with psycopg.connect(server.dsn(MANY_DB, user=MONITOR_ROLE)) as conn:
        conn.read_only = True
        for rep in range(reps + 1):  # the first round warms the caches and is not counted
            for name, (query, params) in ours.items():
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute(query, params).fetchall()
                if rep:
                    times[name].append(time.perf_counter() - started)
            for name, query in theirs.items():
                started = time.perf_counter()
                with conn.transaction():
                    conn.execute(query).fetchall()
                if rep:
                    times[name].append(time.perf_counter() - started)
    print(f"\n1. catalog queries at {tables} tables ({reps} interleaved repetitions, client wall time)")
    for name in ours:
        print(f"  vecmon {name:<26} {spread(times[name])}")
    for name in theirs:
        print(f"  postgres_exporter {name:<15} {spread(times[name])}")
    if theirs:
        exporter_total = [sum(v) for v in zip(*(times[n] for n in theirs), strict=True)]
        vecmon_total = [sum(v) for v in zip(*(times[n] for n in ours), strict=True)]
        print(f"  tables+indexes: vecmon {spread(vecmon_total)}, exporter {spread(exporter_total)}, "
              f"ratio {ratio(vecmon_total, exporter_total)}")
    else:
        print("  postgres_exporter's queries.yaml not found (apt-get install prometheus-postgres-exporter)")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:  # keep figure 2 of a later run comparable
        conn.execute(f"DROP DATABASE {MANY_DB}")


def role_db_time(admin_dsn: str, role: str) -> float:
    """Seconds of execution time pg_stat_statements has recorded for ``role`` in the demo database."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(sum(s.total_exec_time), 0) FROM pg_stat_statements s"
                           " JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid"
                           " WHERE r.rolname = %s AND d.datname = %s", (role, DEMO_DB)).fetchone()
    return float(row[0]) / 1000.0


def run_collector(connector: DatabaseConnector, target, name: str, shared: SharedState, state: dict) -> None:
    """One run on the target's connector, kept open across runs as the daemon keeps it (its
    connection set-up and one-time privilege check are not part of a run's cost)."""
    ctx = CollectContext(target=target.name, settings=target, state=state, shared=shared)
    connector.run(database_collector(name)().collect, ctx, target.timeout_for(name))


def start_exporter(server) -> tuple[subprocess.Popen, str]:
    listen = f"127.0.0.1:{free_port()}"
    dsn = f"postgresql://{EXPORTER_ROLE}@127.0.0.1:{server.port}/{DEMO_DB}?sslmode=disable"
    args = [EXPORTER, f"--web.listen-address={listen}"]
    if EXPORTER_QUERIES.exists():
        args.append(f"--extend.query-path={EXPORTER_QUERIES}")
    proc = subprocess.Popen(args, env=dict(os.environ, DATA_SOURCE_NAME=dsn), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read()
            return proc, listen
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


def bench_db_time(server, data_dir: Path, reps: int) -> None:
    config = parse_config(demo_config(server, "127.0.0.1:0", data_dir / "bench-state.sqlite"))
    target = config.databases[0]
    admin = server.dsn(DEMO_DB)
    names = target.enabled_collectors()
    per_run: dict[str, list[float]] = {name: [] for name in names}
    exporter: list[float] = []
    proc, listen = start_exporter(server) if os.path.exists(EXPORTER) else (None, "")
    shared = SharedState()
    states: dict[str, dict] = {name: {} for name in names}
    connector = DatabaseConnector(target)
    connector.open()
    try:
        for name in names:  # first runs build caches (discovery, exact results): not counted
            run_collector(connector, target, name, shared, states[name])
        if proc:
            urllib.request.urlopen(f"http://{listen}/metrics", timeout=30).read()
        for _ in range(reps):
            for name in names:
                before = role_db_time(admin, MONITOR_ROLE)
                run_collector(connector, target, name, shared, states[name])
                per_run[name].append(role_db_time(admin, MONITOR_ROLE) - before)
            if proc:
                before = role_db_time(admin, EXPORTER_ROLE)
                urllib.request.urlopen(f"http://{listen}/metrics", timeout=30).read()
                exporter.append(role_db_time(admin, EXPORTER_ROLE) - before)
    finally:
        connector.close()
        shared.close()
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"\n2. DB time per minute, collectors every {SCRAPE_INTERVAL:g}s (recall at its own interval), "
          f"{reps} interleaved repetitions, pg_stat_statements by role")
    per_minute = [0.0] * reps
    postgres_minute = [0.0] * reps  # the PostgreSQL collectors: the coverage comparable to the exporter's
    vector_default = [0.0] * reps  # the pgvector probes at their own default intervals
    for name in names:
        interval = SCRAPE_INTERVAL if name != "recall" else target.interval_for(name)
        runs_per_minute = 60.0 / interval
        print(f"  vecmon {name:<18} per run {spread(per_run[name])}, x{runs_per_minute:g}/min")
        per_minute = [total + value * runs_per_minute for total, value in zip(per_minute, per_run[name], strict=True)]
        if name in PGVECTOR:
            default = 60.0 / (DEFAULT_INTERVALS.get(name) or SCRAPE_INTERVAL)
            vector_default = [total + value * default
                              for total, value in zip(vector_default, per_run[name], strict=True)]
        else:
            postgres_minute = [total + value * runs_per_minute
                               for total, value in zip(postgres_minute, per_run[name], strict=True)]
    print(f"  vecmon, all collectors: {spread(per_minute)} per minute")
    print(f"  vecmon, PostgreSQL collectors (comparable coverage): {spread(postgres_minute)} per minute")
    print(f"  vecmon, pgvector probes at their default intervals: {spread(vector_default)} per minute")
    if exporter:
        exporter_minute = [value * 60.0 / SCRAPE_INTERVAL for value in exporter]
        print(f"  postgres_exporter 0.11.1 (+ example queries.yaml): {spread(exporter_minute)} per minute")
        print(f"  ratio vecmon / postgres_exporter, PostgreSQL collectors: {ratio(postgres_minute, exporter_minute)}")
        print(f"  ratio vecmon / postgres_exporter, every collector at 15 s: {ratio(per_minute, exporter_minute)}")
    else:
        print("  postgres_exporter: not installed (apt-get install prometheus-postgres-exporter)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=10000)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--data-dir", help="reuse a data directory (default: a temporary one)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="vecmon-dbcost-"))
    server = prepare(data_dir, args.rows, args.dim)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (EXPORTER_ROLE,)).fetchone():
                conn.execute(f"CREATE ROLE {EXPORTER_ROLE} LOGIN IN ROLE pg_monitor")
        with psycopg.connect(server.dsn(DEMO_DB), autocommit=True) as conn:
            conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {EXPORTER_ROLE}")
        bench_db_time(server, data_dir, args.reps)
        bench_catalog(server, args.tables, args.reps)
    finally:
        server.stop()
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
