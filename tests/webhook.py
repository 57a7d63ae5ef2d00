"""Test helpers for the alerting tests: required binaries, an Alertmanager webhook receiver,
and Prometheus/Alertmanager processes on free loopback ports."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from monitor.embedded import free_port
from tests.helpers import require_tool

PACKAGES = {"promtool": "prometheus", "prometheus": "prometheus", "amtool": "prometheus-alertmanager",
            "prometheus-alertmanager": "prometheus-alertmanager"}


def require_binary(name: str) -> str:
    """The binary's path; a missing binary fails the test (never a skip)."""
    return require_tool(name, PACKAGES.get(name, name))


class WebhookReceiver:
    """Collects Alertmanager webhook payloads (JSON, version 4) posted to ``url``."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.token: str | None = None  # the Authorization header of the last request
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.token = self.headers.get("Authorization")
                outer.messages.put((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, status: str, alertname: str, timeout: float) -> tuple[float, dict, dict]:
        """The first notification with an alert ``alertname`` in ``status``: (arrival, payload, alert)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {status} notification for {alertname} within {timeout:.0f}s")
            try:
                arrived, payload = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            for alert in payload.get("alerts", []):
                if alert["status"] == status and alert["labels"].get("alertname") == alertname:
                    return arrived, payload, alert


class Server:
    """A Prometheus or Alertmanager process on a free port, logging to a file, stopped by its pid."""

    def __init__(self, argv: list[str], port: int, log: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log
        self._log = open(log, "w")  # noqa: SIM115 - the server writes to it until stop()
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 20.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.proc.args[0]} exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.proc.args[0]} not ready within {timeout:.0f}s: {self.log_path.read_text()}")

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def start_prometheus(workdir: Path, config: Path) -> Server:
    port = free_port()
    return Server([require_binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], port, workdir / "prometheus.log")


def start_alertmanager(workdir: Path, config: Path) -> Server:
    port = free_port()
    return Server([require_binary("prometheus-alertmanager"), f"--config.file={config}",
                   f"--storage.path={workdir / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
                   "--cluster.listen-address=", "--log.level=warn"], port, workdir / "alertmanager.log")
