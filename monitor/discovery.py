"""Database auto-discovery: one ``databases[]`` entry with ``discover:`` monitors every matching
database of its server as a target ``<name>/<datname>``.

When the jobs are built, the entry's own connection (its ``dsn``/``dbname``, usually
``postgres``) lists ``pg_database`` once (connectable databases; templates only with
``include_templates``), and each match becomes a copy of the entry with that ``dbname``. They are
targets of one server (monitor.servers), so cluster-wide collectors run once for all of them and
the server's connection budget holds. A ``discovery`` job of the entry (target label: the
entry's name) lists again every ``interval``; when the set changed it asks for a rebuild of the
jobs with the same config (``SharedState.rediscover``; the daemon rebuilds within a second), so a
database created or dropped appears or disappears within one interval. A listing that fails
keeps the targets found before and reports the entry's target down. Cluster-wide series of the
discovered databases carry the entry's name as ``target`` (stable while databases come and go).
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
from prometheus_client.core import Metric
from pydantic import Field, field_validator

from collectors.base import CollectContext, MetricSpec
from collectors.pg_session import build_conninfo, describe_target, secrets_of
from collectors.redaction import redact
from collectors.settings.base import Duration, Model
from monitor.target_health import one_line

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import Config, DatabaseTarget

log = logging.getLogger(__name__)

LIST_SQL = """
SELECT datname FROM pg_database
 WHERE datallowconn AND (%(templates)s OR NOT datistemplate)
 ORDER BY datname
"""


class DiscoverSettings(Model):
    include: list[str] = Field(default_factory=lambda: ["*"],
                               description="shell-style patterns (app_*) of the database names to monitor")
    exclude: list[str] = Field(default_factory=list, description="patterns of names left out (wins over include)")
    include_templates: bool = Field(False, description="also template databases (template1...)")
    interval: Duration = Field(300.0, description="how often the list of databases is refreshed")
    max_databases: int = Field(500, ge=1, le=10000, description="at most this many databases (by name order)")

    @field_validator("include")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("include needs at least one pattern (\"*\" for every database)")
        return value

    def matches(self, datname: str) -> bool:
        return (any(fnmatch.fnmatchcase(datname, p) for p in self.include)
                and not any(fnmatch.fnmatchcase(datname, p) for p in self.exclude))


def discovered_target(entry: DatabaseTarget, datname: str) -> DatabaseTarget:
    """The entry as the target of one discovered database."""
    return entry.model_copy(update={"name": f"{entry.name}/{datname}", "dbname": datname, "discover": None})


def cluster_wide_settings(target: DatabaseTarget) -> DatabaseTarget:
    """A cluster-wide job's settings: a discovered target's carry its entry's name, so the
    ``target`` label of cluster-wide series stays the entry's whichever databases come and go."""
    entry, sep, _ = target.name.partition("/")  # configured names cannot hold "/" (NAME_PATTERN)
    return target.model_copy(update={"name": entry}) if sep else target


def list_databases(conn: Any, settings: DiscoverSettings) -> list[str]:
    rows = conn.execute(LIST_SQL, {"templates": settings.include_templates}).fetchall()
    names = [row[0] for row in rows if settings.matches(row[0])]
    if len(names) > settings.max_databases:
        log.warning("discover: %d databases match, monitoring the first %d (discover.max_databases)",
                    len(names), settings.max_databases)
    return names[:settings.max_databases]


class Rediscovery:
    """Set by a discovery job whose server's list of databases changed; the daemon rebuilds the jobs."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.known: dict[str, list[str]] = {}  # entry name -> databases last listed (kept when a listing fails)

    def request(self) -> None:
        self._event.set()

    def take(self) -> bool:
        """Whether a rebuild was asked for since the last call."""
        if self._event.is_set():
            self._event.clear()
            return True
        return False


class DiscoveryCollector:
    """Lists the entry's databases; asks for a rebuild when they differ from the ones monitored."""

    name = "discovery"
    scope = "server"
    METRICS: ClassVar[tuple[MetricSpec, ...]] = ()

    def __init__(self, settings: DiscoverSettings, monitored: list[str] | None):
        self.settings = settings
        self.monitored = monitored  # None: the listing at build time failed

    def collect(self, ctx: CollectContext) -> list[Metric]:
        found = list_databases(ctx.conn, self.settings)
        if found != self.monitored:
            log.info("discover %s: databases changed (%d now, %s before); rebuilding the jobs", ctx.target,
                     len(found), "none" if self.monitored is None else len(self.monitored))
            self.monitored = found  # one request per change
            rediscovery = getattr(ctx.shared, "rediscovery", None)
            if rediscovery is not None:
                rediscovery.request()
        return []


class _DiscoverySettingsView:
    """The entry's settings with the discovery job's interval (the scheduler asks *_for(collector))."""

    def __init__(self, entry: DatabaseTarget, discover: DiscoverSettings):
        self.entry = entry
        self.discover = discover  # the entry's own (not None for an entry with a discovery job)
        self.name = entry.name

    def interval_for(self, collector: str) -> float:
        return self.discover.interval

    def timeout_for(self, collector: str) -> float:
        return min(self.entry.timeout, self.discover.interval)

    def jitter_for(self, collector: str) -> float:
        return 0.0

    def __getattr__(self, item: str) -> Any:
        return getattr(self.entry, item)


def expand(config: Config, rediscovery: Rediscovery | None = None,
           ) -> tuple[Config, list[tuple[_DiscoverySettingsView, DiscoveryCollector, DatabaseTarget]]]:
    """The config with each ``discover`` entry replaced by its databases' targets (listed now, over
    one short connection), and per entry (settings view, discovery collector, entry) for its job."""
    entries = [db for db in config.databases if db.enabled and db.discover is not None]
    if not entries:
        return config, []
    databases: list[DatabaseTarget] = []
    jobs: list[tuple[_DiscoverySettingsView, DiscoveryCollector, DatabaseTarget]] = []
    for db in config.databases:
        if not (db.enabled and db.discover is not None):
            databases.append(db)
            continue
        found = _list_now(db, db.discover)
        if rediscovery is not None:
            if found is None:
                found = rediscovery.known.get(db.name)  # unreachable now: the databases listed before
            else:
                rediscovery.known[db.name] = found
        databases.extend(discovered_target(db, name) for name in found or ())
        jobs.append((_DiscoverySettingsView(db, db.discover), DiscoveryCollector(db.discover, found), db))
    return config.model_copy(update={"databases": databases}), jobs


def _list_now(entry: DatabaseTarget, discover: DiscoverSettings) -> list[str] | None:
    try:
        with psycopg.connect(build_conninfo(entry)) as conn:
            conn.read_only = True
            with conn.transaction():
                return list_databases(conn, discover)
    except psycopg.Error as exc:
        log.warning("discover %s (%s): cannot list the databases yet: %s", entry.name, describe_target(entry),
                    redact(one_line(exc), secrets_of(entry)))
        return None
