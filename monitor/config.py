"""Typed configuration: pydantic models for the vecmon YAML file.

Loading (YAML, ``${VAR}`` interpolation, secret files, located errors) lives in
:mod:`monitor.loader`; this module only says what a valid config looks like, composing the
settings each collector owns (:mod:`collectors.settings`), the alerting sections (:mod:`alerts.config`)
and the daemon's own.
Durations are written as ``500ms``, ``15s``, ``5m``, ``1h`` or a plain number of seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from alerts.config import AlertingSettings, AlertmanagerSettings, SLOList
from collectors.registry import DATABASE_COLLECTORS, DEFAULT_INTERVALS, DEFAULT_TIMEOUTS, all_api_targets
from collectors.settings.applications import ApplicationTarget
from collectors.settings.base import NAME_PATTERN, Duration, ForDuration, Model, SecretFilePath, check_dsn, one_secret
from collectors.settings.cost_apis import Budget, CostApiTarget, Pricing
from collectors.settings.custom_queries import CustomQuery
from collectors.settings.endpoints import EndpointTarget
from collectors.settings.redis import RedisTarget
from collectors.settings.targets import ScheduledTarget
from collectors.settings.vector import VECTOR_COLLECTORS, VectorSettings
from monitor.config_probe import AuthModule, ProbeSettings
from monitor.config_queries import check_query_plans
from monitor.discovery import DiscoverSettings
from monitor.leader import HaSettings, check_ha
from monitor.pgexporter_queries import QueriesYamlPath
from monitor.shard import ShardText

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def check_dsn_parts(value: SecretStr | None) -> SecretStr | None:
    """Parts of a DSN libpq would only reject when connecting: ports, sslmode, connect_timeout.
    The error names the part, never the DSN (it may hold a password)."""
    value = check_dsn(value)
    if value is None:
        return value
    from psycopg import conninfo

    parts = conninfo.conninfo_to_dict(value.get_secret_value())
    for port in str(parts.get("port", "")).split(",") if parts.get("port") is not None else ():
        port = port.strip()
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"invalid port {port[:20]!r} in dsn (expected a number from 1 to 65535)")
    sslmode = parts.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        raise ValueError(f"unknown sslmode {str(sslmode)[:20]!r} in dsn (expected one of {', '.join(SSLMODES)})")
    timeout = parts.get("connect_timeout")
    if timeout is not None and not str(timeout).strip().lstrip("-").isdigit():
        raise ValueError(f"invalid connect_timeout {str(timeout)[:20]!r} in dsn (expected whole seconds)")
    return value


class DaemonSettings(Model):
    listen: str = Field("127.0.0.1:9765", description="HOST:PORT the HTTP server binds to")
    stale_after: Duration = Field(
        300.0, description="series of a collector that keeps failing are dropped this long after its last success")
    shutdown_timeout: Duration = Field(5.0, description="how long a stop waits for running collections")
    allow_no_targets: bool = Field(
        False, description="run with nothing to monitor (only self-metrics); otherwise such a file is refused")
    shard: ShardText | None = Field(None, description='"I/N": monitor only shard I of N (hashmod of the target '
                                                      'names); --shard or $VECMON_SHARD override it')
    readiness: Literal["first_run", "all_targets_up"] = Field(
        "first_run", description="what /ready means: every job has finished one run (first_run), or also every "
                                 "target is reachable (all_targets_up; /ready?strict=1 asks for it either way)")
    ha: HaSettings | None = Field(None, description="leader election among replicas of a shard: recall, model-API "
                                                    "and cost-API jobs run on the leader only")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"invalid listen address {value!r} (expected HOST:PORT)")
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class Limits(Model):
    """Top-N limits that bound label cardinality."""

    tables: int = Field(50, ge=1, le=10000, description="largest tables exported")
    indexes: int = Field(100, ge=1, le=10000, description="largest indexes exported (invalid ones always)")
    statements: int = Field(50, ge=1, le=10000, description="statements with the most total time exported")


# Collector names as a type: an unknown name is reported beside every other error of the mapping.
if TYPE_CHECKING:  # the names are the registry's, known at run time only
    DatabaseCollectorName = str
else:
    DatabaseCollectorName = Literal[tuple(DATABASE_COLLECTORS)]


class CollectorSettings(Model):
    enabled: bool = True
    interval: Duration | None = Field(None, description="default: the collector's own or the target's interval")
    timeout: Duration | None = Field(None, description="default: the collector's own or the target's timeout")


class DatabaseTarget(Model):
    """One PostgreSQL database to monitor."""

    name: str = Field(pattern=NAME_PATTERN, description="the target label value")
    enabled: bool = Field(True, description="false keeps the entry but schedules nothing")
    dsn: SecretStr | None = Field(None, description="libpq connection string or URI")
    host: str | None = Field(None, description="overrides the host in dsn")
    port: int | None = Field(None, ge=1, le=65535, description="overrides the port in dsn")
    user: str | None = Field(None, description="a role with pg_monitor is enough")
    dbname: str | None = Field(None, description="database-local views need one target per database")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    password: SecretStr | None = Field(None, description="use ${ENV_VAR}; never logged")
    password_file: SecretFilePath | None = Field(
        None, description="file whose first line is the password (relative to the config file)")
    interval: Duration = Field(30.0, description="default schedule of this target's collectors")
    timeout: Duration = Field(10.0, description="per collector run, enforced on the server (statement_timeout)")
    lock_timeout: Duration = Field(1.0, description="longest wait for a lock by a monitoring query")
    connect_timeout: Duration = Field(5.0, description="waiting for a connection from the pool or the server")
    jitter: ForDuration | None = Field(None, description="random delay added to each run; default 10% of interval")
    max_connections: int = Field(2, ge=1, le=20, description="most sessions vecmon opens on this target")
    prepared_statements: bool = Field(
        True, description="plan vecmon's own queries once per kept session (server-side prepared statements, "
                          "from a query's second run); false behind a pooler in transaction mode that does not "
                          "keep them (PgBouncer before 1.21, or without max_prepared_statements)")
    server_max_connections: int | None = Field(
        None, ge=1, le=1000, description="most sessions vecmon opens on this target's server, over all its "
                                         "targets (the smallest value they give; default: one per target, at least 2)")
    discover: DiscoverSettings | None = Field(
        None, description="monitor every matching database of this server as a target <name>/<datname> "
                          "(docs/postgres.md: Many databases and servers)")
    collectors: dict[DatabaseCollectorName, CollectorSettings] = Field(
        default_factory=dict, description="per-collector overrides; every collector runs unless disabled")
    limits: Limits = Field(default_factory=Limits, description="top-N limits bounding label cardinality")
    exclude_databases: list[str] = Field(
        default_factory=lambda: ["template0", "template1"],
        description="databases the databases collector leaves out (templates by default; [] keeps all)")
    long_running_threshold: Duration = Field(
        30.0, description="statements running longer count as long-running (activity collector)")
    vector: VectorSettings = Field(default_factory=VectorSettings,
                                   description="pgvector discovery, recall and latency probes, freshness")

    @field_validator("dsn")
    @classmethod
    def _dsn(cls, value: SecretStr | None) -> SecretStr | None:
        return check_dsn_parts(value)

    @model_validator(mode="after")
    def _connection(self) -> DatabaseTarget:
        if self.dsn is None and self.host is None and self.dbname is None:
            raise ValueError("give either dsn or host/dbname")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if self.lock_timeout > self.timeout:
            raise ValueError("lock_timeout must not exceed timeout")
        return self

    def password_value(self) -> str | None:
        """The password in clear text, for the connection only."""
        return one_secret(self.password, self.password_file)

    def collector_settings(self, name: str) -> CollectorSettings:
        return self.collectors.get(name, CollectorSettings())

    def enabled_collectors(self) -> list[str]:
        return [name for name in DATABASE_COLLECTORS if self.collector_settings(name).enabled
                and (self.vector.enabled or name not in VECTOR_COLLECTORS)]

    def interval_for(self, name: str) -> float:
        return self.collector_settings(name).interval or DEFAULT_INTERVALS.get(name) or self.interval

    def timeout_for(self, name: str) -> float:
        timeout = self.collector_settings(name).timeout or DEFAULT_TIMEOUTS.get(name) or self.timeout
        return min(timeout, self.interval_for(name))

    def jitter_for(self, name: str) -> float:
        return self.jitter if self.jitter is not None else round(self.interval_for(name) * 0.1, 3)


def check_references(config: Config) -> None:
    """Cross-references between the target sections; raises ValueError (reported at the top level)."""
    databases = {db.name for db in config.databases}
    endpoints = {e.name for e in config.endpoints}
    cost_apis = {c.name for c in config.cost_apis}
    for endpoint in config.endpoints:
        ref = endpoint.dimensions_from
        if ref is not None and ref.database not in databases:
            raise ValueError(f"endpoint {endpoint.name!r}: dimensions_from.database {ref.database!r} "
                             f"is not a databases[] target")
    for budget in config.budgets:
        unknown = [s for s in budget.sources if s not in endpoints | cost_apis]
        if unknown:
            raise ValueError(f"budget {budget.name!r}: unknown source(s) {', '.join(unknown)} "
                             f"(sources are endpoint or cost_api names)")


class Config(Model):
    """The whole vecmon configuration file."""

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    databases: list[DatabaseTarget] = Field(default_factory=list)
    endpoints: list[EndpointTarget] = Field(default_factory=list, description="embedding and re-ranker probes")
    cost_apis: list[CostApiTarget] = Field(default_factory=list, description="provider cost/usage APIs")
    redis: list[RedisTarget] = Field(default_factory=list, description="embedding-cache Redis servers")
    budgets: list[Budget] = Field(default_factory=list, description="spend limits per day/month")
    applications: list[ApplicationTarget] = Field(
        default_factory=list, description="HTTP(S) checks of the RAG application's own endpoints")
    pricing: Pricing = Field(default_factory=Pricing, description="price table and overrides")
    alerting: AlertingSettings = Field(default_factory=AlertingSettings,
                                       description="generated Prometheus alert rules (vecmon generate)")
    slos: SLOList = Field(default_factory=list, description="service-level objectives: recording rules and "
                                                            "multi-window burn-rate alerts")
    alertmanager: AlertmanagerSettings | None = Field(None, description="generated Alertmanager configuration")
    queries: list[CustomQuery] = Field(default_factory=list, description="custom SQL metrics (docs/custom-queries.md)")
    extend_query_path: QueriesYamlPath | None = Field(
        None, description="a postgres_exporter queries.yaml, run unchanged (relative to the config file)")
    probe: ProbeSettings = Field(default_factory=ProbeSettings, description="limits of /probe?target=DSN")
    auth_modules: dict[str, AuthModule] = Field(
        default_factory=dict,
        description="credentials for /probe?target=DSN&auth_module=NAME (docs/running.md: Multi-target /probe)")

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        targets: list[DatabaseTarget | ScheduledTarget] = [*self.databases, *all_api_targets(self)]
        for target in targets:
            if target.name in seen:
                raise ValueError(f"duplicate target name {target.name!r}")
            seen.add(target.name)
        check_references(self)
        check_ha(self)
        check_query_plans(self)
        for i, db in enumerate(self.databases):  # for warnings found at run time (collectors.vector_selection)
            db.vector.place(f"databases[{i}].vector")
        return self

    def enabled_databases(self) -> list[DatabaseTarget]:
        return [db for db in self.databases if db.enabled]
