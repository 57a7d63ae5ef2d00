"""Typed configuration of the pgvector collectors: the ``vector:`` section of a database target.

Example (every key is optional; these are the defaults unless noted)::

    databases:
      - name: app
        dsn: postgresql://vecmon@db/app
        vector:
          app_role: app_reader            # whose hnsw.*/ivfflat.* overrides the app gets (default: the database's)
          indexes: [public.items_embedding_hnsw]   # which indexes the probes cover; default all (up to max_indexes)
          recall:
            sample_size: 30               # query vectors per index
            k: 10
            ef_search_values: [10, 20, 40, 80, 160, 320]
            probes_values: [1, 2, 4, 8, 16, 32]
            target: 0.9                   # recall@k a query must reach to count as good
            queries: {source: sample}     # or {source: table, table: app.golden_queries, column: embedding}
            state_url: sqlite:////var/lib/vecmon/recall-state.sqlite   # default: a SQLite file in state_dir
            replica_dsn: postgresql://vecmon@replica/app                # optional: run the probes there
            exact_timeout: 30s
          filters:
            - {name: tenant_42, table: public.items, where: "tenant_id = 42"}
          freshness:
            - {table: public.items, timestamp_column: updated_at, model_version_column: model,
               embedding_column: embedding}
          ann_latency: {queries: 3}

Filter ``where`` clauses are SQL written by the operator and are inserted into the probe queries
as they are (``psycopg.sql.SQL``): the config file is trusted, like a DSN. One condition only: ``;``
and comments (``--``, ``/*``) are rejected. Everything else that ends up in SQL is an identifier
(quoted with ``psycopg.sql.Identifier``) or a bound parameter.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from collectors.settings.base import NAME_PATTERN, Duration, Model, check_dsn, check_sqlalchemy_url
from collectors.vector_names import parse_qualified

__all__ = ["VECTOR_COLLECTORS", "VectorSettings", "RecallSettings", "RecallQueries", "VectorFilter", "FreshnessTable",
           "AnnLatencySettings", "default_state_dir", "parse_qualified"]


def _check_name(value: str | None) -> str | None:
    if value is not None:
        parse_qualified(value)
    return value


def default_state_dir() -> Path:
    """Where the recall state store lives unless configured: $VECMON_STATE_DIR, else $XDG_STATE_HOME/vecmon."""
    if os.environ.get("VECMON_STATE_DIR"):
        return Path(os.environ["VECMON_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "vecmon"


class RecallQueries(Model):
    """Where the recall probe's query vectors come from."""

    source: Literal["sample", "table"] = Field(
        "sample", description="sample: stored rows of the indexed table (each row excluded from its own results, "
                              "HNSW given one more ef_search candidate for it); table: a fixed query set")
    table: str | None = Field(None, description="schema.table holding the query set (source: table)")
    column: str | None = Field(None, description="vector column of the query table (source: table)")
    order_by: str | None = Field(None, description="column giving the query set a stable order (default: ctid)")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        return _check_name(value)

    @model_validator(mode="after")
    def _complete(self) -> RecallQueries:
        if self.source == "table" and (not self.table or not self.column):
            raise ValueError("queries.source 'table' needs table and column")
        return self


class RecallSettings(Model):
    sample_size: int = Field(30, ge=1, le=1000, description="query vectors per index and cycle")
    k: int = Field(10, ge=1, le=1000, description="LIMIT of the probe queries; recall is recall@k")
    ef_search_values: list[int] = Field(
        default_factory=lambda: [10, 20, 40, 80, 160, 320],
        description="hnsw.ef_search values measured besides the application's own")
    probes_values: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32],
        description="ivfflat.probes values measured besides the application's own (capped at lists)")
    target: float = Field(0.9, gt=0, le=1, description="recall@k a probe query must reach to count as good")
    target_fraction: float | None = Field(
        None, gt=0, le=1, description="if set, a setting meets the target when this fraction of queries reach "
                                      "`target`; otherwise when the mean recall reaches it")
    epsilon: float = Field(1e-6, ge=0, description="relative tolerance on the k-th exact distance (ties)")
    queries: RecallQueries = Field(default_factory=RecallQueries)
    state_url: str | None = Field(None, description="SQLAlchemy URL of the exact-result store; default a SQLite "
                                                    "file in state_dir")
    state_dir: str | None = Field(None, description="directory of the default SQLite store "
                                                    "(default $VECMON_STATE_DIR or ~/.local/state/vecmon)")
    replica_dsn: SecretStr | None = Field(None, description="run probe queries on this (standby) connection")
    exact_timeout: Duration = Field(30.0, description="statement_timeout of each exact (full-scan) query")
    ann_timeout: Duration = Field(5.0, description="statement_timeout of each approximate query")
    exact_parallel_workers: int | None = Field(
        None, ge=0, le=64, description="max_parallel_workers_per_gather for exact queries (default: server's)")
    resample_after: Duration = Field(
        3600.0, description="a sampled query set is replaced when the table has changed and it is older than this")
    max_changed_fraction: float = Field(
        0.0, ge=0, le=1, description="reuse stored exact results while inserts+updates+deletes since they were "
                                     "computed stay within this fraction of the rows (0: only if unchanged)")
    reuse_approximate: bool = Field(
        True, description="reuse approximate answers per query and setting while the table (files, write counters, "
                          "vacuums), the index and the settings are unchanged and the returned rows are still there; "
                          "an insert is then seen once its statistics are flushed (about 10 s), and the per-setting "
                          "latencies are those measured when the answers were")
    iterative_scan: Literal["relaxed_order", "strict_order"] = Field(
        "relaxed_order", description="iterative scan mode also probed for filters when the application's is off "
                                     "(pgvector >= 0.8; ivfflat only has relaxed_order)")
    force_index: bool = Field(
        False, description="probe with enable_seqscan/enable_bitmapscan off, to measure the index even where "
                           "the planner would not use it")
    lock: bool = Field(True, description="take a PostgreSQL advisory lock per probe so HA replicas of vecmon "
                                         "do not run the same probe concurrently")

    @field_validator("replica_dsn")
    @classmethod
    def _replica_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        return check_dsn(value)

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        return check_sqlalchemy_url(value)

    @field_validator("ef_search_values")
    @classmethod
    def _ef_search(cls, value: list[int]) -> list[int]:
        if any(not 1 <= v <= 1000 for v in value):
            raise ValueError("hnsw.ef_search values must be between 1 and 1000")
        return sorted(set(value))

    @field_validator("probes_values")
    @classmethod
    def _probes(cls, value: list[int]) -> list[int]:
        if any(not 1 <= v <= 32768 for v in value):
            raise ValueError("ivfflat.probes values must be between 1 and 32768")
        return sorted(set(value))

    def resolved_state_url(self) -> str:
        if self.state_url:
            return self.state_url
        directory = Path(self.state_dir) if self.state_dir else default_state_dir()
        return f"sqlite:///{directory / 'recall-state.sqlite'}"


class VectorFilter(Model):
    """A filtered query shape to probe: ``where`` is trusted SQL from the config file."""

    name: str = Field(pattern=NAME_PATTERN, description="the filter label value")
    where: str = Field(min_length=1, description="SQL condition, e.g. tenant_id = 42 (trusted config, used verbatim)")
    index: str | None = Field(None, description="index (schema.index or index) the filter applies to")
    table: str | None = Field(None, description="table (schema.table or table) whose indexes the filter applies to")

    @field_validator("index", "table")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return _check_name(value)

    @field_validator("where")
    @classmethod
    def _where(cls, value: str) -> str:
        if ";" in value:
            raise ValueError("a filter is one SQL condition; ';' is not allowed")
        for comment in ("--", "/*"):
            if comment in value:
                # a comment could swallow the rest of the probe query the condition is inserted into
                raise ValueError(f"a filter is one SQL condition; comments ('{comment}') are not allowed")
        return value

    @model_validator(mode="after")
    def _scope(self) -> VectorFilter:
        if (self.index is None) == (self.table is None):
            raise ValueError("give exactly one of index or table")
        return self


class FreshnessTable(Model):
    table: str = Field(description="schema.table (or table, in public)")
    timestamp_column: str | None = Field(None, description="age of the newest row by this column")
    model_version_column: str | None = Field(None, description="row counts per embedding-model version")
    embedding_column: str | None = Field(None, description="rows where this column is NULL wait for an embedding")
    max_versions: int = Field(20, ge=1, le=1000,
                              description="versions exported by name; the rest as '__other__' (NULL: '__null__')")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        parse_qualified(value)
        return value

    @model_validator(mode="after")
    def _something(self) -> FreshnessTable:
        if not (self.timestamp_column or self.model_version_column or self.embedding_column):
            raise ValueError("give at least one of timestamp_column, model_version_column, embedding_column")
        return self


class AnnLatencySettings(Model):
    queries: int = Field(3, ge=1, le=100, description="approximate queries per index and run")
    k: int | None = Field(None, ge=1, le=1000, description="LIMIT (default recall.k)")
    timeout: Duration = Field(5.0, description="statement_timeout of each query")
    filters: bool = Field(True, description="also time the configured filters")
    resample_after: Duration = Field(3600.0, description="how long a sampled query set is used")


# The collectors ``vector.enabled: false`` turns off (they need pgvector).
VECTOR_COLLECTORS = ("vector_indexes", "recall", "ann_latency", "vector_freshness", "vector_bloat")


class VectorSettings(Model):
    """pgvector monitoring of one database target."""

    enabled: bool = Field(True, description="false: none of the pgvector collectors runs on this target and no "
                                            "vector dashboard is generated for it")
    app_role: str | None = Field(None, description="role the application connects as (its hnsw.*/ivfflat.* "
                                                   "overrides are what the probes reproduce)")
    indexes: list[str] = Field(default_factory=list, description="indexes the probes cover (schema.index or "
                                                                 "index); default all")
    max_indexes: int = Field(20, ge=1, le=1000, description="at most this many indexes are probed per target")
    recall: RecallSettings = Field(default_factory=RecallSettings)
    filters: list[VectorFilter] = Field(default_factory=list)
    freshness: list[FreshnessTable] = Field(default_factory=list)
    ann_latency: AnnLatencySettings = Field(default_factory=AnnLatencySettings)
    # where this section is in the config file, for run-time warnings (set by Config; see place())
    _config_path: str = PrivateAttr("vector")

    @property
    def config_path(self) -> str:
        """``databases[N].vector`` once the whole config is validated, else ``vector``."""
        return self._config_path

    def place(self, path: str) -> None:
        """Record where this section is in the config file (``databases[N].vector``)."""
        self._config_path = path

    @field_validator("indexes")
    @classmethod
    def _indexes(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_qualified(item)
        return value

    @field_validator("filters")
    @classmethod
    def _unique_filters(cls, value: list[VectorFilter]) -> list[VectorFilter]:
        names = [f.name for f in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate filter name(s) {', '.join(duplicates)}")
        return value
