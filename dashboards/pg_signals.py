"""PostgreSQL operator-signal panels: WAL archiving, wraparound, long-running queries and locks,
maintenance progress and vector-table bloat, pg_stat_io and pg_stat_wal.

:func:`pg_signal_panels` returns rows and panels for the PostgreSQL dashboard
(:mod:`dashboards.postgres`, whose ``$job``, ``$instance`` and ``$target`` variables they use);
thresholds follow the alerts in :mod:`alerts.catalog.pg_signals`.
"""

from __future__ import annotations

from collectors.pg_activity import PG_LOCK_WAITS, PG_LONG_RUNNING_QUERIES, PG_OLDEST_QUERY_AGE_SECONDS
from collectors.pg_archiver import (
    PG_ARCHIVER_ARCHIVED_TOTAL,
    PG_ARCHIVER_ENABLED,
    PG_ARCHIVER_FAILED_TOTAL,
    PG_ARCHIVER_FAILING,
    PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS,
    PG_ARCHIVER_PENDING_FILES,
)
from collectors.pg_io import PG_IO_BYTES_TOTAL
from collectors.pg_progress import (
    PG_CREATE_INDEX_PROGRESS_RATIO,
    PG_MAINTENANCE_OPERATIONS,
    PG_VACUUM_HEAP_SCANNED_RATIO,
    PG_VACUUM_INDEX_PASSES,
)
from collectors.pg_wal import (
    PG_WAL_BUFFERS_FULL_TOTAL,
    PG_WAL_BYTES_TOTAL,
    PG_WAL_FULL_PAGE_IMAGES_TOTAL,
    PG_WAL_RECORDS_TOTAL,
)
from collectors.pg_wraparound import (
    PG_AUTOVACUUM_FREEZE_MAX_AGE,
    PG_DATABASE_FREEZE_AGE,
    PG_DATABASE_WRAPAROUND_RATIO,
    PG_TABLE_FREEZE_AGE,
)
from collectors.vector_bloat import VECTOR_TABLE_BLOAT_RATIO
from collectors.vector_indexes import VECTOR_TABLE_ROWS
from dashboards.facade import Panel, lower_is_better, m, q, rate, row, stat, steps, table, timeseries

ARCHIVING_STALLED = 900.0  # PgWalArchivingStalled
WRAPAROUND_WARNING, WRAPAROUND_CRITICAL = 0.5, 0.75  # PgWraparoundAgeHigh / PgWraparoundAgeCritical
FREEZE_BEHIND = 1.1  # PgAutovacuumFreezeBehind
FAILING_MAPPINGS = [{"type": "value", "options": {"-1": {"text": "NOT ARCHIVING", "color": "text", "index": 0},
                                                  "0": {"text": "OK", "color": "green", "index": 1},
                                                  "1": {"text": "FAILING", "color": "red", "index": 2}}}]


def or_idle(expr: str, selector: str = PG_MAINTENANCE_OPERATIONS.name) -> str:
    """``expr``, or a 0 for each target where it has no series (nothing runs), so the panel shows a flat line
    instead of "No data"."""
    return f"{expr} or (max by (target) ({m(selector)}) * 0 unless on (target) {expr})"


def _archiving() -> list[Panel]:
    return [
        row("WAL archiving"),
        stat("Archiving", "Whether the archiver's last attempt failed (pg_stat_archiver); backups cannot be "
             "restored past the last archived segment while it fails. NOT ARCHIVING: archive_mode is off or no "
             "archive_command is set.", "none",
             [q(f"max by (target) ({m(PG_ARCHIVER_FAILING.name)} and on (target) "
                f"{m(PG_ARCHIVER_ENABLED.name)} == 1) or max by (target) ({m(PG_ARCHIVER_ENABLED.name)}) - 1",
                "{{target}}")],
             mappings=FAILING_MAPPINGS, thresholds=steps(("green", None), ("red", 1)), color_mode="background", w=6),
        timeseries("Oldest segment waiting to be archived", "How long the oldest completed WAL segment has "
                   "waited for the archiver (0 when none waits): how far point-in-time recovery is behind.", "s",
                   [q(f"max by (target) ({m(PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name)})", "{{target}}")],
                   thresholds=lower_is_better(ARCHIVING_STALLED / 3, ARCHIVING_STALLED), threshold_style="line",
                   w=9),
        timeseries("Archived and failed segments", "WAL segments archived and failed archiving attempts per "
                   "minute, and segments waiting.", "short",
                   [q(f"sum by (target) ({rate(m(PG_ARCHIVER_ARCHIVED_TOTAL.name))}) * 60", "{{target}} archived"),
                    q(f"sum by (target) ({rate(m(PG_ARCHIVER_FAILED_TOTAL.name))}) * 60", "{{target}} failed"),
                    q(f"max by (target) ({m(PG_ARCHIVER_PENDING_FILES.name)})", "{{target}} waiting")], w=9),
    ]


def _wraparound() -> list[Panel]:
    xid = 'kind="xid"'
    return [
        row("Transaction ID wraparound"),
        timeseries("Wraparound progress", "Age of each database's oldest unfrozen transaction ID (xid) and "
                   "multixact ID as a share of the 2^31 limit; autovacuum forces freezing at "
                   "autovacuum_freeze_max_age (about 9% by default).", "percentunit",
                   [q(f"max by (target, datname, kind) ({m(PG_DATABASE_WRAPAROUND_RATIO.name)})",
                      "{{target}}/{{datname}} {{kind}}")],
                   thresholds=lower_is_better(WRAPAROUND_WARNING, WRAPAROUND_CRITICAL), threshold_style="line",
                   min=0, w=8),
        timeseries("Freeze age against autovacuum's limit", "Each database's freeze age divided by "
                   "autovacuum_freeze_max_age (autovacuum_multixact_freeze_max_age for multixacts): past 100% "
                   "autovacuum forces anti-wraparound vacuums; staying past 110% means they do not finish.",
                   "percentunit",
                   [q(f"max by (target, datname, kind) ({m(PG_DATABASE_FREEZE_AGE.name)}) / on (target, kind) "
                      f"group_left max by (target, kind) ({m(PG_AUTOVACUUM_FREEZE_MAX_AGE.name)})",
                      "{{target}}/{{datname}} {{kind}}")],
                   thresholds=lower_is_better(1.0, FREEZE_BEHIND), threshold_style="line", min=0, w=8),
        table("Oldest tables", "Tables of the target's database with the oldest unfrozen transaction IDs "
              "(table or TOAST), as a share of autovacuum_freeze_max_age: above 100% autovacuum should be "
              "freezing them now.", "percentunit",
              [q(f"topk(10, max by (target, schema, table) ({m(PG_TABLE_FREEZE_AGE.name, xid)}) "
                 f"/ on (target) group_left max by (target) "
                 f"({m(PG_AUTOVACUUM_FREEZE_MAX_AGE.name, xid)}))", table=True)], w=8),
    ]


def _queries_and_locks() -> list[Panel]:
    return [
        row("Long-running queries and locks"),
        timeseries("Long-running queries", "Active client statements running longer than the target's "
                   "long_running_threshold (30 s by default), per database.", "short",
                   [q(f"sum by (target, datname) ({m(PG_LONG_RUNNING_QUERIES.name)})", "{{target}}/{{datname}}")],
                   thresholds=lower_is_better(1, 5), threshold_style="line", w=8),
        timeseries("Longest-running statement", "How long the longest active client statement of each database "
                   "has been running.", "s",
                   [q(f"max by (target, datname) ({m(PG_OLDEST_QUERY_AGE_SECONDS.name)})",
                      "{{target}}/{{datname}}")], w=8),
        timeseries("Lock waits by mode", "Heavyweight lock requests waiting to be granted, by lock mode; "
                   "AccessExclusiveLock waits usually sit behind DDL or VACUUM FULL.", "short",
                   [q(f"sum by (target, mode) ({m(PG_LOCK_WAITS.name)})", "{{target}} {{mode}}")],
                   stack=True, w=8),
    ]


def _maintenance() -> list[Panel]:
    vector = 'vector="true"'
    return [
        row("Maintenance on vector tables"),
        timeseries("VACUUM progress", "Share of the heap each running VACUUM of a vector table has scanned "
                   "(phase in the legend; 0 while none runs).", "percentunit",
                   [q(or_idle("max by (target, schema, table, phase) "
                              f"({m(PG_VACUUM_HEAP_SCANNED_RATIO.name, vector)})"),
                      "{{target}} {{schema}}.{{table}} {{phase}}")], min=0, max=1, w=8),
        timeseries("VACUUM index passes", "Completed passes over the indexes of a running VACUUM; each pass "
                   "visits the whole HNSW graph, more than one means maintenance_work_mem is too small (0 while "
                   "none runs).", "short",
                   [q(or_idle(f"max by (target, schema, table) ({m(PG_VACUUM_INDEX_PASSES.name, vector)})"),
                      "{{target}} {{schema}}.{{table}}")], w=8),
        timeseries("Index builds", "Fraction done of CREATE INDEX/REINDEX on vector tables (0 while none runs).",
                   "percentunit",
                   [q(or_idle(f"max by (target, schema, table, index, phase) "
                              f"({m(PG_CREATE_INDEX_PROGRESS_RATIO.name, vector)})"),
                      "{{target}} {{schema}}.{{index}} {{phase}}")], min=0, max=1, w=8),
        timeseries("Vector table bloat", "Estimated heap space of each vector table beyond what its live rows "
                   "need (re-embedding leaves the old versions' space behind). A table without an estimate (a "
                   "column of unknown width and no pgstattuple) is not shown; 0 for a target without one.",
                   "percentunit",
                   [q(or_idle(f"max by (target, schema, table, method) ({m(VECTOR_TABLE_BLOAT_RATIO.name)})",
                              VECTOR_TABLE_ROWS.name), "{{target}} {{schema}}.{{table}} ({{method}})")],
                   thresholds=lower_is_better(0.3, 0.5), threshold_style="line", min=0, max=1, w=12),
        timeseries("Running maintenance", "VACUUM and CREATE INDEX operations running, on vector and other tables.",
                   "short", [q(f"sum by (target, command, vector) ({m(PG_MAINTENANCE_OPERATIONS.name)})",
                               "{{target}} {{command}} vector={{vector}}")], w=12),
    ]


def _io_and_wal() -> list[Panel]:
    by = "sum by (target, backend_type)"
    read, write = 'op="read"', 'op="write"'
    return [
        row("I/O and WAL"),
        timeseries("Bytes read by backend type", "Bytes read from the OS (page cache or disk) per second by "
                   "backend type (pg_stat_io; 0 before PostgreSQL 16, which has no such view).", "Bps",
                   [q(or_idle(f"{by} ({rate(m(PG_IO_BYTES_TOTAL.name, read))})"),
                      "{{target}} {{backend_type}}")],
                   stack=True, w=8),
        timeseries("Bytes written by backend type", "Bytes written per second by backend type; client backends "
                   "writing means the background writer and checkpointer are not keeping up (0 before 16).",
                   "Bps",
                   [q(or_idle(f"{by} ({rate(m(PG_IO_BYTES_TOTAL.name, write))})"),
                      "{{target}} {{backend_type}}")],
                   stack=True, w=8),
        timeseries("WAL generation", "WAL bytes per second (pg_stat_wal, PostgreSQL 14+); bulk embedding "
                   "loads and index builds show as spikes.", "Bps",
                   [q(f"sum by (target) ({rate(m(PG_WAL_BYTES_TOTAL.name))})", "{{target}}")], w=8),
        timeseries("Full-page images", "Share of WAL records that are full-page images (the first change of a "
                   "page after a checkpoint); a high share after every checkpoint suggests a longer "
                   "checkpoint_timeout.", "percentunit",
                   [q(f"sum by (target) ({rate(m(PG_WAL_FULL_PAGE_IMAGES_TOTAL.name))}) / "
                      f"sum by (target) ({rate(m(PG_WAL_RECORDS_TOTAL.name))})", "{{target}}")],
                   min=0, max=1, w=12),
        timeseries("WAL buffers full", "Times per second WAL was written because the WAL buffers were full; a "
                   "steady rate suggests raising wal_buffers.", "short",
                   [q(f"sum by (target) ({rate(m(PG_WAL_BUFFERS_FULL_TOTAL.name))})", "{{target}}")], w=12),
    ]


def pg_signal_panels() -> list[Panel]:
    """Rows and panels of the operator signals, in dashboard order."""
    return [*_archiving(), *_wraparound(), *_queries_and_locks(), *_maintenance(), *_io_and_wal()]
