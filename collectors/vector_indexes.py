"""pgvector inventory: vector columns, HNSW/IVFFlat indexes, query settings, build progress.

Discovery comes from :mod:`collectors.vector_catalog` (cached until the catalog changes);
sizes, counters and progress are read on every run:

* ``pg_relation_size`` of each vector index (skipped for an index that a CREATE INDEX/REINDEX
  is building: that would wait for its lock), ``idx_scan``/``idx_tup_read``;
* rows, dead rows and total size of each table with a vector column (partitioned tables
  summed over their leaf partitions), and the estimated NULL count of each vector column
  (``pg_stats.null_frac`` x rows: visible only for tables the role may read; the exact
  backlog is the ``vector_freshness`` collector's job);
* index size against ``shared_buffers`` and an HNSW memory estimate for the current row count
  (to compare with ``maintenance_work_mem`` before a rebuild);
* ``pg_stat_progress_create_index`` rows of tables with vector columns: phase and fraction
  done (HNSW reports blocks, IVFFlat tuples during "loading tuples"). A plain CREATE INDEX's
  new index is not visible to other sessions yet, so its name is shown as its OID;
* the hnsw.*/ivfflat.* values the application gets, and every database/role override;
* the table's rows when the current build of each index was first seen (kept in the recall state
  store, ``vector.recall.state_url``): an IVFFlat index's lists were computed for that many rows.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import every, fetch, setting_in_base_units
from collectors.vector_catalog import database_key, get_catalog
from collectors.vector_memory import hnsw_memory_estimate, vector_bytes
from collectors.vector_model import VectorCatalog
from collectors.vector_plans import numeric

log = logging.getLogger(__name__)

P = ("schema", "table", "index")
T = ("schema", "table")

_PROGRESS_SQL = """
SELECT p.pid, p.relid, p.index_relid, n.nspname AS schema, tc.relname AS table,
       coalesce(ic.relname, 'oid ' || p.index_relid::text) AS index, p.command, p.phase,
       p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total
FROM pg_stat_progress_create_index p
JOIN pg_class tc ON tc.oid = p.relid
JOIN pg_namespace n ON n.oid = tc.relnamespace
LEFT JOIN pg_class ic ON ic.oid = p.index_relid
WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND p.relid = ANY(%s::oid[])
"""

_INDEX_STATS_SQL = """
SELECT x.oid,
       CASE WHEN x.oid = ANY(%(busy)s::oid[]) THEN NULL ELSE pg_relation_size(x.oid) END AS bytes,
       s.idx_scan, s.idx_tup_read
FROM unnest(%(oids)s::oid[]) AS x(oid)
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = x.oid
"""

_TABLE_STATS_SQL = """
SELECT t.oid,
       sum(greatest(c.reltuples, 0))::float8 AS reltuples,
       sum(s.n_live_tup)::float8 AS live,
       sum(s.n_dead_tup)::float8 AS dead,
       sum(CASE WHEN c.oid = ANY(%(busy)s::oid[]) THEN NULL ELSE pg_total_relation_size(c.oid) END)::float8 AS bytes
FROM unnest(%(oids)s::oid[]) AS t(oid)
CROSS JOIN LATERAL (SELECT relid FROM pg_partition_tree(t.oid::regclass) WHERE isleaf
                    UNION SELECT t.oid WHERE (SELECT relkind FROM pg_class WHERE oid = t.oid) <> 'p') AS leaf
JOIN pg_class c ON c.oid = leaf.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
GROUP BY t.oid
"""

# One lookup of pg_stats per column (by name, which its view can use an index for), not a scan of it.
_NULLS_SQL = """
SELECT x.schema, x.table, x.column,
       (SELECT max(s.null_frac) FROM pg_stats s
         WHERE s.schemaname = x.schema AND s.tablename = x.table AND s.attname = x.column)::float8 AS null_frac
FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(schema, "table", "column")
"""

_MEMORY_SQL = """
SELECT name, setting, unit FROM pg_settings
WHERE name IN ('shared_buffers', 'maintenance_work_mem', 'effective_cache_size', 'work_mem')
"""


VECTOR_EXTENSION = MetricSpec("vecmon_vector_extension", "info",
                              "Installed pgvector version and schema.", ("version", "schema"))
VECTOR_COLUMN_DIMENSIONS = MetricSpec(
    "vecmon_vector_column_dimensions", "gauge",
    "Declared dimensions of a vector/halfvec/sparsevec column (bits for an indexed bit column); "
    "absent for an unconstrained column.", ("schema", "table", "column", "type"))
VECTOR_TABLE_ROWS = MetricSpec(
    "vecmon_vector_table_rows", "gauge",
    "Estimated live rows of a table with a vector column (n_live_tup; reltuples while there are no "
    "statistics).", T)
VECTOR_TABLE_DEAD_ROWS = MetricSpec("vecmon_vector_table_dead_rows", "gauge",
                                    "Dead rows not yet vacuumed (they occupy HNSW search slots until VACUUM).", T)
VECTOR_TABLE_SIZE_BYTES = MetricSpec("vecmon_vector_table_size_bytes", "gauge",
                                     "Total size of the table (heap, TOAST and indexes; leaf partitions summed).", T)
VECTOR_COLUMN_NULL_ROWS = MetricSpec(
    "vecmon_vector_column_null_rows", "gauge",
    "Estimated rows whose vector column is NULL (pg_stats null_frac x rows): the embedding "
    "backlog, as of the last ANALYZE.", ("schema", "table", "column"))
VECTOR_INDEX = MetricSpec("vecmon_vector_index", "info",
                          "An HNSW or IVFFlat index: key column (or expression:<first 8 hex digits of the SHA-1 of "
                          "the expression>), access method, operator class and distance operator, whether it is a "
                          "partial index (partial, and predicate_hash: first 8 hex digits of the SHA-1 of its "
                          "predicate) and parent partitioned index.",
                          (*P, "key", "method", "opclass", "operator", "partial", "predicate_hash", "parent"))
VECTOR_INDEX_BUILD_OPTION = MetricSpec(
    "vecmon_vector_index_build_option", "gauge",
    "Build option of the index (m, ef_construction, lists) with pgvector's defaults filled in.",
    (*P, "option"))
VECTOR_INDEX_DIMENSIONS = MetricSpec("vecmon_vector_index_dimensions", "gauge",
                                     "Dimensions of the indexed values (after an expression's cast).", P)
VECTOR_INDEX_VALID = MetricSpec(
    "vecmon_vector_index_valid", "gauge",
    "Whether the index is valid and ready (1) or not (0: during or after a failed CREATE INDEX "
    "CONCURRENTLY).", P)
VECTOR_INDEX_SIZE_BYTES = MetricSpec("vecmon_vector_index_size_bytes", "gauge",
                                     "Size of the index (pg_relation_size); 0 for a partitioned parent index.", P)
VECTOR_INDEX_SCANS_TOTAL = MetricSpec("vecmon_vector_index_scans_total", "counter",
                                      "Index scans started on the index (idx_scan).", P)
VECTOR_INDEX_TUPLES_READ_TOTAL = MetricSpec("vecmon_vector_index_tuples_read_total", "counter",
                                            "Index entries returned by scans of the index (idx_tup_read).", P)
VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO = MetricSpec(
    "vecmon_vector_index_size_to_shared_buffers_ratio", "gauge",
    "Index size divided by shared_buffers; above 1 the index cannot be cached in shared "
    "buffers and searches read from the OS cache or disk.", P)
VECTOR_INDEX_MEMORY_ESTIMATE_BYTES = MetricSpec(
    "vecmon_vector_index_memory_estimate_bytes", "gauge",
    "Estimated HNSW graph size for the table's current rows (element and neighbour tuples); "
    "compare with maintenance_work_mem for a fast rebuild and with memory for fast search.", P)
VECTOR_INDEX_ROWS_AT_BUILD = MetricSpec(
    "vecmon_vector_index_rows_at_build", "gauge",
    "Table rows when vecmon first saw the current build of the index (a new relfilenode after "
    "CREATE INDEX, REINDEX or VACUUM FULL); IVFFlat lists were computed for about this many rows.",
    P)
VECTOR_INDEX_BUILD_PROGRESS_RATIO = MetricSpec(
    "vecmon_vector_index_build_progress_ratio", "gauge",
    "Fraction done of a running CREATE INDEX/REINDEX on a vector table, 0..1 (blocks for HNSW, "
    "tuples for IVFFlat while loading; 0 while unknown).",
    (*P, "command", "phase"))
VECTOR_MEMORY_SETTING_BYTES = MetricSpec("vecmon_vector_memory_setting_bytes", "gauge",
                                         "Memory settings that decide whether vector indexes fit (shared_buffers, "
                                         "maintenance_work_mem, effective_cache_size, work_mem).", ("setting",))
VECTOR_SETTING = MetricSpec("vecmon_vector_setting", "gauge",
                            "Numeric hnsw.*/ivfflat.* value the application's sessions get (database and app_role "
                            "overrides applied).", ("setting",))
VECTOR_SETTING_VALUE = MetricSpec(
    "vecmon_vector_setting_value", "info",
    "Value of an hnsw.*/ivfflat.* setting the application's sessions get, with where it comes from.",
    ("setting", "value", "source"))
VECTOR_SETTING_OVERRIDE = MetricSpec(
    "vecmon_vector_setting_override", "info",
    "An ALTER DATABASE/ROLE ... SET of an hnsw.*/ivfflat.* setting for this database ('*' = all).",
    ("setting", "value", "database", "role"))
VECTOR_CATALOG_REFRESHES_TOTAL = MetricSpec(
    "vecmon_vector_catalog_refreshes_total", "counter",
    "Times the vector catalog was rediscovered because it changed (first run included).", ())


class VectorIndexesCollector:
    """Vector columns and indexes: dimensions, build options, sizes, memory fit, settings, build progress."""

    name = "vector_indexes"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        VECTOR_EXTENSION,
        VECTOR_COLUMN_DIMENSIONS,
        VECTOR_TABLE_ROWS,
        VECTOR_TABLE_DEAD_ROWS,
        VECTOR_TABLE_SIZE_BYTES,
        VECTOR_COLUMN_NULL_ROWS,
        VECTOR_INDEX,
        VECTOR_INDEX_BUILD_OPTION,
        VECTOR_INDEX_DIMENSIONS,
        VECTOR_INDEX_VALID,
        VECTOR_INDEX_SIZE_BYTES,
        VECTOR_INDEX_SCANS_TOTAL,
        VECTOR_INDEX_TUPLES_READ_TOTAL,
        VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO,
        VECTOR_INDEX_MEMORY_ESTIMATE_BYTES,
        VECTOR_INDEX_ROWS_AT_BUILD,
        VECTOR_INDEX_BUILD_PROGRESS_RATIO,
        VECTOR_MEMORY_SETTING_BYTES,
        VECTOR_SETTING,
        VECTOR_SETTING_VALUE,
        VECTOR_SETTING_OVERRIDE,
        VECTOR_CATALOG_REFRESHES_TOTAL,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        catalog, refreshed = get_catalog(ctx)
        conn = ctx.conn
        assert conn is not None
        if refreshed:
            ctx.state["refreshes"] = ctx.state.get("refreshes", 0) + 1
        em = Emitter(ctx.target, self.METRICS)
        em.add(VECTOR_CATALOG_REFRESHES_TOTAL.name, ctx.state.get("refreshes", 0))
        em.info(VECTOR_EXTENSION.name, {}, catalog.extension_version, catalog.extension_schema)
        self._settings(em, catalog, ctx.settings.vector)

        memory = every(ctx.state, "memory_settings", lambda: {  # pg_settings: read again every 5 minutes
            r["name"]: setting_in_base_units(r["setting"], r["unit"]) for r in fetch(conn, _MEMORY_SQL)})
        for name, value in sorted(memory.items()):
            em.add(VECTOR_MEMORY_SETTING_BYTES.name, value, name)

        tables = {c.table_oid: (c.schema, c.table) for c in catalog.columns}
        for idx in catalog.indexes:
            if not idx.table_is_partition:
                tables.setdefault(idx.table_oid, (idx.schema, idx.table))
        progress = fetch(conn, _PROGRESS_SQL, [list(tables) + [i.table_oid for i in catalog.indexes]])
        busy_indexes = [r["index_relid"] for r in progress if r["index_relid"]]
        busy_tables = [r["relid"] for r in progress if r["command"] in ("REINDEX", "REINDEX CONCURRENTLY")]
        for r in progress:
            ratio = 0.0
            if r["blocks_total"]:
                ratio = min(1.0, r["blocks_done"] / r["blocks_total"])
            elif r["tuples_total"]:
                ratio = min(1.0, r["tuples_done"] / r["tuples_total"])
            em.add(VECTOR_INDEX_BUILD_PROGRESS_RATIO.name, ratio, r["schema"], r["table"], r["index"],
                   r["command"], r["phase"])

        table_stats = {r["oid"]: r for r in fetch(conn, _TABLE_STATS_SQL,
                                                    {"oids": list(tables), "busy": busy_tables})}
        rows_by_table: dict[int, float] = {}
        for oid, (schema, table) in sorted(tables.items(), key=lambda kv: kv[1]):
            stats = table_stats.get(oid)
            if not stats:
                continue
            rows = _rows(stats)
            rows_by_table[oid] = rows
            em.add(VECTOR_TABLE_ROWS.name, rows, schema, table)
            em.add(VECTOR_TABLE_DEAD_ROWS.name, stats["dead"], schema, table)
            em.add(VECTOR_TABLE_SIZE_BYTES.name, stats["bytes"], schema, table)

        null_fracs: dict[tuple[str, str, str], float] = {}
        if catalog.columns:
            cols = catalog.columns
            for r in fetch(conn, _NULLS_SQL, [[c.schema for c in cols], [c.table for c in cols],
                                              [c.column for c in cols]]):
                if r["null_frac"] is not None:  # None: not analyzed yet
                    null_fracs[(r["schema"], r["table"], r["column"])] = r["null_frac"]
        for c in catalog.columns:
            if c.dims is not None:
                em.add(VECTOR_COLUMN_DIMENSIONS.name, c.dims, c.schema, c.table, c.column, c.type)
            frac = null_fracs.get((c.schema, c.table, c.column))
            if frac is not None and c.table_oid in rows_by_table:
                em.add(VECTOR_COLUMN_NULL_ROWS.name, round(frac * rows_by_table[c.table_oid]), c.schema,
                       c.table, c.column)

        index_stats = {r["oid"]: r for r in fetch(conn, _INDEX_STATS_SQL, {
            "oids": [i.oid for i in catalog.indexes], "busy": busy_indexes})}
        shared_buffers = memory.get("shared_buffers")
        by_oid = {i.oid: i for i in catalog.indexes}
        build_rows = self._rows_at_build(ctx, catalog, rows_by_table, set(busy_indexes))
        for idx in catalog.indexes:
            labels = idx.labels
            parent = by_oid.get(idx.parent_oid) if idx.parent_oid else None
            em.info(VECTOR_INDEX.name, {}, *labels, idx.key_label, idx.method, idx.opclass, idx.operator or "",
                    "true" if idx.predicate else "false", idx.predicate_hash, parent.name if parent else "")
            for option, value in sorted(idx.options.items()):
                em.add(VECTOR_INDEX_BUILD_OPTION.name, value, *labels, option)
            if idx.dims is not None:
                em.add(VECTOR_INDEX_DIMENSIONS.name, idx.dims, *labels)
            em.add(VECTOR_INDEX_VALID.name, 1 if idx.valid and idx.ready else 0, *labels)
            stats = index_stats.get(idx.oid) or {}
            size = stats.get("bytes")
            em.add(VECTOR_INDEX_SIZE_BYTES.name, size, *labels)
            em.add(VECTOR_INDEX_SCANS_TOTAL.name, stats.get("idx_scan"), *labels)
            em.add(VECTOR_INDEX_TUPLES_READ_TOTAL.name, stats.get("idx_tup_read"), *labels)
            em.add(VECTOR_INDEX_ROWS_AT_BUILD.name, build_rows.get(idx.oid), *labels)
            if size is not None and shared_buffers and idx.relkind == "i":
                em.add(VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO.name, size / shared_buffers, *labels)
            if idx.method == "hnsw":
                value_bytes = vector_bytes(idx.key_typname, idx.dims)
                indexed_rows = self._indexed_rows(idx, rows_by_table, table_stats, null_fracs)
                if value_bytes is not None and indexed_rows is not None:
                    em.add(VECTOR_INDEX_MEMORY_ESTIMATE_BYTES.name,
                           hnsw_memory_estimate(indexed_rows, idx.options.get("m", 16), value_bytes), *labels)
        return em.families()

    @staticmethod
    def _rows_at_build(ctx: CollectContext, catalog: VectorCatalog, rows_by_table: dict[int, float],
                       busy: set[int]) -> dict[int, float]:
        """Rows at the current build of each valid top-level index, kept in the recall state store.

        Optional: whatever goes wrong with the store (unreachable, bad schema, a driver error...) is
        logged once and only this metric is missing. (The database key is read on the run's own
        connection, outside: a failure there is the run's.)"""
        indexes = [i for i in catalog.indexes if i.relkind == "i" and i.valid and i.ready and i.oid not in busy
                   and i.table_oid in rows_by_table]
        if not indexes or "recall" not in ctx.settings.enabled_collectors():
            return {}  # the store is the recall probe's: without recall, SQLAlchemy is never loaded
        key = ctx.state.get("database_key")
        if key is None:
            assert ctx.conn is not None
            key = ctx.state["database_key"] = database_key(ctx.conn)
        url = ctx.settings.vector.recall.resolved_state_url()
        found: dict[int, float] = {}
        try:
            store = ctx.shared.state_stores.open(url)
            for idx in indexes:
                found[idx.oid] = store.rows_at_build(key, f"{idx.schema}.{idx.name}", idx.relfilenode,
                                                     rows_by_table[idx.table_oid])
        except Exception as exc:  # noqa: BLE001 - an optional metric never fails the collection
            if not ctx.state.get("_store_error_logged"):
                password = url_password(url)
                message = f"{type(exc).__name__}: {exc}"
                if password:
                    message = message.replace(str(password), "***")
                log.warning("vector_indexes on %s: state store unavailable, no rows_at_build: %s", ctx.target,
                            message)
                ctx.state["_store_error_logged"] = True
        return found

    @staticmethod
    def _indexed_rows(idx: Any, rows_by_table: dict[int, float], table_stats: dict[int, Any],
                      null_fracs: dict[tuple[str, str, str], float]) -> float | None:
        rows = rows_by_table.get(idx.table_oid)
        if rows is None:
            stats = table_stats.get(idx.table_oid)
            if stats is None:
                return None
            rows = _rows(stats)
        if idx.column is not None:
            rows *= 1.0 - null_fracs.get((idx.schema, idx.table, idx.column), 0.0)
        return rows

    @staticmethod
    def _settings(em: Emitter, catalog: VectorCatalog, vector_settings: Any) -> None:
        app = catalog.app_settings(getattr(vector_settings, "app_role", None))
        for name, (value, source) in sorted(app.items()):
            em.info(VECTOR_SETTING_VALUE.name, {}, name, value, source)
            number = numeric(value)
            if number is not None:
                em.add(VECTOR_SETTING.name, number, name)
        for override in catalog.overrides:
            em.info(VECTOR_SETTING_OVERRIDE.name, {}, override.name, override.value, override.database,
                    override.role)


def _rows(stats: dict[str, Any]) -> float:
    if stats.get("live") is not None:
        return float(stats["live"])
    return float(stats.get("reltuples") or 0.0)


def url_password(url: str) -> str | None:
    """The password in a SQLAlchemy URL (``dialect+driver://user:password@host/db``), decoded."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None
