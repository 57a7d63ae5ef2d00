"""Benchmark: one full collection cycle on the demo database, and postgres_exporter side by side.

Prints, for vecmon: wall time of a full cycle (all collectors of the target, run concurrently
as the daemon does), each collector's duration, series count, the time to render /metrics,
and the process RSS. For Debian's prometheus-postgres-exporter 0.11.1 against the same
server (when installed): scrape wall time and sample count.

    python bench/collect_cycle.py [--rows 50000] [--dim 384] [--cycles 10] [--data-dir DIR]
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

from prometheus_client import generate_latest  # noqa: E402

from monitor.demo import DEMO_DB, demo_config, prepare  # noqa: E402
from monitor.embedded import free_port  # noqa: E402
from monitor.exposition import build_registry  # noqa: E402
from monitor.loader import parse_config  # noqa: E402
from monitor.scheduler import Runtime  # noqa: E402
from monitor.snapshot import SnapshotStore  # noqa: E402

EXPORTER = "/usr/bin/prometheus-postgres-exporter"


def bench_vecmon(config_text: str, cycles: int) -> None:
    config = parse_config(config_text)
    store = SnapshotStore()
    runtime = Runtime(config, store)
    registry = build_registry(store, 300)
    walls = []
    per_collector: dict[str, list[float]] = {}
    try:
        for _ in range(cycles):
            started = time.perf_counter()
            results = runtime.run_once()
            walls.append(time.perf_counter() - started)
            assert all(r in ("success", "disabled") for r in results.values()), results
            for entry in store.entries():
                per_collector.setdefault(entry.collector, []).append(entry.last_duration or 0)
    finally:
        runtime.stop()
    render = []
    for _ in range(20):
        started = time.perf_counter()
        text = generate_latest(registry)
        render.append(time.perf_counter() - started)
    samples = [line for line in text.decode().splitlines() if line and not line.startswith("#")]
    print(f"vecmon: full cycle over {cycles} runs: median {statistics.median(walls) * 1000:.1f} ms, "
          f"min {min(walls) * 1000:.1f} ms, max {max(walls) * 1000:.1f} ms (first run includes connecting)")
    for name, durations in sorted(per_collector.items()):
        print(f"  {name:<12} median {statistics.median(durations) * 1000:7.1f} ms")
    print(f"vecmon: {len(samples)} samples on /metrics; rendering median {statistics.median(render) * 1000:.2f} ms, "
          f"{len(text)} bytes")


def bench_daemon(config_text: str, cycles: int) -> None:
    """The real daemon in its own process: scrape latency and resident memory."""
    listen = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vecmon.yaml"
        path.write_text(config_text)
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(path), "--listen", listen],
                                cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if urllib.request.urlopen(f"http://{listen}/ready", timeout=5).status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("vecmon did not become ready")
                time.sleep(0.2)
            walls = []
            for _ in range(cycles):
                started = time.perf_counter()
                urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read()
                walls.append(time.perf_counter() - started)
            rss = int(Path(f"/proc/{proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024
            print(f"vecmon daemon: scrape median {statistics.median(walls) * 1000:.1f} ms "
                  f"(no database work on the scrape path); RSS {rss} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def bench_exporter(port: int, cycles: int) -> None:
    if not os.path.exists(EXPORTER):
        print("postgres_exporter: not installed (apt-get install prometheus-postgres-exporter); skipped")
        return
    listen = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, DATA_SOURCE_NAME=f"postgresql://postgres@127.0.0.1:{port}/{DEMO_DB}?sslmode=disable")
    proc = subprocess.Popen([EXPORTER, f"--web.listen-address={listen}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://{listen}/metrics", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        walls = []
        for _ in range(cycles):
            started = time.perf_counter()
            body = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
            walls.append(time.perf_counter() - started)
        samples = [line for line in body.splitlines() if line and not line.startswith("#")]
        rss = int(Path(f"/proc/{proc.pid}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024
        print(f"postgres_exporter 0.11.1: scrape median {statistics.median(walls) * 1000:.1f} ms, "
              f"min {min(walls) * 1000:.1f} ms, max {max(walls) * 1000:.1f} ms; {len(samples)} samples; "
              f"RSS {rss} MiB (no per-table, per-index or pgvector series by default)")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--data-dir", help="reuse a demo data directory (default: a temporary one)")
    args = parser.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="vecmon-bench-"))
    started = time.perf_counter()
    server = prepare(data_dir, args.rows, args.dim)
    print(f"demo database ready in {time.perf_counter() - started:.1f}s ({(data_dir / 'loaded').read_text().strip()})")
    try:
        bench_vecmon(demo_config(server, "127.0.0.1:0", data_dir / "recall-state.sqlite"), args.cycles)
        bench_daemon(demo_config(server, "127.0.0.1:0", data_dir / "recall-state.sqlite"), args.cycles)
        bench_exporter(server.port, args.cycles)
    finally:
        server.stop()
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
