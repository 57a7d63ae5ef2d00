"""Servers: the database targets that reach one PostgreSQL server, and what runs once per server.

Targets whose connection goes to the same host and port form one :class:`Server` (in config
order); at connect time each server reads its ``system_identifier`` too, so two addresses of one
cluster (``localhost`` and ``127.0.0.1``, say) do not both serve its cluster-wide series: the
later one's cluster-wide jobs report themselves disabled.

- **Cluster-wide collectors** (``scope = "server"``: pg_stat_database, pg_stat_activity,
  settings, replication, WAL, archiver, I/O, wraparound; custom queries with ``scope: server``)
  run once per server, as a job of the server's first target that enables them (its ``target``
  label stays that target's name, so a one-database setup sees no change), on a
  :class:`ServerRunner`: the run goes to one live database of the server and moves to the next
  one when that database is dropped or unreachable. Their series carry a ``server`` label
  (``host:port``, one value per server).
- **Database-local collectors** (``scope = "database"``) run per target, on its own connector.
- **Connection budget**: ``server_max_connections`` (the smallest value the server's targets
  give; default one session per target, at least 2) bounds vecmon's sessions on the server.
  Every session holds a slot of the budget from connect to close. When the budget allows each
  target a session of its own, each target keeps ``budget // targets`` sessions between runs (at
  most its ``max_connections``); when it does not, each run opens its session and closes it at the
  end, and at most ``budget`` runs hold one at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg

from collectors.base import CollectContext, CollectorDisabled, ConnectionUnavailable
from collectors.pg_session import server_address
from monitor.config import DatabaseTarget
from monitor.pg import BatchItem, BatchOutcome, DatabaseConnector
from monitor.sessions import NoSessions, SessionBudget
from monitor.target_health import one_line

log = logging.getLogger(__name__)

SERVER_LABEL = "server"
SYSTEM_IDENTIFIER_SQL = "SELECT system_identifier::text FROM pg_control_system()"




@dataclass
class SystemIdentifiers:
    """Which server (by name) first reported each system identifier, for this build of the jobs."""

    _owners: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, identifier: str, server: str) -> str:
        """The server that owns ``identifier``: ``server`` if it is the first to report it."""
        with self._lock:
            return self._owners.setdefault(identifier, server)


@dataclass
class Server:
    """The targets of one PostgreSQL server, in config order, with their connectors."""

    name: str  # host:port
    targets: list[DatabaseTarget]
    connectors: list[DatabaseConnector]
    budget: SessionBudget
    identifiers: SystemIdentifiers
    system_identifier: str | None = None

    def first_enabling(self, collector: str) -> DatabaseTarget | None:
        """The first target (config order) that enables ``collector``: the job's settings and target label."""
        return next((t for t in self.targets if collector in t.enabled_collectors()), None)


class ServerRunner(NoSessions):
    """Runs a cluster-wide collector on one live database of a server, moving on when it is gone.

    Connectors belong to their targets (opened and closed with them); this runner only picks one.
    It keeps the last one that worked, so runs stay on one database while it is up."""

    def __init__(self, server: Server):
        self.server = server
        self._preferred = 0
        self._lock = threading.Lock()

    def redact(self, text: str) -> str:
        for connector in self.server.connectors:
            text = connector.redact(text)
        return text

    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float,
            reset: bool = True) -> Any:
        outcome, _ = self.run_batch([(collect, ctx, timeout)], reset)[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_batch(self, items: list[BatchItem], reset: bool = False) -> list[BatchOutcome]:
        """Several cluster-wide collectors in one transaction on one live database of the server
        (:meth:`DatabaseConnector.run_batch`), moving to the next database when this one is gone."""
        connectors = self.server.connectors
        with self._lock:
            start = self._preferred
        failed: list[BatchOutcome] = []
        for step in range(len(connectors)):
            index = (start + step) % len(connectors)
            for _, ctx, _ in items:
                ctx.state["_ran_on"] = connectors[index].target.name
            wrapped: list[BatchItem] = [(partial(self._collect, collect), ctx, timeout)
                                        for collect, ctx, timeout in items]
            outcomes = connectors[index].run_batch(wrapped, reset)
            if all(isinstance(outcome, ConnectionUnavailable) for outcome, _ in outcomes):
                failed = failed or outcomes  # that database is gone or down: try the next one
                continue
            if index != start:
                with self._lock:
                    self._preferred = index
                log.info("server %s: cluster-wide collection moved to target %s", self.server.name,
                         connectors[index].target.name)
            return [(outcome if isinstance(outcome, BaseException) else label_server(outcome, self.server.name),
                     duration) for outcome, duration in outcomes]
        return failed

    def _collect(self, collect: Callable[[CollectContext], Any], ctx: CollectContext) -> Any:
        self._check_identity(ctx)
        return collect(ctx)

    def _check_identity(self, ctx: CollectContext) -> None:
        """Once: read the system identifier; a cluster already reached under another address is not collected twice."""
        server = self.server
        if server.system_identifier is None:
            conn = ctx.conn
            assert conn is not None  # a run on a DatabaseConnector: it set the session
            try:
                with conn.transaction():  # a savepoint: a refused call does not end the run's transaction
                    row = conn.execute(SYSTEM_IDENTIFIER_SQL).fetchone()
                server.system_identifier = row[0] if row else ""
            except psycopg.Error as exc:  # without the privilege: host:port alone identifies the server
                log.debug("server %s: system identifier not readable: %s", server.name, one_line(exc))
                server.system_identifier = ""
        if server.system_identifier:
            owner = server.identifiers.claim(server.system_identifier, server.name)
            if owner != server.name:
                raise CollectorDisabled(f"the same PostgreSQL server (system identifier {server.system_identifier}) "
                                        f"is monitored as {owner}; its cluster-wide series come from there")


def label_server(families: Any, server: str) -> Any:
    """Add the ``server`` label to every sample of cluster-wide families (a custom query's own
    ``server`` column, if it has one, keeps its value)."""
    if not isinstance(families, list):
        return families
    for family in families:
        for sample in getattr(family, "samples", ()):
            sample.labels.setdefault(SERVER_LABEL, server)
    return families


def group_servers(targets: list[DatabaseTarget]) -> list[Server]:
    """Targets grouped by server (host:port), in config order, with their budgeted connectors."""
    by_name: dict[str, list[DatabaseTarget]] = {}
    for target in targets:
        by_name.setdefault(server_address(target), []).append(target)
    identifiers = SystemIdentifiers()
    servers = []
    for name, members in by_name.items():
        limits = [t.server_max_connections for t in members if t.server_max_connections is not None]
        limit = min(limits) if limits else max(2, len(members))
        budget = SessionBudget(limit)
        share = limit // len(members)
        connectors = []
        for target in members:
            if share >= 1:  # each target keeps its share of sessions between runs
                sized = target.model_copy(update={"max_connections": min(target.max_connections, share)})
                connectors.append(DatabaseConnector(sized, budget=budget, keep_idle=sized.max_connections))
            else:  # each run opens a session within the budget and closes it
                connectors.append(DatabaseConnector(target, budget=budget, keep_idle=0))
        if share < 1:
            log.info("server %s: %d targets share %d sessions (server_max_connections); each run opens its own",
                     name, len(members), limit)
        servers.append(Server(name, members, connectors, budget, identifiers))
    return servers
