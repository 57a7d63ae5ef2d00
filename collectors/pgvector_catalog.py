"""pgvector discovery shared by the vector collectors: columns, indexes, query settings.

What is found (tested on PostgreSQL 18 with pgvector 0.8.6; the catalog queries follow the ones
checked on PostgreSQL 15 in the research notes):

* vector columns: ``vector``, ``halfvec`` and ``sparsevec`` columns of tables, partitioned tables,
  materialized views and foreign tables (types resolved through ``pg_depend`` so the extension
  may live in any schema), plus core ``bit`` columns that an HNSW/IVFFlat index uses;
* HNSW and IVFFlat indexes: table, key (column or the index expression as
  ``pg_get_indexdef`` prints it), operator class and so the ORDER BY distance operator, build
  options with pgvector's defaults filled in (``reloptions`` is NULL for a default build),
  partial-index predicate, validity, and the partition tree (a partitioned index ``relkind 'I'``
  and the per-partition indexes attached to it);
* the query settings: ``hnsw.*`` and ``ivfflat.*`` as this session sees them (after loading
  the library: the GUCs exist only once ``vector.so`` is loaded in the backend) and every
  ``ALTER DATABASE/ROLE ... SET`` override, from which :meth:`VectorCatalog.app_settings`
  computes what the application's sessions get.

Discovery is cached in the collector's ``ctx.state`` and refreshed only when a cheap signature
of the catalog (index and vector-column definitions, relfilenodes, overrides, the GUC values,
the extension version) changes. Sizes and counters are not part of it: collectors read them
on every run.

This module imports nothing from :mod:`monitor` (``monitor.config_vector`` imports
:func:`parse_qualified` from here); collectors read their settings from ``ctx.settings.vector``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg import sql

from collectors.base import CollectContext, CollectorDisabled, MetricSpec
from collectors.pg_common import fetch, fetch_one, version_tuple

log = logging.getLogger(__name__)

# Constant tables are read-only mappings: this module keeps no mutable state (what collectors share
# lives on monitor.shared.SharedState, e.g. VectorColumns below).
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
CATALOG_STATE_KEY = "_vector_catalog"


# --------------------------------------------------------------------------- names
_IDENT_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([^".\s]+))\s*')


def parse_qualified(name: str, default_schema: str | None = "public") -> tuple[str | None, str]:
    """``"app.items"`` -> ``("app", "items")``; ``"items"`` -> ``(default_schema, "items")``.

    Double-quoted parts keep their case and may contain dots (``"My.Schema"."Items"``);
    unquoted parts are folded to lower case as PostgreSQL does.
    """
    parts: list[str] = []
    pos = 0
    text = name.strip()
    while True:
        match = _IDENT_PART.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"invalid name {name!r} (expected name or schema.name)")
        parts.append(match.group(1).replace('""', '"') if match.group(1) is not None else match.group(2).lower())
        pos = match.end()
        if pos == len(text):
            break
        if text[pos] != ".":
            raise ValueError(f"invalid name {name!r} (expected name or schema.name)")
        pos += 1
    if len(parts) == 1:
        return default_schema, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"invalid name {name!r} (expected name or schema.name)")


def short_hash(text: str) -> str:
    """8 hex digits of the SHA-1 of ``text``: a bounded label value standing for SQL text."""
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def name_matches(pattern: str, schema: str, name: str) -> bool:
    """``pattern`` is ``name`` (any schema) or ``schema.name``."""
    want_schema, want_name = parse_qualified(pattern, default_schema=None)
    return want_name == name and (want_schema is None or want_schema == schema)


# --------------------------------------------------------------------------- model
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


# --------------------------------------------------------------------------- SQL
_EXTENSION_SQL = """
SELECT e.extversion, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'vector'
"""

# Cheap: catalog rows only, no sizes or statistics.
_SIGNATURE_SQL_TEMPLATE = r"""
WITH vtypes AS (
    SELECT t.oid FROM pg_type t JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = t.oid
    JOIN pg_extension e ON e.oid = d.refobjid
    WHERE d.deptype = 'e' AND e.extname = 'vector' AND t.typname IN ('vector', 'halfvec', 'sparsevec')
)
SELECT md5(concat_ws('|',
  (SELECT string_agg(format('%s:%s:%s:%s:%s:%s:%s:%s:%s', i.indexrelid, ic.relfilenode, ic.relname, tc.relname,
                            n.nspname, i.indisvalid, i.indisready, ic.reloptions, inh.inhparent),
                     ',' ORDER BY i.indexrelid)
     FROM pg_index i
     JOIN pg_class ic ON ic.oid = i.indexrelid
     JOIN pg_am am ON am.oid = ic.relam
     JOIN pg_class tc ON tc.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = tc.relnamespace
     LEFT JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
     WHERE am.amname IN ('hnsw', 'ivfflat')),
  (SELECT string_agg(format('%s:%s:%s:%s:%s:%s', a.attrelid, a.attnum, a.attname, a.atttypmod, c.relname, n.nspname),
                     ',' ORDER BY a.attrelid, a.attnum)
     FROM pg_depend dep  -- a column depends on its (extension) type: found by index, not a pg_attribute scan
     JOIN pg_attribute a ON a.attrelid = dep.objid AND a.attnum = dep.objsubid
     JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE dep.refclassid = 'pg_type'::regclass AND dep.refobjid IN (SELECT oid FROM vtypes)
       AND dep.classid = 'pg_class'::regclass AND dep.deptype = 'n'
       AND a.atttypid IN (SELECT oid FROM vtypes) AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relkind IN ('r', 'p', 'm', 'f')),
  (SELECT string_agg(format('%s:%s:%s', d.datname, r.rolname, s.setconfig), ',' ORDER BY s.setdatabase, s.setrole)
     FROM pg_db_role_setting s
     LEFT JOIN pg_database d ON d.oid = s.setdatabase
     LEFT JOIN pg_roles r ON r.oid = s.setrole
     WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))),
  {guc_settings},
  (SELECT extversion FROM pg_extension WHERE extname = 'vector')
)) AS signature
"""
# pgvector's search settings by name (current_setting), not by scanning pg_settings, which
# materializes every setting of the server and was most of the marker's cost.
_SIGNATURE_SQL = _SIGNATURE_SQL_TEMPLATE.replace("{guc_settings}", "concat_ws(',', " + ", ".join(
    f"'{name}=' || coalesce(current_setting('{name}', true), '')" for name in sorted(GUC_DEFAULTS)) + ")")


_COLUMNS_SQL = """
SELECT n.nspname AS schema, c.relname AS table, c.oid AS table_oid, c.relkind, a.attname AS column,
       t.typname AS type, CASE WHEN a.atttypmod > 0 THEN a.atttypmod END AS dims
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'vector'
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'm', 'f') AND NOT c.relispartition
  AND t.typname IN ('vector', 'halfvec', 'sparsevec')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, a.attnum
"""

# One row per HNSW/IVFFlat index (DISTINCT ON: an operator family has one ordering operator
# per access method, the ORDER BY keeps the choice deterministic anyway).
_INDEXES_SQL = """
SELECT DISTINCT ON (i.indexrelid)
       i.indexrelid AS oid, n.nspname AS schema, tc.relname AS table, tc.oid AS table_oid,
       tc.relkind AS table_relkind, tc.relispartition AS table_is_partition,
       ic.relname AS index, ic.relkind, ic.relfilenode, am.amname AS method, opc.opcname AS opclass,
       op.oprname AS operator, opn.nspname AS operator_schema,
       CASE WHEN i.indkey[0] <> 0 THEN a.attname END AS column,
       pg_get_indexdef(i.indexrelid, 1, false) AS key_sql,
       format_type(ia.atttypid, ia.atttypmod) AS key_type, kt.typname AS key_typname,
       CASE WHEN ia.atttypmod > 0 THEN ia.atttypmod END AS dims,
       ic.reloptions::text[] AS reloptions,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       i.indisvalid AS valid, i.indisready AS ready,
       inh.inhparent AS parent_oid,
       has_table_privilege(tc.oid, 'SELECT') AS can_select
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_namespace n ON n.oid = tc.relnamespace
JOIN pg_am am ON am.oid = ic.relam AND am.amname IN ('hnsw', 'ivfflat')
JOIN pg_opclass opc ON opc.oid = i.indclass[0]
LEFT JOIN pg_amop ao ON ao.amopfamily = opc.opcfamily AND ao.amoppurpose = 'o' AND ao.amopmethod = am.oid
LEFT JOIN pg_operator op ON op.oid = ao.amopopr
LEFT JOIN pg_namespace opn ON opn.oid = op.oprnamespace
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
LEFT JOIN pg_attribute ia ON ia.attrelid = i.indexrelid AND ia.attnum = 1
LEFT JOIN pg_type kt ON kt.oid = ia.atttypid
LEFT JOIN pg_inherits inh ON inh.inhrelid = i.indexrelid
ORDER BY i.indexrelid, ao.amopstrategy
"""

_SETTINGS_SQL = r"""
SELECT name, setting, source, boot_val FROM pg_settings WHERE name ~ '^(hnsw|ivfflat)\.' ORDER BY name
"""

_OVERRIDES_SQL = r"""
SELECT CASE WHEN s.setdatabase = 0 THEN '*' ELSE d.datname END AS database,
       CASE WHEN s.setrole = 0 THEN '*' ELSE r.rolname END AS role,
       cfg
FROM pg_db_role_setting s
LEFT JOIN pg_database d ON d.oid = s.setdatabase
LEFT JOIN pg_roles r ON r.oid = s.setrole
CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE cfg ~ '^(hnsw|ivfflat)\.'
  AND (s.setdatabase = 0 OR d.datname = current_database())
ORDER BY 1, 2, 3
"""


# --------------------------------------------------------------------------- discovery
def require_pgvector(ctx: CollectContext) -> str:
    """The installed pgvector version; CollectorDisabled when the extension is not installed."""
    facts = ctx.facts
    extensions = facts.extensions if facts is not None else {}
    if "vector" not in extensions:
        database = facts.database if facts is not None else "?"
        raise CollectorDisabled(f"pgvector is not installed in database {database}")
    return str(extensions["vector"])


def load_library(conn: psycopg.Connection, extension_schema: str) -> None:
    """Load vector.so into this backend: the hnsw.*/ivfflat.* GUCs do not exist before."""
    conn.execute(sql.SQL("SELECT CAST('[0]' AS {}.vector)").format(sql.Identifier(extension_schema)))


def _parse_options(reloptions: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    options = []
    for item in reloptions or ():
        key, _, value = item.partition("=")
        options.append((key, value))
    return tuple(options)


def discover(conn: psycopg.Connection, signature: str, extension: dict[str, Any]) -> VectorCatalog:
    """Run the discovery queries (the library must already be loaded)."""
    database = conn.execute("SELECT current_database()").fetchone()[0]
    columns = [VectorColumn(schema=r["schema"], table=r["table"], table_oid=r["table_oid"], relkind=r["relkind"],
                            column=r["column"], type=r["type"], dims=r["dims"])
               for r in fetch(conn, _COLUMNS_SQL)]
    rows = fetch(conn, _INDEXES_SQL)
    by_oid = {r["oid"]: r for r in rows}
    children: dict[int, list[int]] = {}
    for r in rows:
        if r["parent_oid"] is not None and r["parent_oid"] in by_oid:
            children.setdefault(r["parent_oid"], []).append(r["oid"])

    def descendants(oid: int) -> list[dict[str, Any]]:
        found = []
        for child in children.get(oid, []):
            found.append(by_oid[child])
            found.extend(descendants(child))
        return found

    indexes = []
    known_columns = {(c.table_oid, c.column) for c in columns}
    for r in rows:
        desc = descendants(r["oid"]) if r["relkind"] == "I" else []
        parent = r["parent_oid"] if r["parent_oid"] in by_oid else None
        indexes.append(VectorIndex(
            oid=r["oid"], schema=r["schema"], table=r["table"], table_oid=r["table_oid"],
            table_relkind=r["table_relkind"], table_is_partition=r["table_is_partition"], name=r["index"],
            relkind=r["relkind"], method=r["method"], opclass=r["opclass"], operator=r["operator"],
            operator_schema=r["operator_schema"], column=r["column"], key_sql=r["key_sql"],
            key_type=r["key_type"], key_typname=r["key_typname"] or "", dims=r["dims"],
            explicit_options=_parse_options(r["reloptions"]), predicate=r["predicate"],
            valid=bool(r["valid"]), ready=bool(r["ready"]), parent_oid=parent,
            can_select=bool(r["can_select"]),
            partition_indexes=tuple(sorted(d["index"] for d in desc)),
            partition_tables=tuple(sorted({d["table"] for d in desc})),
            relfilenode=int(r["relfilenode"] or 0),
        ))
        # bit columns are core types: list them when an index uses them.
        if (r["column"] is not None and r["key_typname"] == "bit" and not r["table_is_partition"]
                and (r["table_oid"], r["column"]) not in known_columns):
            known_columns.add((r["table_oid"], r["column"]))
            columns.append(VectorColumn(schema=r["schema"], table=r["table"], table_oid=r["table_oid"],
                                        relkind=r["table_relkind"], column=r["column"], type="bit", dims=r["dims"]))
    settings = {r["name"]: SettingValue(r["name"], r["setting"], r["source"], r["boot_val"])
                for r in fetch(conn, _SETTINGS_SQL)}
    overrides = []
    for r in fetch(conn, _OVERRIDES_SQL):
        name, _, value = r["cfg"].partition("=")
        overrides.append(SettingOverride(database=r["database"] or "?", role=r["role"] or "?", name=name,
                                         value=value))
    return VectorCatalog(signature=signature, database=database, extension_version=extension["extversion"],
                         extension_schema=extension["schema"], columns=tuple(columns), indexes=tuple(indexes),
                         settings=settings, overrides=tuple(overrides))


def get_catalog(ctx: CollectContext) -> tuple[VectorCatalog, bool]:
    """The cached catalog of this target, rediscovered when its signature changed.

    Returns ``(catalog, refreshed)``. Raises CollectorDisabled without pgvector.
    """
    require_pgvector(ctx)
    conn = ctx.conn
    assert conn is not None
    extension = fetch_one(conn, _EXTENSION_SQL)
    if not extension:  # facts are per connection; the extension may just have been dropped
        raise CollectorDisabled(f"pgvector is not installed in database {ctx.facts.database if ctx.facts else '?'}")
    load_library(conn, extension["schema"])
    signature = conn.execute(_SIGNATURE_SQL).fetchone()[0]
    cached: VectorCatalog | None = ctx.state.get(CATALOG_STATE_KEY)
    if cached is not None and cached.signature == signature:
        return cached, False
    catalog = discover(conn, signature, extension)
    ctx.state[CATALOG_STATE_KEY] = catalog
    if ctx.shared is not None:
        ctx.shared.vector_columns.publish(ctx.target, catalog)
    return catalog, True


# --------------------------------------------------------------------------- dimensions for other probes
class VectorColumns:
    """The vector columns each target's discovery last found, shared (via ``ctx.shared``) with the
    embedding-API probes, which compare them with the dimensions the API returns."""

    def __init__(self) -> None:
        self._by_target: dict[str, dict[tuple[str, str, str], tuple[str, int | None]]] = {}
        self._lock = threading.Lock()

    def publish(self, target: str, catalog: VectorCatalog) -> None:
        columns = {(c.schema, c.table, c.column): (c.type, c.dims) for c in catalog.columns}
        with self._lock:
            self._by_target[target] = columns

    def columns(self, target: str) -> dict[tuple[str, str, str], tuple[str, int | None]]:
        """``(schema, table, column) -> (type, dims)`` of a target's vector columns."""
        with self._lock:
            return dict(self._by_target.get(target, {}))

    def dimensions(self, ref: Any) -> int | None:
        """Declared dimensions of ``ref.table``.``ref.column`` on database target ``ref.database``
        (a ``dimensions_from`` resolver); None while unknown (discovery has not run on that target
        yet), for an unconstrained column, or when an unqualified table name is ambiguous."""
        schema, table = parse_qualified(ref.table, default_schema=None)
        found = {dims for (s, t, c), (_, dims) in self.columns(ref.database).items()
                 if t == table and c == ref.column and (schema is None or s == schema)}
        return found.pop() if len(found) == 1 else None


def database_key(conn: psycopg.Connection) -> str:
    """Server identity + database name, so a state store shared by several vecmon instances (which
    may name the target differently) keys results right. Uses ``pg_control_system()`` (pg_monitor),
    else the server address."""
    database = conn.execute("SELECT current_database()").fetchone()[0]
    try:
        with conn.transaction():
            system_id = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    except psycopg.Error:
        if conn.broken:
            raise
        system_id = conn.execute("SELECT coalesce(host(inet_server_addr()), 'local') || ':' || "
                                 "current_setting('port')").fetchone()[0]
    return f"{system_id}/{database}"


# --------------------------------------------------------------------------- selection
def selected_indexes(catalog: VectorCatalog, vector_settings: Any) -> list[VectorIndex]:
    """Top-level indexes the probes cover: configured ones (``vector.indexes``) or all, bounded."""
    patterns = list(getattr(vector_settings, "indexes", []) or [])
    limit = int(getattr(vector_settings, "max_indexes", 20))
    chosen = []
    for idx in catalog.top_level_indexes():
        if patterns and not any(name_matches(p, idx.schema, idx.name) for p in patterns):
            continue
        chosen.append(idx)
    chosen.sort(key=lambda i: (i.schema, i.table, i.name))
    return chosen[:limit]


MISCONFIGURED = MetricSpec(
    "vecmon_collector_misconfigured", "gauge",
    "Value 1 for each config entry naming what the target does not have (reason unknown_index, "
    "unknown_filter_index, unknown_filter_table; path: where in the config file); absent when all exist.",
    ("collector", "reason", "path"))
_WARNED_KEY = "_config_problems_warned"


@dataclass(frozen=True)
class ConfigProblem:
    """A config entry naming an index or table the target does not have."""

    path: str  # e.g. databases[0].vector.indexes[1]
    reason: str  # unknown_index | unknown_filter_index | unknown_filter_table
    message: str


def config_problems(catalog: VectorCatalog, vector_settings: Any, target: str) -> list[ConfigProblem]:
    """``vector.indexes`` patterns and filters that match no HNSW/IVFFlat index of the catalog."""
    base = getattr(vector_settings, "config_path", "vector")
    tops = catalog.top_level_indexes()
    problems = []
    for i, pattern in enumerate(getattr(vector_settings, "indexes", []) or []):
        if not any(name_matches(pattern, idx.schema, idx.name) for idx in tops):
            problems.append(ConfigProblem(f"{base}.indexes[{i}]", "unknown_index",
                                          f"no index {pattern} on target {target}"))
    for i, flt in enumerate(getattr(vector_settings, "filters", []) or []):
        if flt.index is not None and not any(name_matches(flt.index, idx.schema, idx.name) for idx in tops):
            problems.append(ConfigProblem(f"{base}.filters[{i}].index", "unknown_filter_index",
                                          f"no index {flt.index} on target {target}"))
        elif flt.table is not None and not any(name_matches(flt.table, idx.schema, idx.table) for idx in tops):
            problems.append(ConfigProblem(f"{base}.filters[{i}].table", "unknown_filter_table",
                                          f"no table {flt.table} with an HNSW or IVFFlat index on target {target}"))
    return problems


def report_config_problems(ctx: CollectContext, collector: str, catalog: VectorCatalog, emitter: Any) -> None:
    """Warn (once per change of the problems) and export ``vecmon_collector_misconfigured``."""
    problems = config_problems(catalog, ctx.settings.vector, ctx.target)
    if ctx.state.get(_WARNED_KEY) != problems:
        for problem in problems:
            log.warning("%s on %s: %s: %s", collector, ctx.target, problem.path, problem.message)
        ctx.state[_WARNED_KEY] = problems
    for problem in problems:
        emitter.add(MISCONFIGURED.name, 1, collector, problem.reason, problem.path)


def filters_for(index: VectorIndex, vector_settings: Any) -> list[Any]:
    """Configured filters that apply to ``index`` (by index name or by table)."""
    matched = []
    for flt in getattr(vector_settings, "filters", []) or []:
        if flt.index is not None and name_matches(flt.index, index.schema, index.name) or flt.table is not None and name_matches(flt.table, index.schema, index.table):
            matched.append(flt)
    return matched


# --------------------------------------------------------------------------- settings & plans
def numeric(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextmanager
def local_settings(conn: psycopg.Connection, settings: Mapping[str, str | None]) -> Iterator[None]:
    """Apply ``settings`` transaction-locally inside a savepoint, and undo them afterwards.

    ``set_config(name, value, true)`` inside a savepoint outlives the savepoint's RELEASE (it
    lasts until the outer transaction ends), so the previous values are restored explicitly on
    success; on an error the savepoint's rollback restores them. ``None`` values are skipped.
    """
    wanted = {k: v for k, v in settings.items() if v is not None}
    with conn.transaction():
        previous: dict[str, str | None] = {}
        if wanted:
            names = list(wanted)
            row = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                sql.SQL("current_setting(%s, true)") for _ in names)), names).fetchone()
            previous = dict(zip(names, row))
            _set_many(conn, wanted)
        yield
        restore = {k: v for k, v in previous.items() if v is not None}
        if restore:
            _set_many(conn, restore)


def _set_many(conn: psycopg.Connection, values: Mapping[str, str]) -> None:
    parts = []
    params: list[str] = []
    for name, value in values.items():
        parts.append(sql.SQL("set_config(%s, %s, true)"))
        params.extend([name, str(value)])
    conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts)), params)


def plan_nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()) or ():
        yield from plan_nodes(child)


def explain_json(conn: psycopg.Connection, query: sql.Composable, params: Mapping[str, Any]) -> Mapping[str, Any]:
    row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params, prepare=False).fetchone()
    document = row[0]
    if isinstance(document, str):
        document = json.loads(document)
    return document[0]["Plan"]


_SCAN_NODES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan",
               "Sample Scan", "Foreign Scan", "Custom Scan")


def plan_uses_index(plan: Mapping[str, Any], index_names: set[str], table_names: set[str]) -> bool:
    """True when every scan of the table (or its partitions) is an index scan on ``index_names``."""
    used = False
    for node in plan_nodes(plan):
        node_type = node.get("Node Type")
        if node_type in ("Index Scan", "Index Only Scan") and node.get("Index Name") in index_names:
            used = True
            continue
        if node_type in _SCAN_NODES and node.get("Relation Name") in table_names:
            return False
    return used


def plan_index_names(plan: Mapping[str, Any]) -> set[str]:
    return {str(n.get("Index Name")) for n in plan_nodes(plan) if n.get("Index Name")}


# --------------------------------------------------------------------------- run time
MIN_STATEMENT_SECONDS = 0.05  # a statement is not started with less time left than this


class RunTimeExhausted(psycopg.errors.QueryCanceled):
    """The run's time is spent: raised instead of starting another statement. It is a QueryCanceled,
    so the connector reports it as the watchdog's cancel would be: as the run's timeout."""


class RunDeadline:
    """The time one collector run may still take, for collectors that survive failed statements.

    The run's time is the smaller of the collector's timeout (``ctx.settings.timeout_for(name)``)
    and the statement_timeout the connector set for the run; when it is up, the connector's
    watchdog cancels whatever still runs. Each statement gets ``min(its own timeout, the time
    left)`` as statement_timeout (:meth:`set_statement_timeout`), so it ends by the deadline. A
    cancel caused by the deadline (a statement_timeout cut to the time left, or the watchdog) must
    end the run (:meth:`ends_run`), not be counted as that statement's failure; a statement's own
    timeout within the run's time is its failure as before.
    """

    def __init__(self, seconds: float, started: float | None = None):
        self.seconds = seconds
        self.deadline = (time.monotonic() if started is None else started) + seconds
        self._cut = False  # whether the last statement_timeout given out was cut to the time left

    @classmethod
    def for_run(cls, ctx: CollectContext, name: str, started: float | None = None) -> RunDeadline:
        limits = []
        timeout_for = getattr(ctx.settings, "timeout_for", None)
        if callable(timeout_for):
            limits.append(float(timeout_for(name)))
        if ctx.conn is not None:
            row = ctx.conn.execute(
                "SELECT setting::float8 FROM pg_settings WHERE name = 'statement_timeout'").fetchone()
            if row and row[0]:
                limits.append(row[0] / 1000.0)
        return cls(min(limits) if limits else 60.0, started)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def statement_timeout(self, wanted: float | None = None) -> str:
        """statement_timeout for the next statement: ``wanted`` (None: no own limit) cut to the time
        left. Raises RunTimeExhausted when too little is left to start one."""
        left = self.remaining()
        if left < MIN_STATEMENT_SECONDS:
            raise RunTimeExhausted(f"the run's time ({self.seconds:g}s) is spent")
        self._cut = wanted is None or left <= wanted
        return f"{max(1, int(min(left, wanted if wanted is not None else left) * 1000))}ms"

    def set_statement_timeout(self, conn: psycopg.Connection, wanted: float | None = None) -> None:
        """Apply :meth:`statement_timeout` transaction-locally (call it inside the statement's savepoint)."""
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [self.statement_timeout(wanted)])

    def ends_run(self, exc: BaseException) -> bool:
        """Whether ``exc``, from the statement last given a timeout, means the run's time is up."""
        if not isinstance(exc, psycopg.errors.QueryCanceled):
            return False
        return isinstance(exc, RunTimeExhausted) or self._cut or self.remaining() < MIN_STATEMENT_SECONDS


# --------------------------------------------------------------------------- sampling
@dataclass(frozen=True)
class QueryVector:
    qid: str  # stable id: same vector (and excluded row) -> same id
    self_id: str | None  # row the vector was sampled from, excluded from its own results
    vector: str  # pgvector text form


def make_qid(vector: str, self_id: str | None) -> str:
    return hashlib.md5(f"{self_id or ''}|{vector}".encode()).hexdigest()[:16]


def row_id(rel: Any, ctid: Any) -> str:
    return f"{rel}:{ctid}"


def sample_query_vectors(conn: psycopg.Connection, index: VectorIndex, n: int, estimated_rows: float,
                         rng: random.Random | None = None) -> list[QueryVector]:
    """``n`` stored, non-NULL key values (in the index's own space: an expression index samples
    the expression), each with the row it came from.

    Candidate rows are found by ``(tableoid, ctid)`` only: a small table is read whole (at most
    20000 rows), a larger one through ``TABLESAMPLE SYSTEM`` sized for about 20 candidates per
    wanted vector (``ORDER BY random()`` would read and sort all of it). The chosen rows' values
    are then fetched by TID.
    """
    rng = rng or random.Random()
    where = sql.SQL(" AND ").join(index.conditions(not_null=True))
    want = max(n * 20, 200)
    candidates: list[tuple[Any, ...]] = []
    if estimated_rows > 20000:
        percent = min(100.0, 100.0 * want / estimated_rows)
        query = sql.SQL("SELECT tableoid::oid, ctid::text FROM {table} TABLESAMPLE SYSTEM (%s::float4) "
                        "WHERE {where} LIMIT %s").format(table=index.table_sql(), where=where)
        candidates = conn.execute(query, [round(percent, 6), want * 4], prepare=False).fetchall()
    if len(candidates) < n:
        query = sql.SQL("SELECT tableoid::oid, ctid::text FROM {table} WHERE {where} LIMIT %s").format(
            table=index.table_sql(), where=where)
        candidates = conn.execute(query, [20000], prepare=False).fetchall()
    if len(candidates) > n:
        candidates = rng.sample(candidates, n)
    if not candidates:
        return []
    chosen = {(int(rel), ctid) for rel, ctid in candidates}
    query = sql.SQL("SELECT tableoid::oid, ctid::text, ({key})::text FROM {table} WHERE ctid = ANY(%s::tid[])").format(
        key=index.key_composable(), table=index.table_sql())
    rows = conn.execute(query, [sorted({ctid for _, ctid in chosen})], prepare=False).fetchall()
    result = []
    for rel, ctid, vector in rows:
        if (int(rel), ctid) not in chosen or vector is None:
            continue
        self_id = row_id(rel, ctid)
        result.append(QueryVector(qid=make_qid(vector, self_id), self_id=self_id, vector=vector))
    result.sort(key=lambda q: q.qid)
    return result


def table_query_vectors(conn: psycopg.Connection, table: str, column: str, n: int,
                        order_by: str | None = None) -> list[QueryVector]:
    """A fixed query set: the first ``n`` non-NULL vectors of ``table.column`` (stable order)."""
    schema, name = parse_qualified(table)
    order = sql.Identifier(order_by) if order_by else sql.SQL("ctid")
    query = sql.SQL("SELECT ({col})::text FROM {schema}.{table} WHERE {col} IS NOT NULL ORDER BY {order} "
                    "LIMIT %s").format(col=sql.Identifier(column), schema=sql.Identifier(schema or "public"),
                                       table=sql.Identifier(name), order=order)
    vectors = [r[0] for r in conn.execute(query, [n], prepare=False).fetchall()]
    return [QueryVector(qid=make_qid(v, None), self_id=None, vector=v) for v in vectors]


# --------------------------------------------------------------------------- memory estimate
def vector_bytes(typname: str, dims: int | None) -> float | None:
    """On-disk size of one value (varlena header included), or None when unknown."""
    if dims is None:
        return None
    if typname == "vector":
        return 4.0 * dims + 8
    if typname == "halfvec":
        return 2.0 * dims + 8
    if typname == "bit":
        return (dims + 7) // 8 + 8.0
    return None  # sparsevec: depends on the non-zero count


def _maxalign(size: float) -> float:
    return float(int(size + 7) // 8 * 8)


def hnsw_memory_estimate(rows: float, m: int, value_bytes: float) -> float:
    """Approximate size of an HNSW graph of ``rows`` elements (what must fit in memory to be fast).

    Per element pgvector stores an element tuple (about 72 bytes of header and heap TIDs plus the
    value) and a neighbour tuple of ``(level + 2) * m`` 6-byte TIDs (layer 0 has ``2m``
    neighbours); the expected level is ``1 / (m - 1)``. Each tuple also takes a 4-byte line
    pointer. Compare it with ``pg_relation_size`` for the real size of a built index.
    """
    expected_level = 1.0 / max(m - 1, 1)
    element = _maxalign(72 + value_bytes) + 4
    neighbours = _maxalign(4 + (expected_level + 2) * m * 6) + 4
    pages_overhead = 1.0 + 24.0 / 8192.0
    return rows * (element + neighbours) * pages_overhead


ANN_TAG = "/* vecmon:recall:ann */"  # marks the approximate queries of recall and ann_latency


def ann_query(index: VectorIndex, filter_where: str | None, limit: int) -> sql.Composable:
    """The query an application runs (plus tableoid/ctid to identify rows)."""
    conditions = index.conditions(filter_where)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return sql.SQL("SELECT " + ANN_TAG + " tableoid::oid, ctid::text, {dist} AS distance FROM {table}{where} "
                   "ORDER BY {dist} LIMIT {limit}").format(
        dist=index.distance_sql(), table=index.table_sql(), where=where, limit=sql.Literal(limit))
