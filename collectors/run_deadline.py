"""The time one collector run may still take: the one deadline helper of the collectors that run
several statements per run and survive failed ones (recall, ann_latency, vector_freshness).

The run's time is the collector's timeout; when it is up, the connector's watchdog cancels
whatever still runs. Each statement gets ``min(its own timeout, the time left)`` as its
statement_timeout (:meth:`RunDeadline.statement_timeout`), so it ends by the deadline, and no
statement starts with less than ``min_statement`` seconds left. A cancel caused by the deadline
(a statement_timeout cut to the time left, or the watchdog) ends the run
(:meth:`RunDeadline.ends_run`, :meth:`RunDeadline.spent_by`) instead of counting as that
statement's failure; a statement's own timeout within the run's time is its failure as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from collectors.base import CollectContext

MIN_STATEMENT_SECONDS = 0.05  # a statement is not started with less time left than this


class RunTimeExhausted(psycopg.errors.QueryCanceled):
    """The run's time is spent: raised instead of starting another statement. It is a QueryCanceled,
    so the connector reports it as the watchdog's cancel would be: as the run's timeout."""


def session_statement_timeout(conn: psycopg.Connection) -> float | None:
    """The session's statement_timeout in seconds (the connector sets it to the collector's timeout
    for the run); None when it is 0 (no limit)."""
    row = conn.execute("SELECT setting::float8 FROM pg_settings WHERE name = 'statement_timeout'").fetchone()
    return float(row[0]) / 1000.0 if row and row[0] else None


class RunDeadline:
    """The time one collector run may still take.

    ``seconds``: the run's time, from ``started`` (default: now); ``end``: when it is up. ``deadline``:
    no statement starts after it, by default ``end``; ``work_seconds`` (from now) stops work earlier,
    leaving the rest of the run's time to finish what runs. ``exhausted`` is raised (with a message)
    instead of starting a statement with less than ``min_statement`` seconds left.
    """

    def __init__(self, seconds: float, started: float | None = None, *, work_seconds: float | None = None,
                 min_statement: float = MIN_STATEMENT_SECONDS,
                 exhausted: Callable[[str], BaseException] = RunTimeExhausted):
        now = time.monotonic()
        self.seconds = seconds
        self.end = (now if started is None else started) + seconds
        self.deadline = self.end if work_seconds is None else now + work_seconds
        self.min_statement = min_statement
        self._exhausted = exhausted
        self._cut = False  # whether the last statement_timeout given out was cut to the time left

    @classmethod
    def for_run(cls, ctx: CollectContext, name: str, started: float | None = None) -> RunDeadline:
        """The smaller of the collector's timeout (``ctx.settings.timeout_for(name)``) and the
        statement_timeout the connector set for the run (60 s when neither is known)."""
        limits = []
        timeout_for = getattr(ctx.settings, "timeout_for", None)
        if callable(timeout_for):
            limits.append(float(timeout_for(name)))
        if ctx.conn is not None:
            session = session_statement_timeout(ctx.conn)
            if session is not None:
                limits.append(session)
        return cls(min(limits) if limits else 60.0, started)

    def remaining(self) -> float:
        """Seconds until :attr:`deadline` (negative once it passed)."""
        return self.deadline - time.monotonic()

    def spent(self) -> bool:
        """Whether too little time is left to start a statement."""
        return self.remaining() < self.min_statement

    def statement_timeout(self, wanted: float | None = None) -> str:
        """statement_timeout for the next statement: ``wanted`` (None: no own limit) cut to the time
        left. Raises ``exhausted`` when too little is left to start one."""
        left = self.remaining()
        if left < self.min_statement:
            raise self._exhausted(f"the run's time ({self.seconds:g}s) is spent")
        self._cut = wanted is None or left <= wanted
        return f"{max(1, int(min(left, wanted if wanted is not None else left) * 1000))}ms"

    def set_statement_timeout(self, conn: psycopg.Connection, wanted: float | None = None) -> None:
        """Apply :meth:`statement_timeout` transaction-locally (call it inside the statement's savepoint)."""
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [self.statement_timeout(wanted)])

    def spent_by(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a cancel because the time is spent (a statement_timeout cut to it, the
        connector's watchdog, a timer), not a failure of the statement itself."""
        return isinstance(exc, psycopg.errors.QueryCanceled) and self.spent()

    def ends_run(self, exc: BaseException) -> bool:
        """Whether ``exc``, from the statement last given a timeout, means the run's time is up: also
        a cancel of a statement whose statement_timeout was cut to the time left."""
        return self.spent_by(exc) or (isinstance(exc, psycopg.errors.QueryCanceled) and (
            isinstance(exc, RunTimeExhausted) or self._cut))
