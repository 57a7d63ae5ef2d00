"""Benchmark: vecmon's footprint beside postgres_exporter's, in one run, interleaved repetitions.

* RSS idle (after every collector has run), one database target: vecmon (the demo config: every
  collector, recall included; and the same without recall, as for the exporter, which has no such
  probe) against postgres_exporter (defaults + the Debian example queries.yaml);
* 10 targets in one daemon: RSS, threads (/proc/PID/status) and CPU seconds per minute;
* ``vecmon --version`` wall time against ``prometheus-postgres-exporter --version``.

    python bench/footprint.py [--reps 3] [--settle 20] [--window 30]
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

from bench.db_cost import EXPORTER, EXPORTER_ROLE, start_exporter  # noqa: E402
from monitor.demo import demo_config, prepare  # noqa: E402
from monitor.embedded import free_port  # noqa: E402

VECMON = str(Path(sys.executable).with_name("vecmon"))
TICKS = os.sysconf("SC_CLK_TCK")


def status(pid: int) -> dict[str, int]:
    """VmRSS (bytes) and Threads of a process."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1)) * 1024
    threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
    return {"rss": rss, "threads": threads}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def without_recall(config: str) -> str:
    """The demo config with the recall probe off (and so no state store)."""
    config = config.replace("recall: {interval: 2m}", "recall: {enabled: false}")
    return "\n".join(line for line in config.splitlines() if "state_url:" not in line) + "\n"


def with_targets(config: str, count: int) -> str:
    """The demo config with its database target repeated ``count`` times under different names."""
    head, _, target = config.partition("databases:\n")
    target = target.split("\n", 1)[1]  # after "  - name: demo"
    return head + "databases:\n" + "".join(f"  - name: demo{n}\n{target}" for n in range(count))


def measure_vecmon(vecmon: list[str], config_path: Path, settle: float, window: float) -> dict[str, float]:
    listen = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([*vecmon, "run", "-c", str(config_path), "--listen", listen, "--log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("vecmon did not start") from None
                time.sleep(0.2)
        time.sleep(settle)  # every collector has run (recall included) before the figures are taken
        cpu0, t0, peak_threads = cpu_seconds(proc.pid), time.monotonic(), 0
        while time.monotonic() - t0 < window:
            urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read()  # a scrape every 5 s
            peak_threads = max(peak_threads, status(proc.pid)["threads"])
            time.sleep(5)
        cpu_per_minute = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 60
        return {**status(proc.pid), "peak_threads": peak_threads, "cpu": cpu_per_minute}
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def measure_exporter(server, settle: float, window: float) -> dict[str, float]:
    proc, listen = start_exporter(server)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < settle + window:
            urllib.request.urlopen(f"http://{listen}/metrics", timeout=30).read()
            time.sleep(5)
        return status(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wall(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    median = fmt.format(statistics.median(values))
    return median if len(values) < 2 else f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def ratio(ours: list[float], theirs: list[float]) -> str:
    return f"{statistics.median(ours) / statistics.median(theirs):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after start before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which CPU and threads are taken")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--vecmon", help="the vecmon command to measure, e.g. 'python -m monitor' with PYTHONPATH "
                        "on another checkout (default: this virtualenv's vecmon)")
    args = parser.parse_args()
    vecmon = args.vecmon.split() if args.vecmon else [VECMON]
    data_dir = Path(tempfile.mkdtemp(prefix="vecmon-footprint-"))
    server = prepare(data_dir, args.rows, args.dim)
    results: dict[str, list[dict]] = {"one": [], "bare": [], "ten": [], "exporter": []}
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (EXPORTER_ROLE,)).fetchone():
                conn.execute(f"CREATE ROLE {EXPORTER_ROLE} LOGIN IN ROLE pg_monitor")
        config = demo_config(server, "127.0.0.1:0", data_dir / "state.sqlite")
        one, bare, ten = data_dir / "one.yaml", data_dir / "bare.yaml", data_dir / "ten.yaml"
        one.write_text(config)
        bare.write_text(without_recall(config))
        ten.write_text(with_targets(config, 10))
        for _ in range(args.reps):  # interleaved: a noisy moment hits all three alike
            results["one"].append(measure_vecmon(vecmon, one, args.settle, args.window))
            results["bare"].append(measure_vecmon(vecmon, bare, args.settle, args.window))
            if os.path.exists(EXPORTER):
                results["exporter"].append(measure_exporter(server, args.settle, args.window))
            results["ten"].append(measure_vecmon(vecmon, ten, args.settle, args.window))
        version = {"vecmon": [], "exporter": []}
        for _ in range(5):
            version["vecmon"].append(wall([*vecmon, "--version"]))
            if os.path.exists(EXPORTER):
                version["exporter"].append(wall([EXPORTER, "--version"]))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    mb = lambda rows: [r["rss"] / 2**20 for r in rows]  # noqa: E731
    print(f"\nfootprint ({args.reps} interleaved repetitions, median (min-max); measured {args.settle:g}s after "
          f"start, over {args.window:g}s with a scrape every 5s)")
    for key, what in (("one", "one target"), ("bare", "one target, recall off")):
        print(f"  RSS idle, {what}: vecmon {spread(mb(results[key]))} MB", end="")
        if results["exporter"]:
            print(f", postgres_exporter {spread(mb(results['exporter']))} MB, ratio "
                  f"{ratio(mb(results[key]), mb(results['exporter']))}")
        else:
            print(", postgres_exporter not installed")
    print(f"  one target:             threads {spread([r['peak_threads'] for r in results['one']], '{:.0f}')}, "
          f"CPU {spread([r['cpu'] for r in results['one']], '{:.2f}')} s/min")
    print(f"  10 targets in one daemon: threads {spread([r['peak_threads'] for r in results['ten']], '{:.0f}')} "
          f"(peak), CPU {spread([r['cpu'] for r in results['ten']], '{:.2f}')} s/min, "
          f"RSS {spread(mb(results['ten']))} MB")
    print(f"  vecmon --version:       {spread(version['vecmon'], '{:.3f}')} s", end="")
    if version["exporter"]:
        print(f", postgres_exporter --version {spread(version['exporter'], '{:.3f}')} s, ratio "
              f"{ratio(version['vecmon'], version['exporter'])}")
    else:
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
