"""The recall probe's standby session (``recall.replica_dsn``) and the redaction of its errors.

The standby session follows the target's session rules (:func:`replica_conninfo`: application_name
``vecmon``, read-only, statement/lock timeouts, the target's connect_timeout), runs in one read-only
transaction and is cancelled when the run's time is up; its password never reaches logs or metrics.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

from collectors.base import CollectContext
from collectors.pg_session import build_conninfo, secrets_of
from collectors.recall_budget import BudgetExhausted
from collectors.redaction import redact
from collectors.run_deadline import RunDeadline
from collectors.vector_catalog import load_library
from collectors.vector_model import VectorCatalog

log = logging.getLogger(__name__)

REPLICA_SESSION_KEYS = ("application_name", "connect_timeout", "options")


def replica_conninfo(target: Any, replica_dsn: str) -> str:
    """The standby's conninfo: its own address and credentials from ``replica_dsn``, with exactly the
    session settings :func:`collectors.pg_session.build_conninfo` gives the target's sessions (application_name,
    connect_timeout, ``options``: read-only default, statement, lock and idle-in-transaction timeouts)."""
    session = pg_conninfo.conninfo_to_dict(build_conninfo(target))
    return pg_conninfo.make_conninfo(replica_dsn, **{k: session[k] for k in REPLICA_SESSION_KEYS if k in session})


def run_secrets(settings: Any) -> list[str]:
    """Passwords of the target and of ``recall.replica_dsn``: never logged."""
    secrets = list(secrets_of(settings)) if hasattr(settings, "password_value") else []
    replica = settings.vector.recall.replica_dsn
    if replica is not None:
        try:
            password = pg_conninfo.conninfo_to_dict(replica.get_secret_value()).get("password")
        except psycopg.ProgrammingError:
            password = None
        if password:
            secrets.append(str(password))
    return secrets


def error_text(exc: BaseException, settings: Any, first_line: bool = False) -> str:
    """An error's text for a log, passwords redacted."""
    text = str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0] if first_line else text, run_secrets(settings))


def cancel_quietly(conn: psycopg.Connection) -> None:
    with contextlib.suppress(Exception):  # the run reports the cancelled statement itself
        conn.cancel_safe(timeout=1.0)


def probe_connection(ctx: CollectContext, rc: Any, catalog: VectorCatalog, stack: ExitStack,
                      budget: RunDeadline) -> tuple[psycopg.Connection | None, str | None]:
    """The standby connection for probe queries, if configured: vecmon's session settings, one
    read-only transaction bounded by the budget, cancelled by a timer when the run's time is up
    (the connector's watchdog only knows the target's connection). Returns (connection, None) or
    (None, the reason it is unavailable, passwords redacted)."""
    if rc.replica_dsn is None:
        return None, None
    try:
        with ExitStack() as setup:
            conn = psycopg.connect(replica_conninfo(ctx.settings, rc.replica_dsn.get_secret_value()),
                                   autocommit=False)
            setup.callback(conn.close)
            timer = threading.Timer(max(0.0, budget.end - time.monotonic()), cancel_quietly, args=(conn,))
            timer.daemon = True
            timer.start()
            setup.callback(timer.cancel)
            conn.read_only = True
            setup.enter_context(conn.transaction())
            conn.execute("SELECT set_config('statement_timeout', %s, true)", [budget.statement_timeout(budget.seconds)])
            load_library(conn, catalog.extension_schema)
            stack.enter_context(setup.pop_all())  # closed (timer stopped first) when the run ends
    except (psycopg.Error, BudgetExhausted) as exc:
        reason = (error_text(exc, ctx.settings, first_line=True) if isinstance(exc, psycopg.Error)
                  else "no time left in the run")
        log.warning("recall probe replica unavailable: %s", reason)
        return None, reason
    return conn, None
