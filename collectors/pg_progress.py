"""Progress of VACUUM and CREATE INDEX/REINDEX in the target's database, vector tables marked.

Database-local (``scope = "database"``): the progress views show every database of the server,
but table names resolve only in the database they belong to, so each run reports the operations
of its own database (``datid = current database``). Sources: ``pg_stat_progress_vacuum`` and
``pg_stat_progress_create_index`` joined with ``pg_stat_activity`` (start time, autovacuum or not).

Every series carries ``vector="true"`` when the table has a pgvector column (``vector``,
``halfvec``, ``sparsevec``, found through the extension's types, so it works in any schema) or an
HNSW/IVFFlat index, else ``"false"``: vacuuming a vector table is what takes long (each pass over
an HNSW index visits the whole graph), and a dashboard or alert selects ``{vector="true"}``.
Label cardinality is bounded by the operations that can run at once (autovacuum workers plus
manual commands).

Same meaning on PostgreSQL 13..18:

* ``vacuum_heap_scanned_ratio``: ``heap_blks_scanned / heap_blks_total``;
* ``vacuum_index_passes``: ``index_vacuum_count``, completed passes over the indexes. More than
  one means the dead-row memory (``maintenance_work_mem``/``autovacuum_work_mem``) filled up and
  every index, HNSW graphs included, is scanned again;
* ``vacuum_dead_tuple_memory_ratio``: how full that memory is: ``num_dead_tuples /
  max_dead_tuples`` before 17, ``dead_tuple_bytes / max_dead_tuple_bytes`` from 17 (the
  columns changed when PostgreSQL 17 changed the storage of dead TIDs; both are the fill level);
* create index: fraction of blocks done, else of tuples done (0 while neither is known), as
  the vector_indexes collector computes it for vector indexes. A plain CREATE INDEX's index is not
  visible to other sessions yet, so its name is its OID (``oid 12345``).

VACUUM FULL and CLUSTER report in ``pg_stat_progress_cluster`` and are not covered.
"""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.core import Metric

from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.pg_common import fetch_one, ratio

PG17 = 170000

# Whether the relation p.relid is a vector table: a column of a pgvector type or an HNSW/IVFFlat index.
_IS_VECTOR_TABLE = """(
    EXISTS (SELECT 1 FROM pg_attribute a
            JOIN pg_depend d ON d.classid = 'pg_type'::regclass AND d.objid = a.atttypid AND d.deptype = 'e'
            JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'vector'
            WHERE a.attrelid = p.relid AND a.attnum > 0 AND NOT a.attisdropped)
    OR EXISTS (SELECT 1 FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_am am ON am.oid = ic.relam
               WHERE i.indrelid = p.relid AND am.amname IN ('hnsw', 'ivfflat'))
)"""

_DEAD_MEMORY = {
    True: "p.dead_tuple_bytes::float8 AS dead_used, p.max_dead_tuple_bytes::float8 AS dead_max",
    False: "p.num_dead_tuples::float8 AS dead_used, p.max_dead_tuples::float8 AS dead_max",
}

VACUUM_SQL = """
SELECT n.nspname AS schema, c.relname AS table, p.phase,
       p.heap_blks_total, p.heap_blks_scanned, p.index_vacuum_count, {dead_memory},
       greatest(0, extract(epoch FROM clock_timestamp() - a.query_start)) AS running_seconds,
       coalesce(a.backend_type = 'autovacuum worker', false) AS autovacuum,
       {is_vector} AS vector
FROM pg_stat_progress_vacuum p
JOIN pg_class c ON c.oid = p.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_activity a ON a.pid = p.pid
WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

CREATE_INDEX_SQL = """
SELECT n.nspname AS schema, c.relname AS table,
       coalesce(ic.relname, 'oid ' || p.index_relid::text) AS index, p.command, p.phase,
       p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total,
       greatest(0, extract(epoch FROM clock_timestamp() - a.query_start)) AS running_seconds,
       {is_vector} AS vector
FROM pg_stat_progress_create_index p
JOIN pg_class c ON c.oid = p.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class ic ON ic.oid = p.index_relid
LEFT JOIN pg_stat_activity a ON a.pid = p.pid
WHERE p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

# Both views in one statement (one round trip per database and interval, not two): each as a JSON
# array of its rows, in label order; nearly always two empty arrays. As text, decoded in the session's
# encoding like any other column (a SQL_ASCII database's LATIN1 names are not UTF-8 JSON).
PROGRESS_SQL = """
SELECT (SELECT coalesce(json_agg(v ORDER BY v.schema, v."table"), '[]')::text FROM ({vacuum}) v) AS vacuum,
       (SELECT coalesce(json_agg(i ORDER BY i.schema, i."table", i.index), '[]')::text FROM ({create_index}) i)
       AS create_index
"""

VACUUM_LABELS = ("schema", "table", "vector", "autovacuum")
INDEX_LABELS = ("schema", "table", "index", "command", "vector")
COMMANDS = ("vacuum", "create_index")


def _flag(value: Any) -> str:
    return "true" if value else "false"


PG_MAINTENANCE_OPERATIONS = MetricSpec(
    "vecmon_pg_maintenance_operations", "gauge",
    "Running maintenance operations in the database by command (vacuum: VACUUM and autovacuum; "
    "create_index: CREATE INDEX and REINDEX) and whether the table is a vector table (0 when none).",
    ("command", "vector"))
PG_VACUUM_HEAP_SCANNED_RATIO = MetricSpec(
    "vecmon_pg_vacuum_heap_scanned_ratio", "gauge",
    "Fraction of the table's heap a running VACUUM has scanned (heap_blks_scanned / "
    "heap_blks_total, 0..1), with its current phase.", (*VACUUM_LABELS, "phase"))
PG_VACUUM_INDEX_PASSES = MetricSpec(
    "vecmon_pg_vacuum_index_passes", "gauge",
    "Completed passes of a running VACUUM over the table's indexes (index_vacuum_count); more than "
    "one means the dead-row memory filled up and every index is scanned again.", VACUUM_LABELS)
PG_VACUUM_DEAD_TUPLE_MEMORY_RATIO = MetricSpec(
    "vecmon_pg_vacuum_dead_tuple_memory_ratio", "gauge",
    "How full the dead-row memory of a running VACUUM is (0..1); at 1 it must pass over the "
    "indexes before scanning on.", VACUUM_LABELS)
PG_VACUUM_RUNNING_SECONDS = MetricSpec(
    "vecmon_pg_vacuum_running_seconds", "gauge",
    "Seconds since a running VACUUM (or autovacuum worker) started on the table.", VACUUM_LABELS)
PG_CREATE_INDEX_PROGRESS_RATIO = MetricSpec(
    "vecmon_pg_create_index_progress_ratio", "gauge",
    "Fraction done of a running CREATE INDEX/REINDEX (blocks, else tuples; 0 while unknown), 0..1, "
    "with its current phase.", (*INDEX_LABELS, "phase"))
PG_CREATE_INDEX_RUNNING_SECONDS = MetricSpec("vecmon_pg_create_index_running_seconds", "gauge",
                                             "Seconds since a running CREATE INDEX/REINDEX started.", INDEX_LABELS)


class ProgressCollector:
    """Running VACUUM and CREATE INDEX/REINDEX operations of this database: progress, passes, run time.

    ``scope = "database"``: table names resolve only in their own database; run it on every database to watch.
    """

    name = "progress"
    scope = "database"
    METRICS: tuple[MetricSpec, ...] = (
        PG_MAINTENANCE_OPERATIONS,
        PG_VACUUM_HEAP_SCANNED_RATIO,
        PG_VACUUM_INDEX_PASSES,
        PG_VACUUM_DEAD_TUPLE_MEMORY_RATIO,
        PG_VACUUM_RUNNING_SECONDS,
        PG_CREATE_INDEX_PROGRESS_RATIO,
        PG_CREATE_INDEX_RUNNING_SECONDS,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None and ctx.facts is not None  # set by the connector before the run
        emitter = Emitter(ctx.target, self.METRICS)
        counts = {(command, vector): 0 for command in COMMANDS for vector in ("true", "false")}
        dead_memory = _DEAD_MEMORY[ctx.facts.version_num >= PG17]
        vacuum_sql = VACUUM_SQL.format(dead_memory=dead_memory, is_vector=_IS_VECTOR_TABLE)
        index_sql = CREATE_INDEX_SQL.format(is_vector=_IS_VECTOR_TABLE)
        progress = fetch_one(ctx.conn, PROGRESS_SQL.format(vacuum=vacuum_sql, create_index=index_sql))
        for row in json.loads(progress["vacuum"]):
            counts[("vacuum", _flag(row["vector"]))] += 1
            self._emit_vacuum(emitter, row)
        for row in json.loads(progress["create_index"]):
            counts[("create_index", _flag(row["vector"]))] += 1
            self._emit_create_index(emitter, row)
        for (command, vector), count in counts.items():
            emitter.add(PG_MAINTENANCE_OPERATIONS.name, count, command, vector)
        return emitter.families()

    @staticmethod
    def _emit_vacuum(emitter: Emitter, row: dict[str, Any]) -> None:
        labels = (row["schema"], row["table"], _flag(row["vector"]), _flag(row["autovacuum"]))
        scanned = ratio(row["heap_blks_scanned"], row["heap_blks_total"])
        emitter.add(PG_VACUUM_HEAP_SCANNED_RATIO.name, None if scanned is None else min(1.0, scanned),
                    *labels, row["phase"])
        emitter.add(PG_VACUUM_INDEX_PASSES.name, row["index_vacuum_count"], *labels)
        memory = ratio(row["dead_used"], row["dead_max"])
        emitter.add(PG_VACUUM_DEAD_TUPLE_MEMORY_RATIO.name, None if memory is None else min(1.0, memory), *labels)
        emitter.add(PG_VACUUM_RUNNING_SECONDS.name, row["running_seconds"], *labels)

    @staticmethod
    def _emit_create_index(emitter: Emitter, row: dict[str, Any]) -> None:
        labels = (row["schema"], row["table"], row["index"], row["command"], _flag(row["vector"]))
        done = 0.0
        if row["blocks_total"]:
            done = min(1.0, row["blocks_done"] / row["blocks_total"])
        elif row["tuples_total"]:
            done = min(1.0, row["tuples_done"] / row["tuples_total"])
        emitter.add(PG_CREATE_INDEX_PROGRESS_RATIO.name, done, *labels, row["phase"])
        emitter.add(PG_CREATE_INDEX_RUNNING_SECONDS.name, row["running_seconds"], *labels)
