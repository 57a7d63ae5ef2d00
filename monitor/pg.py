"""Connections to monitored PostgreSQL databases.

One :class:`DatabaseConnector` per target keeps its sessions between runs while the target is
up (monitor.sessions, no background threads), and finds out itself when it is back (see the
class). Every session is identified as ``application_name=vecmon`` and bounded by
``statement_timeout`` and ``lock_timeout``; every transaction is read-only by itself (``BEGIN READ
ONLY``, not only the session default, which a query could change) and ends with nothing written
(SQL from the config is rolled back; vecmon's own ends with ``COMMIT``, see
:meth:`DatabaseConnector._end`), and a session that ran SQL from the config is reset (``DISCARD
ALL``) before it is kept. A collector
run, or a batch of a target's collectors of vecmon's own SQL (:meth:`DatabaseConnector.run_batch`),
happens in one transaction; each collector has its own ``statement_timeout``, and a watchdog
cancels it on the server when its total time is up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from collectors.base import CollectContext, CollectionTimeout, CollectorError, ServerFacts
from collectors.pg_session import build_conninfo, describe_target, secrets_of
from collectors.pg_session import duration_setting as _ms
from collectors.redaction import redact
from monitor.config import DatabaseTarget
from monitor.pg_checks import (
    LEGACY_ENCODING,
    AccessReport,
    adapt_encoding,
    facts_from_row,
    legacy_labels,
    write_capabilities,
)
from monitor.sessions import IdleSessions, SessionBudget
from monitor.target_health import FAILURE_REUSE, TargetHealth, TargetUnreachable, one_line, unreachable_reason

log = logging.getLogger(__name__)


FACTS_SQL = """
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       current_database(),
       pg_is_in_recovery(),
       coalesce((SELECT json_object_agg(extname, extversion) FROM pg_extension), '{}'::json)
"""

TIMEOUTS_SQL = "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
# A run's first statement: its timeouts (local to the transaction) and the server's facts, in one round trip.
OPEN_RUN_SQL = TIMEOUTS_SQL + "," + FACTS_SQL.strip().removeprefix("SELECT")

# The same as one simple-protocol query behind ``BEGIN READ ONLY`` (no parameters: the two timeouts,
# milliseconds vecmon computed, go in as quoted literals).
_BEGIN_WITH_TIMEOUTS = sql.SQL("BEGIN READ ONLY; " + TIMEOUTS_SQL.replace("%s", "{}") + ",")
_FACTS_COLUMNS = sql.SQL(FACTS_SQL.strip().removeprefix("SELECT"))


def _open_run_text(statement_timeout: str, lock_timeout: str) -> sql.Composed:
    return _BEGIN_WITH_TIMEOUTS.format(sql.Literal(statement_timeout), sql.Literal(lock_timeout)) + _FACTS_COLUMNS


def _configure_session(conn: psycopg.Connection) -> None:
    """Every connection vecmon opens: transactions start with BEGIN READ ONLY, text is always str."""
    conn.read_only = True
    adapt_encoding(conn)


def _reset_session(conn: psycopg.Connection) -> None:
    """A session handed back to the pool loses whatever a run changed: settings (back to the
    read-only, timeout defaults given at connection), role, prepared statements, advisory locks."""
    conn.autocommit = True
    try:
        conn.execute("DISCARD ALL")
    finally:
        conn.autocommit = False
    _configure_session(conn)  # DISCARD ALL also reset the client encoding


BatchItem = tuple[Callable[[CollectContext], Any], CollectContext, float]  # collect, its context, its timeout
BatchOutcome = tuple[Any, float]  # families or the exception the run ended with, and its duration


class _StaleSession(Exception):
    """A kept session failed at the run's first statement (vecmon's own): the server closed it."""


class DatabaseConnector:
    """Bounded, reconnecting sessions of one target, and the run wrapper for collectors.

    Sessions are reused between runs (:class:`monitor.sessions.IdleSessions`: at most
    ``keep_idle`` kept, no background threads) while the target is up; a kept session the server
    closed is replaced before the collector runs. vecmon manages reachability itself: the first
    run, and every run while the target is down, makes one direct connection attempt bounded by
    ``connect_timeout`` (concurrent runs share it); its failure gives the cause
    (``TargetUnreachable``), its success the run's session. Recovery therefore comes with the first
    run after the server is back, whatever the outage's length. At most ``max_connections`` runs of
    the target hold a session at a time, and every session holds a slot of the server's
    :class:`monitor.sessions.SessionBudget` from connect to close.
    """

    def __init__(self, target: DatabaseTarget, clock: Callable[[], float] = time.monotonic,
                 budget: SessionBudget | None = None, keep_idle: int | None = None):
        self.target = target
        self.clock = clock
        self.budget = budget if budget is not None else SessionBudget(None)
        self._secrets = secrets_of(target)
        self._conninfo = build_conninfo(target)
        self.health = TargetHealth(target.name, describe_target(target), clock)
        self._runs = threading.BoundedSemaphore(max(1, target.max_connections))
        keep = target.max_connections if keep_idle is None else keep_idle
        self._sessions = IdleSessions(keep, self._close_session, clock)
        self._active: set[psycopg.Connection] = set()
        self._lock = threading.Lock()  # _active
        self._attempt_lock = threading.Lock()  # one direct connection attempt at a time
        self._last_failure: tuple[float, TargetUnreachable] | None = None
        self._privileges_checked = False
        self._closed = False
        self.watchdog: Any = None  # a monitor.workers.Watchdog shared by a runtime's connectors, if given

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        self._closed = False  # the first run connects

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        self.cancel_all()
        self._sessions.close_all()

    def cancel_all(self) -> None:
        with self._lock:
            active = list(self._active)
        for conn in active:
            with contextlib.suppress(Exception):  # best effort on shutdown
                conn.cancel_safe(timeout=1.0)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- sessions ---------------------------------------------------------------------------
    def _connect_directly(self) -> psycopg.Connection:
        """One connection attempt, bounded by connect_timeout (in the conninfo); no budget slot."""
        conn = psycopg.connect(self._conninfo)
        try:
            # A monitoring query repeats every interval: prepared from its second run (psycopg's default,
            # the sixth, is a minute and a half at 15 s), or never behind a pooler that loses them.
            conn.prepare_threshold = 1 if self.target.prepared_statements else None
            _configure_session(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect(self) -> psycopg.Connection:
        """A new session within the server's budget; raises TargetUnreachable with the cause."""
        if not self.budget.acquire(self.target.connect_timeout):
            raise CollectorError(f"all {self.budget.limit} sessions of the server's connection budget "
                                 f"(server_max_connections) are busy")
        try:
            conn = self._connect_directly()
        except psycopg.Error as exc:
            self.budget.release()
            failure = self._failure(exc)
            self._last_failure = (self.clock(), failure)
            self.health.down(failure.reason, str(failure))
            raise failure from None
        except BaseException:
            self.budget.release()
            raise
        self._sessions.opened(conn)
        return conn

    def _close_session(self, conn: psycopg.Connection) -> None:
        try:
            conn.close()
        finally:
            self.budget.release()

    def _failure(self, exc: psycopg.Error) -> TargetUnreachable:
        reason = unreachable_reason(exc)
        message = self.redact(f"cannot connect to {self.health.where}: {one_line(exc)}")
        return TargetUnreachable(message, reason)

    def _reach(self) -> psycopg.Connection | None:
        """While the target is not known up: one shared direct attempt, whose session the run uses.
        None when another run has just reached it (the caller takes a session as usual)."""
        with self._attempt_lock:
            if self.health.is_up:
                return None
            recent = self._last_failure
            if recent is not None and self.clock() - recent[0] < FAILURE_REUSE:
                raise TargetUnreachable(str(recent[1]), recent[1].reason)
            conn = self._connect()
            self._last_failure = None
            self._check_privileges_once(conn)
            self.health.up()
            return conn

    def _session(self) -> tuple[psycopg.Connection, bool]:
        """A session for a run, and whether it was kept from an earlier run."""
        if self._closed:
            raise CollectorError("connections closed (stop or reload)")
        if not self.health.is_up:
            conn = self._reach()
            if conn is not None:
                return conn, False
        kept = self._sessions.take()
        if kept is not None:
            return kept, True
        return self._connect(), False

    def _lost(self, text: str) -> CollectorError:
        """A session failed during a run: is the target down (TargetUnreachable) or was it the session?"""
        self._sessions.close_all()  # a restart closed them all
        if self._closed:
            return CollectorError("connections closed (stop or reload)")
        self.health.state = "unknown"  # the next attempt decides, and logs a change
        try:
            conn = self._reach()
        except TargetUnreachable as exc:
            return exc
        if conn is not None:
            self._sessions.give(conn)
        return CollectorError(self.redact(text))

    def _check_privileges_once(self, conn: psycopg.Connection) -> None:
        if self._privileges_checked:
            return
        self._privileges_checked = True
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('statement_timeout', %s, true)", [_ms(min(5.0, self.target.timeout))])
                writes = write_capabilities(conn)
        except psycopg.Error as exc:
            log.debug("target %s: privilege check failed: %s", self.target.name, self.redact(one_line(exc)))
            return
        if writes:
            log.warning("target %s: the monitoring role could write (%s); vecmon's transactions are read-only, "
                        "but a role with only pg_monitor is enough", self.target.name, "; ".join(writes))

    def check_access(self) -> AccessReport:
        """One direct connection attempt and the privilege check, for ``check-config --connect``."""
        try:
            conn = self._connect_directly()
        except psycopg.Error as exc:
            failure = self._failure(exc)
            return AccessReport(False, str(failure), failure.reason)
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('statement_timeout', %s, true)", [_ms(min(5.0, self.target.timeout))])
                facts = fetch_facts(conn)
                writes = write_capabilities(conn)
        except psycopg.Error as exc:
            return AccessReport(True, self.redact(f"connected, but the checks failed: {one_line(exc)}"), None)
        finally:
            conn.close()
        return AccessReport(True, f"PostgreSQL {facts.version}, database {facts.database}", None, writes)

    # -- runs -----------------------------------------------------------------------------
    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float,
            reset: bool = True) -> Any:
        """Run ``collect`` in one read-only transaction bounded by ``timeout`` seconds (a batch of one).

        ``reset``: the run may execute SQL from the config (custom queries, filters), so the session
        is reset with ``DISCARD ALL`` before it is kept (advisory locks, prepared statements...);
        vecmon's own SQL leaves nothing behind that ending its read-only transaction does not undo."""
        outcome, _ = self.run_batch([(collect, ctx, timeout)], reset)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_batch(self, items: list[BatchItem], reset: bool = False) -> list[BatchOutcome]:
        """Run several collectors one after the other in one read-only transaction: one session, one
        ``BEGIN``/facts/end for all of them (``reset``: ``DISCARD ALL`` after, see :meth:`run`).
        Each gets its own ``statement_timeout`` and watchdog; one that fails (a timeout, an SQL error)
        costs only itself: the transaction is rolled back and the next one starts a new one.
        Returns (families or the exception, duration in seconds) per item, in order."""
        asked = time.monotonic()
        if not self._runs.acquire(timeout=self.target.connect_timeout):
            busy = CollectorError(f"all {self.target.max_connections} connections are busy")
            return self._all(items, busy, asked)
        try:
            try:
                conn, kept = self._session()
            except Exception as exc:  # noqa: BLE001 - every item reports the target's failure
                return self._all(items, exc, asked)
            try:
                outcomes, conn_left = self._batch_on(conn, items, kept, asked, own_sql=not reset)
            except _StaleSession:
                self._sessions.discard(conn)
                try:
                    conn = self._connect()
                except Exception as exc:  # noqa: BLE001
                    return self._all(items, exc, asked)
                outcomes, conn_left = self._batch_on(conn, items, False, asked, own_sql=not reset)
            if conn_left is not None:
                self._hand_back(conn_left, reset)
            return outcomes
        finally:
            self._runs.release()

    @staticmethod
    def _all(items: list[BatchItem], exc: Exception, asked: float) -> list[BatchOutcome]:
        for _, ctx, _ in items:
            ctx.pool_wait = time.monotonic() - asked
        return [(exc, 0.0) for _ in items]

    def _batch_on(self, conn: psycopg.Connection, items: list[BatchItem], kept: bool, asked: float,
                  own_sql: bool) -> tuple[list[BatchOutcome], psycopg.Connection | None]:
        """The batch on ``conn``; each item's wait is from ``asked`` to its start (the session, then
        the items before it), apart from its duration. ``own_sql``: the collectors run only vecmon's
        own SQL (see :meth:`_open_run`)."""
        outcomes: list[BatchOutcome] = []
        facts: ServerFacts | None = None
        current: float | None = None  # the transaction's statement_timeout; None: no transaction open
        with self._lock:
            self._active.add(conn)
        try:
            for index, (collect, ctx, timeout) in enumerate(items):
                start = time.monotonic()
                ctx.pool_wait = start - asked
                disarm = self._arm_watchdog(timeout + 0.5, conn)
                try:
                    if current is None:
                        facts = facts_from_row(self._open_run(conn, timeout, kept and index == 0, own_sql))
                    elif current != timeout:
                        conn.execute(TIMEOUTS_SQL, self._timeouts(timeout))
                    current = timeout
                    ctx.conn, ctx.facts = conn, facts
                    result = collect(ctx)
                    if conn.info.parameter_status("server_encoding") == LEGACY_ENCODING:
                        result = legacy_labels(result)
                    outcome: Any = result
                except _StaleSession:
                    raise
                except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
                    outcome = CollectionTimeout(self.redact(f"cancelled after {timeout:g}s: {one_line(exc)}"))
                except psycopg.OperationalError as exc:
                    self._sessions.discard(conn)
                    lost = self._lost(f"connection lost: {one_line(exc)}")
                    outcomes.append((lost, time.monotonic() - start))
                    for _, later, _ in items[index + 1:]:
                        later.pool_wait = time.monotonic() - asked
                        outcomes.append((lost, 0.0))
                    return outcomes, None
                except psycopg.Error as exc:
                    outcome = CollectorError(self.redact(f"{type(exc).__name__}: {str(exc).strip()}"))
                except Exception as exc:  # noqa: BLE001 - the collector's own (disabled, a bad result...)
                    outcome = exc
                finally:
                    disarm()
                    ctx.conn = None
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                    conn.rollback()  # the next item starts a new transaction
                    current = None
                outcomes.append((outcome, time.monotonic() - start))
            if current is not None:
                self._end(conn, own_sql)
            return outcomes, conn
        finally:
            with self._lock:
                self._active.discard(conn)

    @staticmethod
    def _end(conn: psycopg.Connection, own_sql: bool) -> None:
        """End the batch's transaction. vecmon's own SQL only reads and sets transaction-local
        settings, so in its READ ONLY transaction COMMIT and ROLLBACK do the same; COMMIT keeps
        psycopg's prepared statements (its rollback() forgets them all), so the queries of a kept
        session are planned once, not every interval. SQL from the config is rolled back."""
        if own_sql:
            conn.commit()
        else:
            conn.rollback()

    def _timeouts(self, timeout: float) -> tuple[str, str]:
        return _ms(timeout), _ms(min(self.target.lock_timeout, timeout))

    def _open_run(self, conn: psycopg.Connection, timeout: float, kept: bool, own_sql: bool) -> Any:
        """The run's first statement (BEGIN READ ONLY, its timeouts and the server's facts), vecmon's
        own, before any of the collector's: a kept session the server closed fails here.

        SQL from the config (``own_sql`` false) runs with psycopg's transaction handling: a separate
        ``BEGIN READ ONLY`` before the first statement and again after anything that ended the
        transaction (a ``COMMIT`` in a custom query included). vecmon's own SQL never ends a
        transaction, so for it ``BEGIN READ ONLY`` travels with the first statement, in one round trip
        (the simple query protocol, the timeouts as literals): a round trip less per batch and
        interval, which at 100 databases is most of what a run costs the client."""
        try:
            if own_sql:
                if not conn.autocommit:  # nothing implicit: the transaction is the BEGIN READ ONLY below
                    conn.autocommit = True
                cursor = conn.execute(_open_run_text(*self._timeouts(timeout)))
                cursor.nextset()
                return cursor.fetchone()
            if conn.autocommit:
                conn.autocommit = False
            if conn.read_only is not True:
                conn.read_only = True  # BEGIN READ ONLY: whatever the session's default has become
            return conn.execute(OPEN_RUN_SQL, self._timeouts(timeout)).fetchone()
        except psycopg.OperationalError:
            if kept:
                raise _StaleSession() from None
            raise

    def _hand_back(self, conn: psycopg.Connection, reset: bool) -> None:
        """The session back to the cache (reset first when asked), or closed if it is not sound."""
        if self._closed or conn.closed:
            self._sessions.discard(conn)
            return
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
        except psycopg.Error:
            self._sessions.discard(conn)
            return
        if reset:
            try:
                _reset_session(conn)
            except psycopg.Error:
                self._sessions.discard(conn)
                return
        self._sessions.give(conn)

    def _arm_watchdog(self, seconds: float, conn: psycopg.Connection) -> Callable[[], None]:
        """Cancel the run on the server after ``seconds``: on the shared watchdog a runtime gives
        (monitor.workers.Watchdog, one thread for every target), else on a timer thread of its own."""
        if self.watchdog is not None:
            handle = self.watchdog.arm(seconds, lambda: self._cancel(conn))
            return lambda: self.watchdog.disarm(handle)
        timer = threading.Timer(seconds, self._cancel, args=(conn,))
        timer.daemon = True
        timer.start()
        return timer.cancel

    @staticmethod
    def _cancel(conn: psycopg.Connection) -> None:
        with contextlib.suppress(Exception):  # the run reports the timeout itself
            conn.cancel_safe(timeout=1.0)


def fetch_facts(conn: psycopg.Connection) -> ServerFacts:
    return facts_from_row(conn.execute(FACTS_SQL).fetchone())
