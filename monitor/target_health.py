"""Whether a database target is reachable, why not, and the log lines about it.

:class:`TargetHealth` logs one line when a target goes down (with the server's words, redacted),
one when it is back (with the outage's length), and a reminder at most every
:data:`REMINDER_INTERVAL` seconds in between; :func:`unreachable_reason` classifies a failed
connection attempt into the bounded label values of ``vecmon_target_unreachable_reason``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg

from collectors.base import ConnectionUnavailable

log = logging.getLogger("monitor.pg")

# Why a target could not be reached: the bounded values of vecmon_target_unreachable_reason's label.
REASONS = ("auth_failed", "refused", "dns", "timeout", "database_missing", "tls", "other")
REMINDER_INTERVAL = 300.0  # while a target stays down, a reminder is logged at most this often
FAILURE_REUSE = 1.0  # runs starting this soon after a failed connection attempt share its result
_DNS = ("could not translate host name", "failed to resolve host", "name or service not known",
        "temporary failure in name resolution", "nodename nor servname")
_AUTH = ("password authentication failed", "authentication failed", "no pg_hba.conf entry", "no password supplied",
         "is not permitted to log in", "pg_hba.conf rejects")


def unreachable_reason(exc: BaseException) -> str:
    """Classify a failed connection attempt into one of :data:`REASONS`."""
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return "timeout"
    sqlstate = getattr(exc, "sqlstate", None) or ""
    text = str(exc).lower()
    if sqlstate == "3D000" or ('database "' in text and "does not exist" in text):
        return "database_missing"
    if sqlstate.startswith("28") or any(p in text for p in _AUTH) or ('role "' in text and "does not exist" in text):
        return "auth_failed"
    if any(p in text for p in _DNS):
        return "dns"
    if "connection refused" in text or "no such file or directory" in text:
        return "refused"
    if "ssl" in text or "tls" in text or "certificate" in text:
        return "tls"
    if "timeout expired" in text or "timed out" in text:
        return "timeout"
    return "other"


def one_line(exc: BaseException, limit: int = 400) -> str:
    """The driver's or server's message on one line, bounded in length."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


class TargetUnreachable(ConnectionUnavailable):
    """A connection attempt failed; ``reason`` is one of :data:`REASONS`, the message the driver's cause."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class TargetHealth:
    """Whether one target is reachable, and the log lines about it: one when it goes down (with the
    cause), one when it is back (with the outage's length), and a reminder at most every
    :data:`REMINDER_INTERVAL` seconds in between, however many runs fail."""

    def __init__(self, name: str, where: str, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.where = where
        self.clock = clock
        self.state = "unknown"  # unknown | up | down
        self.down_since: float | None = None
        self.reason: str | None = None
        self.message: str | None = None
        self._reminded_at = 0.0
        self._lock = threading.Lock()

    def down(self, reason: str, message: str) -> None:
        with self._lock:
            now = self.clock()
            if self.state != "down":
                self.state, self.down_since, self._reminded_at = "down", now, now
                log.warning("target %s (%s) is down (%s): %s", self.name, self.where, reason, message)
            elif now - self._reminded_at >= REMINDER_INTERVAL:
                self._reminded_at = now
                log.warning("target %s (%s) still down after %.0fs (%s): %s", self.name, self.where,
                            now - (self.down_since or now), reason, message)
            elif (reason, message) != (self.reason, self.message):
                log.debug("target %s still down, now (%s): %s", self.name, reason, message)
            self.reason, self.message = reason, message

    def up(self) -> None:
        with self._lock:
            if self.state == "down":
                log.warning("target %s (%s) is up again after %.1fs down (last cause: %s)", self.name, self.where,
                            self.clock() - (self.down_since or self.clock()), self.reason)
            self.state, self.down_since, self.reason, self.message = "up", None, None, None

    @property
    def is_up(self) -> bool:
        return self.state == "up"


# What a monitoring role should not be able to do. Transactions are read-only anyway; this says
# when the role could write if something ever got past that (a superuser can turn it off).
