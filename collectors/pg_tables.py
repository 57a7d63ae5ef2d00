"""Per-table statistics of the target's database: scans, tuples, maintenance, sizes, cache hits.

Sources: ``pg_stat_user_tables`` joined with ``pg_statio_user_tables`` (database-local
views, so each database to watch is its own target). Only the ``limits.tables`` largest
tables are exported, to bound cardinality, ranked by the pages PostgreSQL recorded for heap,
indexes and TOAST at the last VACUUM/ANALYZE (cheap: no size function, no lock, for every table)
and ordered by their exact sizes; a table never vacuumed nor analyzed ranks as empty until
autovacuum gets to it. When the top-N set changes, series of tables that drop out go stale.

Size functions (on the chosen tables only) take an AccessShareLock on each table; a table locked exclusively (e.g. by
a long ALTER TABLE) makes the run fail fast on ``lock_timeout``. That is accepted: the run
is reported as failed and retried at the next interval.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch, ratio

# The top-N set is ranked from pg_class.relpages (heap + TOAST + indexes, as of the last VACUUM,
# ANALYZE or CREATE INDEX) before any size or statistics function runs, so a database with 10,000
# tables costs N size computations and N statistics lookups, not 10,000 of each. The statistics
# come from the functions pg_stat_user_tables and pg_statio_user_tables are defined with (the views
# themselves aggregate over every table before a join can narrow them); their names and meanings are
# the same on PostgreSQL 13..18. ``idx_scan`` is NULL for a table without indexes, as in the view.
# The exact sizes of the chosen tables order the output.
TABLES_SQL = """
WITH top AS (
    SELECT c.oid AS relid, c.reltoastrelid, n.nspname AS schemaname, c.relname
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    LEFT JOIN (SELECT x.indrelid, sum(i.relpages)::bigint AS pages
               FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               GROUP BY x.indrelid) ix ON ix.indrelid = c.oid
    WHERE c.relkind IN ('r', 'm', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    ORDER BY c.relpages::bigint + coalesce(t.relpages, 0) + coalesce(ix.pages, 0) DESC, n.nspname, c.relname
    LIMIT %(limit)s
), sized AS (
    SELECT schemaname, relname,
           pg_stat_get_numscans(relid) AS seq_scan,
           (SELECT sum(pg_stat_get_numscans(x.indexrelid))::bigint
            FROM pg_index x WHERE x.indrelid = top.relid) AS idx_scan,
           pg_stat_get_live_tuples(relid) AS n_live_tup,
           pg_stat_get_dead_tuples(relid) AS n_dead_tup,
           pg_stat_get_tuples_inserted(relid) AS n_tup_ins,
           pg_stat_get_tuples_updated(relid) AS n_tup_upd,
           pg_stat_get_tuples_deleted(relid) AS n_tup_del,
           pg_stat_get_last_vacuum_time(relid) AS last_vacuum,
           pg_stat_get_last_autovacuum_time(relid) AS last_autovacuum,
           pg_stat_get_last_analyze_time(relid) AS last_analyze,
           pg_stat_get_last_autoanalyze_time(relid) AS last_autoanalyze,
           pg_stat_get_blocks_hit(relid) AS heap_blks_hit,
           pg_stat_get_blocks_fetched(relid) - pg_stat_get_blocks_hit(relid) AS heap_blks_read,
           pg_total_relation_size(relid) AS total_bytes,
           pg_table_size(relid) AS table_bytes,
           pg_indexes_size(relid) AS indexes_bytes,
           CASE WHEN reltoastrelid <> 0 THEN pg_total_relation_size(reltoastrelid) ELSE 0 END AS toast_bytes
    FROM top
)
SELECT schemaname, relname,
       seq_scan, idx_scan, n_live_tup, n_dead_tup, n_tup_ins, n_tup_upd, n_tup_del,
       extract(epoch FROM now() - last_vacuum) AS vacuum_age,
       extract(epoch FROM now() - last_autovacuum) AS autovacuum_age,
       extract(epoch FROM now() - last_analyze) AS analyze_age,
       extract(epoch FROM now() - last_autoanalyze) AS autoanalyze_age,
       heap_blks_hit, heap_blks_read,
       table_bytes - toast_bytes AS heap_bytes, indexes_bytes, toast_bytes
FROM sized
ORDER BY total_bytes DESC NULLS LAST, schemaname, relname
"""

LABELS = ("schema", "table")
MAINTENANCE_KINDS = ("vacuum", "autovacuum", "analyze", "autoanalyze")
SIZE_PARTS = ("heap", "indexes", "toast")


PG_TABLE_SEQ_SCAN_TOTAL = MetricSpec("vecmon_pg_table_seq_scan_total", "counter",
                                     "Sequential scans started on the table.", LABELS)
PG_TABLE_IDX_SCAN_TOTAL = MetricSpec(
    "vecmon_pg_table_idx_scan_total", "counter",
    "Index scans started on the table's indexes (absent for a table without indexes).", LABELS)
PG_TABLE_INDEX_SCAN_RATIO = MetricSpec(
    "vecmon_pg_table_index_scan_ratio", "gauge",
    "Share of scans that used an index: idx_scan / (seq_scan + idx_scan), 0..1, since the last "
    "stats reset. Absent while the table has not been scanned.", LABELS)
PG_TABLE_LIVE_TUPLES = MetricSpec("vecmon_pg_table_live_tuples", "gauge",
                                  "Estimated number of live rows (n_live_tup).", LABELS)
PG_TABLE_DEAD_TUPLES = MetricSpec("vecmon_pg_table_dead_tuples", "gauge",
                                  "Estimated number of dead rows not yet removed by vacuum (n_dead_tup).", LABELS)
PG_TABLE_DEAD_TUPLE_RATIO = MetricSpec("vecmon_pg_table_dead_tuple_ratio", "gauge",
                                       "Dead rows / (live + dead rows), 0..1. Absent for an empty table.", LABELS)
PG_TABLE_TUP_INSERTED_TOTAL = MetricSpec("vecmon_pg_table_tup_inserted_total", "counter",
                                         "Rows inserted into the table (n_tup_ins).", LABELS)
PG_TABLE_TUP_UPDATED_TOTAL = MetricSpec("vecmon_pg_table_tup_updated_total", "counter",
                                        "Rows updated in the table, HOT updates included (n_tup_upd).", LABELS)
PG_TABLE_TUP_DELETED_TOTAL = MetricSpec("vecmon_pg_table_tup_deleted_total", "counter",
                                        "Rows deleted from the table (n_tup_del).", LABELS)
PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS = MetricSpec(
    "vecmon_pg_table_last_maintenance_age_seconds", "gauge",
    "Seconds since the last vacuum, autovacuum, analyze or autoanalyze (kind label) of the table. "
    "Absent for a kind that never ran since the last stats reset.", (*LABELS, "kind"))
PG_TABLE_SIZE_BYTES = MetricSpec(
    "vecmon_pg_table_size_bytes", "gauge",
    "On-disk size of the table in bytes by part: heap (main fork + free space and visibility maps), "
    "indexes (all indexes), toast (TOAST table and its index). The parts sum to the total "
    "relation size.", (*LABELS, "part"))
PG_TABLE_CACHE_HIT_RATIO = MetricSpec(
    "vecmon_pg_table_cache_hit_ratio", "gauge",
    "Heap buffer-cache hit ratio of the table: heap_blks_hit / (heap_blks_hit + heap_blks_read), "
    "0..1. Absent while no heap block has been read.", LABELS)


class TablesCollector:
    """Scan, tuple, maintenance, size and cache statistics for the largest user tables."""

    name = "tables"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        PG_TABLE_SEQ_SCAN_TOTAL,
        PG_TABLE_IDX_SCAN_TOTAL,
        PG_TABLE_INDEX_SCAN_RATIO,
        PG_TABLE_LIVE_TUPLES,
        PG_TABLE_DEAD_TUPLES,
        PG_TABLE_DEAD_TUPLE_RATIO,
        PG_TABLE_TUP_INSERTED_TOTAL,
        PG_TABLE_TUP_UPDATED_TOTAL,
        PG_TABLE_TUP_DELETED_TOTAL,
        PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS,
        PG_TABLE_SIZE_BYTES,
        PG_TABLE_CACHE_HIT_RATIO,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        for row in fetch(ctx.conn, TABLES_SQL, {"limit": ctx.settings.limits.tables}):
            self._emit(emitter, row)
        return emitter.families()

    @staticmethod
    def _emit(emitter: Emitter, row: dict[str, Any]) -> None:
        labels = (row["schemaname"], row["relname"])
        seq, idx = row["seq_scan"], row["idx_scan"]
        emitter.add(PG_TABLE_SEQ_SCAN_TOTAL.name, seq, *labels)
        emitter.add(PG_TABLE_IDX_SCAN_TOTAL.name, idx, *labels)
        if seq is not None:
            emitter.add(PG_TABLE_INDEX_SCAN_RATIO.name, ratio(idx or 0, seq + (idx or 0)), *labels)

        live, dead = row["n_live_tup"], row["n_dead_tup"]
        emitter.add(PG_TABLE_LIVE_TUPLES.name, live, *labels)
        emitter.add(PG_TABLE_DEAD_TUPLES.name, dead, *labels)
        if live is not None and dead is not None:
            emitter.add(PG_TABLE_DEAD_TUPLE_RATIO.name, ratio(dead, live + dead), *labels)

        emitter.add(PG_TABLE_TUP_INSERTED_TOTAL.name, row["n_tup_ins"], *labels)
        emitter.add(PG_TABLE_TUP_UPDATED_TOTAL.name, row["n_tup_upd"], *labels)
        emitter.add(PG_TABLE_TUP_DELETED_TOTAL.name, row["n_tup_del"], *labels)

        for kind in MAINTENANCE_KINDS:
            age = row[f"{kind}_age"]  # NULL: never ran (since the last stats reset)
            if age is not None:
                emitter.add(PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS.name, max(0.0, float(age)), *labels, kind)

        for part in SIZE_PARTS:
            emitter.add(PG_TABLE_SIZE_BYTES.name, row[f"{part}_bytes"], *labels, part)

        hits, reads = row["heap_blks_hit"], row["heap_blks_read"]
        if hits is not None and reads is not None:
            emitter.add(PG_TABLE_CACHE_HIT_RATIO.name, ratio(hits, hits + reads), *labels)
