"""PostgreSQL dashboard: availability, connections, throughput, cache, tables, indexes,
statements, WAL, checkpoints and replication of every database target."""

from __future__ import annotations

from typing import Any

from collectors.pg_connections import (
    PG_CONNECTIONS,
    PG_CONNECTIONS_LOCK_WAITING,
    PG_CONNECTIONS_MAX,
    PG_CONNECTIONS_USED,
    PG_CONNECTIONS_USED_RATIO,
    PG_OLDEST_TRANSACTION_AGE_SECONDS,
)
from collectors.pg_databases import (
    PG_DATABASE_BLKS_HIT_TOTAL,
    PG_DATABASE_BLKS_READ_TOTAL,
    PG_DATABASE_CONFLICTS_TOTAL,
    PG_DATABASE_DEADLOCKS_TOTAL,
    PG_DATABASE_SIZE_BYTES,
    PG_DATABASE_TEMP_BYTES_TOTAL,
    PG_DATABASE_XACT_COMMIT_TOTAL,
    PG_DATABASE_XACT_ROLLBACK_TOTAL,
)
from collectors.pg_indexes import PG_INDEX_INVALID, PG_INDEX_SCANS_TOTAL, PG_INDEX_SIZE_BYTES, PG_INDEX_UNUSED
from collectors.pg_server import (
    PG_CHECKPOINT_SYNC_SECONDS_TOTAL,
    PG_CHECKPOINT_WRITE_SECONDS_TOTAL,
    PG_CHECKPOINTS_TOTAL,
    PG_IN_RECOVERY,
    PG_REPLICATION_LAG_SECONDS,
    PG_REPLICATION_SLOT_ACTIVE,
    PG_REPLICATION_SLOT_RETAINED_WAL_BYTES,
    PG_SERVER_INFO,
    PG_STANDBY_REPLAY_LAG_SECONDS,
    PG_UPTIME_SECONDS,
    PG_WAL_DIRECTORY_BYTES,
    PG_WAL_WRITTEN_BYTES_TOTAL,
)
from collectors.pg_statements import (
    PG_STATEMENT_CALLS_TOTAL,
    PG_STATEMENT_EXEC_SECONDS_TOTAL,
    PG_STATEMENT_MEAN_EXEC_SECONDS,
)
from collectors.pg_tables import (
    PG_TABLE_CACHE_HIT_RATIO,
    PG_TABLE_DEAD_TUPLE_RATIO,
    PG_TABLE_IDX_SCAN_TOTAL,
    PG_TABLE_INDEX_SCAN_RATIO,
    PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS,
    PG_TABLE_LIVE_TUPLES,
    PG_TABLE_SEQ_SCAN_TOTAL,
    PG_TABLE_SIZE_BYTES,
)
from collectors.registry import DATABASE_COLLECTORS
from collectors.self_metrics import BUILD_INFO, COLLECTOR_RUNS_TOTAL, UP
from dashboards.facade import (
    Panel,
    bargauge,
    dashboard,
    explain_empty,
    gauge,
    higher_is_better,
    lower_is_better,
    m,
    missing_capability,
    q,
    query_var,
    rate,
    row,
    standard_vars,
    stat,
    steps,
    table,
    timeseries,
)
from dashboards.pg_signals import pg_signal_panels
from dashboards.targets import Targets

UID = "vecmon-postgres"
UP_MAPPINGS = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0},
                                             "1": {"text": "UP", "color": "green", "index": 1}}}]


def target_var(label: str = "Database") -> Any:
    """The database targets (by a database collector's run counter, so a target that is down is listed)."""
    collectors = "|".join(sorted(DATABASE_COLLECTORS))
    return query_var("target", label, f'label_values({COLLECTOR_RUNS_TOTAL.name}{{job=~"$job", instance=~"$instance", '
                                      f'collector=~"{collectors}"}}, target)')


def server_var() -> Any:
    """The PostgreSQL servers (cluster-wide series carry a ``server`` label: host:port)."""
    return query_var("server", "Server",
                     f'label_values({PG_CONNECTIONS_MAX.name}{{job=~"$job", instance=~"$instance"}}, server)')


SERVER = 'server=~"$server"'


def s(name: str, *extra: str) -> str:
    """A cluster-wide metric: selected by ``$server`` (its ``target`` is the server's first target only)."""
    return m(name, SERVER, *extra, target=False)


def variables() -> list[Any]:
    return [*standard_vars(BUILD_INFO.name), server_var(), target_var()]


def _overview(t: Targets) -> list[Panel]:
    return [
        row("Availability"),
        stat("Target reachable", f"1 when vecmon reached the database on its last attempt ({UP.name}).", "none",
             [q(f"min by (target) ({m(UP.name)})", "{{target}}")], mappings=UP_MAPPINGS,
             thresholds=steps(("red", None), ("green", 1)), color_mode="background", w=4),
        stat("PostgreSQL version", f"Server version of each target ({PG_SERVER_INFO.name}).", "none",
             [q(f"max by (target, version) ({s(PG_SERVER_INFO.name)})", "{{target}}: {{version}}")],
             text_mode="name", w=5),
        stat("Uptime", "Time since the postmaster started; a reset means a restart.", "dtdurations",
             [q(f"min by (target) ({s(PG_UPTIME_SECONDS.name)})", "{{target}}")], w=5),
        gauge("Connections used", "Client connections / max_connections; new connections fail near 100 % "
              f"(alert above {t.connections_used.bad:.0%}).", "percentunit",
              [q(f"max by (target) ({s(PG_CONNECTIONS_USED_RATIO.name)})", "{{target}}")],
              thresholds=lower_is_better(t.connections_used.good, t.connections_used.bad), decimals=1, w=5, h=4),
        stat("In recovery", "1 when the server is a standby (pg_is_in_recovery).", "bool_yes_no",
             [q(f"max by (target) ({s(PG_IN_RECOVERY.name)})", "{{target}}")], w=5),
    ]


def _connections(t: Targets) -> list[Panel]:
    return [
        row("Connections"),
        timeseries("Connections by state", "Client sessions per database and state from pg_stat_activity "
                   "(vecmon's own sessions excluded). Many 'idle in transaction' sessions hold back vacuum.", "short",
                   [q(f"sum by (target, datname, state) ({s(PG_CONNECTIONS.name)})",
                      "{{target}}/{{datname}} {{state}}")], stack=True, w=12),
        timeseries("Connection slots", "All client connections (vecmon's included) against max_connections.",
                   "short", [q(f"max by (target) ({s(PG_CONNECTIONS_USED.name)})", "{{target}} used"),
                             q(f"max by (target) ({s(PG_CONNECTIONS_MAX.name)})", "{{target}} max")], w=12),
        timeseries("Sessions waiting for locks", "Client sessions waiting for a heavyweight lock.", "short",
                   [q(f"sum by (target, datname) ({s(PG_CONNECTIONS_LOCK_WAITING.name)})",
                      "{{target}}/{{datname}}")], thresholds=lower_is_better(1, 5), threshold_style="line", w=12),
        timeseries("Oldest open transaction", "Age of the oldest open client transaction per database; long "
                   "transactions block vacuum and bloat HNSW indexes.", "s",
                   [q(f"max by (target, datname) ({s(PG_OLDEST_TRANSACTION_AGE_SECONDS.name)})",
                      "{{target}}/{{datname}}")],
                   thresholds=lower_is_better(t.long_transaction.good, t.long_transaction.bad), threshold_style="line",
                   w=12),
    ]


def _databases(t: Targets) -> list[Panel]:
    db = "sum by (target, datname)"
    hits = f"{db} ({rate(s(PG_DATABASE_BLKS_HIT_TOTAL.name))})"
    reads = f"{db} ({rate(s(PG_DATABASE_BLKS_READ_TOTAL.name))})"
    return [
        row("Throughput and cache"),
        timeseries("Transactions", "Commits and rollbacks per second per database.", "ops",
                   [q(f"{db} ({rate(s(PG_DATABASE_XACT_COMMIT_TOTAL.name))})", "{{target}}/{{datname}} commit"),
                    q(f"{db} ({rate(s(PG_DATABASE_XACT_ROLLBACK_TOTAL.name))})",
                      "{{target}}/{{datname}} rollback")], w=8),
        timeseries("Rows", "Rows returned, fetched, inserted, updated and deleted per second.", "ops",
                   [q(f"{db} ({rate(m(f'vecmon_pg_database_tup_{kind}_total'))})",
                      f"{{{{target}}}}/{{{{datname}}}} {kind}")
                    for kind in ("returned", "fetched", "inserted", "updated", "deleted")], w=8),
        timeseries("Buffer cache hit ratio", "Share of block reads served from shared buffers over the rate "
                   "interval; HNSW search degrades sharply when the index does not fit in memory.", "percentunit",
                   [q(f"{hits} / ({hits} + {reads} > 0)", "{{target}}/{{datname}}")], min=0, max=1,
                   thresholds=higher_is_better(t.cache_hit_ratio.bad, t.cache_hit_ratio.good),
                   threshold_style="line", w=8),
        timeseries("Temporary files", "Bytes written to temporary files per second (sorts and hashes "
                   "spilling past work_mem).", "Bps",
                   [q(f"{db} ({rate(s(PG_DATABASE_TEMP_BYTES_TOTAL.name))})", "{{target}}/{{datname}}")], w=8),
        timeseries("Deadlocks and conflicts", "Deadlocks and recovery conflicts per second.", "ops",
                   [q(f"{db} ({rate(s(PG_DATABASE_DEADLOCKS_TOTAL.name))})", "{{target}}/{{datname}} deadlocks"),
                    q(f"{db} ({rate(s(PG_DATABASE_CONFLICTS_TOTAL.name))})", "{{target}}/{{datname}} conflicts")],
                   w=8),
        timeseries("Database size", "Disk space used by each database.", "bytes",
                   [q(f"max by (target, datname) ({s(PG_DATABASE_SIZE_BYTES.name)})", "{{target}}/{{datname}}")],
                   w=8),
    ]


def _tables(t: Targets) -> list[Panel]:
    tbl = "by (target, schema, table)"
    return [
        row("Tables and indexes"),
        table("Tables", "Largest tables: size by part, rows, dead-row ratio, share of index scans and "
              "buffer-cache hit ratio (since the last stats reset).", "short",
              [q(f"sum {tbl} ({m(PG_TABLE_SIZE_BYTES.name)})"),
               q(f"max {tbl} ({m(PG_TABLE_LIVE_TUPLES.name)})"),
               q(f"max {tbl} ({m(PG_TABLE_DEAD_TUPLE_RATIO.name)})"),
               q(f"max {tbl} ({m(PG_TABLE_INDEX_SCAN_RATIO.name)})"),
               q(f"max {tbl} ({m(PG_TABLE_CACHE_HIT_RATIO.name)})")],
              rename={"Value #A": "Size", "Value #B": "Live rows", "Value #C": "Dead ratio",
                      "Value #D": "Index scan ratio", "Value #E": "Cache hit ratio"},
              column_units={"Size": "bytes", "Dead ratio": "percentunit", "Index scan ratio": "percentunit",
                            "Cache hit ratio": "percentunit"}, sort_by="Size", h=9),
        timeseries("Dead row ratio", "Dead rows / all rows per table; dead tuples waste HNSW search slots "
                   "and lower recall until vacuum removes them.", "percentunit",
                   [q(f"topk(10, max {tbl} ({m(PG_TABLE_DEAD_TUPLE_RATIO.name)}))", "{{schema}}.{{table}}")],
                   thresholds=lower_is_better(t.dead_tuple_ratio.good, t.dead_tuple_ratio.bad),
                   threshold_style="line", min=0, w=8),
        timeseries("Sequential and index scans", "Scans per second by table; sequential scans on a vector "
                   "table usually mean the ANN index is not used.", "ops",
                   [q(f"topk(10, sum {tbl} ({rate(m(PG_TABLE_SEQ_SCAN_TOTAL.name))}))",
                      "{{schema}}.{{table}} seq"),
                    q(f"topk(10, sum {tbl} ({rate(m(PG_TABLE_IDX_SCAN_TOTAL.name))}))",
                      "{{schema}}.{{table}} index")], w=8),
        timeseries("Time since vacuum or analyze", "Seconds since the last (auto)vacuum and (auto)analyze of "
                   "each table (absent for a kind that never ran).", "s",
                   [q(f"min {tbl} ({m(PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS.name)})", "{{schema}}.{{table}}")],
                   w=8),
        table("Indexes", "Largest indexes: size, scans per second, and whether they are unused or invalid "
              "(an invalid index is maintained on writes but never used).", "short",
              [q(f"max by (target, schema, table, index, am) ({m(PG_INDEX_SIZE_BYTES.name)})"),
               q(f"sum by (target, schema, table, index, am) ({rate(m(PG_INDEX_SCANS_TOTAL.name))})"),
               q(f"max by (target, schema, table, index, am) ({m(PG_INDEX_UNUSED.name)})"),
               q(f"max by (target, schema, table, index, am) ({m(PG_INDEX_INVALID.name)})")],
              rename={"Value #A": "Size", "Value #B": "Scans/s", "Value #C": "Unused", "Value #D": "Invalid"},
              column_units={"Size": "bytes", "Scans/s": "ops", "Unused": "bool_yes_no", "Invalid": "bool_yes_no"},
              sort_by="Size", h=9),
    ]


def _statements(config: Any, t: Targets) -> list[Panel]:
    if not any("statements" in db.enabled_collectors() for db in config.databases if db.enabled):
        return []
    by = "by (target, queryid, user, vector_op)"
    return explain_empty([
        row("Statements (pg_stat_statements)"),
        timeseries("Execution time by statement", "Seconds of execution per second for the top statements "
                   "(1 = one backend busy all the time).", "s",
                   [q(f"topk(10, sum {by} ({rate(m(PG_STATEMENT_EXEC_SECONDS_TOTAL.name))}))",
                      "{{queryid}} ({{user}}, vector={{vector_op}})")], w=8),
        timeseries("Mean execution time", "Mean execution time per call of the top statements since their "
                   "entry was created.", "s",
                   [q(f"topk(10, max {by} ({m(PG_STATEMENT_MEAN_EXEC_SECONDS.name)}))",
                      "{{queryid}} ({{user}}, vector={{vector_op}})")],
                   thresholds=lower_is_better(t.ann_latency_p99.good, t.ann_latency_p99.bad),
                   threshold_style="line", w=8),
        timeseries("Calls by kind", "Statement calls per second, vector searches (a pgvector distance "
                   "operator in the query) apart from the rest.", "ops",
                   [q(f"sum by (target, vector_op) ({rate(m(PG_STATEMENT_CALLS_TOTAL.name))})",
                      "{{target}} vector={{vector_op}}")], w=8),
    ], missing_capability("pg_stat_statements", "statements"))


def _server(t: Targets) -> list[Panel]:
    in_recovery_zero = f"max by (target) ({s(PG_IN_RECOVERY.name)}) * 0"
    return [
        row("WAL, checkpoints and replication"),
        timeseries("WAL generation", "WAL bytes written per second (primaries only).", "Bps",
                   [q(f"sum by (target) ({rate(s(PG_WAL_WRITTEN_BYTES_TOTAL.name))})", "{{target}}")], w=8),
        timeseries("WAL directory", "Size of pg_wal; growth without bound usually means an inactive "
                   "replication slot or failing archiving.", "bytes",
                   [q(f"max by (target) ({s(PG_WAL_DIRECTORY_BYTES.name)})", "{{target}}")],
                   thresholds=lower_is_better(t.wal_size.good, t.wal_size.bad), threshold_style="line", w=8),
        timeseries("Checkpoints", "Checkpoints per second by trigger; many requested checkpoints mean "
                   "max_wal_size is too small.", "ops",
                   [q(f"sum by (target, kind) ({rate(s(PG_CHECKPOINTS_TOTAL.name))})", "{{target}} {{kind}}")],
                   w=8),
        timeseries("Checkpoint I/O time", "Seconds per second checkpoints spent writing and syncing.", "s",
                   [q(f"sum by (target) ({rate(s(PG_CHECKPOINT_WRITE_SECONDS_TOTAL.name))})", "{{target}} write"),
                    q(f"sum by (target) ({rate(s(PG_CHECKPOINT_SYNC_SECONDS_TOTAL.name))})", "{{target}} sync")],
                   w=8),
        timeseries("Replication lag", "Replay lag of standbys streaming from each server, and on a standby "
                   "the time since its last replayed transaction; 0 when the server has no replication.", "s",
                   [q(f"max by (target) ({s(PG_REPLICATION_LAG_SECONDS.name)}) "
                      f"or max by (target) ({m(PG_STANDBY_REPLAY_LAG_SECONDS.name)}) "
                      f"or {in_recovery_zero}", "{{target}}")],
                   thresholds=lower_is_better(t.replication_lag.good, t.replication_lag.bad), threshold_style="line",
                   w=8),
        bargauge("WAL retained by inactive slots", "WAL kept by replication slots nobody is connected to; "
                 "it grows without bound until the disk is full (0 when there are none).", "bytes",
                 [q(f"sum by (target) ({s(PG_REPLICATION_SLOT_RETAINED_WAL_BYTES.name)} "
                    f"* (1 - {s(PG_REPLICATION_SLOT_ACTIVE.name)})) or {in_recovery_zero}", "{{target}}")],
                 thresholds=lower_is_better(t.wal_size.good, t.wal_size.bad), max=None, w=8),
    ]


def build(config: Any, t: Targets) -> dict[str, Any]:
    panels = [*_overview(t), *_connections(t), *_databases(t), *_tables(t), *_statements(config, t), *_server(t),
              *pg_signal_panels()]
    return dashboard(UID, "vecmon / PostgreSQL", "Health of the monitored PostgreSQL databases: connections, "
                     "throughput, cache, tables and indexes, statements, WAL, checkpoints and replication.",
                     variables(), panels, tags=["postgresql"])
