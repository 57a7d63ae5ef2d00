"""The session vecmon opens on a monitored database: its libpq conninfo and the secrets in it.

Every session is ``application_name=vecmon``, read-only by default and bounded by
``statement_timeout``, ``lock_timeout`` and ``idle_in_transaction_session_timeout``
(:mod:`monitor.pg` owns the pools and transactions; the recall probe opens its standby session
with the same settings).
"""

from __future__ import annotations

from typing import Any, Protocol

import psycopg
from psycopg import conninfo as pg_conninfo
from pydantic import SecretStr

APPLICATION_NAME = "vecmon"


class SessionTarget(Protocol):
    """What a session needs from a database target (:class:`monitor.config.DatabaseTarget`)."""

    @property
    def dsn(self) -> SecretStr | None: ...
    @property
    def host(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def dbname(self) -> str | None: ...
    @property
    def sslmode(self) -> str | None: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def timeout(self) -> float: ...
    @property
    def lock_timeout(self) -> float: ...

    def password_value(self) -> str | None: ...


def duration_setting(seconds: float) -> str:
    """A duration as a PostgreSQL setting value: whole milliseconds, at least 1ms."""
    return f"{max(1, int(seconds * 1000))}ms"


def build_conninfo(target: SessionTarget) -> str:
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
    params["options"] = " ".join((
        "-c default_transaction_read_only=on",
        f"-c statement_timeout={duration_setting(target.timeout)}",
        f"-c lock_timeout={duration_setting(target.lock_timeout)}",
        f"-c idle_in_transaction_session_timeout={duration_setting(max(60.0, target.timeout * 2))}"))
    dsn = target.dsn.get_secret_value() if target.dsn is not None else ""
    conninfo: str = pg_conninfo.make_conninfo(dsn, **params)
    return conninfo


def describe_target(target: SessionTarget) -> str:
    """host:port/dbname without credentials, for logs and the status page."""
    try:
        info = pg_conninfo.conninfo_to_dict(build_conninfo(target))
    except psycopg.ProgrammingError:
        return "(invalid dsn)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', info.get('user', ''))}"


def server_address(target: SessionTarget) -> str:
    """host:port of a target's server, without credentials: the ``server`` label value."""
    return describe_target(target).rpartition("/")[0]


def secrets_of(target: SessionTarget) -> list[str]:
    """Values that must never appear in logs or metrics."""
    secrets = []
    password = target.password_value()
    if password:
        secrets.append(password)
    if target.dsn is not None:
        try:
            in_dsn = pg_conninfo.conninfo_to_dict(target.dsn.get_secret_value()).get("password")
        except psycopg.ProgrammingError:
            in_dsn = None
        if in_dsn:
            secrets.append(str(in_dsn))
    return [s for s in secrets if s]
