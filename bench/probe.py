"""Benchmark: ``/probe`` latency, configured targets and DSN targets, against /metrics and postgres_exporter.

On an embedded PostgreSQL 18 with ``--targets`` configured databases and as many others:

- ``/probe?target=NAME`` of a configured target against ``/metrics`` of the same daemon (both
  served from the snapshot; the probe is a slice of the same render);
- ``/probe?target=DSN&auth_module=...``: the first probe of each database (connect + collect),
  a cached one (within ``probe.ttl``), a re-collection after the TTL (the session kept);
- the peer: Debian's prometheus-postgres-exporter 0.11.1, whose every scrape connects and
  collects (as its ``/probe`` does; that build has no ``/probe``), on the same server.

Medians with min-max, then the ratios.

    python bench/probe.py [--targets 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from monitor.daemon import Daemon  # noqa: E402
from monitor.embedded import LocalPostgres, free_port  # noqa: E402
from monitor.loader import parse_config  # noqa: E402

EXPORTER = "/usr/bin/prometheus-postgres-exporter"


def timed(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
        assert response.status == 200
    return time.perf_counter() - started


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:.2f} ms "
            f"({min(values) * 1000:.2f}-{max(values) * 1000:.2f})")


def config_text(port: int, names: list[str]) -> str:
    dbs = "\n".join(f"  - {{name: {n}, host: 127.0.0.1, port: {port}, dbname: {n}, user: postgres, interval: 5s}}"
                    for n in names)
    return f"""
daemon: {{listen: "127.0.0.1:0"}}
databases:
{dbs}
probe: {{ttl: 2s}}
auth_modules:
  bench: {{userpass: {{username: postgres}}, options: {{sslmode: disable}}}}
"""


def exporter(port: int, db: str, requests: int) -> list[float] | None:
    if not os.path.exists(EXPORTER):
        print("postgres_exporter: not installed (apt-get install prometheus-postgres-exporter); skipped")
        return None
    listen = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, DATA_SOURCE_NAME=f"postgresql://postgres@127.0.0.1:{port}/{db}?sslmode=disable")
    proc = subprocess.Popen([EXPORTER, f"--web.listen-address={listen}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                timed(f"http://{listen}/metrics")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        return [timed(f"http://{listen}/metrics") for _ in range(requests)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalPostgres(Path(tmp) / "pg")
        server.init()
        server.start()
        server.wait_ready()
        configured = [f"conf{i}" for i in range(args.targets)]
        others = [f"other{i}" for i in range(args.targets)]
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            for name in configured + others:
                conn.execute(f"CREATE DATABASE {name}")
        daemon = Daemon(parse_config(config_text(server.port, configured)))
        daemon.start()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    timed(f"{daemon.url}/ready")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            metrics, probes = [], []
            for i in range(args.requests):  # interleaved
                metrics.append(timed(f"{daemon.url}/metrics"))
                probes.append(timed(f"{daemon.url}/probe?target={configured[i % len(configured)]}"))
            print(f"{args.targets} configured targets: /metrics {spread(metrics)}; /probe?target=NAME {spread(probes)}")
            ratio = statistics.median(probes) / statistics.median(metrics)
            print(f"  ratio /probe?target=NAME / /metrics: {ratio:.2f}")

            def dsn_url(db: str) -> str:
                target = urllib.parse.quote(f"127.0.0.1:{server.port}/{db}", safe="")
                return f"{daemon.url}/probe?target={target}&auth_module=bench"

            first = [timed(dsn_url(db)) for db in others]
            cached = [timed(dsn_url(others[i % len(others)])) for i in range(args.requests)]
            time.sleep(2.1)
            again = [timed(dsn_url(db)) for db in others]
            print(f"DSN targets: first probe {spread(first)}; cached {spread(cached)}; after the TTL {spread(again)}")
            print(f"  ratio first / cached: {statistics.median(first) / statistics.median(cached):.0f}; "
                  f"collections {daemon.probe.dsn.collections} for {len(first) + len(cached) + len(again)} probes")
        finally:
            daemon.stop()
        peer = exporter(server.port, others[0], min(args.requests, 50))
        if peer is not None:
            print(f"postgres_exporter 0.11.1 /metrics (connects and collects per scrape): {spread(peer)}")
            print(f"  ratio vecmon DSN probe first / postgres_exporter: "
                  f"{statistics.median(first) / statistics.median(peer):.2f}; "
                  f"after the TTL / postgres_exporter: {statistics.median(again) / statistics.median(peer):.2f}; "
                  f"cached / postgres_exporter: {statistics.median(cached) / statistics.median(peer):.3f}")
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
