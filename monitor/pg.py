"""Connections to monitored PostgreSQL databases.

One :class:`DatabaseConnector` per target owns a bounded psycopg_pool pool while the target is
up, and finds out itself when it is back (see the class). Every session is identified as
``application_name=vecmon`` and bounded by ``statement_timeout`` and ``lock_timeout``; every
transaction is read-only by itself (``BEGIN READ ONLY``, not only the session default, which a
query could change), is rolled back at its end, and a session handed back to the pool is reset
(``DISCARD ALL``). Each collector run happens in one transaction with its own
``statement_timeout``, and a watchdog cancels the run on the server when its total time is up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from collectors.base import CollectContext, CollectionTimeout, CollectorError, ConnectionUnavailable, ServerFacts
from collectors.pg_session import build_conninfo, describe_target, secrets_of
from collectors.pg_session import duration_setting as _ms
from collectors.redaction import redact
from monitor.config import DatabaseTarget

log = logging.getLogger(__name__)


FACTS_SQL = """
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       current_database(),
       pg_is_in_recovery(),
       coalesce((SELECT json_object_agg(extname, extversion) FROM pg_extension), '{}'::json)
"""

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


class DatabaseConnector:
    """Bounded, reconnecting connections to one target, and the run wrapper for collectors.

    Connections come from a psycopg_pool pool (bounded, reused, checked before use, reset when
    returned) while the target is up. The pool's own reconnection backs off without a cap, so
    vecmon manages reachability itself: the first run, and every run while the target is down,
    makes one direct connection attempt bounded by ``connect_timeout`` (concurrent runs share
    it). Its failure gives the cause (``TargetUnreachable``); its success brings a fresh pool.
    Recovery therefore comes with the first run after the server is back, whatever the outage's
    length, and the pool's background retries never run while the target is down.
    """

    def __init__(self, target: DatabaseTarget, clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.clock = clock
        self._secrets = secrets_of(target)
        self._conninfo = build_conninfo(target)
        self.health = TargetHealth(target.name, describe_target(target), clock)
        self._active: set[psycopg.Connection] = set()
        self._lock = threading.Lock()  # _active and _pool
        self._attempt_lock = threading.Lock()  # one direct connection attempt at a time
        self._pool: ConnectionPool | None = None
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
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=timeout)

    def cancel_all(self) -> None:
        with self._lock:
            active = list(self._active)
        for conn in active:
            try:
                conn.cancel_safe(timeout=1.0)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    # -- reachability ---------------------------------------------------------------------
    def _new_pool(self) -> ConnectionPool:
        pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self.target.max_connections,
            num_workers=1,  # at most a few sessions: one background worker, not 3 (100 targets: 200 threads fewer)
            open=False,
            name=f"vecmon-{self.target.name}",
            timeout=self.target.connect_timeout,
            max_idle=300,
            max_lifetime=1800,
            configure=_configure_session,
            check=ConnectionPool.check_connection,  # a session broken by a restart is replaced, not used
            reset=_reset_session,
        )
        pool.open(wait=False)
        return pool

    def _discard_pool(self, pool: ConnectionPool) -> None:
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
        threading.Thread(target=pool.close, kwargs={"timeout": 1.0}, name=f"{pool.name}-close", daemon=True).start()

    def _connect_directly(self) -> psycopg.Connection:
        """One connection attempt outside the pool, bounded by connect_timeout (in the conninfo)."""
        conn = psycopg.connect(self._conninfo)
        try:
            _configure_session(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _failure(self, exc: psycopg.Error) -> TargetUnreachable:
        reason = unreachable_reason(exc)
        message = self.redact(f"cannot connect to {self.health.where}: {one_line(exc)}")
        return TargetUnreachable(message, reason)

    def _reach(self) -> None:
        """Make sure the target is reachable (one shared direct attempt), else raise TargetUnreachable."""
        with self._attempt_lock:
            with self._lock:
                if self._pool is not None and self.health.is_up:
                    return  # another run just reached it
            recent = self._last_failure
            if recent is not None and self.clock() - recent[0] < FAILURE_REUSE:
                raise TargetUnreachable(str(recent[1]), recent[1].reason)
            try:
                conn = self._connect_directly()
            except psycopg.Error as exc:
                failure = self._failure(exc)
                self._last_failure = (self.clock(), failure)
                self.health.down(failure.reason, str(failure))
                raise failure from None
            try:
                self._check_privileges_once(conn)
            finally:
                conn.close()
            self._last_failure = None
            with self._lock:
                if self._pool is None and not self._closed:
                    self._pool = self._new_pool()
            self.health.up()

    def _lost(self, pool: ConnectionPool, text: str) -> CollectorError:
        """A pooled connection failed: is the target down (TargetUnreachable) or was it the session?"""
        self._discard_pool(pool)
        if self._closed:
            return CollectorError("connections closed (stop or reload)")
        try:
            self._reach()
        except TargetUnreachable as exc:
            return exc
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
    def _pool_for_run(self) -> ConnectionPool:
        with self._lock:
            if self._pool is not None and self.health.is_up:
                return self._pool
        if self._closed:
            raise CollectorError("connections closed (stop or reload)")
        self._reach()
        with self._lock:
            if self._pool is None:
                raise CollectorError("connections closed (stop or reload)")
            return self._pool

    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float) -> Any:
        """Run ``collect`` in one read-only transaction bounded by ``timeout`` seconds."""
        pool = self._pool_for_run()
        asked = time.monotonic()
        try:
            with pool.connection(timeout=self.target.connect_timeout) as conn:
                ctx.pool_wait = time.monotonic() - asked  # exported on its own, not in the run's duration
                with self._lock:
                    self._active.add(conn)
                disarm = self._arm_watchdog(timeout + 0.5, conn)
                try:
                    return self._run_read_only(conn, collect, ctx, timeout)
                finally:
                    disarm()
                    ctx.conn = None
                    with self._lock:
                        self._active.discard(conn)
        except PoolTimeout:
            ctx.pool_wait = time.monotonic() - asked
            with self._lock:
                busy = len(self._active)
            if busy >= self.target.max_connections:
                raise CollectorError(f"all {self.target.max_connections} connections are busy") from None
            raise self._lost(pool, f"no connection from the pool within {self.target.connect_timeout:g}s") from None
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            raise CollectionTimeout(self.redact(f"cancelled after {timeout:g}s: {one_line(exc)}")) from None
        except psycopg.OperationalError as exc:
            raise self._lost(pool, f"connection lost: {one_line(exc)}") from None
        except psycopg.Error as exc:
            raise CollectorError(self.redact(f"{type(exc).__name__}: {str(exc).strip()}")) from None

    def _run_read_only(self, conn: psycopg.Connection, collect: Callable[[CollectContext], Any],
                       ctx: CollectContext, timeout: float) -> Any:
        conn.autocommit = False
        conn.read_only = True  # BEGIN READ ONLY: whatever the session's default has become
        result = None
        with conn.transaction() as tx:
            conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
                         (_ms(timeout), _ms(min(self.target.lock_timeout, timeout))))
            ctx.conn = conn
            ctx.facts = fetch_facts(conn)
            result = collect(ctx)
            if conn.info.parameter_status("server_encoding") == LEGACY_ENCODING:
                result = legacy_labels(result)
            raise psycopg.Rollback(tx)  # nothing to commit; undoes session settings changed by the run
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
        try:
            conn.cancel_safe(timeout=1.0)
        except Exception:  # noqa: BLE001 - the run reports the timeout itself
            pass


def fetch_facts(conn: psycopg.Connection) -> ServerFacts:
    version_num, version, database, in_recovery, extensions = conn.execute(FACTS_SQL).fetchone()
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
