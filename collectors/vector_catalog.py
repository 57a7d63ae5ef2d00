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
  ``ALTER DATABASE/ROLE ... SET`` override, from which
  :meth:`collectors.vector_model.VectorCatalog.app_settings` computes what the application's sessions get.

Discovery is cached in the collector's ``ctx.state`` and refreshed only when a cheap signature
of the catalog (index and vector-column definitions, relfilenodes, overrides, the GUC values,
the extension version) changes. Sizes and counters are not part of it: collectors read them
on every run.

The model is in :mod:`collectors.vector_model`,
name parsing in :mod:`collectors.vector_names` (``collectors.settings.vector`` imports
:func:`~collectors.vector_names.parse_qualified`); collectors read their settings from
``ctx.settings.vector``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from collectors.base import CollectContext, CollectorDisabled
from collectors.pg_common import fetch, fetch_one
from collectors.vector_model import (
    GUC_DEFAULTS,
    SettingOverride,
    SettingValue,
    VectorCatalog,
    VectorColumn,
    VectorIndex,
)
from collectors.vector_names import parse_qualified
from collectors.vector_plans import fetch_value

CATALOG_STATE_KEY = "_vector_catalog"


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
    database = fetch_value(conn, "SELECT current_database()")
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
    signature = fetch_value(conn, _SIGNATURE_SQL)
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
    database = fetch_value(conn, "SELECT current_database()")
    try:
        with conn.transaction():
            system_id = fetch_value(conn, "SELECT system_identifier::text FROM pg_control_system()")
    except psycopg.Error:
        if conn.broken:
            raise
        system_id = fetch_value(conn, "SELECT coalesce(host(inet_server_addr()), 'local') || ':' || "
                                      "current_setting('port')")
    return f"{system_id}/{database}"

