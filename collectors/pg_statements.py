"""Top statements of the target's database by total execution time (``pg_stat_statements``).

Disabled (not failed) when the extension is not installed in the database, or installed
but not loaded through ``shared_preload_libraries``. Only the ``limits.statements``
statements with the highest total execution time in the current database are exported;
labels are the ``queryid``, the executing ``user`` and ``vector_op``: whether the
normalised query text uses a pgvector distance operator (``<->``, ``<=>``, ``<#>``, ``<+>``,
``<~>``, ``<%>``). Raw query text is never a label.

Version differences are mapped in SQL, keyed on the *extension* version (a database can
keep an old extension version after a server upgrade):

* 1.8 (PG13) renamed ``total_time`` to ``total_exec_time`` (planning time is separate);
* 1.9 (PG14) added ``toplevel``: with ``pg_stat_statements.track = all`` the same queryid can
  appear as top-level and nested, so rows are summed per (queryid, user);
* 1.11 (PG17) renamed ``blk_read_time`` to ``shared_blk_read_time`` and 1.12 (PG18) added WAL
  and parallel columns: none of those are used, ``shared_blks_hit``/``_read`` are stable.

Rows the role may not see (without ``pg_read_all_stats``, other users' rows have NULL
queryid and ``<insufficient privilege>`` text) are skipped: they cannot be identified and
would collide. If only the text is missing, ``vector_op`` is ``"unknown"``. The texts of every
database are converted to this one's encoding when read; when a text cannot be (a SQL_ASCII
database's non-UTF-8 text, say), the statements are read without texts (``vector_op`` unknown).
"""

from __future__ import annotations

from typing import Any

import psycopg
from prometheus_client.core import Metric
from psycopg import sql

from collectors.base import CollectContext, CollectorDisabled, CollectorError, Emitter, MetricSpec
from collectors.pg_common import fetch, fetch_one, ratio, version_tuple

EXTENSION = "pg_stat_statements"
# POSIX regular expression matching pgvector's distance operators in normalised query text.
VECTOR_OPERATOR_PATTERN = r"<(->|=>|#>|\+>|~>|%>)"
HIDDEN_TEXT = "<insufficient privilege>"

EXTENSION_SQL = """
SELECT n.nspname AS schema, e.extversion AS version,
       has_schema_privilege(n.oid, 'USAGE') AS usable
FROM pg_extension e
JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = %(name)s
"""

# {schema} and {total_time} are identifiers filled in with psycopg.sql; values are parameters.
STATEMENTS_SQL = """
SELECT s.queryid::text AS queryid,
       coalesce(r.rolname, s.userid::text) AS username,
       sum(s.calls) AS calls,
       sum(s.{total_time}) / 1000.0 AS exec_seconds,
       sum(s.rows) AS rows,
       sum(s.shared_blks_hit) AS shared_blks_hit,
       sum(s.shared_blks_read) AS shared_blks_read,
       CASE WHEN bool_and(s.query IS NULL OR s.query = %(hidden)s) THEN 'unknown'
            WHEN bool_or(s.query ~ %(pattern)s) THEN 'true'
            ELSE 'false' END AS vector_op
FROM {schema}.pg_stat_statements(%(showtext)s) s
LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL
GROUP BY s.queryid, s.userid, r.rolname
ORDER BY exec_seconds DESC NULLS LAST, s.queryid
LIMIT %(limit)s
"""

LABELS = ("queryid", "user", "vector_op")


def statements_query(schema: str, extension_version: str) -> sql.Composed:
    """The statements query for an installed extension version (``total_time`` before 1.8)."""
    total_time = "total_exec_time" if version_tuple(extension_version) >= (1, 8) else "total_time"
    return sql.SQL(STATEMENTS_SQL).format(schema=sql.Identifier(schema), total_time=sql.Identifier(total_time))


PG_STATEMENT_CALLS_TOTAL = MetricSpec("vecmon_pg_statement_calls_total", "counter",
                                      "Times the statement was executed (pg_stat_statements.calls).", LABELS)
PG_STATEMENT_EXEC_SECONDS_TOTAL = MetricSpec(
    "vecmon_pg_statement_exec_seconds_total", "counter",
    "Total time spent executing the statement, in seconds (planning excluded on PG13+).", LABELS)
PG_STATEMENT_MEAN_EXEC_SECONDS = MetricSpec(
    "vecmon_pg_statement_mean_exec_seconds", "gauge",
    "Mean execution time per call since the entry was created, in seconds.", LABELS)
PG_STATEMENT_ROWS_TOTAL = MetricSpec("vecmon_pg_statement_rows_total", "counter",
                                     "Rows retrieved or affected by the statement.", LABELS)
PG_STATEMENT_SHARED_BLKS_HIT_TOTAL = MetricSpec("vecmon_pg_statement_shared_blks_hit_total", "counter",
                                                "Shared buffer-cache hits by the statement.", LABELS)
PG_STATEMENT_SHARED_BLKS_READ_TOTAL = MetricSpec("vecmon_pg_statement_shared_blks_read_total", "counter",
                                                 "Shared blocks the statement read from the OS (cache misses).", LABELS)


class StatementsCollector:
    """Per-statement call, time, row and buffer counters for the top statements of the database."""

    name = "statements"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        PG_STATEMENT_CALLS_TOTAL,
        PG_STATEMENT_EXEC_SECONDS_TOTAL,
        PG_STATEMENT_MEAN_EXEC_SECONDS,
        PG_STATEMENT_ROWS_TOTAL,
        PG_STATEMENT_SHARED_BLKS_HIT_TOTAL,
        PG_STATEMENT_SHARED_BLKS_READ_TOTAL,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        facts = ctx.facts
        database = facts.database if facts is not None else "?"
        if facts is None or EXTENSION not in facts.extensions:
            raise CollectorDisabled(f"{EXTENSION} is not installed in database {database}")
        extension = fetch_one(ctx.conn, EXTENSION_SQL, {"name": EXTENSION})
        if not extension:  # dropped since the facts were read
            raise CollectorDisabled(f"{EXTENSION} is not installed in database {database}")
        if not extension["usable"]:
            raise CollectorError(f"the monitoring role lacks USAGE on schema {extension['schema']!r} "
                                 f"where {EXTENSION} is installed in database {database}")
        query = statements_query(extension["schema"], extension["version"])
        params = {"hidden": HIDDEN_TEXT, "pattern": VECTOR_OPERATOR_PATTERN, "limit": ctx.settings.limits.statements,
                  "showtext": True}
        try:
            try:
                with ctx.conn.transaction():  # a savepoint: the run goes on if the texts cannot be read
                    rows = fetch(ctx.conn, query, params)
            except (psycopg.errors.CharacterNotInRepertoire, psycopg.errors.UntranslatableCharacter):
                rows = fetch(ctx.conn, query, {**params, "showtext": False})
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            # "pg_stat_statements must be loaded via shared_preload_libraries"
            raise CollectorDisabled(f"{EXTENSION} is installed in database {database} but not loaded: "
                                    f"{str(exc).strip()}") from None

        emitter = Emitter(ctx.target, self.METRICS)
        for row in rows:
            self._emit(emitter, row)
        return emitter.families()

    @staticmethod
    def _emit(emitter: Emitter, row: dict[str, Any]) -> None:
        labels = (row["queryid"], row["username"], row["vector_op"])
        emitter.add(PG_STATEMENT_CALLS_TOTAL.name, row["calls"], *labels)
        emitter.add(PG_STATEMENT_EXEC_SECONDS_TOTAL.name, row["exec_seconds"], *labels)
        emitter.add(PG_STATEMENT_MEAN_EXEC_SECONDS.name, ratio(row["exec_seconds"], row["calls"]), *labels)
        emitter.add(PG_STATEMENT_ROWS_TOTAL.name, row["rows"], *labels)
        emitter.add(PG_STATEMENT_SHARED_BLKS_HIT_TOTAL.name, row["shared_blks_hit"], *labels)
        emitter.add(PG_STATEMENT_SHARED_BLKS_READ_TOTAL.name, row["shared_blks_read"], *labels)
