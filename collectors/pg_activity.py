"""Long-running queries and lock waits, server-wide (``pg_stat_activity``, ``pg_locks``).

Cluster-wide (``scope = "server"``): both views show every database of the server.

* Long-running queries: client sessions whose current statement (``state = 'active'``) started
  longer ago than the target's ``long_running_threshold`` (default 30 s, the threshold of the
  seeds' "long-running queries" check), counted per database, and the age of the oldest running
  statement per database (0 when none runs). vecmon's own sessions and this backend are left
  out. Query texts are not exported (unbounded, and they may carry data); the runbook query finds
  them.
* Lock waits: heavyweight lock requests that are not granted, by lock mode. Every standard mode
  gets a sample (0 when nobody waits), so a dashboard shows a flat line rather than nothing.
  Each waiting backend waits for one lock, so the sum is the number of blocked sessions (the
  connections collector has them per database).

``pg_monitor`` includes ``pg_read_all_stats``, so statements of every role are visible. All
columns used exist with the same meaning on PostgreSQL 13..18.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch
from collectors.pg_session import APPLICATION_NAME

DEFAULT_THRESHOLD = 30.0  # seconds, used when the target's settings have none

# The eight table-level lock modes (SIReadLock, the ninth in pg_locks, is never waited for).
LOCK_MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
              "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")

# Every connectable database (0 when nothing runs there) and any other datname a statement runs in,
# in one round trip.
QUERIES_SQL = """
SELECT coalesce(d.datname, q.datname) AS datname,
       coalesce(q.long_running, 0) AS long_running,
       q.oldest_seconds
FROM (SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate) d
FULL JOIN (
    SELECT coalesce(datname::text, '') AS datname,
           count(*) FILTER (WHERE clock_timestamp() - query_start > make_interval(secs => %(threshold)s))
               AS long_running,
           max(greatest(0, extract(epoch FROM clock_timestamp() - query_start))) AS oldest_seconds
    FROM pg_stat_activity
    WHERE backend_type = 'client backend'
      AND state = 'active'
      AND pid <> pg_backend_pid()
      AND application_name IS DISTINCT FROM %(app)s
    GROUP BY 1
) q ON q.datname = d.datname
"""

LOCK_WAITS_SQL = """
SELECT mode, count(*) AS waiting FROM pg_locks WHERE NOT granted GROUP BY mode ORDER BY mode
"""


PG_LONG_RUNNING_QUERIES = MetricSpec(
    "vecmon_pg_long_running_queries", "gauge",
    "Client statements running longer than the target's long_running_threshold, by database "
    "(vecmon's own sessions excluded).", ("datname",))
PG_OLDEST_QUERY_AGE_SECONDS = MetricSpec(
    "vecmon_pg_oldest_query_age_seconds", "gauge",
    "Seconds the longest-running active client statement in the database has been running (0 "
    "when none runs).", ("datname",))
PG_LONG_RUNNING_QUERY_THRESHOLD_SECONDS = MetricSpec(
    "vecmon_pg_long_running_query_threshold_seconds", "gauge",
    "The long_running_threshold the long-running query count uses, in seconds.")
PG_LOCK_WAITS = MetricSpec("vecmon_pg_lock_waits", "gauge",
                           "Heavyweight lock requests waiting to be granted, server-wide, by lock mode (pg_locks with "
                           "granted = false).", ("mode",))


class ActivityCollector:
    """Queries running longer than a threshold (count and oldest, per database) and lock waits by mode.

    ``scope = "server"``: pg_stat_activity and pg_locks are cluster-wide; run it once per server.
    """

    name = "activity"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_LONG_RUNNING_QUERIES,
        PG_OLDEST_QUERY_AGE_SECONDS,
        PG_LONG_RUNNING_QUERY_THRESHOLD_SECONDS,
        PG_LOCK_WAITS,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        threshold = float(getattr(ctx.settings, "long_running_threshold", DEFAULT_THRESHOLD))
        emitter.add(PG_LONG_RUNNING_QUERY_THRESHOLD_SECONDS.name, threshold)

        counts: dict[str, int] = {}
        oldest: dict[str, float] = {}
        for row in fetch(ctx.conn, QUERIES_SQL, {"threshold": threshold, "app": APPLICATION_NAME}):
            counts[row["datname"]] = int(row["long_running"])
            oldest[row["datname"]] = float(row["oldest_seconds"] or 0.0)
        for datname in sorted(counts):
            emitter.add(PG_LONG_RUNNING_QUERIES.name, counts[datname], datname)
            emitter.add(PG_OLDEST_QUERY_AGE_SECONDS.name, oldest[datname], datname)

        waits = dict.fromkeys(LOCK_MODES, 0)
        for row in fetch(ctx.conn, LOCK_WAITS_SQL):
            waits[row["mode"]] = int(row["waiting"])
        for mode, count in waits.items():
            emitter.add(PG_LOCK_WAITS.name, count, mode)
        return emitter.families()
