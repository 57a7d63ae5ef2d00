"""Benchmark: /metrics under 50 parallel scrapers, vecmon against postgres_exporter.

``wrk -c50`` (Debian's wrk; ``apt-get install -y wrk``) against, on the same embedded PostgreSQL
with the demo corpus:

- vecmon ``run`` with the demo config (its own process);
- Debian's prometheus-postgres-exporter (``DATA_SOURCE_NAME``), the peer;
- vecmon's HTTP stack (monitor.http) serving a fixed body of the same size as vecmon's
  /metrics: the ceiling of the stack, what /metrics would reach if it cost nothing.

Repetitions are interleaved (vecmon, exporter, ceiling, vecmon, ...) so a noisy neighbour
hits all three alike; every figure is printed as median with min-max, then the ratios.
Connection attempts the kernel dropped (TcpExt ListenOverflows) are counted per run.

    python bench/scrape.py [--reps 3] [--duration 10] [--connections 50] [--rows 20000]
                           [--data-dir DIR] [--root CHECKOUT] [--gzip]

``--root`` runs another checkout's vecmon (e.g. the previous commit) for a before/after.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.demo import DEMO_DB, demo_config, prepare  # noqa: E402
from monitor.embedded import free_port  # noqa: E402

EXPORTER = "/usr/bin/prometheus-postgres-exporter"

FIXED_SERVER = """
import sys
sys.path.insert(0, sys.argv[3])
port, body = int(sys.argv[1]), b"x" * int(sys.argv[2])
try:
    from monitor.http import App, HttpServer, Response

    class Fixed(App):
        def __init__(self):
            pass

        def respond(self, path, query, headers, peer_cert=None):
            return Response(200, body, "text/plain; version=0.0.4; charset=utf-8")

    server = HttpServer("127.0.0.1", port, Fixed())
except ImportError:  # an older checkout: its HTTP stack served a WSGI app
    from monitor.http import HttpServer

    def fixed(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    server = HttpServer("127.0.0.1", port, fixed)
server.httpd.serve_forever()
"""


def wait_http(url: str, timeout: float = 60.0, headers: dict | None = None) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
                if response.status == 200:
                    return response.read()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s")
        time.sleep(0.2)


def listen_overflows() -> int:
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            return int(dict(zip(header.split()[1:], values.split()[1:], strict=True))["ListenOverflows"])
    return 0


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def run_wrk(url: str, connections: int, duration: int, gzip: bool) -> dict:
    command = ["wrk", f"-c{connections}", "-t2", f"-d{duration}s", "--timeout", "10s", "--latency"]
    if gzip:
        command += ["-H", "Accept-Encoding: gzip"]
    before = listen_overflows()
    out = subprocess.run(command + [url], capture_output=True, text=True, timeout=duration + 60).stdout
    dropped = listen_overflows() - before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p99": p99, "dropped": dropped, "errors": errors.group(1) if errors else "none",
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def summary(values: list[float], scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    values = [v * scale for v in values]
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--data-dir", help="reuse a demo data directory (default: a temporary one)")
    parser.add_argument("--root", default=str(ROOT), help="checkout whose vecmon is measured (default: this one)")
    parser.add_argument("--gzip", action="store_true", help="scrapers send Accept-Encoding: gzip")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    if not os.path.exists(EXPORTER):
        print(f"{EXPORTER} not found: apt-get install -y prometheus-postgres-exporter", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="vecmon-bench-"))
    server = prepare(data_dir, args.rows, args.dim)
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="vecmon-scrape-"))
    try:
        vecmon_listen = f"127.0.0.1:{free_port()}"
        config = tmp / "vecmon.yaml"
        config.write_text(demo_config(server, vecmon_listen, data_dir / "recall-state.sqlite"))
        procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config)], cwd=args.root,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        exporter_listen = f"127.0.0.1:{free_port()}"
        env = dict(os.environ, DATA_SOURCE_NAME=f"postgresql://postgres@127.0.0.1:{server.port}/{DEMO_DB}"
                                                 "?sslmode=disable")
        procs.append(subprocess.Popen([EXPORTER, f"--web.listen-address={exporter_listen}"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_http(f"http://{vecmon_listen}/ready", timeout=120)
        time.sleep(2)  # let the first cycle of slower collectors land
        # the ceiling serves a body as long as the one vecmon sends (gzipped when the scrapers ask for gzip)
        size = len(wait_http(f"http://{vecmon_listen}/metrics",
                             headers={"Accept-Encoding": "gzip"} if args.gzip else None))
        exporter_size = len(wait_http(f"http://{exporter_listen}/metrics"))
        fixed_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", FIXED_SERVER, str(fixed_port), str(size), args.root]))
        wait_http(f"http://127.0.0.1:{fixed_port}/metrics")
        urls = {"vecmon": f"http://{vecmon_listen}/metrics", "exporter": f"http://{exporter_listen}/metrics",
                "ceiling": f"http://127.0.0.1:{fixed_port}/metrics"}
        print(f"/metrics bodies: vecmon {size} bytes{' gzipped' if args.gzip else ''}, postgres_exporter "
              f"{exporter_size} bytes; "
              f"wrk -c{args.connections} -t2 -d{args.duration}s{' gzip' if args.gzip else ''}, {args.reps} "
              f"interleaved repetitions; vecmon from {args.root}")
        results: dict[str, list[dict]] = {name: [] for name in urls}
        for rep in range(args.reps):
            for name, url in urls.items():
                result = run_wrk(url, args.connections, args.duration, args.gzip)
                results[name].append(result)
                print(f"  rep {rep + 1} {name:<8} {result['rps']:8.0f} req/s  p99 {result['p99'] * 1000:8.1f} ms  "
                      f"dropped {result['dropped']}  socket errors: {result['errors']}  non-2xx {result['non2xx']}",
                      flush=True)
        print()
        for name in urls:
            runs = results[name]
            print(f"{name:<9} req/s {summary([r['rps'] for r in runs])}   p99 ms "
                  f"{summary([r['p99'] for r in runs], 1000, '{:.1f}')}   dropped connections "
                  f"{sum(r['dropped'] for r in runs)}")
        pairs = list(zip(results["vecmon"], results["exporter"], results["ceiling"], strict=True))
        print(f"req/s vecmon/exporter:  {summary([v['rps'] / e['rps'] for v, e, _ in pairs], fmt='{:.1f}x')}"
              "   (target >= 10x)")
        print(f"p99   vecmon/exporter:  {summary([v['p99'] / e['p99'] for v, e, _ in pairs], fmt='{:.3f}x')}"
              "   (target <= 0.1x)")
        print(f"req/s vecmon/ceiling:   {summary([v['rps'] / c['rps'] for v, _, c in pairs], fmt='{:.2f}x')}"
              "   (target >= 0.5x)")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
