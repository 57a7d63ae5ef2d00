"""The probe metrics the alerts rely on, on a real PostgreSQL 18 with pgvector:

- ANN probe queries that hit their timeout are counted as slower than every bucket (``+Inf``) and
  as attempts, so p99, latency SLOs and AnnQueryErrorsHigh see them (before: dropped from the
  histogram, its _count stayed 0 while every query timed out);
- the recall probe counts one judgement per cycle (vecmon_recall_cycles_total /
  vecmon_recall_good_cycles_total) and the rows its own queries return at the application's
  settings (vecmon_recall_app_returned_rows), read by the per-cycle recall SLO and by
  VectorFilteredQueryShortfall.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import run_collector

K = 5
SLOW_FILTER = {"name": "slow", "table": "items", "where": "(SELECT true FROM pg_sleep(0.3))"}


@pytest.fixture(scope="module")
def vdb(pg18):
    db = new_database(pg18, ("vector",))
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(600, 8))
    with db.admin() as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, tenant_id int NOT NULL, embedding vector(8))")
        with conn.cursor().copy("COPY items (id, tenant_id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(vectors):
                copy.write_row((i, i % 10, "[" + ",".join(f"{x:.5f}" for x in v) + "]"))
        conn.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
        conn.execute("ANALYZE items")
        conn.execute(f"GRANT SELECT ON items TO {MONITOR_ROLE}")
    return db


def labels(**extra) -> dict:
    return {"target": "t", "schema": "public", "table": "items", "index": "items_hnsw", **extra}


def overrides(tmp_path, **vector) -> dict:
    return {"vector": {"indexes": ["items_hnsw"],
                       "recall": {"state_url": f"sqlite:///{tmp_path / 'recall.sqlite'}", "sample_size": 6, "k": K,
                                  "ef_search_values": [10, 40], "force_index": True},
                       **vector}}


def test_ann_timeouts_are_slower_than_every_bucket(vdb, tmp_path):
    settings = overrides(tmp_path, filters=[SLOW_FILTER], ann_latency={"queries": 3, "timeout": "100ms"})
    fam = run_collector(vdb.monitor_dsn, "ann_latency", state={}, timeout=10, **settings)
    slow = labels(filter="slow")
    assert fam.value("vecmon_ann_query_errors_total", dict(slow, reason="timeout")) == 3
    assert fam.value("vecmon_ann_query_duration_seconds_count", slow) == 3  # before: 0
    assert fam.value("vecmon_ann_query_duration_seconds_bucket", dict(slow, le="+Inf")) == 3
    assert fam.value("vecmon_ann_query_duration_seconds_bucket", dict(slow, le="10.0")) == 0
    assert fam.value("vecmon_ann_query_duration_seconds_sum", slow) >= 0.3
    assert fam.value("vecmon_ann_queries_total", slow) == 3
    fast = labels(filter="")
    assert fam.value("vecmon_ann_queries_total", fast) == 3
    assert fam.value("vecmon_ann_query_duration_seconds_bucket", dict(fast, le="10.0")) == 3


def test_recall_probe_judges_each_cycle_and_reports_its_own_returned_rows(vdb, tmp_path):
    settings = overrides(tmp_path, filters=[{"name": "tenant", "table": "items", "where": "tenant_id = 3"}])
    state: dict = {}
    for _ in range(2):
        fam = run_collector(vdb.monitor_dsn, "recall", state=state, timeout=30, **settings)
    for fname in ("",):  # (on a table this small the planner skips the index for the filter: no judgement)
        key = labels(filter=fname)
        assert fam.value("vecmon_recall_cycles_total", key) == 2
        good = fam.value("vecmon_recall_good_cycles_total", key)
        met = fam.value("vecmon_recall_target_met", key)
        assert good == 2 * met  # the same queries on an unchanged table: the same judgement twice
        returned = fam.value("vecmon_recall_app_returned_rows", key)
        expected = fam.value("vecmon_recall_expected_rows", key)
        assert 0 < returned <= expected <= K
