"""Connections to monitored PostgreSQL databases.

One :class:`DatabaseConnector` per target owns a bounded psycopg_pool pool (it reconnects
with exponential backoff on its own). Every session is read-only, identified as
``application_name=vecmon`` and bounded by ``statement_timeout`` and ``lock_timeout``;
each collector run happens in one transaction with its own ``statement_timeout``, and a
watchdog cancels the run on the server when its total time is up.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from collectors.base import CollectContext, CollectorError, ConnectionUnavailable, ServerFacts
from monitor.config import DatabaseTarget

APPLICATION_NAME = "vecmon"
log = logging.getLogger(__name__)


class CollectionTimeout(CollectorError):
    """The run was cancelled on the server because it exceeded its timeout."""


def _ms(seconds: float) -> str:
    return f"{max(1, int(seconds * 1000))}ms"


def build_conninfo(target: DatabaseTarget) -> str:
    """libpq conninfo for a target, with vecmon's session settings; may contain the password."""
    params: dict[str, Any] = {}
    for key in ("host", "port", "user", "dbname", "sslmode"):
        value = getattr(target, key)
        if value is not None:
            params[key] = value
    if target.password_value() is not None:
        params["password"] = target.password_value()
    params["application_name"] = APPLICATION_NAME
    params["connect_timeout"] = max(2, int(target.connect_timeout))
    params["options"] = (f"-c default_transaction_read_only=on -c statement_timeout={_ms(target.timeout)}"
                         f" -c lock_timeout={_ms(target.lock_timeout)} -c idle_in_transaction_session_timeout="
                         f"{_ms(max(60.0, target.timeout * 2))}")
    dsn = target.dsn.get_secret_value() if target.dsn is not None else ""
    return pg_conninfo.make_conninfo(dsn, **params)


def describe_target(target: DatabaseTarget) -> str:
    """host:port/dbname without credentials, for logs and the status page."""
    try:
        info = pg_conninfo.conninfo_to_dict(build_conninfo(target))
    except psycopg.ProgrammingError:
        return "(invalid dsn)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', info.get('user', ''))}"


def secrets_of(target: DatabaseTarget) -> list[str]:
    """Values that must never appear in logs or metrics."""
    secrets = []
    if target.password_value():
        secrets.append(target.password_value())
    if target.dsn is not None:
        try:
            password = pg_conninfo.conninfo_to_dict(target.dsn.get_secret_value()).get("password")
        except psycopg.ProgrammingError:
            password = None
        if password:
            secrets.append(str(password))
    return [s for s in secrets if s]


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


FACTS_SQL = """
SELECT current_setting('server_version_num')::int,
       current_setting('server_version'),
       current_database(),
       pg_is_in_recovery(),
       coalesce((SELECT json_object_agg(extname, extversion) FROM pg_extension), '{}'::json)
"""


class DatabaseConnector:
    """Bounded, reconnecting connections to one target, and the run wrapper for collectors."""

    def __init__(self, target: DatabaseTarget):
        self.target = target
        self._secrets = secrets_of(target)
        self._active: set[psycopg.Connection] = set()
        self._lock = threading.Lock()
        self.pool = ConnectionPool(
            build_conninfo(target),
            min_size=1,
            max_size=target.max_connections,
            open=False,
            name=f"vecmon-{target.name}",
            timeout=target.connect_timeout,
            max_idle=300,
            max_lifetime=1800,
        )

    def open(self) -> None:
        self.pool.open(wait=False)

    def close(self, timeout: float = 2.0) -> None:
        self.cancel_all()
        self.pool.close(timeout=timeout)

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

    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float) -> Any:
        """Run ``collect`` in one read-only transaction bounded by ``timeout`` seconds."""
        try:
            with self.pool.connection(timeout=self.target.connect_timeout) as conn:
                with self._lock:
                    self._active.add(conn)
                watchdog = threading.Timer(timeout + 0.5, self._cancel, args=(conn,))
                watchdog.daemon = True
                watchdog.start()
                try:
                    with conn.transaction():
                        conn.execute("SELECT set_config('statement_timeout', %s, true),"
                                     " set_config('lock_timeout', %s, true)",
                                     (_ms(timeout), _ms(min(self.target.lock_timeout, timeout))))
                        ctx.conn = conn
                        ctx.facts = fetch_facts(conn)
                        return collect(ctx)
                finally:
                    watchdog.cancel()
                    ctx.conn = None
                    with self._lock:
                        self._active.discard(conn)
        except PoolTimeout as exc:
            with self._lock:
                busy = len(self._active)
            if busy >= self.target.max_connections:
                raise CollectorError(f"all {self.target.max_connections} connections are busy") from None
            raise ConnectionUnavailable(self.redact(f"cannot connect to {describe_target(self.target)}: {exc}")) from None
        except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
            raise CollectionTimeout(self.redact(f"cancelled after {timeout:g}s: {str(exc).strip()}")) from None
        except psycopg.OperationalError as exc:
            raise ConnectionUnavailable(self.redact(f"connection lost: {str(exc).strip()}")) from None
        except psycopg.Error as exc:
            raise CollectorError(self.redact(f"{type(exc).__name__}: {str(exc).strip()}")) from None

    @staticmethod
    def _cancel(conn: psycopg.Connection) -> None:
        try:
            conn.cancel_safe(timeout=1.0)
        except Exception:  # noqa: BLE001 - the run reports the timeout itself
            pass


def fetch_facts(conn: psycopg.Connection) -> ServerFacts:
    version_num, version, database, in_recovery, extensions = conn.execute(FACTS_SQL).fetchone()
    return ServerFacts(version_num=version_num, version=version, database=database,
                       in_recovery=in_recovery, extensions=dict(extensions or {}))
