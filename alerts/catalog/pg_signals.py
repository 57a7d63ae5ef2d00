"""Alerts on the PostgreSQL operator signals: WAL archiving, wraparound, long-running queries (rule
group ``vecmon-postgres``), from the metrics of the ``archiver``, ``wraparound`` and ``activity``
collectors."""

from __future__ import annotations

from alerts.fixtures import APP, DATABASE, MINUTE, Fixture, InputSeries, gauge
from alerts.model import AlertDef, Custom, Doc, F, T, V
from alerts.shapes import GaugeOver
from alerts.targets import collectors
from collectors.pg_activity import PG_LONG_RUNNING_QUERIES
from collectors.pg_archiver import PG_ARCHIVER_ENABLED, PG_ARCHIVER_FAILING, PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS
from collectors.pg_wraparound import PG_AUTOVACUUM_FREEZE_MAX_AGE, PG_DATABASE_FREEZE_AGE, PG_DATABASE_WRAPAROUND_RATIO

WRAPAROUND = {"target": "app", "datname": "app", "kind": "xid"}


def _archiving(metric: str, value: float) -> tuple[InputSeries, ...]:
    return (gauge(metric, APP, value), gauge(PG_ARCHIVER_ENABLED.name, APP, 1))


def _wraparound_alert(name: str, severity: str, threshold: float, source: str) -> AlertDef:
    return AlertDef(
        name=name, group="postgres", service="postgres", severity=severity, for_=5 * MINUTE,
        threshold=threshold, fmt="percent",
        summary="Database {{ $labels.datname }} on {{ $labels.target }} is approaching {{ $labels.kind }} "
                "wraparound.",
        description="The oldest unfrozen {{ $labels.kind }} ID of database {{ $labels.datname }} on "
                    "{{ $labels.target }} is " + V + " of the way to wraparound (threshold " + T + "); PostgreSQL "
                    "stops accepting writes shortly before 100%.",
        applies=collectors("wraparound"),
        shape=GaugeOver(PG_DATABASE_WRAPAROUND_RATIO.name, WRAPAROUND),
        doc=Doc("`age(datfrozenxid)` (kind `xid`) or `mxid_age(datminmxid)` (kind `multixact`) of the database "
                "divided by 2^31. Autovacuum normally freezes tables long before (at "
                "`autovacuum_freeze_max_age`, 200 million by default, about 9%); a database this old means "
                "freezing is blocked or cannot keep up.",
                source,
                ("Find the tables holding it back: `vecmon_pg_table_freeze_age` (the `wraparound_tables` "
                 "collector), or `SELECT relname, age(relfrozenxid) FROM pg_class WHERE relkind IN ('r', 'm') "
                 "ORDER BY 2 DESC LIMIT 10` in the database.",
                 "Look for what stops vacuum from freezing: long transactions (`PgLongRunningTransaction`), "
                 "abandoned replication slots or prepared transactions (`pg_prepared_xacts`), temporary tables "
                 "of long-lived sessions.",
                 "Run `VACUUM (FREEZE, VERBOSE)` on the oldest tables (a large HNSW index makes it slow: watch "
                 "`vecmon_pg_vacuum_heap_scanned_ratio`).")),
        metrics=(PG_DATABASE_WRAPAROUND_RATIO.name,))


PG_SIGNALS = [
    AlertDef(
        name="PgWalArchivingFailing", group="postgres", service="postgres", severity="critical", for_=5 * MINUTE,
        compare="event",
        condition="the archiver's most recent attempt failed (`vecmon_pg_archiver_failing == 1`) while archiving "
                  "is enabled",
        summary="WAL archiving fails on {{ $labels.target }}.",
        description="The last attempt to archive a WAL segment on {{ $labels.target }} failed and no later one has "
                    "succeeded for " + F + "; backups cannot be restored past the last archived segment and WAL "
                    "piles up in pg_wal.",
        applies=collectors("archiver"),
        shape=Custom(
            lambda p: f"{PG_ARCHIVER_FAILING.name} == 1\nand on (target)\n{PG_ARCHIVER_ENABLED.name} == 1",
            lambda p, v: Fixture(_archiving(PG_ARCHIVER_FAILING.name, 1 if v else 0), dict(APP), 1)),
        doc=Doc("`pg_stat_archiver.last_failed_time` is newer than `last_archived_time`: the "
                "`archive_command`/`archive_library` fails, and PostgreSQL keeps retrying the same segment. "
                "Point-in-time recovery, which the seeds' backup procedures (continuous WAL archiving plus daily "
                "dumps) rely on, stops at the last archived segment.",
                "Crunchy Data pgMonitor `PGArchiveCommandStatus` (critical on a failure within the last 5 "
                "minutes); "
                "seeds: backups by WAL archiving.",
                ("Read the error in the PostgreSQL log (the archiver logs the command's exit status and output).",
                 "Check the archive destination: free space, permissions, credentials, network "
                 "(`SELECT last_failed_wal FROM pg_stat_archiver` names the segment).",
                 "Watch `vecmon_pg_archiver_pending_files` and `vecmon_pg_wal_directory_bytes`: a full disk stops "
                 "the server.")),
        metrics=(PG_ARCHIVER_FAILING.name, PG_ARCHIVER_ENABLED.name)),
    AlertDef(
        name="PgWalArchivingStalled", group="postgres", service="postgres", severity="warning", for_=5 * MINUTE,
        threshold=15 * MINUTE, fmt="duration",
        summary="WAL archiving is behind on {{ $labels.target }}.",
        description="The oldest completed WAL segment on {{ $labels.target }} has been waiting " + V + " to be "
                    "archived (threshold " + T + "); the archive is at least that far behind.",
        applies=collectors("archiver"),
        shape=Custom(
            lambda p: (f"{PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name} > {p.limit}\n"
                       f"and on (target)\n{PG_ARCHIVER_ENABLED.name} == 1"),
            lambda p, v: Fixture(_archiving(PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name, v), dict(APP), v)),
        doc=Doc("A completed segment (`.ready` in `pg_wal/archive_status`) has waited longer than the threshold. "
                "This catches what failure counts miss: an `archive_command` that hangs, an archiver too slow "
                "for the WAL rate (bulk embedding loads, index builds), an archiver that is not running. The age "
                "of the last success alone would false-alarm on a quiet server, which completes segments rarely "
                "when `archive_timeout` is unset.",
                "vecmon default (15 minutes of archive lag); the seeds document an RPO for WAL-archiving backups "
                "but give no figure: set the threshold to yours.",
                ("`SELECT * FROM pg_stat_archiver`: failures (`PgWalArchivingFailing`) or a stuck command "
                 "(`pg_stat_activity` where `backend_type = 'archiver'`).",
                 "Compare the WAL rate (`rate(vecmon_pg_wal_written_bytes_total[5m])`) with what the "
                 "destination takes; archive in parallel (`archive_library`, pgBackRest async archiving).",
                 "Check free space in `pg_wal` now (`vecmon_pg_wal_directory_bytes`).")),
        metrics=(PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name, PG_ARCHIVER_ENABLED.name)),
    _wraparound_alert("PgWraparoundAgeHigh", "warning", 0.5,
                      "Crunchy Data pgMonitor `PGXIDWraparound` (warning over 50% towards wraparound)."),
    _wraparound_alert("PgWraparoundAgeCritical", "critical", 0.75,
                      "Crunchy Data pgMonitor `PGXIDWraparound` (critical over 75% towards wraparound)."),
    AlertDef(
        name="PgAutovacuumFreezeBehind", group="postgres", service="postgres", severity="warning",
        for_=30 * MINUTE, threshold=1.1, fmt="percent",
        summary="Autovacuum is not freezing {{ $labels.datname }} on {{ $labels.target }} in time.",
        description="The {{ $labels.kind }} freeze age of database {{ $labels.datname }} on {{ $labels.target }} "
                    "is " + V + " of autovacuum's freeze limit (threshold " + T + "): the anti-wraparound "
                    "autovacuums it forces are not finishing.",
        applies=collectors("wraparound"),
        shape=Custom(
            lambda p: (f"max by (target, datname, kind) ({PG_DATABASE_FREEZE_AGE.name})\n"
                       "/ on (target, kind) group_left\nvecmon_pg_autovacuum_freeze_max_age\n"
                       f"> {p.limit}"),
            lambda p, v: Fixture(
                (gauge(PG_DATABASE_FREEZE_AGE.name, WRAPAROUND, round(v * 200_000_000)),
                 gauge(PG_AUTOVACUUM_FREEZE_MAX_AGE.name, {"target": "app", "kind": "xid"}, 200_000_000)),
                dict(WRAPAROUND), round(v * 200_000_000) / 200_000_000)),
        doc=Doc("The database's freeze age (`age(datfrozenxid)` or `mxid_age(datminmxid)`) is past "
                "`autovacuum_freeze_max_age` (`autovacuum_multixact_freeze_max_age`) by more than the threshold. "
                "From that age autovacuum runs anti-wraparound vacuums that cannot be skipped or cancelled; "
                "still being past it for long means they do not finish, long before `PgWraparoundAgeHigh`.",
                "Crunchy Data pgMonitor `PGEmergencyVacuum` (warning at 110% of autovacuum_freeze_max_age).",
                ("Check running vacuums: `vecmon_pg_vacuum_running_seconds{autovacuum=\"true\"}` and "
                 "`vecmon_pg_vacuum_index_passes` (more than 1: raise `maintenance_work_mem` / "
                 "`autovacuum_work_mem`).",
                 "Find the oldest tables (`vecmon_pg_table_freeze_age`) and what holds back freezing "
                 "(long transactions, replication slots, prepared transactions).",
                 "Give autovacuum more room: `autovacuum_vacuum_cost_limit`, more `autovacuum_max_workers`, or a "
                 "manual `VACUUM (FREEZE)` off-peak.")),
        metrics=(PG_DATABASE_FREEZE_AGE.name, PG_AUTOVACUUM_FREEZE_MAX_AGE.name)),
    AlertDef(
        name="PgLongRunningQueries", group="postgres", service="postgres", severity="warning", for_=5 * MINUTE,
        threshold=0.0,
        summary="Long-running queries in {{ $labels.datname }} on {{ $labels.target }}.",
        description=V + " statements in database {{ $labels.datname }} on {{ $labels.target }} have been "
                    "running longer than the long_running_threshold (more than " + T + " of them, for " + F + ").",
        applies=collectors("activity"),
        shape=GaugeOver(PG_LONG_RUNNING_QUERIES.name, DATABASE),
        doc=Doc("Client statements (not vecmon's) have been running longer than the database target's "
                "`long_running_threshold` (30 s by default) throughout the `for` period. For a vector-search "
                "stack they are usually exact k-NN scans (no index used), a large re-embedding `UPDATE`, or "
                "statements waiting for a lock (`vecmon_pg_lock_waits`); they hold connections and snapshots.",
                "seeds: the \"long-running queries\" check lists statements running longer than 30 seconds, and "
                "the connection-exhaustion runbook starts by terminating them.",
                ("Find them: `SELECT pid, usename, application_name, now() - query_start AS runtime, "
                 "wait_event_type, query FROM pg_stat_activity WHERE state = 'active' ORDER BY query_start "
                 "LIMIT 10` (`vecmon_pg_oldest_query_age_seconds` has the longest per database).",
                 "Check their plans (`EXPLAIN`): a vector search must use its HNSW/IVFFlat index.",
                 "Cancel with `pg_cancel_backend(pid)` if it is safe; set `statement_timeout` for application "
                 "roles.")),
        metrics=(PG_LONG_RUNNING_QUERIES.name,)),
]
