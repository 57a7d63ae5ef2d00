"""The HTTP server: ``/metrics``, ``/probe`` (:mod:`monitor.probe`), ``/health``, ``/ready``, the console
at ``/`` and ``/api/status``.

Handlers only read the snapshot store (``/metrics`` serves bytes the exposition cache rendered
once per change), so a slow database can never make a scrape slow.

The server is the standard library's ``http.server`` request handler, run one thread per
connection, with what a scrape target open to many clients needs around it:

- HTTP/1.1 keep-alive, and a listen backlog of ``BACKLOG`` (the kernel caps it at
  ``net.core.somaxconn``) so a burst of scrapers is queued rather than dropped;
- at most ``max_connections`` connections at a time: when they are all taken, a new one
  replaces the connection that has waited longest for a request (an idle or slow client), or
  is closed at once when every connection is busy answering;
- ``read_timeout`` for a TLS handshake and for a request to arrive complete on a new connection,
  ``idle_timeout`` for the next request on a kept-alive one;
- optional TLS and basic auth from a ``--web.config.file`` (:mod:`monitor.webconfig`).

Why not a library: waitress has no TLS, cheroot's worker pool is held by half-sent requests
just the same, and neither re-reads certificates; the standard handler plus this module's
connection bound is small.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, cast
from urllib.parse import parse_qs, urlsplit

from monitor import __version__
from monitor.console import REFRESH_SECONDS, render_console
from monitor.exposition import ExpositionCache
from monitor.snapshot import SnapshotStore
from monitor.status import build_status
from monitor.webconfig import PeerCert, WebConfig, peer_sans

log = logging.getLogger(__name__)

BACKLOG = 1024
OPEN_PATHS = ("/health", "/healthz")  # answered without credentials: they tell nothing about the targets


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class Headers(Protocol):
    """A request's headers as the handlers read them (``http.client.HTTPMessage``, or a dict in tests)."""

    def get(self, name: str, /) -> str | None: ...


class ProbeEndpoint(Protocol):
    """What answers ``/probe`` (:class:`monitor.probe.Probe`)."""

    def respond(self, query: str, headers: Headers) -> Response: ...


def refresh_period(query: str) -> int:
    """``refresh=N`` from the console's query string, 1..3600 seconds (default 15)."""
    values = parse_qs(query).get("refresh", [])
    try:
        return min(3600, max(1, int(values[0]))) if values else REFRESH_SECONDS
    except ValueError:
        return REFRESH_SECONDS


class App:
    """What each path answers; the transport is :class:`HttpServer`'s."""

    def __init__(self, store: SnapshotStore, exposition: ExpositionCache, describe: Callable[[], dict[str, str]],
                 web: WebConfig | None = None, slos: Callable[[], Iterable[Any]] = tuple,
                 probe: ProbeEndpoint | None = None):
        self.store = store
        self.exposition = exposition
        self.describe = describe  # target name -> "host:port/db" (no credentials)
        self.web = web
        self.slos = slos  # the running config's SLOs, for the console's error-budget view
        self.probe = probe  # monitor.probe.Probe: /probe?target=

    def respond(self, path: str, query: str, headers: Headers, peer_cert: PeerCert | None = None) -> Response:
        if path in OPEN_PATHS:
            return Response(200, b"ok\n")
        if self.web is not None and not self.web.authorized(headers.get("Authorization"), peer_sans(peer_cert)):
            return Response(401, b"Unauthorized\n", headers=(("WWW-Authenticate", 'Basic realm="vecmon"'),))
        if path == "/metrics":
            names = parse_qs(query).get("name[]") if query else None
            body, content_type, gzipped = self.exposition.body(headers.get("Accept"), headers.get("Accept-Encoding"),
                                                               names)
            return Response(200, body, content_type, (("Content-Encoding", "gzip"),) if gzipped else ())
        if path == "/probe" and self.probe is not None:
            return self.probe.respond(query, headers)
        if path in ("/ready", "/readyz"):
            return self.ready(query)
        if path == "/":
            return Response(200, render_console(self.status(), refresh_period(query)).encode(),
                            "text/html; charset=utf-8")
        if path == "/api/status":
            return Response(200, json.dumps(self.status()).encode(), "application/json")
        return Response(404, b"not found\n")

    readiness: Callable[[], str] = staticmethod(lambda: "first_run")  # daemon.readiness of the running config

    def ready(self, query: str = "") -> Response:
        """200 once every job finished one run (``daemon.readiness: first_run``, the default: a target
        that is down does not make vecmon unready, it reports it); with ``all_targets_up`` or
        ``?strict=1`` also every target reachable on its last attempt."""
        pending = self.store.not_ready()
        if pending:
            body = {"ready": False, "waiting_for": [{"target": t, "collector": c} for t, c in pending]}
            return Response(503, json.dumps(body).encode(), "application/json")
        strict = parse_qs(query).get("strict", [""])[0]
        if strict in ("1", "true") or (strict not in ("0", "false") and self.readiness() == "all_targets_up"):
            down = sorted(t for t, up in self.store.target_up().items() if not up)
            if down:
                body = {"ready": False, "targets_down": down, "reasons": self.store.target_reasons()}
                return Response(503, json.dumps(body).encode(), "application/json")
        return Response(200, json.dumps({"ready": True}).encode(), "application/json")

    def status(self) -> dict[str, Any]:
        return build_status(self.store, self.describe, self.slos())


@dataclass(eq=False)
class _Slot:
    """One admitted connection: whether it waits for a request (and since when)."""

    conn: socket.socket
    waiting_since: float | None = field(default_factory=time.monotonic)


class ConnectionLimit:
    """At most ``limit`` connections; a new one evicts the longest-waiting idle or slow one."""

    def __init__(self, limit: int):
        self.limit = limit
        self._slots: set[_Slot] = set()
        self._lock = threading.Lock()
        self.evicted = self.refused = 0

    def admit(self, conn: socket.socket) -> _Slot | None:
        with self._lock:
            if len(self._slots) >= self.limit:
                idle = [s for s in self._slots if s.waiting_since is not None]
                if not idle:
                    self.refused += 1
                    return None
                victim = min(idle, key=lambda s: s.waiting_since or 0.0)  # every idle slot has one
                self._slots.discard(victim)
                self.evicted += 1
                _hang_up(victim.conn)
            slot = _Slot(conn)
            self._slots.add(slot)
            return slot

    def hang_up_all(self) -> None:
        with self._lock:
            slots, self._slots = self._slots, set()
        for slot in slots:
            _hang_up(slot.conn)

    def release(self, slot: _Slot) -> None:
        with self._lock:
            self._slots.discard(slot)

    @property
    def open(self) -> int:
        return len(self._slots)


def _hang_up(conn: socket.socket) -> None:
    """Make a connection's blocked read return; a plain-socket shutdown, under TLS as well."""
    with contextlib.suppress(OSError):
        socket.socket.shutdown(conn, socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"vecmon/{__version__}"
    sys_version = ""
    server: _Server
    _headers_buffer: list[bytes]  # the stdlib's, set by send_header (not in its stubs)

    def __init__(self, request: socket.socket, client_address: tuple[str, int], server: _Server, slot: _Slot):
        self.slot = slot
        self.requests_served = 0
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        self.request.settimeout(self.server.read_timeout)
        context = self.server.ssl_context()
        if context is not None:
            tls = context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
            self.request = self.slot.conn = tls
            try:
                tls.do_handshake()  # here, in the connection's thread, bounded by read_timeout
            except BaseException:
                tls.close()
                raise
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.request.close()

    def handle_one_request(self) -> None:
        self.slot.waiting_since = time.monotonic()
        if self.requests_served:  # a kept-alive connection may wait longer for its next request
            self.connection.settimeout(self.server.idle_timeout)
            try:
                if not cast(io.BufferedReader, self.rfile).peek(1):  # makefile("rb") with the default buffer
                    self.close_connection = True
                    return
            except (OSError, ValueError):
                self.close_connection = True
                return
            self.connection.settimeout(self.server.read_timeout)
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True
        self.requests_served += 1

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's naming
        self.slot.waiting_since = None  # busy answering: never evicted
        parts = urlsplit(self.path)
        peer_cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        try:
            response = self.server.app.respond(parts.path, parts.query, self.headers, peer_cert)
        except Exception:  # noqa: BLE001 - a bug answers 500 and the server goes on
            log.exception("http: %s %s failed", self.command, parts.path)
            response = Response(500, b"internal error\n")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers + self.server.extra_headers():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(response.body)
        self.flush_headers()  # headers and body in one write

    do_HEAD = do_GET  # noqa: N815

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # the path without its query: /probe?target= may carry a DSN that someone gave a password
        path = urlsplit(getattr(self, "path", "")).path
        log.debug("http %s: %s %s %s", self.client_address[0], getattr(self, "command", "-"), path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the stdlib
        log.debug("http %s: " + format, self.client_address[0], *args)


class _Server(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = BACKLOG
    server_address: tuple[str, int] | tuple[str, int, int, int]  # an IPv4 or IPv6 socket's: the host is a str

    def __init__(self, address: tuple[str, int], app: App, web: WebConfig | None, max_connections: int,
                 read_timeout: float, idle_timeout: float):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.web = web
        self.limit = ConnectionLimit(max_connections)
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        # ignore: the class is never called with the stdlib's three arguments, process_request builds each
        # handler with its slot
        super().__init__(address, _Handler)  # type: ignore[arg-type]

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.web.current().ssl_context if self.web is not None else None

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        return self.web.settings.headers if self.web is not None else ()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        conn, address = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address

    # ignore: the stubs type a request as a socket or a UDP (data, socket) pair; a TCPServer's is a socket
    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        slot = self.limit.admit(request)
        if slot is None:
            self.shutdown_request(request)
            return
        threading.Thread(target=self._serve, args=(request, client_address, slot), daemon=True,
                         name="vecmon-http-conn").start()

    def _serve(self, request: socket.socket, client_address: tuple[str, int], slot: _Slot) -> None:
        try:
            _Handler(request, client_address, self, slot)
        except (OSError, ssl.SSLError, ValueError) as exc:  # a client that hung up, a failed handshake, a timeout
            log.debug("http %s: connection ended: %s", client_address[0], type(exc).__name__)
        except Exception:  # noqa: BLE001 - one broken connection never stops the server
            log.exception("http %s: request failed", client_address[0])
        finally:
            self.limit.release(slot)
            self.shutdown_request(request)


class HttpServer:
    def __init__(self, host: str, port: int, app: App, *, web: WebConfig | None = None,
                 max_connections: int = 128, read_timeout: float = 10.0, idle_timeout: float = 60.0):
        self.httpd = _Server((host, port), app, web, max_connections, read_timeout, idle_timeout)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="vecmon-http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def scheme(self) -> str:
        return "https" if self.httpd.ssl_context() is not None else "http"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.limit.hang_up_all()  # kept-alive clients see the close now, not at their next request
        self.thread.join(timeout=2)
