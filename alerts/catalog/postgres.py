"""Alerts on PostgreSQL server statistics: connections, cache hits, scans and dead rows of vector
tables, replication, WAL (rule group ``vecmon-postgres``, service ``postgres``). The operator
signals (archiving, wraparound, long-running queries) are in :mod:`alerts.catalog.pg_signals`."""

from __future__ import annotations

from alerts.fixtures import APP, DATABASE, MINUTE, TABLE, Fixture, gauge
from alerts.model import AlertDef, Custom, Doc, Params, T, V, W
from alerts.promql import number
from alerts.shapes import GaugeOver, ShareBelow, vector_table
from alerts.targets import collectors
from collectors.pg_connections import PG_CONNECTIONS_USED_RATIO, PG_OLDEST_TRANSACTION_AGE_SECONDS
from collectors.pg_databases import PG_DATABASE_BLKS_HIT_TOTAL, PG_DATABASE_BLKS_READ_TOTAL
from collectors.pg_indexes import PG_INDEX_SIZE_BYTES
from collectors.pg_server import PG_REPLICATION_LAG_SECONDS, PG_STANDBY_REPLAY_LAG_SECONDS, PG_WAL_DIRECTORY_BYTES
from collectors.pg_tables import (
    PG_TABLE_DEAD_TUPLE_RATIO,
    PG_TABLE_DEAD_TUPLES,
    PG_TABLE_IDX_SCAN_TOTAL,
    PG_TABLE_SEQ_SCAN_TOTAL,
)


def _dead_tuples_expr(p: Params) -> str:
    expr = f"{PG_TABLE_DEAD_TUPLE_RATIO.name} > {p.limit}"
    if p.minimum:
        expr += f"\nand on (target, schema, table)\n{PG_TABLE_DEAD_TUPLES.name} >= {number(p.minimum)}"
    return expr + f"\nand on (target, schema, table)\n{p.vector_tables}"


def _dead_tuples_fixture(p: Params, value: float) -> Fixture:
    dead = max(p.minimum or 0, 1) * 10
    return Fixture((gauge(PG_TABLE_DEAD_TUPLE_RATIO.name, TABLE, value),
                    gauge(PG_TABLE_DEAD_TUPLES.name, TABLE, dead), vector_table(p, TABLE)), dict(TABLE), value)


REPLICA = {"target": "app", "application_name": "replica1", "client_addr": "10.0.0.2"}

POSTGRES = [
    AlertDef(
        name="PgConnectionsHigh", group="postgres", service="postgres", severity="warning", for_=5 * MINUTE,
        threshold=0.9, fmt="percent",
        summary="{{ $labels.target }} is running out of connections.",
        description="{{ $labels.target }} uses " + V + " of max_connections (threshold " + T + "); new "
                    "connections fail once the remaining slots are taken.",
        applies=collectors("connections"),
        shape=GaugeOver(PG_CONNECTIONS_USED_RATIO.name, APP),
        doc=Doc("Client connections (vecmon's own included) divided by `max_connections` is above the threshold. "
                "Applications start failing with `too many clients already` when it reaches 1 (minus "
                "`superuser_reserved_connections`).",
                "seeds: connection count target < 80% of max, alert > 90% of max.",
                ("See who holds the connections: `SELECT usename, application_name, state, count(*) FROM "
                 "pg_stat_activity GROUP BY 1, 2, 3 ORDER BY 4 DESC` (the vecmon dashboards show "
                 "`vecmon_pg_connections` by state).",
                 "Many `idle` sessions: put a pooler (PgBouncer, transaction mode) in front or lower the "
                 "application pools; many `idle in transaction`: fix the application or set "
                 "`idle_in_transaction_session_timeout`.",
                 "Raise `max_connections` only with the memory to back it (restart required).")),
        metrics=(PG_CONNECTIONS_USED_RATIO.name,)),
    AlertDef(
        name="PgCacheHitRatioLow", group="postgres", service="postgres", severity="warning", for_=10 * MINUTE,
        threshold=0.95, window=10 * MINUTE, minimum=1.0, compare="<", fmt="percent",
        minimum_doc="block accesses (hits + reads) per second below which the ratio is not evaluated",
        summary="Buffer-cache hit ratio of {{ $labels.datname }} on {{ $labels.target }} is low.",
        description="Over the last " + W + ", " + V + " of block accesses in database {{ $labels.datname }} on "
                    "{{ $labels.target }} were served from shared buffers (threshold " + T + "); the rest were read "
                    "from the OS page cache or disk.",
        applies=collectors("databases"),
        shape=ShareBelow(PG_DATABASE_BLKS_HIT_TOTAL.name, PG_DATABASE_BLKS_READ_TOTAL.name,
                         "target, datname", DATABASE),
        doc=Doc("`blks_hit / (blks_hit + blks_read)` of `pg_stat_database` over the window. For vector search it "
                "usually means the HNSW/IVFFlat index no longer fits in `shared_buffers`, so queries read pages "
                "from the OS.",
                "seeds: cache hit ratio target > 99%, alert < 95%.",
                ("Compare index sizes (`vecmon_pg_index_size_bytes{am=\"hnsw\"}`) with `shared_buffers` "
                 "(`vecmon_pg_setting_bytes{name=\"shared_buffers\"}`).",
                 "Look for a new large sequential scan or report query "
                 "(`vecmon_pg_statement_shared_blks_read_total`).",
                 "Warm the index after a restart (`pg_prewarm`), raise `shared_buffers` (restart), or shrink the "
                 "index (`halfvec`, fewer dimensions).")),
        metrics=(PG_DATABASE_BLKS_HIT_TOTAL.name, PG_DATABASE_BLKS_READ_TOTAL.name)),
    AlertDef(
        name="PgVectorTableIndexScanRatioLow", group="postgres", service="postgres", severity="warning",
        for_=15 * MINUTE, threshold=0.8, window=15 * MINUTE, minimum=0.01, compare="<", fmt="percent",
        minimum_doc="scans per second of the table below which the ratio is not evaluated",
        summary="Queries on vector table {{ $labels.schema }}.{{ $labels.table }} avoid its indexes.",
        description="Only " + V + " of the scans of {{ $labels.schema }}.{{ $labels.table }} on {{ $labels.target }} "
                    "used an index over the last " + W + " (threshold " + T + "); the rest were sequential scans.",
        applies=collectors("tables", "indexes"),
        shape=ShareBelow(PG_TABLE_IDX_SCAN_TOTAL.name, PG_TABLE_SEQ_SCAN_TOTAL.name,
                         "target, schema, table", TABLE, vector_tables=True),
        doc=Doc("`idx_scan / (idx_scan + seq_scan)` of a table that has a vector index (an access method in "
                "`alerting.vector_index_methods`), over the window. Sequential scans of a vector table mean "
                "exact (brute-force) distance computations over every row.",
                "seeds: index scan ratio target > 95%, alert < 80% (sequential scans).",
                ("Find the statements: `vecmon_pg_statement_calls_total{vector_op=\"true\"}` and their plans "
                 "(`EXPLAIN (ANALYZE, BUFFERS)`).",
                 "The ORDER BY must be the bare distance operator ascending with a LIMIT; a WHERE on a "
                 "distance, an expression around it, or a very selective filter makes the planner skip the index.",
                 "After a large load run `ANALYZE` on the table.")),
        metrics=(PG_TABLE_IDX_SCAN_TOTAL.name, PG_TABLE_SEQ_SCAN_TOTAL.name, PG_INDEX_SIZE_BYTES.name)),
    AlertDef(
        name="PgVectorTableDeadTuplesHigh", group="postgres", service="postgres", severity="warning",
        for_=15 * MINUTE, threshold=0.2, minimum=1000, fmt="percent",
        minimum_doc="dead rows the table must have at least",
        summary="Vector table {{ $labels.schema }}.{{ $labels.table }} has many dead rows.",
        description="" + V + " of the rows of {{ $labels.schema }}.{{ $labels.table }} on {{ $labels.target }} are "
                    "dead (threshold " + T + "); dead index entries waste HNSW search effort and lower recall.",
        applies=collectors("tables", "indexes"),
        shape=Custom(_dead_tuples_expr, _dead_tuples_fixture),
        doc=Doc("`n_dead_tup / (n_live_tup + n_dead_tup)` of a table with a vector index is above the threshold "
                "(and it has at least `minimum` dead rows). Autovacuum is not keeping up or is blocked; dead "
                "tuples in an HNSW graph consume `ef_search` slots, so queries return fewer or worse neighbours.",
                "issue 5 (20%), the default `autovacuum_vacuum_scale_factor` (0.2).",
                ("Check `vecmon_pg_table_last_maintenance_age_seconds{kind=\"autovacuum\"}` and whether a long "
                 "transaction holds back vacuum (`PgLongRunningTransaction`).",
                 "Run `VACUUM (VERBOSE) schema.table`; for update-heavy vector tables lower "
                 "`autovacuum_vacuum_scale_factor` on the table.",
                 "Re-check recall (`VectorRecallBelowTarget`) after the vacuum.")),
        metrics=(PG_TABLE_DEAD_TUPLE_RATIO.name, PG_TABLE_DEAD_TUPLES.name, PG_INDEX_SIZE_BYTES.name)),
    AlertDef(
        name="PgReplicationLagHigh", group="postgres", service="postgres", severity="warning", for_=5 * MINUTE,
        threshold=60.0, fmt="duration",
        summary="Replication lag on {{ $labels.target }} is high.",
        description="Replay lag on {{ $labels.target }} is " + V + " (threshold " + T + "); reads from the standby "
                    "{{ $labels.application_name }} return stale neighbours.",
        applies=collectors("server"),
        shape=Custom(
            lambda p: (f"{PG_REPLICATION_LAG_SECONDS.name} > {p.limit}\nor\n"
                       f"{PG_STANDBY_REPLAY_LAG_SECONDS.name} > {p.limit}"),
            lambda p, v: Fixture((gauge(PG_REPLICATION_LAG_SECONDS.name, REPLICA, v),), dict(REPLICA), v)),
        doc=Doc("On a primary, a standby's `replay_lag` (`pg_stat_replication`); on a standby, the time since the "
                "last replayed transaction while WAL is pending. Vector reads served by the standby are that far "
                "behind.",
                "vecmon default (the seeds give no figure).",
                ("Check the standby's I/O and CPU: a large index build or `VACUUM` replays slowly.",
                 "Check the network between primary and standby and `vecmon_pg_replication_lag_bytes`.",
                 "Long queries on the standby with `hot_standby_feedback`/`max_standby_streaming_delay` can "
                 "pause replay.")),
        metrics=(PG_REPLICATION_LAG_SECONDS.name, PG_STANDBY_REPLAY_LAG_SECONDS.name)),
    AlertDef(
        name="PgWalSizeHigh", group="postgres", service="postgres", severity="warning", for_=10 * MINUTE,
        threshold=1073741824.0, fmt="bytes",
        summary="WAL directory of {{ $labels.target }} is large.",
        description="The WAL directory of {{ $labels.target }} holds " + V + "B (threshold " + T + ").",
        applies=collectors("server"),
        shape=GaugeOver(PG_WAL_DIRECTORY_BYTES.name, APP),
        doc=Doc("`pg_ls_waldir()` adds up to more than the threshold. WAL piles up behind an inactive replication "
                "slot, a failing `archive_command`, or a burst of writes (bulk embedding loads, index builds) "
                "larger than `max_wal_size`.",
                "seeds: WAL size over 1 GB (for 10m).",
                ("Inactive slots: `vecmon_pg_replication_slot_active == 0` and "
                 "`vecmon_pg_replication_slot_retained_wal_bytes`; drop slots nobody uses.",
                 "Archiving: `SELECT * FROM pg_stat_archiver` (failed_count, last_failed_wal).",
                 "Bulk loads: raise `max_wal_size` or spread the load; check free disk space now.")),
        metrics=(PG_WAL_DIRECTORY_BYTES.name,)),
    AlertDef(
        name="PgLongRunningTransaction", group="postgres", service="postgres", severity="warning", for_=MINUTE,
        threshold=300.0, fmt="duration",
        summary="A transaction in {{ $labels.datname }} on {{ $labels.target }} has been open for long.",
        description="The oldest open transaction in database {{ $labels.datname }} on {{ $labels.target }} "
                    "started " + V + " ago (threshold " + T + "); it holds back vacuum and may hold locks.",
        applies=collectors("connections"),
        shape=GaugeOver(PG_OLDEST_TRANSACTION_AGE_SECONDS.name, DATABASE),
        doc=Doc("A client session (not vecmon's) has had a transaction open for longer than the threshold. Dead "
                "rows newer than it cannot be vacuumed, so vector tables bloat and HNSW recall drops; it may also "
                "hold locks that block index builds.",
                "vecmon default (5m); the seeds' runbook starts with queries running longer than 30 s.",
                ("Find it: `SELECT pid, usename, application_name, state, now() - xact_start AS age, query FROM "
                 "pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start LIMIT 5`.",
                 "`idle in transaction`: fix the client; cancel with `pg_cancel_backend(pid)`, end with "
                 "`pg_terminate_backend(pid)` if it is safe.",
                 "Set `idle_in_transaction_session_timeout` for application roles.")),
        metrics=(PG_OLDEST_TRANSACTION_AGE_SECONDS.name,)),
]
