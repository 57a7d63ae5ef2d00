"""Client connections: counts by database and state, lock waits, oldest transaction, usage of max_connections.

Source: ``pg_stat_activity`` (client backends only; background workers, autovacuum and
walsenders are not connections an application competes for). vecmon's own sessions
(``application_name = 'vecmon'``) and the collecting backend itself are left out of the
per-state counts, so the monitor does not show up as an "active" connection. They are
counted in the usage ratio, because they occupy a connection slot like any other client.

Every connectable database gets a zero sample for the common states, so a database that
goes quiet reads 0 instead of losing its series.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch, fetch_one, ratio
from collectors.pg_session import APPLICATION_NAME

# States that always get a (possibly zero) sample per database; any other state reported
# by the server (e.g. "fastpath function call", "disabled") is emitted when present.
COMMON_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")

ACTIVITY_SQL = """
SELECT coalesce(datname, '') AS datname,
       coalesce(state, 'unknown') AS state,
       count(*) AS sessions,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS lock_waiting,
       max(extract(epoch FROM clock_timestamp() - xact_start)) AS oldest_xact_seconds
FROM pg_stat_activity
WHERE backend_type = 'client backend'
  AND pid <> pg_backend_pid()
  AND application_name IS DISTINCT FROM %(app)s
GROUP BY 1, 2
"""

# The server-wide figures and the databases that get a (possibly zero) sample, in one round trip.
USAGE_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
       current_setting('max_connections')::int AS max_connections,
       ARRAY(SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname)
           AS databases
"""


PG_CONNECTIONS = MetricSpec(
    "vecmon_pg_connections", "gauge",
    "Client connections by database and state (pg_stat_activity), excluding vecmon's own sessions.",
    ("datname", "state"))
PG_CONNECTIONS_LOCK_WAITING = MetricSpec(
    "vecmon_pg_connections_lock_waiting", "gauge",
    "Client sessions currently waiting for a heavyweight lock (wait_event_type = 'Lock'), by database.",
    ("datname",))
PG_OLDEST_TRANSACTION_AGE_SECONDS = MetricSpec(
    "vecmon_pg_oldest_transaction_age_seconds", "gauge",
    "Age of the oldest open transaction of a client session in the database, in seconds "
    "(0 when no transaction is open); long-open transactions hold back vacuum.",
    ("datname",))
PG_CONNECTIONS_USED = MetricSpec(
    "vecmon_pg_connections_used", "gauge",
    "All client connections to the server, including vecmon's own (they occupy slots too).")
PG_CONNECTIONS_MAX = MetricSpec(
    "vecmon_pg_connections_max", "gauge",
    "The server's max_connections setting.")
PG_CONNECTIONS_USED_RATIO = MetricSpec(
    "vecmon_pg_connections_used_ratio", "gauge",
    "Client connections divided by max_connections (0..1); new connections fail near 1.")


class ConnectionsCollector:
    """Connection counts and connection-level health signals for the whole server."""

    name = "connections"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_CONNECTIONS,
        PG_CONNECTIONS_LOCK_WAITING,
        PG_OLDEST_TRANSACTION_AGE_SECONDS,
        PG_CONNECTIONS_USED,
        PG_CONNECTIONS_MAX,
        PG_CONNECTIONS_USED_RATIO,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        rows = fetch(ctx.conn, ACTIVITY_SQL, {"app": APPLICATION_NAME})
        usage = fetch_one(ctx.conn, USAGE_SQL)
        self._emit_activity(emitter, rows, list(usage.get("databases") or []))

        emitter.add(PG_CONNECTIONS_USED.name, usage.get("used"))
        emitter.add(PG_CONNECTIONS_MAX.name, usage.get("max_connections"))
        emitter.add(PG_CONNECTIONS_USED_RATIO.name, ratio(usage.get("used"), usage.get("max_connections")))
        return emitter.families()

    @staticmethod
    def _emit_activity(emitter: Emitter, rows: list[dict[str, Any]], databases: list[str]) -> None:
        counts: dict[tuple[str, str], int] = {(db, state): 0 for db in databases for state in COMMON_STATES}
        waiting: dict[str, int] = {db: 0 for db in databases}
        oldest: dict[str, float] = {db: 0.0 for db in databases}
        for row in rows:
            db, state = row["datname"], row["state"]
            counts[(db, state)] = counts.get((db, state), 0) + int(row["sessions"])
            waiting[db] = waiting.get(db, 0) + int(row["lock_waiting"])
            age = row["oldest_xact_seconds"]
            current = oldest.get(db, 0.0)
            oldest[db] = max(current, float(age)) if age is not None else current
        for (db, state), count in sorted(counts.items()):
            emitter.add(PG_CONNECTIONS.name, count, db, state)
        for db in sorted(waiting):
            emitter.add(PG_CONNECTIONS_LOCK_WAITING.name, waiting[db], db)
            emitter.add(PG_OLDEST_TRANSACTION_AGE_SECONDS.name, oldest[db], db)
