"""What pgvector discovery finds: vector columns, HNSW/IVFFlat indexes and the query settings.

The model only: found by :mod:`collectors.vector_catalog`, it builds the SQL pieces a probe needs
(the table, the index key or expression, the ordering operator, the partial-index predicate) with
identifiers quoted, and computes the settings the application's sessions get
(:meth:`VectorCatalog.app_settings`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from psycopg import sql

from collectors.pg_common import version_tuple
from collectors.vector_names import short_hash

# Constant tables are read-only mappings: this module keeps no mutable state (what collectors share
# lives on monitor.shared.SharedState, e.g. collectors.vector_catalog.VectorColumns).
# pgvector build-option defaults (src/hnsw.h, src/ivfflat.h); reloptions is NULL for a default build.
BUILD_DEFAULTS: Mapping[str, Mapping[str, int]] = MappingProxyType({
    "hnsw": MappingProxyType({"m": 16, "ef_construction": 64}),
    "ivfflat": MappingProxyType({"lists": 100}),
})
# Query-time GUCs and pgvector's defaults (iterative scans and max_* need pgvector >= 0.8).
GUC_DEFAULTS: Mapping[str, str] = MappingProxyType({
    "hnsw.ef_search": "40",
    "hnsw.iterative_scan": "off",
    "hnsw.max_scan_tuples": "20000",
    "hnsw.scan_mem_multiplier": "1",
    "ivfflat.probes": "1",
    "ivfflat.iterative_scan": "off",
    "ivfflat.max_probes": "32768",
})
# Upper bounds of the search knobs (pgvector's GUC definitions).
GUC_MAXIMA: Mapping[str, int] = MappingProxyType({"hnsw.ef_search": 1000, "ivfflat.probes": 32768})
# The knob that trades recall for speed, per access method.
SEARCH_PARAM: Mapping[str, str] = MappingProxyType({"hnsw": "ef_search", "ivfflat": "probes"})
VECTOR_TYPES = ("vector", "halfvec", "sparsevec")
_OPERATOR = re.compile(r"^[~!@#%^&|`?+\-*/<>=]{1,63}$")
_SAFE_SOURCES = ("default", "configuration file", "command line", "environment variable", "override")


@dataclass(frozen=True)
class VectorColumn:
    schema: str
    table: str
    table_oid: int
    relkind: str
    column: str
    type: str  # vector | halfvec | sparsevec | bit
    dims: int | None  # None: unconstrained (e.g. plain `vector`)


@dataclass(frozen=True)
class VectorIndex:
    oid: int
    schema: str
    table: str
    table_oid: int
    table_relkind: str
    table_is_partition: bool
    name: str
    relkind: str  # 'i' index, 'I' partitioned index
    method: str  # hnsw | ivfflat
    opclass: str
    operator: str | None  # e.g. <->
    operator_schema: str | None
    column: str | None  # the key column, None for an expression
    key_sql: str  # pg_get_indexdef(oid, 1, false): the column name or the expression
    key_type: str  # format_type of the indexed value, e.g. vector(384), halfvec(3), bit(64)
    key_typname: str
    dims: int | None
    explicit_options: tuple[tuple[str, str], ...]
    predicate: str | None
    valid: bool
    ready: bool
    parent_oid: int | None
    can_select: bool
    # Filled in for partitioned indexes: every descendant index and table (names).
    partition_indexes: tuple[str, ...] = ()
    partition_tables: tuple[str, ...] = ()
    relfilenode: int = 0  # changes with every (re)build: REINDEX, VACUUM FULL, TRUNCATE

    @property
    def options(self) -> dict[str, int]:
        """Build options with pgvector's defaults filled in."""
        merged: dict[str, int] = dict(BUILD_DEFAULTS.get(self.method, {}))
        for key, value in self.explicit_options:
            try:
                merged[key] = int(value)
            except ValueError:
                continue
        return merged

    @property
    def param(self) -> str:
        return SEARCH_PARAM[self.method]

    @property
    def labels(self) -> tuple[str, str, str]:
        return (self.schema, self.table, self.name)

    @property
    def key_label(self) -> str:
        """The key column's name, or ``expression:<8 hex digits of SHA-1>`` for an expression (its SQL
        text would make an unbounded label value)."""
        return self.column if self.column is not None else f"expression:{short_hash(self.key_sql)}"

    @property
    def predicate_hash(self) -> str:
        """8 hex digits of the SHA-1 of a partial index's predicate ("" for a full index)."""
        return short_hash(self.predicate) if self.predicate else ""

    @property
    def probe_key(self) -> str:
        """Identifies what a probe measures: the same key survives a REINDEX, not a new definition."""
        definition = "|".join([self.table, self.key_sql, self.operator or "", self.predicate or "", self.key_type])
        return f"{self.schema}.{self.name}:{hashlib.md5(definition.encode()).hexdigest()[:12]}"

    @property
    def top_level(self) -> bool:
        return self.parent_oid is None

    def scan_index_names(self) -> set[str]:
        return {self.name, *self.partition_indexes}

    def scan_table_names(self) -> set[str]:
        return {self.table, *self.partition_tables}

    # -- SQL pieces (identifiers quoted; catalog expressions are server-generated SQL) --------
    # Queries built from these pieces are always executed with parameters, so raw SQL text goes
    # through verbatim_sql (a literal '%', as in LIKE 'a%', must reach psycopg doubled).
    def table_sql(self) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.table))

    def key_composable(self) -> sql.Composable:
        if self.column is not None:
            return sql.Identifier(self.column)
        return verbatim_sql("(" + self.key_sql + ")")

    def operator_sql(self) -> sql.Composable:
        if not self.operator or not _OPERATOR.match(self.operator) or not self.operator_schema:
            raise ValueError(f"index {self.schema}.{self.name} has no usable ordering operator")
        return sql.SQL("OPERATOR({}.{})").format(sql.Identifier(self.operator_schema), sql.SQL(self.operator))

    def distance_sql(self, param: str = "q") -> sql.Composable:
        return sql.SQL("{key} {op} {value}::{type}").format(
            key=self.key_composable(), op=self.operator_sql(), value=sql.Placeholder(param),
            type=sql.SQL(self.key_type))

    def conditions(self, filter_where: str | None = None, not_null: bool = False) -> list[sql.Composable]:
        """WHERE parts: the partial-index predicate (or the planner cannot use the index) and a filter.

        ``filter_where`` is operator-written SQL from the config file (trusted, like a DSN).
        """
        parts: list[sql.Composable] = []
        if not_null:
            parts.append(sql.SQL("{} IS NOT NULL").format(self.key_composable()))
        if self.predicate:
            parts.append(verbatim_sql("(" + self.predicate + ")"))
        if filter_where:
            parts.append(verbatim_sql("(" + filter_where + ")"))
        return parts


def verbatim_sql(text: str) -> sql.Composable:
    """SQL text (a catalog expression, a configured filter) for a query executed *with* parameters:
    psycopg then reads ``%`` as a placeholder, so a literal one is doubled."""
    return sql.SQL(text.replace("%", "%%"))


@dataclass(frozen=True)
class SettingValue:
    name: str
    setting: str
    source: str
    boot_val: str | None


@dataclass(frozen=True)
class SettingOverride:
    """One ``name=value`` of ``pg_db_role_setting`` that applies to this database."""

    database: str  # '*' = every database
    role: str  # '*' = every role
    name: str
    value: str


@dataclass(frozen=True)
class VectorCatalog:
    signature: str
    database: str
    extension_version: str
    extension_schema: str
    columns: tuple[VectorColumn, ...]
    indexes: tuple[VectorIndex, ...]
    settings: Mapping[str, SettingValue]
    overrides: tuple[SettingOverride, ...]

    @property
    def iterative_scan_supported(self) -> bool:
        return version_tuple(self.extension_version) >= (0, 8)

    def app_settings(self, role: str | None = None) -> dict[str, tuple[str, str]]:
        """``name -> (value, source)`` the application's sessions get for every hnsw/ivfflat GUC.

        Precedence as in PostgreSQL: database+role > role > database > ``ALTER ROLE ALL`` >
        configuration file > pgvector default. The server-wide base is this session's value
        when it comes from the configuration file or the default; when this session's value
        comes from an override, the base is pgvector's compiled-in default (a config-file value
        hidden behind an override of the monitoring role cannot be seen without superuser).
        Without ``role``, the database's view (what a role without overrides gets).
        """
        result: dict[str, tuple[str, str]] = {}
        names = set(GUC_DEFAULTS) | set(self.settings)
        for name in names:
            current = self.settings.get(name)
            if current is None:  # unknown to this pgvector version (e.g. iterative_scan before 0.8)
                continue
            if current.source in _SAFE_SOURCES:
                result[name] = (current.setting, current.source)
            else:
                result[name] = (current.boot_val if current.boot_val is not None else GUC_DEFAULTS.get(name, ""),
                                "default")
        layers = [("global", "*", "*"), ("database", self.database, "*")]
        if role:
            layers += [("role", "*", role), ("database role", self.database, role)]
        for source, database, who in layers:
            for override in self.overrides:
                if override.database == database and override.role == who and override.name in result:
                    result[override.name] = (override.value, source)
        return result

    def app_query_settings(self, role: str | None = None) -> dict[str, str]:
        """Every ``hnsw.*`` and ``ivfflat.*`` value the application's sessions get (:meth:`app_settings`),
        for a probe session to apply whichever index it measures: with indexes of both methods on
        one column, the planner's choice between them depends on both methods' settings (IVFFlat's
        cost grows with ``ivfflat.probes``), so a probe applying only its own method's would plan
        differently from the application."""
        return {name: value for name, (value, _) in sorted(self.app_settings(role).items())}

    def top_level_indexes(self) -> list[VectorIndex]:
        return [idx for idx in self.indexes if idx.top_level]

