"""WAL archiving: is it configured, is it failing, how far behind is it (``pg_stat_archiver``).

Cluster-wide (``scope = "server"``): the same on whichever database the target connects to.
Point-in-time recovery and the seeds' "continuous WAL archiving + daily dumps" backups depend
on every completed WAL segment reaching the archive; these series say when that stops:

* ``failing``: the archiver's most recent attempt failed (``last_failed_time`` is newer than
  ``last_archived_time``). The archiver retries the same segment, so this stays 1 until the
  ``archive_command``/``archive_library`` works again;
* ``pending``: completed segments waiting to be archived (``.ready`` files in
  ``pg_wal/archive_status``, read with ``pg_ls_archive_statusdir()``, which ``pg_monitor`` may
  execute), and the age of the oldest: a stalled archiver shows here even when it never reports
  a failure (a hanging command, an archiver that is not running);
* ages of the last success and the last failure, and the cumulative counters.

The archive command itself is never exported (it may carry credentials); ``enabled`` only says
whether archiving is switched on for this server's role. On a standby with ``archive_mode = on``
(not ``always``) the archiver does not run, so ``enabled`` is 0 there. All columns exist with
these meanings on PostgreSQL 13..18 (``archive_library`` exists from 15; before, it reads empty).
"""

from __future__ import annotations

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch_one

ARCHIVER_SQL = """
SELECT archived_count, failed_count,
       extract(epoch FROM clock_timestamp() - last_archived_time) AS last_archived_age,
       extract(epoch FROM clock_timestamp() - last_failed_time) AS last_failed_age,
       (last_failed_time IS NOT NULL
        AND (last_archived_time IS NULL OR last_failed_time > last_archived_time)) AS failing,
       (SELECT (s.mode = 'always' OR (s.mode = 'on' AND NOT pg_is_in_recovery()))
               AND (coalesce(s.command, '') NOT IN ('', '(disabled)') OR coalesce(s.library, '') <> '')
        FROM (SELECT current_setting('archive_mode') AS mode,
                     current_setting('archive_command', true) AS command,
                     current_setting('archive_library', true) AS library) s) AS enabled,
       has_function_privilege('pg_catalog.pg_ls_archive_statusdir()', 'EXECUTE') AS can_list_status
FROM pg_stat_archiver
"""

PENDING_SQL = """
SELECT count(*) AS files,
       coalesce(extract(epoch FROM clock_timestamp() - min(modification)), 0) AS oldest_age
FROM pg_ls_archive_statusdir()
WHERE name LIKE '%.ready'
"""


PG_ARCHIVER_ENABLED = MetricSpec(
    "vecmon_pg_archiver_enabled", "gauge",
    "Whether WAL archiving runs on this server: 1 when archive_mode is on (always, on a standby) and "
    "an archive_command or archive_library is set, else 0.")
PG_ARCHIVER_ARCHIVED_TOTAL = MetricSpec("vecmon_pg_archiver_archived_total", "counter",
                                        "WAL files archived successfully (pg_stat_archiver.archived_count).")
PG_ARCHIVER_FAILED_TOTAL = MetricSpec("vecmon_pg_archiver_failed_total", "counter",
                                      "Failed attempts to archive a WAL file (pg_stat_archiver.failed_count).")
PG_ARCHIVER_FAILING = MetricSpec(
    "vecmon_pg_archiver_failing", "gauge",
    "Whether the archiver's most recent attempt failed (last failure newer than the last success): "
    "1 if so, else 0.")
PG_ARCHIVER_LAST_ARCHIVED_AGE_SECONDS = MetricSpec(
    "vecmon_pg_archiver_last_archived_age_seconds", "gauge",
    "Seconds since the last WAL file was archived successfully. Absent when none was since the "
    "last stats reset.")
PG_ARCHIVER_LAST_FAILED_AGE_SECONDS = MetricSpec(
    "vecmon_pg_archiver_last_failed_age_seconds", "gauge",
    "Seconds since the last failed archiving attempt. Absent when none failed since the last "
    "stats reset.")
PG_ARCHIVER_PENDING_FILES = MetricSpec(
    "vecmon_pg_archiver_pending_files", "gauge",
    "Completed WAL segments waiting to be archived (.ready files in pg_wal/archive_status).")
PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS = MetricSpec(
    "vecmon_pg_archiver_oldest_pending_age_seconds", "gauge",
    "Seconds the oldest WAL segment waiting to be archived has been ready (0 when none waits): "
    "how far point-in-time recovery is behind.")


class ArchiverCollector:
    """WAL archiver health: enabled, failing, pending segments, ages of the last success and failure.

    ``scope = "server"``: pg_stat_archiver and the WAL directory are cluster-wide; run it once per server.
    """

    name = "archiver"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_ARCHIVER_ENABLED,
        PG_ARCHIVER_ARCHIVED_TOTAL,
        PG_ARCHIVER_FAILED_TOTAL,
        PG_ARCHIVER_FAILING,
        PG_ARCHIVER_LAST_ARCHIVED_AGE_SECONDS,
        PG_ARCHIVER_LAST_FAILED_AGE_SECONDS,
        PG_ARCHIVER_PENDING_FILES,
        PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        row = fetch_one(ctx.conn, ARCHIVER_SQL)
        emitter.add(PG_ARCHIVER_ENABLED.name, bool(row["enabled"]))
        emitter.add(PG_ARCHIVER_ARCHIVED_TOTAL.name, row["archived_count"])
        emitter.add(PG_ARCHIVER_FAILED_TOTAL.name, row["failed_count"])
        emitter.add(PG_ARCHIVER_FAILING.name, bool(row["failing"]))
        for metric, column in ((PG_ARCHIVER_LAST_ARCHIVED_AGE_SECONDS.name, "last_archived_age"),
                               (PG_ARCHIVER_LAST_FAILED_AGE_SECONDS.name, "last_failed_age")):
            if row[column] is not None:
                emitter.add(metric, max(0.0, float(row[column])))
        if row["can_list_status"]:
            pending = fetch_one(ctx.conn, PENDING_SQL)
            emitter.add(PG_ARCHIVER_PENDING_FILES.name, pending["files"])
            emitter.add(PG_ARCHIVER_OLDEST_PENDING_AGE_SECONDS.name, max(0.0, float(pending["oldest_age"])))
        return emitter.families()
