"""Whole-request deadlines for ``requests``: the bound urllib3's timeouts do not give.

urllib3 applies ``connect``/``read`` timeouts to each socket operation, so a peer that sends
one byte just before every read timeout (a model API trickling its headers at 1 byte/s) holds
a request for as long as it likes. :func:`deadline_watch` adds the missing bound: a
``threading.Timer`` that, at the deadline, shuts down the socket of every connection the
request used. A read blocked on that socket returns at once (end of file), the request fails,
and the caller sees ``watch.fired`` and reports a timeout. The connections are found through
the connection classes that :class:`DeadlineAdapter` gives urllib3's pools: each one, when it
sends a request, attaches itself to the watch of the calling thread (a ``ContextVar``, so
concurrent requests on other threads never see each other's watch).

No library does this for synchronous ``requests``: its timeouts, urllib3's and httpx's are all
per operation; only asyncio clients (aiohttp) have a total timeout.

:class:`UrlQueryRedactor` keeps query strings (where some gateways take API keys) out of
urllib3's own log records: it logs the URL at WARNING when a peer sends malformed headers.

Not covered: SOCKS proxies (their pools are not watched, so the per-operation timeouts apply),
the TLS handshake (CPython bounds it as a whole by the connect timeout, i.e. the time left when
the request started) and DNS resolution (``getaddrinfo`` cannot be interrupted).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.poolmanager import PoolManager


class RequestWatch:
    """The connections one request uses, and whether its deadline passed."""

    def __init__(self) -> None:
        self.fired = False
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()

    def attach(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            fired = self.fired
        if fired:
            _shut_down(connection)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            connections = list(self._connections)
        for connection in connections:
            _shut_down(connection)


def _shut_down(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:  # not connected yet: the connect timeout bounds that phase
        return
    with suppress(OSError):  # already closed
        # the plain socket's shutdown, also for an SSLSocket (whose own shutdown would drop its
        # SSL object under the reading thread): a blocked recv returns end of file at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_ACTIVE_WATCH: ContextVar[RequestWatch | None] = ContextVar("vecmon_request_watch", default=None)


class _Watched:
    """Mixed into urllib3's connection classes: a connection that sends a request attaches
    itself to the calling thread's watch, and one that connects after the deadline (a connect
    that took the whole budget) is shut down at once."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = _ACTIVE_WATCH.get()
        if watch is not None:
            watch.attach(self)  # type: ignore[arg-type]
        super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        watch = _ACTIVE_WATCH.get()
        if watch is not None and watch.fired:
            _shut_down(self)  # type: ignore[arg-type]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _watch_pools(manager: PoolManager) -> PoolManager:
    classes = manager.pool_classes_by_scheme
    if classes.get("http") is HTTPConnectionPool and classes.get("https") is HTTPSConnectionPool:
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager  # a SOCKS proxy manager keeps its own pools


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections (direct or through an HTTP(S) proxy) can be shut down
    by :func:`deadline_watch`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def mount_deadline_adapters(session: requests.Session) -> None:
    """Give ``session`` a :class:`DeadlineAdapter` for http:// and https:// (once)."""
    for prefix in ("http://", "https://"):
        if not isinstance(session.adapters.get(prefix), DeadlineAdapter):
            session.mount(prefix, DeadlineAdapter())


@contextmanager
def deadline_watch(session: requests.Session, seconds: float) -> Iterator[RequestWatch]:
    """Requests made on ``session`` in this block (headers and body reads) end within ``seconds``:
    then their sockets are shut down and ``watch.fired`` is set."""
    mount_deadline_adapters(session)
    watch = RequestWatch()
    timer = threading.Timer(max(0.0, seconds), watch.fire)
    timer.daemon = True
    token = _ACTIVE_WATCH.set(watch)
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        _ACTIVE_WATCH.reset(token)


class UrlQueryRedactor(logging.Filter):
    """Replaces query strings in a urllib3 log record by ``?***``: urllib3 logs request URLs (at
    DEBUG, and at WARNING with ``Failed to parse headers (url=...)`` when a peer sends malformed
    headers), and some gateways take the API key in the query."""

    QUERY = re.compile(r"\?[^\s'\"()]*")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg, record.args = self.QUERY.sub("?***", message), ()
        return True


URLLIB3_URL_LOGGERS = ("urllib3.connection", "urllib3.connectionpool", "urllib3.poolmanager")


def redact_urllib3_urls() -> None:
    """Install :class:`UrlQueryRedactor` on the urllib3 loggers that log URLs (once)."""
    for name in URLLIB3_URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, UrlQueryRedactor) for f in logger.filters):
            logger.addFilter(UrlQueryRedactor())
