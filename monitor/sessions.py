"""Idle database sessions kept between runs: reuse without a pool's threads.

A :class:`DatabaseConnector` (monitor.pg) keeps at most ``keep`` idle sessions of its target here
and takes one for a run. Nothing runs in the background: a session past ``max_idle`` seconds
unused or ``max_lifetime`` seconds old is closed when the cache is next used, and a session that
the server closed meanwhile is found by the run's first statement (vecmon's own, before any of
the collector's) and replaced, so a run never fails for a stale session. This replaces
psycopg_pool's ConnectionPool, whose worker and scheduler threads (two per target) made 200
threads of 100 databases, and whose check before every use cost a round trip per run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

MAX_IDLE = 300.0  # seconds an idle session is kept
MAX_LIFETIME = 1800.0  # seconds a session is used at most (server-side memory it accumulated is freed)


@dataclass
class _Idle:
    conn: psycopg.Connection
    opened: float
    used: float


class SessionBudget:
    """At most ``limit`` sessions open at a time on one server, idle ones included (a session
    holds its slot from connect to close)."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit) if limit is not None else None

    def acquire(self, timeout: float) -> bool:
        return self._slots is None or self._slots.acquire(timeout=max(0.0, timeout))

    def release(self) -> None:
        if self._slots is not None:
            self._slots.release()


class IdleSessions:
    """At most ``keep`` idle sessions, most recently used first; thread-safe, thread-free.

    ``close`` closes a session for good (the connector's, which gives back its budget slot)."""

    def __init__(self, keep: int, close: Callable[[psycopg.Connection], None],
                 clock: Callable[[], float] = time.monotonic,
                 max_idle: float = MAX_IDLE, max_lifetime: float = MAX_LIFETIME):
        self.keep = max(0, keep)
        self._close = close
        self.clock = clock
        self.max_idle = max_idle
        self.max_lifetime = max_lifetime
        self._idle: list[_Idle] = []
        self._opened: dict[int, float] = {}  # id(conn) -> when it was opened, for sessions in use
        self._lock = threading.Lock()

    def opened(self, conn: psycopg.Connection) -> None:
        """Note a new session's age (it is in use by the run that opened it)."""
        with self._lock:
            self._opened[id(conn)] = self.clock()

    def take(self) -> psycopg.Connection | None:
        """The most recently used idle session that is still fit for use, or None."""
        stale: list[psycopg.Connection] = []
        taken: psycopg.Connection | None = None
        now = self.clock()
        with self._lock:
            while self._idle:
                idle = self._idle.pop()
                if idle.conn.closed or now - idle.used > self.max_idle or now - idle.opened > self.max_lifetime:
                    stale.append(idle.conn)
                    continue
                self._opened[id(idle.conn)] = idle.opened
                taken = idle.conn
                break
        for conn in stale:
            self._close(conn)
        return taken

    def give(self, conn: psycopg.Connection) -> None:
        """Keep a session a run is done with, or close it (broken, in a transaction, too old, cache full)."""
        now = self.clock()
        with self._lock:
            opened = self._opened.pop(id(conn), now)
            fit = (not conn.closed and not conn.broken
                   and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                   and now - opened <= self.max_lifetime and len(self._idle) < self.keep)
            if fit:
                self._idle.append(_Idle(conn, opened, now))
                return
        self._close(conn)

    def discard(self, conn: psycopg.Connection) -> None:
        """Close a session a run found unusable."""
        with self._lock:
            self._opened.pop(id(conn), None)
        self._close(conn)

    def close_all(self) -> None:
        """Close every idle session (sessions in use are closed by their runs)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for item in idle:
            self._close(item.conn)

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)


class NoSessions:
    """The runner interface's lifecycle for runners that hold no sessions of their own (an HTTP
    target's, a server's that borrows its targets' connectors): opening, closing and cancelling
    are no-ops."""

    def open(self) -> None:
        return None

    def close(self, timeout: float = 2.0) -> None:
        return None

    def cancel_all(self) -> None:
        return None
