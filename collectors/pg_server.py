"""Server-wide facts: version, uptime, recovery, key settings, replication, WAL and checkpoints.

Everything here is cluster-wide, so it is the same whichever database the target
connects to. Metric names do not change with the server version; version differences
are mapped in SQL:

* checkpoints come from ``pg_stat_checkpointer`` on PG17+ and from the checkpoint columns of
  ``pg_stat_bgwriter`` before. Before 17 restartpoints (on a standby) were counted as
  checkpoints; PG17+ counts them separately, so they are added back to keep one meaning:
  "checkpoints or restartpoints".
* WAL functions that only work on a primary (``pg_current_wal_lsn``) are wrapped in
  ``CASE WHEN pg_is_in_recovery()`` so the same statements run on primaries and standbys.

``pg_ls_waldir()`` is only called when the role may execute it (``pg_monitor`` may).
"""

from __future__ import annotations

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import every, fetch, fetch_one, setting_in_base_units, setting_unit_kind

PG17 = 170000

# Settings exported as vecmon_pg_setting_bytes{name} (memory, converted with pg_settings.unit),
# vecmon_pg_setting_seconds{name} (durations) or vecmon_pg_setting{name} (plain counts).
# All exist on PostgreSQL 13..18.
SETTINGS = (
    "shared_buffers", "work_mem", "maintenance_work_mem", "effective_cache_size", "wal_buffers",
    "max_wal_size", "min_wal_size", "checkpoint_timeout",
    "max_connections", "superuser_reserved_connections", "max_worker_processes", "max_parallel_workers",
    "autovacuum_max_workers", "max_wal_senders", "max_replication_slots",
)

STATUS_SQL = """
SELECT greatest(0, extract(epoch FROM clock_timestamp() - pg_postmaster_start_time())) AS uptime_seconds,
       pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END AS wal_lsn_bytes,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            WHEN pg_last_xact_replay_timestamp() IS NULL THEN NULL
            ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()))
       END AS standby_replay_lag_seconds,
       has_function_privilege('pg_catalog.pg_ls_waldir()', 'EXECUTE') AS can_list_waldir,
       c.timed, c.requested, c.write_seconds, c.sync_seconds, c.buffers_written
FROM ({checkpoints}) c
"""  # with the checkpoint counters: one round trip for the one-row views

SETTINGS_SQL = """
SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%(names)s) ORDER BY name
"""

# Standbys (and pg_basebackup/pg_receivewal clients) streaming from this server. Several
# walsenders can share application_name and address, so they are folded into the worst one.
REPLICATION_SQL = """
SELECT coalesce(application_name, '') AS application_name,
       coalesce(host(client_addr), '') AS client_addr,
       max(extract(epoch FROM replay_lag)) AS lag_seconds,
       max(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                                ELSE pg_current_wal_lsn() END, replay_lsn)) AS lag_bytes
FROM pg_stat_replication
GROUP BY 1, 2
ORDER BY 1, 2
"""

SLOTS_SQL = """
SELECT slot_name, slot_type, active,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                            ELSE pg_current_wal_lsn() END, restart_lsn) AS retained_bytes
FROM pg_replication_slots
ORDER BY slot_name
"""

WALDIR_SQL = """
SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes FROM pg_ls_waldir()
"""

CHECKPOINTS_SQL_PG17 = """
SELECT num_timed + restartpoints_timed AS timed,
       num_requested + restartpoints_req AS requested,
       write_time / 1000.0 AS write_seconds,
       sync_time / 1000.0 AS sync_seconds,
       buffers_written
FROM pg_stat_checkpointer
"""

CHECKPOINTS_SQL_PRE17 = """
SELECT checkpoints_timed AS timed,
       checkpoints_req AS requested,
       checkpoint_write_time / 1000.0 AS write_seconds,
       checkpoint_sync_time / 1000.0 AS sync_seconds,
       buffers_checkpoint AS buffers_written
FROM pg_stat_bgwriter
"""

STANDBY_LABELS = ("application_name", "client_addr")
SLOT_LABELS = ("slot_name", "slot_type")


PG_SERVER_INFO = MetricSpec("vecmon_pg_server_info", "gauge",
                            "Always 1; labels carry the PostgreSQL version (short form) and server_version_num.",
                            ("version", "version_num"))
PG_SERVER_VERSION_NUM = MetricSpec("vecmon_pg_server_version_num", "gauge",
                                   "The server_version_num of the server, e.g. 180001 for 18.1.")
PG_UPTIME_SECONDS = MetricSpec("vecmon_pg_uptime_seconds", "gauge",
                               "Seconds since the postmaster started (pg_postmaster_start_time).")
PG_IN_RECOVERY = MetricSpec(
    "vecmon_pg_in_recovery", "gauge",
    "Whether the server is a standby or in recovery (pg_is_in_recovery): 1 if so, 0 on a primary.")
PG_SETTING_BYTES = MetricSpec(
    "vecmon_pg_setting_bytes", "gauge",
    "Selected memory and WAL-size settings in bytes (shared_buffers, work_mem, max_wal_size...).",
    ("name",))
PG_SETTING_SECONDS = MetricSpec("vecmon_pg_setting_seconds", "gauge",
                                "Selected duration settings in seconds (checkpoint_timeout).", ("name",))
PG_SETTING = MetricSpec("vecmon_pg_setting", "gauge",
                        "Selected settings that are plain counts (max_connections, max_worker_processes...).",
                        ("name",))
PG_REPLICATION_LAG_SECONDS = MetricSpec(
    "vecmon_pg_replication_lag_seconds", "gauge",
    "Replay lag of a standby streaming from this server, in seconds (pg_stat_replication.replay_lag; "
    "absent when the standby reported no recent activity).", STANDBY_LABELS)
PG_REPLICATION_LAG_BYTES = MetricSpec(
    "vecmon_pg_replication_lag_bytes", "gauge",
    "WAL bytes a standby streaming from this server has not replayed yet.", STANDBY_LABELS)
PG_REPLICATION_SLOT_ACTIVE = MetricSpec(
    "vecmon_pg_replication_slot_active", "gauge",
    "Whether a client is currently connected to the replication slot: 1 if so, else 0.", SLOT_LABELS)
PG_REPLICATION_SLOT_RETAINED_WAL_BYTES = MetricSpec(
    "vecmon_pg_replication_slot_retained_wal_bytes", "gauge",
    "WAL bytes the replication slot keeps from being removed (current LSN - restart_lsn); an "
    "inactive slot retains WAL without bound.", SLOT_LABELS)
PG_STANDBY_REPLAY_LAG_SECONDS = MetricSpec(
    "vecmon_pg_standby_replay_lag_seconds", "gauge",
    "On a standby: seconds since the last replayed transaction was committed on the primary, 0 when "
    "everything received has been replayed. Absent on a primary.")
PG_WAL_WRITTEN_BYTES_TOTAL = MetricSpec(
    "vecmon_pg_wal_written_bytes_total", "counter",
    "Current WAL write position (pg_current_wal_lsn) as bytes since 0/0: rate() is the WAL "
    "generation rate. Absent on a standby.")
PG_WAL_DIRECTORY_BYTES = MetricSpec("vecmon_pg_wal_directory_bytes", "gauge",
                                    "Total size of the files in the WAL directory (pg_ls_waldir), in bytes.")
PG_WAL_DIRECTORY_FILES = MetricSpec("vecmon_pg_wal_directory_files", "gauge",
                                    "Number of files in the WAL directory (pg_ls_waldir).")
PG_CHECKPOINTS_TOTAL = MetricSpec(
    "vecmon_pg_checkpoints_total", "counter",
    "Checkpoints (or restartpoints on a standby) by trigger: kind=timed (checkpoint_timeout) or "
    "kind=requested (WAL volume, CHECKPOINT command, ...).", ("kind",))
PG_CHECKPOINT_WRITE_SECONDS_TOTAL = MetricSpec("vecmon_pg_checkpoint_write_seconds_total", "counter",
                                               "Time checkpoints spent writing dirty buffers to disk, in seconds.")
PG_CHECKPOINT_SYNC_SECONDS_TOTAL = MetricSpec("vecmon_pg_checkpoint_sync_seconds_total", "counter",
                                              "Time checkpoints spent syncing files to disk, in seconds.")
PG_CHECKPOINT_BUFFERS_WRITTEN_TOTAL = MetricSpec("vecmon_pg_checkpoint_buffers_written_total", "counter",
                                                 "Shared buffers written by checkpoints and restartpoints.")


class ServerCollector:
    """Version, uptime, recovery state, settings, replication, WAL and checkpoint statistics."""

    name = "server"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_SERVER_INFO,
        PG_SERVER_VERSION_NUM,
        PG_UPTIME_SECONDS,
        PG_IN_RECOVERY,
        PG_SETTING_BYTES,
        PG_SETTING_SECONDS,
        PG_SETTING,
        PG_REPLICATION_LAG_SECONDS,
        PG_REPLICATION_LAG_BYTES,
        PG_REPLICATION_SLOT_ACTIVE,
        PG_REPLICATION_SLOT_RETAINED_WAL_BYTES,
        PG_STANDBY_REPLAY_LAG_SECONDS,
        PG_WAL_WRITTEN_BYTES_TOTAL,
        PG_WAL_DIRECTORY_BYTES,
        PG_WAL_DIRECTORY_FILES,
        PG_CHECKPOINTS_TOTAL,
        PG_CHECKPOINT_WRITE_SECONDS_TOTAL,
        PG_CHECKPOINT_SYNC_SECONDS_TOTAL,
        PG_CHECKPOINT_BUFFERS_WRITTEN_TOTAL,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None and ctx.facts is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        conn, facts = ctx.conn, ctx.facts
        emitter.add(PG_SERVER_INFO.name, 1, facts.version.split(" ")[0], facts.version_num)
        emitter.add(PG_SERVER_VERSION_NUM.name, facts.version_num)

        checkpoints_sql = CHECKPOINTS_SQL_PG17 if facts.version_num >= PG17 else CHECKPOINTS_SQL_PRE17
        status = fetch_one(conn, STATUS_SQL.format(checkpoints=checkpoints_sql))
        emitter.add(PG_UPTIME_SECONDS.name, status["uptime_seconds"])
        emitter.add(PG_IN_RECOVERY.name, status["in_recovery"])
        emitter.add(PG_STANDBY_REPLAY_LAG_SECONDS.name, status["standby_replay_lag_seconds"])
        emitter.add(PG_WAL_WRITTEN_BYTES_TOTAL.name, status["wal_lsn_bytes"])

        settings = every(ctx.state, "settings", lambda: fetch(conn, SETTINGS_SQL, {"names": list(SETTINGS)}))
        for row in settings:  # read again every 5 minutes: they change only on a reload or restart
            metric = {"bytes": PG_SETTING_BYTES.name, "seconds": PG_SETTING_SECONDS.name}.get(
                setting_unit_kind(row["unit"]), PG_SETTING.name)
            emitter.add(metric, setting_in_base_units(row["setting"], row["unit"]), row["name"])

        for row in fetch(conn, REPLICATION_SQL):
            labels = (row["application_name"], row["client_addr"])
            emitter.add(PG_REPLICATION_LAG_SECONDS.name, row["lag_seconds"], *labels)
            emitter.add(PG_REPLICATION_LAG_BYTES.name, row["lag_bytes"], *labels)

        for row in fetch(conn, SLOTS_SQL):
            labels = (row["slot_name"], row["slot_type"])
            emitter.add(PG_REPLICATION_SLOT_ACTIVE.name, row["active"], *labels)
            emitter.add(PG_REPLICATION_SLOT_RETAINED_WAL_BYTES.name, row["retained_bytes"], *labels)

        if status["can_list_waldir"]:
            waldir = fetch_one(conn, WALDIR_SQL)
            emitter.add(PG_WAL_DIRECTORY_BYTES.name, waldir["bytes"])
            emitter.add(PG_WAL_DIRECTORY_FILES.name, waldir["files"])

        checkpoints = status
        emitter.add(PG_CHECKPOINTS_TOTAL.name, checkpoints["timed"], "timed")
        emitter.add(PG_CHECKPOINTS_TOTAL.name, checkpoints["requested"], "requested")
        emitter.add(PG_CHECKPOINT_WRITE_SECONDS_TOTAL.name, checkpoints["write_seconds"])
        emitter.add(PG_CHECKPOINT_SYNC_SECONDS_TOTAL.name, checkpoints["sync_seconds"])
        emitter.add(PG_CHECKPOINT_BUFFERS_WRITTEN_TOTAL.name, checkpoints["buffers_written"])
        return emitter.families()
