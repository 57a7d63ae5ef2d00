"""How a recall probe run ends early: its deadline, the skip of one index, a broken connection."""

from __future__ import annotations

import psycopg

from collectors.run_deadline import RunDeadline, session_statement_timeout

PROBE_MIN_STATEMENT_SECONDS = 0.2  # no probe statement starts with less time left than this


class ProbeSkipped(Exception):
    """One index is not probed this run, for ``reason`` (a label value of vecmon_recall_probe_skipped)."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason


class BudgetExhausted(Exception):
    """The run's time is spent: no more probe work starts (the rest is reported as skipped ``budget``)."""


def probe_deadline(conn: psycopg.Connection, fallback: float, started: float | None = None) -> RunDeadline:
    """The run's time budget, from its statement_timeout (set by the connector to the collector timeout;
    ``fallback`` without one).

    No work starts after 90% of it less half a second (at least one second from now); ``end``: the
    run's time is up (the standby session is cancelled then; the connector's watchdog cancels the
    target's a little later)."""
    total = session_statement_timeout(conn) or fallback
    return RunDeadline(total, started, work_seconds=max(1.0, total * 0.9 - 0.5),
                       min_statement=PROBE_MIN_STATEMENT_SECONDS, exhausted=BudgetExhausted)


def is_fatal(conn: psycopg.Connection) -> bool:
    """A closed or broken connection: the run cannot go on (no savepoint can save it)."""
    return conn.closed or conn.broken
