"""Connections to monitored PostgreSQL databases.

One :class:`DatabaseConnector` per target keeps its sessions between runs while the target is
up (monitor.sessions, no background threads), and finds out itself when it is back (see the
class). Every session is identified as ``application_name=vecmon`` and bounded by
``statement_timeout`` and ``lock_timeout``; every transaction is read-only by itself (``BEGIN READ
ONLY``, not only the session default, which a query could change) and rolled back at its end, and
a session that ran SQL from the config is reset (``DISCARD ALL``) before it is kept. A collector
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
from dataclasses import dataclass, field
from typing import Any

import psycopg

from collectors.base import CollectContext, CollectionTimeout, CollectorError, ConnectionUnavailable, ServerFacts
from collectors.pg_session import build_conninfo, describe_target, secrets_of
from collectors.pg_session import duration_setting as _ms
from collectors.redaction import redact
from monitor.config import DatabaseTarget
from monitor.sessions import IdleSessions, SessionBudget

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
WRITE_CHECK_SQL = """
SELECT r.rolsuper,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_write_all_data')
            THEN pg_has_role('pg_write_all_data', 'MEMBER') ELSE false END,
       (SELECT array_agg(t ORDER BY t) FROM (
           SELECT format('%I.%I (%s)', n.nspname, c.relname, concat_ws(',',
                         CASE WHEN has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END,
                         CASE WHEN has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END,
                         CASE WHEN has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END,
                         CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END)) AS t
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
              AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
                   OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))
            LIMIT 21) w),
       (SELECT array_agg(quote_ident(nspname) ORDER BY nspname) FROM pg_namespace
         WHERE has_schema_privilege(oid, 'CREATE')
           AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)')
  FROM pg_roles r WHERE r.rolname = current_user
"""


def write_capabilities(conn: psycopg.Connection) -> list[str]:
    """What the connected role could write, in words; empty for a read-only role such as pg_monitor."""
    row = conn.execute(WRITE_CHECK_SQL).fetchone()
    if row is None:
        return []
    superuser, write_all, tables, schemas = row
    if superuser:
        return ["superuser"]
    found = []
    if write_all:
        found.append("member of pg_write_all_data")
    if tables:
        shown = [legacy_text(t) for t in tables[:20]]
        more = " and more" if len(tables) > 20 else ""
        found.append(f"INSERT/UPDATE/DELETE/TRUNCATE on {', '.join(shown)}{more}")
    if schemas:
        found.append(f"CREATE on schema {', '.join(legacy_text(s) for s in schemas)}")
    return found


@dataclass
class AccessReport:
    """The result of one direct connection attempt (``vecmon check-config --connect``)."""

    reachable: bool
    message: str  # the server version, or the cause of the failure
    reason: str | None = None
    writes: list[str] = field(default_factory=list)


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
        """Run ``collect`` in one read-only transaction bounded by ``timeout`` seconds.

        ``reset``: the run may execute SQL from the config (custom queries, filters), so the session
        is reset with ``DISCARD ALL`` before it is kept (advisory locks, prepared statements...);
        vecmon's own SQL leaves nothing behind that the transaction's rollback does not undo."""
        asked = time.monotonic()
        if not self._runs.acquire(timeout=self.target.connect_timeout):
            ctx.pool_wait = time.monotonic() - asked
            raise CollectorError(f"all {self.target.max_connections} connections are busy")
        try:
            conn, kept = self._session()
            ctx.pool_wait = time.monotonic() - asked  # exported on its own, not in the run's duration
            try:
                result = self._run_on(conn, collect, ctx, timeout, kept, reset)
            except _StaleSession:
                self._sessions.discard(conn)
                conn = self._connect()
                result = self._run_on(conn, collect, ctx, timeout, False, reset)
            self._hand_back(conn, reset)
            return result
        finally:
            self._runs.release()

    def run_batch(self, items: list[BatchItem]) -> list[BatchOutcome]:
        """Run several collectors of vecmon's own SQL (no ``reset`` needed) one after the other in
        one read-only transaction: one session, one ``BEGIN``/facts/``ROLLBACK`` for all of them.
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
            for _, ctx, _ in items:
                ctx.pool_wait = time.monotonic() - asked
            try:
                outcomes, conn_left = self._batch_on(conn, items, kept)
            except _StaleSession:
                self._sessions.discard(conn)
                try:
                    conn = self._connect()
                except Exception as exc:  # noqa: BLE001
                    return self._all(items, exc, asked)
                outcomes, conn_left = self._batch_on(conn, items, False)
            if conn_left is not None:
                self._hand_back(conn_left, reset=False)
            return outcomes
        finally:
            self._runs.release()

    @staticmethod
    def _all(items: list[BatchItem], exc: Exception, asked: float) -> list[BatchOutcome]:
        for _, ctx, _ in items:
            ctx.pool_wait = time.monotonic() - asked
        return [(exc, 0.0) for _ in items]

    def _batch_on(self, conn: psycopg.Connection, items: list[BatchItem],
                  kept: bool) -> tuple[list[BatchOutcome], psycopg.Connection | None]:
        outcomes: list[BatchOutcome] = []
        facts: ServerFacts | None = None
        current: float | None = None  # the transaction's statement_timeout; None: no transaction open
        with self._lock:
            self._active.add(conn)
        try:
            for index, (collect, ctx, timeout) in enumerate(items):
                start = time.monotonic()
                disarm = self._arm_watchdog(timeout + 0.5, conn)
                try:
                    if current is None:
                        facts = facts_from_row(self._open_run(conn, timeout, kept and index == 0))
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
                    outcomes.extend((lost, 0.0) for _ in items[index + 1:])
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
                conn.rollback()
            return outcomes, conn
        finally:
            with self._lock:
                self._active.discard(conn)

    def _timeouts(self, timeout: float) -> tuple[str, str]:
        return _ms(timeout), _ms(min(self.target.lock_timeout, timeout))

    def _open_run(self, conn: psycopg.Connection, timeout: float, kept: bool) -> Any:
        """The run's first statement (BEGIN READ ONLY, its timeouts and the server's facts), vecmon's
        own, before any of the collector's: a kept session the server closed fails here."""
        conn.autocommit = False
        conn.read_only = True  # BEGIN READ ONLY: whatever the session's default has become
        try:
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

    def _run_on(self, conn: psycopg.Connection, collect: Callable[[CollectContext], Any], ctx: CollectContext,
                timeout: float, kept: bool = True, reset: bool = True) -> Any:
        """The run on ``conn``; on a failure the session is handed back (or closed) here."""
        with self._lock:
            self._active.add(conn)
        disarm = self._arm_watchdog(timeout + 0.5, conn)
        try:
            return self._run_read_only(conn, collect, ctx, timeout, kept)
        except _StaleSession:
            raise
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            self._hand_back(conn, reset)
            raise CollectionTimeout(self.redact(f"cancelled after {timeout:g}s: {one_line(exc)}")) from None
        except psycopg.OperationalError as exc:
            self._sessions.discard(conn)
            raise self._lost(f"connection lost: {one_line(exc)}") from None
        except psycopg.Error as exc:
            self._hand_back(conn, reset)
            raise CollectorError(self.redact(f"{type(exc).__name__}: {str(exc).strip()}")) from None
        except BaseException:  # the collector's own (CollectorDisabled, a bad result...): the session is sound
            self._hand_back(conn, reset)
            raise
        finally:
            disarm()
            ctx.conn = None
            with self._lock:
                self._active.discard(conn)

    def _run_read_only(self, conn: psycopg.Connection, collect: Callable[[CollectContext], Any],
                       ctx: CollectContext, timeout: float, kept: bool) -> Any:
        row = self._open_run(conn, timeout, kept)
        try:
            ctx.conn = conn
            ctx.facts = facts_from_row(row)
            result = collect(ctx)
            if conn.info.parameter_status("server_encoding") == LEGACY_ENCODING:
                result = legacy_labels(result)
        finally:
            if not conn.closed:
                conn.rollback()  # nothing to commit; undoes session settings changed by the run
        return result

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


def facts_from_row(row: Any) -> ServerFacts:
    version_num, version, database, in_recovery, extensions = row[-5:]
    return ServerFacts(version_num=version_num, version=version, database=legacy_text(database),
                       in_recovery=in_recovery, extensions=dict(extensions or {}))


LEGACY_ENCODING = "SQL_ASCII"


def adapt_encoding(conn: psycopg.Connection) -> None:
    """On a SQL_ASCII server (no encoding at all) psycopg returns text as bytes. With the client
    encoding LATIN1 (the server converts nothing) every byte is one character: names come back as
    str and go back to the server unchanged, in identifiers too. Labels are fixed in :func:`legacy_labels`."""
    if conn.info.parameter_status("server_encoding") != LEGACY_ENCODING:
        return
    if conn.info.parameter_status("client_encoding") == "LATIN1":
        return
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute("SET client_encoding TO 'LATIN1'")
    finally:
        conn.autocommit = autocommit


def legacy_text(value: str) -> str:
    """A string read from a SQL_ASCII server as LATIN1: its bytes as UTF-8 when they are UTF-8
    (most such databases hold UTF-8 anyway), else the LATIN1 reading. Always valid text."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def legacy_labels(families: Any) -> Any:
    """Label values of families collected from a SQL_ASCII server, through :func:`legacy_text`."""
    if not isinstance(families, list):
        return families
    for family in families:
        for sample in getattr(family, "samples", ()):
            for key, value in list(sample.labels.items()):
                if isinstance(value, str) and not value.isascii():
                    sample.labels[key] = legacy_text(value)
    return families
