"""Server-wide I/O by backend type, object and context (``pg_stat_io``, PostgreSQL 16+).

Cluster-wide (``scope = "server"``). One row of ``pg_stat_io`` is a (backend_type, object,
context) combination; PostgreSQL fixes that set (about 80 rows), so the labels are bounded. Rows
whose counters are all zero are left out (most combinations never do any I/O); a combination
appears the first time it does some.

Names and meanings are the same on 16..18:

* ``vecmon_pg_io_bytes_total{op}``: bytes read, written and extended. PostgreSQL 16 and 17
  count these in blocks (``reads`` x ``op_bytes``, always the block size), 18 counts I/O calls,
  which may cover several blocks, and reports bytes (``read_bytes``...). So the counts of reads,
  writes and extends do not mean the same on 18 and are not exported; bytes are;
* ``vecmon_pg_io_operations_total{op}``: the per-block counts that did not change: buffer hits,
  evictions, reuses, writebacks (blocks asked to be written back) and fsyncs;
* ``vecmon_pg_io_time_seconds_total{op}``: time spent in those operations, only while timing is
  on (``track_io_timing`` for relations, and on 18 ``track_wal_io_timing`` for the ``wal``
  object): with timing off PostgreSQL reports 0, which would read as "instant".

PostgreSQL 18 adds ``object = 'wal'`` rows (WAL reads, writes and fsyncs that 14..17 reported in
``pg_stat_wal``); they are exported like the others. Before 16 the view does not exist and the
collector reports itself disabled.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import Metric

from collectors.base import CollectContext, CollectorDisabled, Emitter, MetricSpec
from collectors.pg_common import fetch, fetch_one

PG16 = 160000
PG18 = 180000

# op label -> pg_stat_io count column, for the counts with one meaning on 16..18 (reads, writes and
# extends count blocks before 18 and calls from 18: exported as bytes only).
OPERATIONS = (("hit", "hits"), ("eviction", "evictions"), ("reuse", "reuses"), ("writeback", "writebacks"),
              ("fsync", "fsyncs"))
ACTIVITY_COLUMNS = ("reads", "writes", "extends", *(column for _, column in OPERATIONS))
BYTE_OPS = ("read", "write", "extend")
TIMED_OPS = ("read", "write", "writeback", "extend", "fsync")

_COUNTS = ", ".join(column for _, column in OPERATIONS)
_TIMES = ", ".join(f"{op}_time" for op in TIMED_OPS)
_ACTIVE = " OR ".join(f"coalesce({column}, 0) > 0" for column in ACTIVITY_COLUMNS)

# Bytes: 18 has read_bytes/write_bytes/extend_bytes; 16 and 17 have op_bytes per operation.
IO_SQL_PG18 = f"""
SELECT backend_type, object, context, {_COUNTS}, {_TIMES},
       read_bytes, write_bytes, extend_bytes
FROM pg_stat_io
WHERE {_ACTIVE}
ORDER BY backend_type, object, context
"""

IO_SQL_PRE18 = f"""
SELECT backend_type, object, context, {_COUNTS}, {_TIMES},
       reads * op_bytes AS read_bytes, writes * op_bytes AS write_bytes, extends * op_bytes AS extend_bytes
FROM pg_stat_io
WHERE {_ACTIVE}
ORDER BY backend_type, object, context
"""

TIMING_SQL = """
SELECT current_setting('track_io_timing')::bool AS io_timing,
       coalesce(current_setting('track_wal_io_timing', true), 'off')::bool AS wal_io_timing
"""

LABELS = ("backend_type", "object", "context")


PG_IO_OPERATIONS_TOTAL = MetricSpec(
    "vecmon_pg_io_operations_total", "counter",
    "Buffer and file operations by backend type, object (relation, temp relation, wal on 18+), "
    "context (normal, vacuum, bulkread, bulkwrite, init) and op (hit, eviction, reuse, writeback, "
    "fsync), from pg_stat_io.", (*LABELS, "op"))
PG_IO_BYTES_TOTAL = MetricSpec(
    "vecmon_pg_io_bytes_total", "counter",
    "Bytes read, written or extended (op) by backend type, object and context, from pg_stat_io.",
    (*LABELS, "op"))
PG_IO_TIME_SECONDS_TOTAL = MetricSpec(
    "vecmon_pg_io_time_seconds_total", "counter",
    "Time spent in reads, writes, writebacks, extends and fsyncs (op), in seconds; only while "
    "track_io_timing (track_wal_io_timing for object wal) is on.", (*LABELS, "op"))


class IoCollector:
    """I/O operations, bytes and (with track_io_timing) time per backend type, object and context.

    ``scope = "server"``: pg_stat_io is cluster-wide; run it once per server.
    """

    name = "io"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_IO_OPERATIONS_TOTAL,
        PG_IO_BYTES_TOTAL,
        PG_IO_TIME_SECONDS_TOTAL,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None and ctx.facts is not None  # set by the connector before the run
        facts = ctx.facts
        if facts.version_num < PG16:
            raise CollectorDisabled(f"pg_stat_io needs PostgreSQL 16 or later (server is {facts.version})")
        emitter = Emitter(ctx.target, self.METRICS)
        timing = fetch_one(ctx.conn, TIMING_SQL)
        rows = fetch(ctx.conn, IO_SQL_PG18 if facts.version_num >= PG18 else IO_SQL_PRE18)
        for row in rows:
            self._emit(emitter, row, timing)
        return emitter.families()

    @staticmethod
    def _emit(emitter: Emitter, row: dict[str, Any], timing: dict[str, Any]) -> None:
        labels = (row["backend_type"], row["object"], row["context"])
        for op, column in OPERATIONS:
            emitter.add(PG_IO_OPERATIONS_TOTAL.name, row[column], *labels, op)
        for op in BYTE_OPS:
            emitter.add(PG_IO_BYTES_TOTAL.name, row[f"{op}_bytes"], *labels, op)
        timed = timing["wal_io_timing"] if row["object"] == "wal" else timing["io_timing"]
        if timed:
            for op in TIMED_OPS:
                value = row[f"{op}_time"]
                emitter.add(PG_IO_TIME_SECONDS_TOTAL.name, None if value is None else value / 1000.0,
                            *labels, op)
