"""Leader election for replicas of the same shard (an HA pair): a PostgreSQL advisory lock.

With ``daemon.ha`` set, each replica keeps one extra session to the server of the
``databases[]`` target that ``daemon.ha.database`` names and tries
``pg_try_advisory_lock(key)`` on it every ``daemon.ha.interval``; the key is derived from
``daemon.ha.name`` and the shard, so only replicas of the same shard compete. The holder is
the leader: it alone runs the expensive or paid jobs (:data:`LEADER_ONLY`: recall probes,
model-API probes, cost-API polls and the budgets computed from them), which report themselves
disabled ("standby") on the other replicas; every cheap collector runs on all of them.

The lock belongs to the session, so it is released when the leader stops, crashes or loses
its connection (TCP keepalives and ``tcp_user_timeout`` bound how long a dead peer holds it),
and a standby takes over at its next attempt, within one interval. The leader checks its
session every interval too and steps down as soon as it fails. The session follows vecmon's
rules: read-only, ``application_name=vecmon``, ``statement_timeout`` and ``lock_timeout``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field

from collectors.pg_session import build_conninfo, secrets_of
from collectors.redaction import redact
from collectors.settings.base import NAME_PATTERN, Duration, Model

if TYPE_CHECKING:
    from monitor.config import DatabaseTarget
    from monitor.shard import Shard

log = logging.getLogger(__name__)

# Collector names whose jobs run on the leader only.
LEADER_ONLY = frozenset({"recall", "model_probe", "provider_costs", "budget"})
STANDBY = "standby: another replica of this shard holds the leader lock (daemon.ha)"


class HaSettings(Model):
    database: str = Field(description="databases[] target whose server holds the leader lock "
                                      "(it need not be in this instance's shard)")
    interval: Duration = Field(10.0, gt=0, description="how often a standby tries to take the lock and the "
                                                       "leader checks its session; a lost leader is replaced "
                                                       "within this time")
    name: str = Field("vecmon", pattern=NAME_PATTERN,
                      description="lock name: replicas with the same name and shard compete for one lock")


def check_ha(config: Any) -> None:
    ha = config.daemon.ha
    if ha is not None and ha.database not in {db.name for db in config.databases}:
        raise ValueError(f"daemon.ha.database {ha.database!r} is not a databases[] target")


def lock_key(name: str, shard: Shard | None) -> int:
    """The advisory lock key (a signed bigint) of one lock name and shard."""
    digest = hashlib.md5(f"vecmon-leader/{name}/{shard or 'all'}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderElector:
    """Holds (or waits for) the leader lock in a background thread.

    It has the scheduler's runner interface so a :class:`monitor.scheduler.Runtime` opens it
    with its connectors (the first attempt is made before any job runs) and closes it on stop
    or reload, which releases the lock."""

    def __init__(self, target: DatabaseTarget, key: int, interval: float):
        from psycopg import conninfo as pg_conninfo


        self.key = key
        self.interval = interval
        self.target_name = target.name
        wait = max(1, int(interval))
        # A dead peer must not keep the lock, nor hang a check, for much longer than an interval.
        self._conninfo = pg_conninfo.make_conninfo(
            build_conninfo(target), keepalives=1, keepalives_idle=wait, keepalives_interval=wait,
            keepalives_count=2, tcp_user_timeout=int(interval * 1000),
            connect_timeout=max(2, min(int(target.connect_timeout), wait)))
        self._secrets = secrets_of(target)
        self._conn: Any = None
        self._unreachable = False
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader.is_set()

    def standby_reason(self) -> str | None:
        """None on the leader; why leader-only jobs do not run here otherwise."""
        return None if self._leader.is_set() else STANDBY

    def attempt(self) -> bool:
        """Take the lock, or check that the session holding it is alive; returns leadership."""
        import psycopg

        with self._lock:
            if self._stop.is_set():
                return False
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self._conninfo, autocommit=True)
                if self._leader.is_set():
                    self._conn.execute("SELECT 1")
                elif self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]:
                    self._leader.set()
                    log.info("leader lock taken on %s: running the leader-only jobs", self.target_name)
                self._unreachable = False
            except psycopg.Error as exc:
                if self._leader.is_set():
                    log.warning("leader lock lost on %s: %s", self.target_name, self.redact(str(exc).strip()))
                elif not self._unreachable:  # once per outage, not every interval
                    log.warning("cannot reach the leader lock on %s: %s", self.target_name,
                                self.redact(str(exc).strip()))
                self._unreachable = True
                self._leader.clear()
                self._close_session()
            return self._leader.is_set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.attempt()

    def _close_session(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a broken session
                conn.close()  # ends the session: the server releases the lock

    # -- runner interface (monitor.scheduler.Runner)
    def open(self) -> None:
        if self._thread is not None:
            return
        self.attempt()
        self._thread = threading.Thread(target=self._loop, name=f"vecmon-leader-{self.target_name}", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._leader.is_set():
                log.info("leader lock released on %s", self.target_name)
            self._leader.clear()
            self._close_session()

    def cancel_all(self) -> None:
        return None

    def redact(self, text: str) -> str:

        return redact(text, self._secrets)

    def run(self, collect: Callable[..., Any], ctx: Any, timeout: float,
            reset: bool = True) -> Any:  # pragma: no cover
        raise RuntimeError("the leader elector runs no collectors")


def leader_elector(config: Any, shard: Shard | None) -> LeaderElector | None:
    ha = config.daemon.ha
    if ha is None:
        return None
    target = next(db for db in config.databases if db.name == ha.database)
    return LeaderElector(target, lock_key(ha.name, shard), ha.interval)


def gate_leader_only(jobs: list[Any], elector: LeaderElector) -> None:
    """Leader-only jobs ask the elector before each run (see CollectionJob.standby)."""
    for job in jobs:
        if job.collector.name in LEADER_ONLY:
            job.standby = elector.standby_reason
