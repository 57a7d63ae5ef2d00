"""The HTTP server: ``/metrics``, ``/health``, ``/ready`` and a small status page at ``/``.

A WSGI dispatcher on prometheus_client's ThreadingWSGIServer; handlers only read the
snapshot store, so a slow database can never make a scrape slow.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from typing import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from monitor import __version__
from monitor.snapshot import SnapshotStore

log = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature from the stdlib
        log.debug("http: " + format, *args)


def _respond(start_response, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _ago(now: float, then: float | None) -> str:
    return "never" if then is None else f"{now - then:.0f}s ago"


class App:
    """The WSGI application."""

    def __init__(self, store: SnapshotStore, registry: CollectorRegistry, describe: Callable[[], dict]):
        self.store = store
        self.metrics_app = make_wsgi_app(registry)
        self.describe = describe  # target name -> "host:port/db" (no credentials)

    def __call__(self, environ, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self.metrics_app(environ, start_response)
        if path in ("/health", "/healthz"):
            return _respond(start_response, "200 OK", b"ok\n", "text/plain; charset=utf-8")
        if path in ("/ready", "/readyz"):
            return self.ready(start_response)
        if path == "/":
            return _respond(start_response, "200 OK", self.status_page().encode(), "text/html; charset=utf-8")
        return _respond(start_response, "404 Not Found", b"not found\n", "text/plain; charset=utf-8")

    def ready(self, start_response) -> list[bytes]:
        pending = self.store.not_ready()
        if pending:
            body = {"ready": False, "waiting_for": [{"target": t, "collector": c} for t, c in pending]}
            return _respond(start_response, "503 Service Unavailable", json.dumps(body).encode(),
                            "application/json")
        return _respond(start_response, "200 OK", json.dumps({"ready": True}).encode(), "application/json")

    def status_page(self) -> str:
        now = time.time()
        up = self.store.target_up()
        targets = self.describe()
        rows = []
        for entry in sorted(self.store.entries(), key=lambda e: (e.target, e.collector)):
            rows.append(
                "<tr class='{cls}'><td>{target}</td><td>{collector}</td><td>{state}</td><td>{series}</td>"
                "<td>{last}</td><td>{ok}</td><td>{dur}</td><td>{err}</td></tr>".format(
                    cls=html.escape(entry.state), target=html.escape(entry.target),
                    collector=html.escape(entry.collector), state=html.escape(entry.state), series=entry.series,
                    last=_ago(now, entry.last_run), ok=_ago(now, entry.last_success),
                    dur="" if entry.last_duration is None else f"{entry.last_duration * 1000:.1f} ms",
                    err=html.escape(entry.last_error or "")))
        target_rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(where)}</td>"
            f"<td>{ {True: 'up', False: 'down'}.get(up.get(name), 'pending')}</td></tr>"
            for name, where in sorted(targets.items()))
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>vecmon</title><style>
body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}tr.failed{{background:#fdd}}
tr.disabled{{color:#888}}tr.pending{{background:#ffd}}</style></head><body>
<h1>vecmon {html.escape(__version__)}</h1>
<p><a href="/metrics">/metrics</a> &middot; <a href="/ready">/ready</a> &middot; <a href="/health">/health</a></p>
<h2>Targets</h2><table><tr><th>target</th><th>where</th><th>status</th></tr>{target_rows}</table>
<h2>Collectors</h2><table><tr><th>target</th><th>collector</th><th>state</th><th>series</th><th>last run</th>
<th>last success</th><th>duration</th><th>last error</th></tr>{''.join(rows)}</table></body></html>"""


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
