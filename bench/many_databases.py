"""Benchmark: one daemon monitoring many databases, by server, against the issue's goals.

Two layouts on Debian's PostgreSQL 15 (``/usr/lib/postgresql/15/bin``): ``--databases`` databases
on one server, and ``--servers`` servers of ``--per-server`` databases each, every database a
``databases[]`` entry of its own (the way the README says to monitor several), PostgreSQL
collectors only (the pgvector ones disabled), every 15 s. Each ``--root`` given is run on the same
clusters, one after the other, and the figures are printed side by side:

- samples on /metrics and its size, ``vecmon_pg_database_xact_commit_total`` and
  ``vecmon_pg_connections`` samples;
- cluster-wide series served twice (same name and labels apart from ``target``/``server``, same
  server);
- one scrape (median of 5), RSS, threads, CPU seconds per minute of the daemon (from /proc);
- ``pg_database_size()`` evaluations and vecmon's statements per 15 s (pg_stat_statements rows);
- sessions vecmon holds on each server (pg_stat_activity, at the end of the window).

    git worktree add /tmp/old-main main
    python bench/many_databases.py --root /tmp/old-main --root . [--window 60]

Bounded: each run is ``--warmup`` + ``--window`` seconds (default 30 + 60).
"""

from __future__ import annotations

import argparse
import os
import re
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

from monitor.embedded import LocalPostgres, free_port  # noqa: E402

PG15 = Path(os.environ.get("VECMON_PG15_BIN", "/usr/lib/postgresql/15/bin"))
ROLE = "vecmon_monitor"
CLUSTER_WIDE_PREFIXES = ("vecmon_pg_database_", "vecmon_pg_connections", "vecmon_pg_oldest_transaction",
                         "vecmon_pg_server", "vecmon_pg_settings", "vecmon_pg_replication", "vecmon_pg_wal",
                         "vecmon_pg_checkpoint", "vecmon_pg_archiver", "vecmon_pg_io", "vecmon_pg_wraparound",
                         "vecmon_pg_activity", "vecmon_pg_up", "vecmon_pg_uptime", "vecmon_pg_in_recovery",
                         "vecmon_pg_bgwriter", "vecmon_pg_locks", "vecmon_pg_max_connections")
PG_ONLY_OFF = ("vector_indexes", "recall", "ann_latency", "vector_freshness", "vector_bloat")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def start_cluster(root: Path, name: str) -> LocalPostgres:
    server = LocalPostgres(root / name, bin_dir=PG15)
    server.init({"max_connections": "400", "shared_preload_libraries": "'pg_stat_statements'",
                 "pg_stat_statements.max": "10000", "shared_buffers": "16MB", "fsync": "off"})
    server.start()
    server.wait_ready()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN IN ROLE pg_monitor")
        conn.execute("CREATE EXTENSION pg_stat_statements")
    return server


def create_databases(server: LocalPostgres, prefix: str, count: int) -> list[str]:
    names = [f"{prefix}{i:03d}" for i in range(count)]
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    return names


def write_config(path: Path, layout: list[tuple[LocalPostgres, list[str]]], listen: str,
                 budget: int | None = None) -> dict[str, int]:
    lines = ["daemon:", f"  listen: {listen}", "databases:"]
    where: dict[str, int] = {}
    for server, names in layout:
        for name in names:
            target = f"p{server.port}_{name}"
            where[target] = server.port
            lines += [f"  - name: {target}", f"    dsn: host=127.0.0.1 port={server.port} dbname={name} user={ROLE}",
                      "    interval: 15s", *([f"    server_max_connections: {budget}"] if budget else []),
                      "    collectors:"]
            lines += [f"      {c}: {{enabled: false}}" for c in PG_ONLY_OFF]
    path.write_text("\n".join(lines) + "\n")
    return where


def proc_figures(pid: int) -> tuple[float, int, int]:
    """(cpu seconds, rss bytes, threads) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return cpu, int(status["VmRSS"].split()[0]) * 1024, int(status["Threads"])


def scrape(url: str) -> tuple[float, bytes]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - start, body


def analyse(body: bytes, where: dict[str, int]) -> dict[str, float]:
    samples = 0
    counts: dict[str, int] = {}
    seen: dict[tuple, int] = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE_RE.match(line)
        if not match:
            continue
        samples += 1
        name, labels = match.group(1), dict(LABEL_RE.findall(match.group(2) or ""))
        counts[name] = counts.get(name, 0) + 1
        if name.startswith(CLUSTER_WIDE_PREFIXES) and labels.get("target") in where:
            port = where[labels.pop("target")]
            labels.pop("server", None)
            key = (name, port, tuple(sorted(labels.items())))
            seen[key] = seen.get(key, 0) + 1
    return {"samples": samples, "bytes": len(body), "commit": counts.get("vecmon_pg_database_xact_commit_total", 0),
            "connections": counts.get("vecmon_pg_connections", 0),
            "duplicates": sum(n - 1 for n in seen.values())}


def statement_figures(servers: list[LocalPostgres]) -> tuple[int, int]:
    """(pg_database_size evaluations, vecmon statements) since the last reset, over every server."""
    sizes = statements = 0
    for server in servers:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(rows) FILTER (WHERE query ILIKE '%%pg_database_size(%%'), 0),"
                "       coalesce(sum(calls), 0)"
                "  FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s",
                [ROLE]).fetchone()
            sizes += int(row[0])
            statements += int(row[1])
    return sizes, statements


def reset_statements(servers: list[LocalPostgres]) -> None:
    for server in servers:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")


def sessions(servers: list[LocalPostgres]) -> int:
    most = 0
    for server in servers:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            most = max(most, conn.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                                          [ROLE]).fetchone()[0])
    return most


def run_daemon(root: Path, config: Path, layout, where, args) -> dict[str, float]:
    servers = [server for server, _ in layout]
    listen_port = int(config.read_text().split("listen: 127.0.0.1:")[1].split()[0])
    env = dict(os.environ, PYTHONPATH=str(root), VECMON_STATE_DIR=str(config.parent / "state"))
    log = (config.parent / f"daemon-{root.name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config), "--log-level", "warning"],
                            cwd=str(root), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{listen_port}/metrics"
    try:
        time.sleep(args.warmup)
        if proc.poll() is not None:
            raise SystemExit(f"the daemon of {root} exited; see {log.name}")
        reset_statements(servers)
        cpu0, _, _ = proc_figures(proc.pid)
        start = time.monotonic()
        peak_rss = peak_threads = 0
        while time.monotonic() - start < args.window:
            time.sleep(min(5.0, args.window - (time.monotonic() - start)) if args.window > 0 else 0)
            _, rss, threads = proc_figures(proc.pid)
            peak_rss, peak_threads = max(peak_rss, rss), max(peak_threads, threads)
        elapsed = time.monotonic() - start
        cpu1, _, _ = proc_figures(proc.pid)
        sizes, statements = statement_figures(servers)
        held = sessions(servers)
        times, body = [], b""
        for _ in range(5):
            took, body = scrape(url)
            times.append(took)
        figures = analyse(body, where)
        figures.update(scrape_ms=statistics.median(times) * 1000, rss_mb=peak_rss / 2**20, threads=peak_threads,
                       cpu_per_min=(cpu1 - cpu0) * 60 / elapsed, size_calls=sizes * 15 / elapsed,
                       statements=statements * 15 / elapsed, sessions=held)
        return figures
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


ROWS = (("samples on /metrics", "samples", "{:,.0f}"), ("/metrics bytes", "bytes", "{:,.0f}"),
        ("vecmon_pg_database_xact_commit_total samples", "commit", "{:,.0f}"),
        ("vecmon_pg_connections samples", "connections", "{:,.0f}"),
        ("cluster-wide series served twice", "duplicates", "{:,.0f}"),
        ("one scrape (ms, median of 5)", "scrape_ms", "{:,.1f}"), ("RSS (MB, peak)", "rss_mb", "{:,.0f}"),
        ("threads (peak)", "threads", "{:,.0f}"), ("CPU s per minute", "cpu_per_min", "{:,.2f}"),
        ("pg_database_size() calls per 15 s", "size_calls", "{:,.0f}"),
        ("vecmon statements per 15 s", "statements", "{:,.0f}"),
        ("vecmon sessions on the busiest server", "sessions", "{:,.0f}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", action="append", help="a vecmon checkout to run (repeatable; default: this one)")
    parser.add_argument("--databases", type=int, default=100)
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--per-server", type=int, default=10)
    parser.add_argument("--layouts", default="one,many", help="one (N on one server), many (servers x per-server)")
    parser.add_argument("--server-budget", type=int, help="server_max_connections for every entry (new checkouts)")
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    roots = [Path(r).resolve() for r in (args.root or [Path(__file__).resolve().parent.parent])]
    work = Path(tempfile.mkdtemp(prefix="vecmon-many-"))
    clusters: list[LocalPostgres] = []
    results: dict[str, dict[Path, dict[str, float]]] = {}
    try:
        layouts: dict[str, list[tuple[LocalPostgres, list[str]]]] = {}
        if "one" in args.layouts:
            server = start_cluster(work, "one")
            clusters.append(server)
            databases = create_databases(server, "d", args.databases)
            layouts[f"{args.databases} databases on one server"] = [(server, databases)]
        if "many" in args.layouts:
            layout = []
            for i in range(args.servers):
                server = start_cluster(work, f"s{i}")
                clusters.append(server)
                layout.append((server, create_databases(server, "d", args.per_server)))
            layouts[f"{args.servers} servers x {args.per_server} databases"] = layout
        for title, layout in layouts.items():
            config = work / f"{len(results)}.yaml"
            where = write_config(config, layout, f"127.0.0.1:{free_port()}", args.server_budget)
            results[title] = {}
            for root in roots:
                print(f"# {title}: running {root} ...", file=sys.stderr, flush=True)
                results[title][root] = run_daemon(root, config, layout, where, args)
    finally:
        for server in clusters:
            server.stop(mode="immediate")
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    for title, by_root in results.items():
        print(f"\n## {title} (PostgreSQL 15, every 15 s, PostgreSQL collectors only)\n")
        print("| figure | " + " | ".join(str(r) for r in by_root) + " |")
        print("|---|" + "---|" * len(by_root))
        for label, key, fmt in ROWS:
            print(f"| {label} | " + " | ".join(fmt.format(f[key]) for f in by_root.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
