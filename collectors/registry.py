"""Every collector vecmon ships, for every kind of target: the one registry.

A :class:`Registration` says, once, what :mod:`monitor` needs to know about a collector without
running it: its ``name`` (the ``collector`` label, and the key under ``databases[].collectors``),
its ``kind`` of target, the config ``section`` listing those targets, the ``settings`` type of one
entry of that section, and the collector's default schedule where it differs from its target's.
The collector class itself declares the rest, once: ``name``, its ``METRICS`` and, for database
collectors, its ``scope`` (``server``: once per PostgreSQL server; ``database``: on every target).

Kinds (:data:`KINDS`): ``database`` (one job per enabled collector and ``databases[]`` entry),
``custom_query`` (one job per ``queries[]`` entry and target; the scope is the query's), and one job
per enabled entry of ``endpoints[]`` (``endpoint``), ``cost_apis[]`` (``cost_api``), ``budgets[]``
(``budget``), ``redis[]`` (``redis``) and ``applications[]`` (``app``).

**Collector classes are imported lazily, by path** (``module:Class``, :meth:`Registration.load`),
for start-up cost and memory only (issue 12): the recall probe's module imports SQLAlchemy, and the
endpoint, cost-API, budget and application collectors import ``requests``; a process loads them
only when a configured target runs them, or when it asks for their metrics (the docs, the config
check of custom queries). :data:`RECALL_STATE_STORE`, :data:`HTTP_SESSION` and :data:`PRICE_TABLE` are
loaded the same way, for the same reason. The settings models are imported eagerly (pydantic only). Nothing else
of vecmon is imported lazily, and this module imports nothing above the collectors.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from collectors.base import MetricSpec
from collectors.settings.applications import ApplicationTarget
from collectors.settings.base import Model
from collectors.settings.cost_apis import Budget, CostApiTarget
from collectors.settings.custom_queries import CustomQuery
from collectors.settings.endpoints import EndpointTarget
from collectors.settings.redis import RedisTarget
from collectors.settings.targets import ScheduledTarget

Kind = Literal["database", "custom_query", "endpoint", "cost_api", "budget", "redis", "app"]
KINDS: tuple[Kind, ...] = ("database", "custom_query", "endpoint", "cost_api", "budget", "redis", "app")
# The kinds whose targets are the entries of their own section (not databases[]): one job per enabled entry.
TARGET_KINDS: tuple[Kind, ...] = ("endpoint", "cost_api", "budget", "redis", "app")


def load(path: str) -> Any:
    """The object at ``module:name``, imported now."""
    module_name, _, name = path.partition(":")
    return getattr(importlib.import_module(module_name), name)


@dataclass(frozen=True)
class Registration:
    """One collector: what it is for, where its targets are configured, and where its class lives."""

    name: str
    kind: Kind
    path: str  # module:Class, imported by load()
    section: str = "databases"  # the config section listing its targets
    settings: type[Model] | None = None  # one entry of the section; database collectors: see below
    interval: float | None = None  # default interval when it differs from the target's
    timeout: float | None = None  # default timeout when the collector legitimately needs longer

    # The settings of a database collector are its database target (monitor.config.DatabaseTarget, which
    # composes databases[].collectors.<name>, limits and vector), so ``settings`` is None for them.

    def load(self) -> Any:
        """The collector class (its module is imported on first use)."""
        return load(self.path)

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """The metric families the collector declares: ``METRICS`` of its class; for custom queries, the
        families every query reports about itself (``QUERY_METRICS``; the rest come from the config)."""
        if self.kind == "custom_query":
            query_specs: tuple[MetricSpec, ...] = load(self.path.partition(":")[0] + ":QUERY_METRICS")
            return query_specs
        specs: tuple[MetricSpec, ...] = self.load().METRICS
        return specs

    @property
    def scope(self) -> str:
        """``server`` or ``database`` for database collectors (their class says), ``target`` otherwise;
        a custom query's scope is the query's own (``queries[].scope``)."""
        if self.kind == "database":
            scope: str = getattr(self.load(), "scope", "database")
            if scope not in ("server", "database"):
                raise ValueError(f"collector {self.name!r}: unknown scope {scope!r}")
            return scope
        return "database" if self.kind == "custom_query" else "target"


def _database(name: str, path: str, interval: float | None = None, timeout: float | None = None) -> Registration:
    return Registration(name, "database", path, interval=interval, timeout=timeout)


REGISTRY: tuple[Registration, ...] = (
    # PostgreSQL collectors run once per database target (or once per server: their scope).
    _database("connections", "collectors.pg_connections:ConnectionsCollector"),
    _database("databases", "collectors.pg_databases:DatabasesCollector"),
    _database("tables", "collectors.pg_tables:TablesCollector"),
    _database("indexes", "collectors.pg_indexes:IndexesCollector"),
    _database("statements", "collectors.pg_statements:StatementsCollector"),
    _database("server", "collectors.pg_server:ServerCollector"),
    _database("archiver", "collectors.pg_archiver:ArchiverCollector"),
    _database("wal", "collectors.pg_wal:WalCollector"),
    _database("io", "collectors.pg_io:IoCollector"),
    _database("wraparound", "collectors.pg_wraparound:WraparoundCollector"),
    # Freeze ages move by at most a few million IDs an hour against limits of 200 million and more:
    # every 5 minutes is plenty, and the per-table query is the costliest per-database one (issue 17).
    _database("wraparound_tables", "collectors.pg_wraparound:WraparoundTablesCollector", interval=300),
    _database("activity", "collectors.pg_activity:ActivityCollector"),
    _database("progress", "collectors.pg_progress:ProgressCollector"),
    # pgvector (disabled on databases without the extension)
    _database("vector_indexes", "collectors.vector_indexes:VectorIndexesCollector", interval=60),
    _database("recall", "collectors.recall_probe:RecallCollector", interval=600, timeout=120),
    _database("ann_latency", "collectors.ann_latency:AnnLatencyCollector", interval=30),
    _database("vector_freshness", "collectors.vector_freshness:VectorFreshnessCollector", interval=60, timeout=30),
    _database("vector_bloat", "collectors.vector_bloat:VectorBloatCollector", interval=600, timeout=60),
    # Custom SQL: one collector per query (its jobs are collector query:<name>), on the database targets.
    Registration("query", "custom_query", "collectors.custom_queries:CustomQueryCollector", "queries", CustomQuery),
    # The model-API side and the application: one target per entry of their section.
    Registration("model_probe", "endpoint", "collectors.model_probe:ModelProbeCollector", "endpoints",
                 EndpointTarget),
    Registration("provider_costs", "cost_api", "collectors.provider_costs:ProviderCostsCollector", "cost_apis",
                 CostApiTarget),
    Registration("budget", "budget", "collectors.provider_costs:BudgetCollector", "budgets", Budget),
    Registration("redis_cache", "redis", "collectors.redis_cache:RedisCacheCollector", "redis", RedisTarget),
    Registration("app_probe", "app", "collectors.app_probe:AppProbeCollector", "applications", ApplicationTarget),
)

# Views of the registry, for the callers that need one kind only.
DATABASE_COLLECTORS: dict[str, str] = {r.name: r.path for r in REGISTRY if r.kind == "database"}
# Collectors whose natural period differs from the database's ``interval``; a
# ``collectors.<name>.interval`` in the config still wins.
DEFAULT_INTERVALS: dict[str, float] = {r.name: r.interval for r in REGISTRY if r.interval is not None}
# Likewise for collectors that legitimately need longer than the database's ``timeout``.
DEFAULT_TIMEOUTS: dict[str, float] = {r.name: r.timeout for r in REGISTRY if r.timeout is not None}

# The recall probe's state store: SQLAlchemy, imported only when a target has recall on.
RECALL_STATE_STORE = "collectors.recall_state:RecallStateStore"
# The HTTP session of an endpoint, cost-API or application target: requests, imported only when one is configured.
HTTP_SESSION = "collectors.http_session:new_session"
# The endpoint probes' price table (its module imports requests, like the collectors using it).
PRICE_TABLE = "collectors.provider_costs:PriceTable"


def registrations(*kinds: Kind) -> Iterator[Registration]:
    """The registrations of these kinds (every one without arguments), in registry order."""
    return (r for r in REGISTRY if not kinds or r.kind in kinds)


def registration(name: str) -> Registration:
    """The registration of collector ``name``; KeyError for an unknown name."""
    for candidate in REGISTRY:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def recall_state_store(url: str) -> Any:
    """A new :class:`collectors.recall_state.RecallStateStore` for ``url``."""
    return load(RECALL_STATE_STORE)(url)


def http_session(trust_env: bool = True) -> Any:
    """A new ``requests.Session`` with whole-request deadlines (:func:`collectors.http_session.new_session`)."""
    return load(HTTP_SESSION)(trust_env)


def price_table(pricing: Any = None) -> Any:
    """The price table of ``pricing`` (:meth:`collectors.provider_costs.PriceTable.load`)."""
    return load(PRICE_TABLE).load(pricing)


def database_collector(name: str) -> Any:
    return load(DATABASE_COLLECTORS[name])


def all_collector_classes() -> list[Any]:
    """Every database collector class."""
    return [r.load() for r in registrations("database")]


def api_collector_classes() -> list[Any]:
    """Every collector class of the kinds with their own targets (model-API side, Redis, applications)."""
    return [r.load() for r in registrations(*TARGET_KINDS)]


def target_sections() -> list[str]:
    """The config sections of the kinds with their own targets, in registry order, each once."""
    return list(dict.fromkeys(r.section for r in registrations(*TARGET_KINDS)))


def all_api_targets(config: Any) -> list[ScheduledTarget]:
    """Every entry of those sections of ``config`` (enabled or not)."""
    return [target for section in target_sections() for target in getattr(config, section, [])]
