"""WAL generation statistics (``pg_stat_wal``, PostgreSQL 14+).

Cluster-wide (``scope = "server"``). Only the columns that keep their meaning on 14..18 are
exported: records, full-page images, bytes and "WAL buffers full" events. The write and sync
counts and times (``wal_write``, ``wal_sync``, ``wal_write_time``, ``wal_sync_time``) exist on
14..17 only; PostgreSQL 18 moved them to ``pg_stat_io`` (``object = 'wal'``) where they count
individual write calls rather than XLogWrite requests, so they are not exported under one name
(the ``io`` collector has the PostgreSQL 18 figures). On PostgreSQL 13 the view does not exist
and the collector reports itself disabled.

``vecmon_pg_wal_bytes_total`` is the sum of record sizes since the last
``pg_stat_reset_shared('wal')``; ``vecmon_pg_wal_written_bytes_total`` (server collector) follows
the WAL position instead and never resets. A high share of full-page images after each
checkpoint, typical of bulk vector loads and index builds, shows in ``full_page_images``.
"""

from __future__ import annotations

from prometheus_client.core import Metric

from collectors.base import CollectContext, CollectorDisabled, Emitter, MetricSpec
from collectors.pg_common import fetch_one

PG14 = 140000

WAL_SQL = """
SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full FROM pg_stat_wal
"""


PG_WAL_RECORDS_TOTAL = MetricSpec("vecmon_pg_wal_records_total", "counter",
                                  "WAL records generated (pg_stat_wal.wal_records).")
PG_WAL_FULL_PAGE_IMAGES_TOTAL = MetricSpec(
    "vecmon_pg_wal_full_page_images_total", "counter",
    "Full-page images written to WAL (pg_stat_wal.wal_fpi): the first change of a page after "
    "each checkpoint writes the whole page.")
PG_WAL_BYTES_TOTAL = MetricSpec("vecmon_pg_wal_bytes_total", "counter",
                                "WAL generated in bytes as counted by pg_stat_wal (wal_bytes; reset by "
                                "pg_stat_reset_shared('wal')).")
PG_WAL_BUFFERS_FULL_TOTAL = MetricSpec(
    "vecmon_pg_wal_buffers_full_total", "counter",
    "Times WAL had to be written to disk because the WAL buffers were full (wal_buffers_full); a "
    "steady rate suggests raising wal_buffers.")


class WalCollector:
    """WAL records, full-page images, bytes and buffers-full events (pg_stat_wal, PostgreSQL 14+).

    ``scope = "server"``: pg_stat_wal is cluster-wide; run it once per server.
    """

    name = "wal"
    scope = "server"
    METRICS: tuple[MetricSpec, ...] = (
        PG_WAL_RECORDS_TOTAL,
        PG_WAL_FULL_PAGE_IMAGES_TOTAL,
        PG_WAL_BYTES_TOTAL,
        PG_WAL_BUFFERS_FULL_TOTAL,
    )

    def collect(self, ctx: CollectContext) -> list[Metric]:
        assert ctx.conn is not None and ctx.facts is not None  # set by the connector before the run
        if ctx.facts.version_num < PG14:
            raise CollectorDisabled(f"pg_stat_wal needs PostgreSQL 14 or later (server is {ctx.facts.version})")
        emitter = Emitter(ctx.target, self.METRICS)
        row = fetch_one(ctx.conn, WAL_SQL)
        emitter.add(PG_WAL_RECORDS_TOTAL.name, row["wal_records"])
        emitter.add(PG_WAL_FULL_PAGE_IMAGES_TOTAL.name, row["wal_fpi"])
        emitter.add(PG_WAL_BYTES_TOTAL.name, row["wal_bytes"])
        emitter.add(PG_WAL_BUFFERS_FULL_TOTAL.name, row["wal_buffers_full"])
        return emitter.families()
