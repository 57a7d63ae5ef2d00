"""Faults at the daemon's edges: bad config reloads, many parallel scrapers, slow and idle clients.

Every case is bounded in count and time. Timings are printed (``-s``), not asserted, except
for generous ceilings that only a hung or starved server misses.
"""

from __future__ import annotations

import http.client
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from collectors.self_metrics import COLLECTOR_RUNS_TOTAL
from monitor.daemon import Daemon
from monitor.loader import ConfigError, load_config
from tests.helpers import wait_until
from tests.test_daemon import db_config, get, sample, start_daemon

pytestmark = pytest.mark.integration  # servers, sockets or processes without a server fixture

BAD_RELOADS = {
    "empty": "",
    "comment-only": "# vecmon config, being rewritten\n\n# databases: ...\n",
    "daemon-only": "daemon: {listen: \"127.0.0.1:0\"}\n",
    "not-a-mapping": "- databases\n- endpoints\n",
    "broken-yaml": "databases: [\n  {name: main, host: 127.0.0.1\n",
    "all-disabled": "databases:\n  - {name: main, host: 127.0.0.1, dbname: x, enabled: false}\n",
}


def half_written(good: str) -> str:
    """The config as an editor or `cp` leaves it part-way: cut right after ``databases:``."""
    return good[: good.index("databases:") + len("databases:") + 1]


def runs(text: str, target: str, collector: str = "connections") -> float:
    return sample(text, COLLECTOR_RUNS_TOTAL.name, {"target": target, "collector": collector,
                                                        "result": "success"}) or 0


@pytest.mark.parametrize("case", [*BAD_RELOADS, "half-written"])
def test_a_bad_reload_keeps_the_running_config(db18, tmp_path, case, caplog):
    config_path = tmp_path / "vecmon.yaml"
    good = db_config(db18, "main", "    collectors: {recall: {enabled: false}}\n")
    config_path.write_text(good)
    daemon = Daemon(load_config(config_path), config_path)
    daemon.start()
    try:
        wait_until(lambda: not daemon.store.not_ready())
        config_path.write_text(half_written(good) if case == "half-written" else BAD_RELOADS[case])
        with caplog.at_level("INFO", logger="monitor.daemon"):
            applied = daemon.reload()
        assert applied is False
        messages = [r.getMessage() for r in caplog.records if r.name == "monitor.daemon"]
        assert any(m.startswith("reload rejected, keeping the running config") for m in messages), messages
        assert not any("configuration reloaded" in m for m in messages), messages
        print(f"{case}: {[m for m in messages if 'rejected' in m][0].splitlines()[-1].strip()}")
        # the old targets keep being collected
        before = runs(get(f"{daemon.url}/metrics")[1], "main")
        assert before >= 1
        wait_until(lambda: runs(get(f"{daemon.url}/metrics")[1], "main") >= before + 2, timeout=10)
        assert {e.target for e in daemon.store.entries()} == {"main"}
    finally:
        daemon.stop()


def test_rejections_name_the_problem(db18, tmp_path):
    path = tmp_path / "vecmon.yaml"
    for text, expected in [("", "empty"), ("# only\n", "empty"), ("daemon: {}\n", "nothing to monitor"),
                           (BAD_RELOADS["all-disabled"], "nothing to monitor")]:
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            Daemon(load_config(path, require_mapping=True), path)
        assert expected in str(info.value) and str(path) in str(info.value), str(info.value)
    # a daemon that serves only its own metrics must say so
    path.write_text("daemon: {listen: \"127.0.0.1:0\", allow_no_targets: true}\n")
    daemon = Daemon(load_config(path, require_mapping=True), path)
    assert daemon.runtime.keys() == []
    daemon.http.httpd.server_close()


@pytest.fixture
def free_port():
    from monitor.embedded import free_port as pick

    return pick()


def test_sighup_with_an_empty_file_keeps_collecting(db18, tmp_path, free_port):
    config_path = tmp_path / "vecmon.yaml"
    url = f"http://127.0.0.1:{free_port}"
    config_path.write_text(db_config(db18, "first", "    collectors: {recall: {enabled: false}}\n",
                                     listen=f"127.0.0.1:{free_port}"))
    proc = start_daemon(config_path)
    try:
        wait_until(lambda: get(f"{url}/ready")[0] == 200 if proc.poll() is None else pytest.fail(proc.stderr.read()))
        for bad in ("", "# comment only\n"):
            config_path.write_text(bad)
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert proc.poll() is None
            before = runs(get(f"{url}/metrics")[1], "first")
            assert before >= 1
            wait_until(lambda before=before: runs(get(f"{url}/metrics")[1], "first") >= before + 2, timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert stderr.count("reload rejected, keeping the running config") == 2, stderr
    assert "configuration reloaded" not in stderr
    assert "empty" in stderr


def test_run_refuses_a_config_with_nothing_to_monitor(tmp_path, free_port):
    config_path = tmp_path / "vecmon.yaml"
    config_path.write_text("# nothing yet\n")
    proc = start_daemon(config_path, "--listen", f"127.0.0.1:{free_port}")
    assert proc.wait(timeout=30) == 2
    assert "empty" in proc.stderr.read()


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connection attempts the kernel dropped because a backlog was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            return int(dict(zip(header.split()[1:], values.split()[1:], strict=True))["ListenOverflows"])
    raise AssertionError("no TcpExt in /proc/net/netstat")


def scrape(port: int, path: str = "/metrics", timeout: float = 20.0) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, len(response.read())
    finally:
        conn.close()


@pytest.fixture
def running_daemon(db18, tmp_path, free_port):
    config_path = tmp_path / "vecmon.yaml"
    config_path.write_text(db_config(db18, "main", "    collectors: {recall: {enabled: false}}\n",
                                     listen=f"127.0.0.1:{free_port}"))
    proc = start_daemon(config_path)
    try:
        wait_until(lambda: get(f"http://127.0.0.1:{free_port}/ready")[0] == 200 if proc.poll() is None
                 else pytest.fail(proc.stderr.read()))
        yield proc, free_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            proc.kill()
            proc.wait()


def test_50_parallel_scrapers_lose_no_connection(running_daemon):
    """50 clients, each opening a new connection per request (the worst case for the backlog)."""
    proc, port = running_daemon
    clients, per_client = 50, 20
    latencies: list[float] = []
    failures: list[str] = []
    start = threading.Barrier(clients)

    def client() -> None:
        start.wait()
        for _ in range(per_client):
            began = time.perf_counter()
            try:
                status, size = scrape(port)
                if status != 200 or size == 0:
                    failures.append(f"status {status}, {size} bytes")
            except OSError as exc:
                failures.append(repr(exc))
            latencies.append(time.perf_counter() - began)

    overflows = listen_overflows()
    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    wall = time.perf_counter() - began
    dropped = listen_overflows() - overflows
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    print(f"\n{clients}x{per_client} scrapes in {wall:.1f}s: {len(failures)} failed, {dropped} connection attempts "
          f"dropped (ListenOverflows), median {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert len(latencies) == clients * per_client
    assert dropped == 0


def process_threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


def test_slow_and_idle_clients_neither_exhaust_threads_nor_block_a_scrape(running_daemon):
    proc, port = running_daemon
    baseline = process_threads(proc.pid)
    slow = []
    try:
        for index in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if index % 2 == 0:
                sock.sendall(b"GET /metr")  # half a request line, never finished
            slow.append(sock)  # the other half sends nothing at all
        time.sleep(1.0)
        threads = process_threads(proc.pid)
        began = time.perf_counter()
        status, size = scrape(port, timeout=10)
        took = time.perf_counter() - began
        print(f"\n300 slow clients: {threads} threads (baseline {baseline}); a normal scrape took {took * 1000:.0f} ms")
        assert status == 200 and size > 0
        assert took < 3.0
        # one thread per admitted connection, at most 128 (plus the scheduler's job threads starting)
        assert threads <= baseline + 128 + 60, f"{threads} threads for 300 idle sockets"
        # the server closes connections that never finish a request (read timeout)
        deadline = time.monotonic() + 30
        closed = 0
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while sock.recv(4096):  # a 408 answer may come before the close
                    pass
                closed += 1
            except (ConnectionResetError, BrokenPipeError):
                closed += 1
            except TimeoutError:
                pass
        print(f"closed by the server within 30 s: {closed} of 300")
        assert closed == 300
    finally:
        for sock in slow:
            sock.close()
