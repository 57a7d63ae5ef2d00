"""The HTTP server: ``/metrics``, ``/health``, ``/ready``, the console at ``/`` and ``/api/status``.

A WSGI dispatcher on prometheus_client's ThreadingWSGIServer; handlers only read the
snapshot store, so a slow database can never make a scrape slow.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable, Iterable
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from monitor.console import REFRESH_SECONDS, render_console
from monitor.snapshot import SnapshotStore
from monitor.status import build_status

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature from the stdlib
        log.debug("http: " + format, *args)


def _respond(start_response, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def refresh_period(query: str) -> int:
    """``refresh=N`` from the console's query string, 1..3600 seconds (default 15)."""
    values = parse_qs(query).get("refresh", [])
    try:
        return min(3600, max(1, int(values[0]))) if values else REFRESH_SECONDS
    except ValueError:
        return REFRESH_SECONDS


class App:
    """The WSGI application."""

    def __init__(self, store: SnapshotStore, registry: CollectorRegistry, describe: Callable[[], dict],
                 slos: Callable[[], Iterable] = tuple):
        self.store = store
        self.metrics_app = make_wsgi_app(registry)
        self.describe = describe  # target name -> "host:port/db" (no credentials)
        self.slos = slos  # the running config's SLOs, for the console's error-budget view

    def __call__(self, environ, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self.metrics_app(environ, start_response)
        if path in ("/health", "/healthz"):
            return _respond(start_response, "200 OK", b"ok\n", "text/plain; charset=utf-8")
        if path in ("/ready", "/readyz"):
            return self.ready(start_response)
        if path == "/":
            return _respond(start_response, "200 OK",
                            render_console(self.status(), refresh_period(environ.get("QUERY_STRING", ""))).encode(),
                            "text/html; charset=utf-8")
        if path == "/api/status":
            return _respond(start_response, "200 OK", json.dumps(self.status()).encode(), "application/json")
        return _respond(start_response, "404 Not Found", b"not found\n", "text/plain; charset=utf-8")

    def ready(self, start_response) -> list[bytes]:
        pending = self.store.not_ready()
        if pending:
            body = {"ready": False, "waiting_for": [{"target": t, "collector": c} for t, c in pending]}
            return _respond(start_response, "503 Service Unavailable", json.dumps(body).encode(),
                            "application/json")
        return _respond(start_response, "200 OK", json.dumps({"ready": True}).encode(), "application/json")

    def status(self) -> dict:
        return build_status(self.store, self.describe, self.slos())


class HttpServer:
    def __init__(self, host: str, port: int, app: App):
        self.httpd = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="vecmon-http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_port

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)
