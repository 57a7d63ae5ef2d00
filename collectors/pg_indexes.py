"""Per-index usage, size and health of the target's database (btree, hnsw, ivfflat, ...).

Sources: ``pg_stat_user_indexes`` (usage counters) joined with ``pg_index`` (validity,
uniqueness) and ``pg_am`` (access method). The ``limits.indexes`` largest indexes are
exported (ranked by the pages recorded at the last VACUUM/ANALYZE/CREATE INDEX, so only those
are sized); invalid indexes are always exported on top of that, because an invalid index
(typically left behind by a failed ``CREATE INDEX CONCURRENTLY``) costs writes, serves no
reads and must be dropped or rebuilt, whatever its size.

Every series carries the ``am`` label, so vector indexes can be selected with
``{am=~"hnsw|ivfflat"}``. ``pg_relation_size`` takes an AccessShareLock on each index;
an exclusively locked index makes the run fail fast on ``lock_timeout`` (accepted).
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch

# Columns used here exist with these names on PostgreSQL 13..18. Indexes are ranked by
# pg_class.relpages (as of the last VACUUM, ANALYZE or CREATE INDEX) before any size function runs,
# so only the chosen ones (and every invalid index) are sized and looked up in the statistics;
# ties are broken by name for stable output.
INDEXES_SQL = """
WITH chosen AS (
    SELECT i.oid AS indexrelid, i.relam, x.indisvalid, x.indisunique, x.indisprimary, x.indisexclusion,
           row_number() OVER (ORDER BY i.relpages DESC, n.nspname, t.relname, i.relname) AS rank
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = i.relnamespace
    WHERE t.relkind IN ('r', 'm', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
), top AS (
    SELECT * FROM chosen WHERE rank <= %(limit)s OR NOT indisvalid
), sized AS (
    SELECT s.schemaname, s.relname, s.indexrelname, am.amname,
           s.idx_scan, s.idx_tup_read, s.idx_tup_fetch,
           top.indisvalid, top.indisunique, top.indisprimary, top.indisexclusion,
           pg_relation_size(top.indexrelid) AS size_bytes
    FROM top
    CROSS JOIN LATERAL (SELECT * FROM pg_stat_user_indexes u WHERE u.indexrelid = top.indexrelid) s
    JOIN pg_am am ON am.oid = top.relam
)
SELECT schemaname, relname, indexrelname, amname,
       idx_scan, idx_tup_read, idx_tup_fetch, size_bytes,
       NOT indisvalid AS invalid,
       (idx_scan = 0 AND NOT indisunique AND NOT indisprimary AND NOT indisexclusion) AS unused
FROM sized
ORDER BY size_bytes DESC NULLS LAST, schemaname, relname, indexrelname
"""

LABELS = ("schema", "table", "index", "am")


PG_INDEX_SCANS_TOTAL = MetricSpec("vecmon_pg_index_scans_total", "counter",
                                  "Index scans initiated on the index (pg_stat_user_indexes.idx_scan).", LABELS)
PG_INDEX_TUP_READ_TOTAL = MetricSpec("vecmon_pg_index_tup_read_total", "counter",
                                     "Index entries returned by scans of the index (idx_tup_read).", LABELS)
PG_INDEX_TUP_FETCH_TOTAL = MetricSpec(
    "vecmon_pg_index_tup_fetch_total", "counter",
    "Live table rows fetched by simple index scans using the index (idx_tup_fetch).", LABELS)
PG_INDEX_SIZE_BYTES = MetricSpec("vecmon_pg_index_size_bytes", "gauge",
                                 "On-disk size of the index in bytes (pg_relation_size).", LABELS)
PG_INDEX_UNUSED = MetricSpec(
    "vecmon_pg_index_unused", "gauge",
    "Whether the index looks unused: 1 if it was never scanned since the last stats reset and does not "
    "enforce a primary key, unique or exclusion constraint (a candidate for dropping), else 0.", LABELS)
PG_INDEX_INVALID = MetricSpec(
    "vecmon_pg_index_invalid", "gauge",
    "Whether the index is invalid: 1 if pg_index.indisvalid is false (e.g. after a failed CREATE INDEX "
    "CONCURRENTLY; it is maintained on writes but never used by queries), else 0.", LABELS)


class IndexesCollector:
    """Usage counters, size and unused/invalid flags for the largest (and every invalid) user index."""

    name = "indexes"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        PG_INDEX_SCANS_TOTAL,
        PG_INDEX_TUP_READ_TOTAL,
        PG_INDEX_TUP_FETCH_TOTAL,
        PG_INDEX_SIZE_BYTES,
        PG_INDEX_UNUSED,
        PG_INDEX_INVALID,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        for row in fetch(ctx.conn, INDEXES_SQL, {"limit": ctx.settings.limits.indexes}):
            self._emit(emitter, row)
        return emitter.families()

    @staticmethod
    def _emit(emitter: Emitter, row: dict[str, Any]) -> None:
        labels = (row["schemaname"], row["relname"], row["indexrelname"], row["amname"])
        emitter.add(PG_INDEX_SCANS_TOTAL.name, row["idx_scan"], *labels)
        emitter.add(PG_INDEX_TUP_READ_TOTAL.name, row["idx_tup_read"], *labels)
        emitter.add(PG_INDEX_TUP_FETCH_TOTAL.name, row["idx_tup_fetch"], *labels)
        emitter.add(PG_INDEX_SIZE_BYTES.name, row["size_bytes"], *labels)
        emitter.add(PG_INDEX_UNUSED.name, row["unused"], *labels)
        emitter.add(PG_INDEX_INVALID.name, row["invalid"], *labels)
