"""Transaction-ID and multixact wraparound: how old the oldest unfrozen IDs are.

Two collectors, split by scope:

* :class:`WraparoundCollector` (``scope = "server"``): ``age(datfrozenxid)`` and
  ``mxid_age(datminmxid)`` of every database of the server (templates included: ``template0``
  must be frozen too), as a number of transactions and as a share of the 2^31 IDs after which
  PostgreSQL would wrap around (it stops assigning new IDs a few million before that), plus
  ``autovacuum_freeze_max_age`` and ``autovacuum_multixact_freeze_max_age``, the ages at which
  autovacuum starts an anti-wraparound vacuum whatever its other settings;
* :class:`WraparoundTablesCollector` (``scope = "database"``): the ``limits.tables`` tables of
  the target's database with the oldest ``relfrozenxid`` (the table or its TOAST table, whichever
  is older), so the database's age can be traced to the tables holding it back. Temporary tables
  of other sessions are included on purpose: autovacuum cannot freeze them.

``pg_database`` and ``pg_class`` are readable by every role; ``age()`` and ``mxid_age()`` exist on
PostgreSQL 13..18 with the same meaning.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch

# Transaction IDs and multixact IDs are 32-bit counters compared modulo 2^32: an ID more than
# 2^31 in the past would look like the future, so 2^31 is the limit freezing must stay below.
WRAPAROUND_LIMIT = 2.0 ** 31
KINDS = ("xid", "multixact")

# Each database's ages, and the two freeze settings on every row (one round trip; one row with a
# NULL datname if the server listed no database).
DATABASES_SQL = """
SELECT d.datname, d.xid_age, d.multixact_age, s.xid AS freeze_max_xid, s.multixact AS freeze_max_multixact
FROM (SELECT current_setting('autovacuum_freeze_max_age')::float8 AS xid,
             current_setting('autovacuum_multixact_freeze_max_age')::float8 AS multixact) s
LEFT JOIN (SELECT datname, age(datfrozenxid) AS xid_age, mxid_age(datminmxid) AS multixact_age
           FROM pg_database) d ON true
ORDER BY d.datname
"""

TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       greatest(age(c.relfrozenxid), age(t.relfrozenxid)) AS xid_age,
       greatest(mxid_age(c.relminmxid), mxid_age(t.relminmxid)) AS multixact_age
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm')
ORDER BY xid_age DESC, multixact_age DESC, n.nspname, c.relname
LIMIT %(limit)s
"""


PG_DATABASE_FREEZE_AGE = MetricSpec(
    "vecmon_pg_database_freeze_age", "gauge",
    "Age of the database's oldest unfrozen transaction ID (kind=xid: age(datfrozenxid)) or "
    "multixact ID (kind=multixact: mxid_age(datminmxid)), in IDs.", ("datname", "kind"))
PG_DATABASE_WRAPAROUND_RATIO = MetricSpec(
    "vecmon_pg_database_wraparound_ratio", "gauge",
    "Freeze age of the database divided by the wraparound limit of 2^31 IDs (0..1); PostgreSQL "
    "refuses new transactions shortly before 1.", ("datname", "kind"))
PG_AUTOVACUUM_FREEZE_MAX_AGE = MetricSpec(
    "vecmon_pg_autovacuum_freeze_max_age", "gauge",
    "Freeze age at which autovacuum forces an anti-wraparound vacuum: autovacuum_freeze_max_age "
    "(kind=xid) or autovacuum_multixact_freeze_max_age (kind=multixact).", ("kind",))


class WraparoundCollector:
    """Age of datfrozenxid/datminmxid per database, as transactions and as a share of the wraparound limit.

    ``scope = "server"``: pg_database is cluster-wide; run it once per server.
    """

    name = "wraparound"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_DATABASE_FREEZE_AGE,
        PG_DATABASE_WRAPAROUND_RATIO,
        PG_AUTOVACUUM_FREEZE_MAX_AGE,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        rows = fetch(ctx.conn, DATABASES_SQL)
        for row in rows:
            if row["datname"] is None:
                continue
            for kind in KINDS:
                age = row[f"{kind}_age"]
                emitter.add(PG_DATABASE_FREEZE_AGE.name, age, row["datname"], kind)
                emitter.add(PG_DATABASE_WRAPAROUND_RATIO.name,
                            None if age is None else min(1.0, max(0.0, age / WRAPAROUND_LIMIT)), row["datname"], kind)
        for kind in KINDS:
            emitter.add(PG_AUTOVACUUM_FREEZE_MAX_AGE.name, rows[0][f"freeze_max_{kind}"], kind)  # one row at least
        return emitter.families()


PG_TABLE_FREEZE_AGE = MetricSpec(
    "vecmon_pg_table_freeze_age", "gauge",
    "Age of the oldest unfrozen transaction ID (kind=xid) or multixact ID (kind=multixact) of the "
    "table or its TOAST table, for the limits.tables tables with the oldest relfrozenxid.",
    ("schema", "table", "kind"))


class WraparoundTablesCollector:
    """The tables of this database with the oldest relfrozenxid (top ``limits.tables``), and their multixact age.

    ``scope = "database"``: pg_class is database-local; run it on every database to watch.
    """

    name = "wraparound_tables"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        PG_TABLE_FREEZE_AGE,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        for row in fetch(ctx.conn, TABLES_SQL, {"limit": ctx.settings.limits.tables}):
            for kind in KINDS:
                emitter.add(PG_TABLE_FREEZE_AGE.name, row[f"{kind}_age"], row["schema"], row["table"], kind)
        return emitter.families()
