"""Per-database activity counters, size and buffer-cache hit ratio (``pg_stat_database``).

One row per database of the server; the shared-objects row (``datid = 0``, NULL datname)
is skipped, and so are the databases in ``exclude_databases`` (template0 and template1 by
default: nobody queries them, so their cache hit ratio only raises false alarms).
``pg_database_size`` needs CONNECT on the database or ``pg_read_all_stats``, which
``pg_monitor`` includes. Counters are cumulative since the last stats reset, so use
``rate()``; a reset shows up as a counter reset, which Prometheus handles.

``pg_database_size`` walks every file of a database (it is most of this collector's cost on the
server), so sizes are computed at most every :data:`SIZE_INTERVAL` seconds and the last ones are
exported in between (a database that appears gets its size on the next run).
"""

from __future__ import annotations

import time

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch, ratio

# The columns below exist with these names and meanings on PostgreSQL 13..18.
DATABASES_SQL = """
SELECT s.datname,
       s.xact_commit, s.xact_rollback,
       s.blks_hit, s.blks_read,
       s.tup_returned, s.tup_fetched, s.tup_inserted, s.tup_updated, s.tup_deleted,
       s.temp_files, s.temp_bytes, s.deadlocks, s.conflicts,
       CASE WHEN %(sizes)s THEN pg_database_size(s.datid) END AS size_bytes
FROM pg_stat_database s
WHERE s.datname IS NOT NULL AND s.datid <> 0 AND s.datname <> ALL(%(excluded)s::text[])
ORDER BY s.datname
"""

SIZE_INTERVAL = 300.0  # seconds between two computations of the database sizes
SIZES_STATE_KEY = "database_sizes"  # ctx.state: (monotonic time computed, {datname: bytes})

PG_DATABASE_XACT_COMMIT_TOTAL = MetricSpec(
    "vecmon_pg_database_xact_commit_total", "counter",
    "Transactions committed in the database (xact_commit).", ("datname",))
PG_DATABASE_XACT_ROLLBACK_TOTAL = MetricSpec(
    "vecmon_pg_database_xact_rollback_total", "counter",
    "Transactions rolled back in the database (xact_rollback).", ("datname",))
PG_DATABASE_BLKS_HIT_TOTAL = MetricSpec(
    "vecmon_pg_database_blks_hit_total", "counter",
    "Block reads served from shared buffers (buffer-cache hits).", ("datname",))
PG_DATABASE_BLKS_READ_TOTAL = MetricSpec(
    "vecmon_pg_database_blks_read_total", "counter",
    "Blocks read from the OS (page cache or disk) because they were not in shared buffers.", ("datname",))
PG_DATABASE_TUP_RETURNED_TOTAL = MetricSpec(
    "vecmon_pg_database_tup_returned_total", "counter",
    "Rows returned by sequential scans and index entries read by index scans.", ("datname",))
PG_DATABASE_TUP_FETCHED_TOTAL = MetricSpec(
    "vecmon_pg_database_tup_fetched_total", "counter",
    "Live rows fetched by index scans in the database (tup_fetched).", ("datname",))
PG_DATABASE_TUP_INSERTED_TOTAL = MetricSpec(
    "vecmon_pg_database_tup_inserted_total", "counter",
    "Rows inserted by queries in the database (tup_inserted).", ("datname",))
PG_DATABASE_TUP_UPDATED_TOTAL = MetricSpec(
    "vecmon_pg_database_tup_updated_total", "counter",
    "Rows updated by queries in the database, HOT updates included (tup_updated).", ("datname",))
PG_DATABASE_TUP_DELETED_TOTAL = MetricSpec(
    "vecmon_pg_database_tup_deleted_total", "counter",
    "Rows deleted by queries in the database (tup_deleted).", ("datname",))
PG_DATABASE_TEMP_FILES_TOTAL = MetricSpec(
    "vecmon_pg_database_temp_files_total", "counter",
    "Temporary files created by queries (sorts and hashes spilling past work_mem).", ("datname",))
PG_DATABASE_TEMP_BYTES_TOTAL = MetricSpec(
    "vecmon_pg_database_temp_bytes_total", "counter",
    "Bytes written to temporary files by queries.", ("datname",))
PG_DATABASE_DEADLOCKS_TOTAL = MetricSpec(
    "vecmon_pg_database_deadlocks_total", "counter",
    "Deadlocks detected in the database (each aborts one of the transactions).", ("datname",))
PG_DATABASE_CONFLICTS_TOTAL = MetricSpec(
    "vecmon_pg_database_conflicts_total", "counter",
    "Queries cancelled by recovery conflicts (standbys only; 0 on a primary).", ("datname",))

# (declared counter, pg_stat_database column) for the plain counters.
COUNTERS: tuple[tuple[MetricSpec, str], ...] = (
    (PG_DATABASE_XACT_COMMIT_TOTAL, "xact_commit"),
    (PG_DATABASE_XACT_ROLLBACK_TOTAL, "xact_rollback"),
    (PG_DATABASE_BLKS_HIT_TOTAL, "blks_hit"),
    (PG_DATABASE_BLKS_READ_TOTAL, "blks_read"),
    (PG_DATABASE_TUP_RETURNED_TOTAL, "tup_returned"),
    (PG_DATABASE_TUP_FETCHED_TOTAL, "tup_fetched"),
    (PG_DATABASE_TUP_INSERTED_TOTAL, "tup_inserted"),
    (PG_DATABASE_TUP_UPDATED_TOTAL, "tup_updated"),
    (PG_DATABASE_TUP_DELETED_TOTAL, "tup_deleted"),
    (PG_DATABASE_TEMP_FILES_TOTAL, "temp_files"),
    (PG_DATABASE_TEMP_BYTES_TOTAL, "temp_bytes"),
    (PG_DATABASE_DEADLOCKS_TOTAL, "deadlocks"),
    (PG_DATABASE_CONFLICTS_TOTAL, "conflicts"),
)


PG_DATABASE_SIZE_BYTES = MetricSpec(
    "vecmon_pg_database_size_bytes", "gauge",
    "Disk space used by the database (pg_database_size), in bytes; computed at most every 5 minutes.",
    ("datname",))
PG_DATABASE_CACHE_HIT_RATIO = MetricSpec(
    "vecmon_pg_database_cache_hit_ratio", "gauge",
    "Buffer-cache hit ratio since the last stats reset: blks_hit / (blks_hit + blks_read), 0..1. "
    "Absent while the database has read no blocks.",
    ("datname",))


class DatabasesCollector:
    """Cumulative pg_stat_database counters, database size and cache hit ratio per database."""

    name = "databases"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        *(spec for spec, _ in COUNTERS),
        PG_DATABASE_SIZE_BYTES,
        PG_DATABASE_CACHE_HIT_RATIO,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        excluded = list(getattr(ctx.settings, "exclude_databases", []))
        computed, sizes = ctx.state.get(SIZES_STATE_KEY, (None, {}))
        now = time.monotonic()
        refresh = computed is None or now - computed >= SIZE_INTERVAL
        rows = fetch(ctx.conn, DATABASES_SQL, {"excluded": excluded, "sizes": refresh})
        if refresh:
            sizes = {row["datname"]: row["size_bytes"] for row in rows}
            ctx.state[SIZES_STATE_KEY] = (now, sizes)
        elif any(row["datname"] not in sizes for row in rows):
            ctx.state[SIZES_STATE_KEY] = (None, sizes)  # a new database: sizes again on the next run
        for row in rows:
            datname = row["datname"]
            for spec, column in COUNTERS:
                emitter.add(spec.name, row[column], datname)
            emitter.add(PG_DATABASE_SIZE_BYTES.name, sizes.get(datname), datname)
            hits, reads = row["blks_hit"], row["blks_read"]
            total = None if hits is None or reads is None else hits + reads
            emitter.add(PG_DATABASE_CACHE_HIT_RATIO.name, ratio(hits, total), datname)
        return emitter.families()
