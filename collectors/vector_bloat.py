"""Heap bloat estimate for the tables with a pgvector column (disabled without pgvector).

Database-local (``scope = "database"``). Vector tables churn: re-embedding a corpus rewrites every
row, and the space the old versions took stays in the table after VACUUM (it is reused, never
returned). Bloat here is the heap space beyond what the live rows need at the table's fillfactor,
per table (leaf partitions separately, they are separate heaps); the ``limits.tables`` largest
are exported. The ``method`` label says how it was estimated:

* ``pgstattuple_approx``, when the pgstattuple extension is installed in the database and the
  role may execute ``pgstattuple_approx`` (granted to ``pg_stat_scan_tables``, which ``pg_monitor``
  includes): free space plus dead-row bytes (from the visibility map and a scan of the pages that
  are not all-visible), minus the free space the fillfactor reserves. It reads those pages, hence
  the collector's slow default interval;
* ``statistics`` otherwise: the estimate of the common bloat queries. The expected size is
  ``reltuples`` rows of the estimated row size packed into pages at the fillfactor (24-byte page
  header, 4-byte line pointer, 24-byte row header, 8-byte alignment), compared with ``relpages``
  (both as of the last VACUUM/ANALYZE). Column widths come from ``pg_stats.avg_width`` where the
  role can see it (``pg_stats`` shows only columns the role may SELECT, so a ``pg_monitor``-only
  role usually cannot), else from the type: fixed-width types their length, ``vector(n)`` ``4n+8``
  and ``halfvec(n)`` ``2n+8`` bytes. A row over the TOAST threshold (2032 bytes) keeps its vectors
  out of line (pgvector's types have EXTERNAL storage), 18 bytes each in the heap. A table with a
  column of unknown width (text without visible statistics, say) gets no estimate: install
  pgstattuple for those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric
from psycopg import sql

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch, fetch_one
from collectors.vector_catalog import require_pgvector

PAGE_HEADER = 24
LINE_POINTER = 4
ROW_HEADER = 24  # 23-byte heap tuple header, aligned
TOAST_THRESHOLD = 2032  # TOAST_TUPLE_THRESHOLD for 8 kB pages
TOAST_POINTER = 18

_VECTOR_COLUMN = """
    EXISTS (SELECT 1 FROM pg_attribute a
            JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = a.atttypid AND d.deptype = 'e'
            JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'vector'
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
"""

TABLES_SQL = f"""
SELECT c.oid, n.nspname AS schema, c.relname AS table, c.relpages, c.reltuples,
       current_setting('block_size')::int AS block_size,
       coalesce((SELECT option_value::int FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'fillfactor'), 100) AS fillfactor
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND {_VECTOR_COLUMN}
ORDER BY c.relpages DESC, n.nspname, c.relname
LIMIT %(limit)s
"""

COLUMNS_SQL = """
SELECT a.attrelid AS oid, a.attname, a.attlen, t.typname, a.atttypmod,
       (d.objid IS NOT NULL) AS pgvector_type, s.avg_width, s.null_frac
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'vector')
LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname
     AND NOT s.inherited
WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

PGSTATTUPLE_SQL = """
SELECT n.nspname AS schema,
       has_function_privilege(p.oid, 'EXECUTE') AS can_execute
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
JOIN pg_proc p ON p.pronamespace = e.extnamespace AND p.proname = 'pgstattuple_approx'
WHERE e.extname = 'pgstattuple'
LIMIT 1
"""

APPROX_SQL = "SELECT table_len, approx_free_space, dead_tuple_len FROM {schema}.pgstattuple_approx(%s::oid::regclass)"

LABELS = ("schema", "table", "method")


@dataclass
class ColumnWidth:
    """Estimated bytes of one column in the heap row; ``None`` when unknown."""

    width: float | None
    vector: bool = False


@dataclass
class Table:
    oid: int
    schema: str
    table: str
    relpages: int
    reltuples: float
    block_size: int
    fillfactor: int
    columns: list[ColumnWidth] = field(default_factory=list)


def column_width(row: dict[str, Any]) -> ColumnWidth:
    """A column's average heap bytes from pg_stats (NULLs take none) or, failing that, from its type."""
    is_vector = bool(row["pgvector_type"]) and row["typname"] in ("vector", "halfvec")
    if row["avg_width"] is not None:
        return ColumnWidth(float(row["avg_width"]) * (1.0 - float(row["null_frac"] or 0.0)), is_vector)
    if is_vector and row["atttypmod"] and row["atttypmod"] > 0:
        per_dim = 4 if row["typname"] == "vector" else 2
        return ColumnWidth(per_dim * row["atttypmod"] + 8.0, True)
    if row["attlen"] and row["attlen"] > 0:
        return ColumnWidth(float(row["attlen"]))
    return ColumnWidth(None)


def _align(size: float) -> float:
    return math.ceil(size / 8.0) * 8.0


def expected_heap_bytes(table: Table) -> float | None:
    """Bytes ``reltuples`` rows of the estimated width need at the table's fillfactor; None if unknown."""
    widths = [c.width for c in table.columns if c.width is not None]
    if table.reltuples < 0 or len(widths) < len(table.columns):  # a column of unknown width
        return None
    if ROW_HEADER + sum(widths) > TOAST_THRESHOLD:  # vectors go out of line, a pointer stays
        widths = [TOAST_POINTER if c.vector else width for c, width in zip(table.columns, widths, strict=True)]
    row = _align(ROW_HEADER + sum(widths)) + LINE_POINTER
    usable = (table.block_size - PAGE_HEADER) * table.fillfactor / 100.0
    per_page = max(1, math.floor(usable / row))
    return math.ceil(table.reltuples / per_page) * float(table.block_size)


VECTOR_TABLE_BLOAT_BYTES = MetricSpec(
    "vecmon_vector_table_bloat_bytes", "gauge",
    "Estimated heap bytes of a vector table beyond what its live rows need at its fillfactor "
    "(method: pgstattuple_approx or statistics, see the collector docs).", LABELS)
VECTOR_TABLE_BLOAT_RATIO = MetricSpec("vecmon_vector_table_bloat_ratio", "gauge",
                                      "Estimated bloat as a share of the vector table's heap size (0..1).", LABELS)


class VectorBloatCollector:
    """Estimated reclaimable heap space of the tables with a vector column (pgstattuple_approx or statistics).

    ``scope = "database"``: tables are database-local; run it on every database to watch.
    """

    name = "vector_bloat"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        VECTOR_TABLE_BLOAT_BYTES,
        VECTOR_TABLE_BLOAT_RATIO,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        require_pgvector(ctx)
        conn, facts = ctx.conn, ctx.facts
        assert conn is not None and facts is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        tables = [Table(oid=r["oid"], schema=r["schema"], table=r["table"], relpages=r["relpages"],
                        reltuples=float(r["reltuples"]), block_size=r["block_size"], fillfactor=r["fillfactor"])
                  for r in fetch(conn, TABLES_SQL, {"limit": ctx.settings.limits.tables})]
        if not tables:
            return emitter.families()
        pgstattuple = fetch_one(conn, PGSTATTUPLE_SQL) if "pgstattuple" in (facts.extensions or {}) else {}
        if pgstattuple.get("can_execute"):
            query = sql.SQL(APPROX_SQL).format(schema=sql.Identifier(pgstattuple["schema"]))
            for table in tables:
                self._emit_approx(emitter, table, fetch_one(conn, query, [table.oid]))
            return emitter.families()
        by_oid = {t.oid: t for t in tables}
        for row in fetch(conn, COLUMNS_SQL, [list(by_oid)]):
            by_oid[row["oid"]].columns.append(column_width(row))
        for table in tables:
            expected = expected_heap_bytes(table)
            actual = float(table.relpages) * table.block_size
            if expected is None or actual <= 0:
                continue
            bloat = max(0.0, actual - expected)
            labels = (table.schema, table.table, "statistics")
            emitter.add(VECTOR_TABLE_BLOAT_BYTES.name, bloat, *labels)
            emitter.add(VECTOR_TABLE_BLOAT_RATIO.name, bloat / actual, *labels)
        return emitter.families()

    @staticmethod
    def _emit_approx(emitter: Emitter, table: Table, row: dict[str, Any]) -> None:
        size = float(row["table_len"] or 0)
        if size <= 0:
            return
        reserved = size * (100 - table.fillfactor) / 100.0
        bloat = max(0.0, float(row["approx_free_space"]) + float(row["dead_tuple_len"]) - reserved)
        labels = (table.schema, table.table, "pgstattuple_approx")
        emitter.add(VECTOR_TABLE_BLOAT_BYTES.name, bloat, *labels)
        emitter.add(VECTOR_TABLE_BLOAT_RATIO.name, min(1.0, bloat / size), *labels)
