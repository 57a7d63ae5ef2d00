"""pgvector collectors on the real embedded PostgreSQL 18 + pgvector: discovery, recall, latency, freshness.

The recall tests build a table of clustered vectors with a deliberately weak HNSW index
(m=4, ef_construction=8) and an application setting of hnsw.ef_search=10 (ALTER DATABASE), so
recall is clearly below 1, and check vecmon's numbers against recall computed here
independently: the approximate results come from our own queries, the truth from brute force
in numpy over the same rows, with the same distance-threshold definition.
"""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import numpy as np
import psycopg
import pytest

import collectors.recall_replica as recall_replica
from collectors.ann_latency import ANN_QUERY_DURATION_SECONDS, ANN_QUERY_ERRORS_TOTAL, ANN_QUERY_RETURNED_ROWS
from collectors.base import CollectionTimeout, CollectorDisabled
from collectors.pg_session import build_conninfo
from collectors.recall_metrics import (
    RECALL_ANN_QUERIES_TOTAL,
    RECALL_ANN_QUERY_DURATION_SECONDS,
    RECALL_APP_SETTING,
    RECALL_EXACT_QUERIES_TOTAL,
    RECALL_EXACT_QUERY_DURATION_SECONDS,
    RECALL_EXACT_REUSED_TOTAL,
    RECALL_EXPECTED_ROWS,
    RECALL_MEAN_RATIO,
    RECALL_PROBE_RUNS_TOTAL,
    RECALL_PROBE_SKIPPED,
    RECALL_QUERIES_TOTAL,
    RECALL_QUERY_ERRORS_TOTAL,
    RECALL_QUERY_RECALL_RATIO,
    RECALL_RETURNED_ROWS,
    RECALL_SHORTFALL_RATIO,
    VECTOR_INDEX_USED,
)
from collectors.recall_probe import recall_lock_key
from collectors.recall_replica import replica_conninfo
from collectors.recall_results import Point
from collectors.recall_scoring import reaches, recall_at_k, result_rows
from collectors.vector_freshness import (
    VECTOR_EMBEDDING_PENDING_ROWS,
    VECTOR_FRESHNESS_ERRORS_TOTAL,
    VECTOR_MODEL_VERSION_ROWS,
    VECTOR_NEWEST_ROW_AGE_SECONDS,
    _version_counts,
)
from collectors.vector_indexes import (
    VECTOR_CATALOG_REFRESHES_TOTAL,
    VECTOR_COLUMN_DIMENSIONS,
    VECTOR_COLUMN_NULL_ROWS,
    VECTOR_INDEX,
    VECTOR_INDEX_BUILD_OPTION,
    VECTOR_INDEX_BUILD_PROGRESS_RATIO,
    VECTOR_INDEX_DIMENSIONS,
    VECTOR_INDEX_MEMORY_ESTIMATE_BYTES,
    VECTOR_INDEX_ROWS_AT_BUILD,
    VECTOR_INDEX_SIZE_BYTES,
    VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO,
    VECTOR_INDEX_VALID,
    VECTOR_SETTING,
    VECTOR_SETTING_OVERRIDE,
    VECTOR_SETTING_VALUE,
    VECTOR_TABLE_ROWS,
)
from collectors.vector_names import short_hash
from monitor.config import DatabaseTarget
from monitor.shared import SharedState
from tests.conftest import MONITOR_ROLE, Database, new_database
from tests.helpers import Families, run_collector

DIM = 48
ROWS = 8000
CLUSTERS = 16
K = 10
APP_EF = 10


def vec_text(v: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in v) + "]"


def clustered(rows: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(CLUSTERS, dim))
    labels = rng.integers(0, CLUSTERS, rows)
    return (centers[labels] + rng.normal(scale=0.35, size=(rows, dim))).astype(np.float32)


def flush_stats(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_force_next_flush()")


@pytest.fixture(scope="module")
def vdb(pg18):
    """items: 8000 clustered 48-d vectors, tenant_id 10% selective, weak HNSW; golden: 25 held-out queries.

    (With a 1% filter on a table this small the planner prefers a sequential scan once the table is
    vacuumed, and the probe rightly reports the index as not used.)
    """
    db = new_database(pg18, ("pg_stat_statements", "vector"))
    data = clustered(ROWS + 25, DIM, seed=7)
    items, golden = data[:ROWS], data[ROWS:]
    with db.admin() as conn:
        conn.execute(f"CREATE TABLE items (id int PRIMARY KEY, tenant_id int NOT NULL, embedding vector({DIM}))")
        with conn.cursor().copy("COPY items (id, tenant_id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(items):
                copy.write_row((i, i % 10, vec_text(v)))
        conn.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops) "
                     "WITH (m = 4, ef_construction = 8)")
        conn.execute(f"CREATE TABLE golden (id int PRIMARY KEY, embedding vector({DIM}))")
        with conn.cursor().copy("COPY golden (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(golden):
                copy.write_row((i, vec_text(v)))
        # a table too small for the planner to use its index
        conn.execute(f"CREATE TABLE tiny (id int PRIMARY KEY, embedding vector({DIM}))")
        with conn.cursor().copy("COPY tiny (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(items[:150]):
                copy.write_row((i, vec_text(v)))
        conn.execute("CREATE INDEX tiny_hnsw ON tiny USING hnsw (embedding vector_cosine_ops)")
        conn.execute("VACUUM ANALYZE items")  # nothing left for autovacuum to change mid-test
        conn.execute("ANALYZE golden; ANALYZE tiny")
        conn.execute(f"ALTER DATABASE {db.name} SET hnsw.ef_search = {APP_EF}")
        conn.execute(f"GRANT SELECT ON items, golden, tiny TO {MONITOR_ROLE}")
        flush_stats(conn)
    db.items = items
    db.golden = golden
    return db


def recall_overrides(tmp_path, **recall) -> dict:
    base = {"state_url": f"sqlite:///{tmp_path / 'recall.sqlite'}", "sample_size": 20, "k": K,
            "ef_search_values": [10, 40, 100]}
    base.update(recall)
    return {"vector": {"indexes": ["items_hnsw", "tiny_hnsw"], "recall": base,
                       "filters": [{"name": "tenant_4", "table": "items", "where": "tenant_id = 4"}]}}


def labels(index="items_hnsw", table="items", **extra) -> dict:
    return {"target": "t", "schema": "public", "table": table, "index": index, **extra}


def point(value: int, filter_name: str = "", iterative: str = "off", index="items_hnsw", table="items") -> dict:
    return labels(index, table, filter=filter_name, param="ef_search", value=str(value), iterative=iterative)


# ----------------------------------------------------------------------------- independent recall
def ann_ids(db: Database, query: str, ef_search: int, limit: int, where: str = "") -> list[int]:
    with db.admin() as conn:
        conn.execute(f"SET hnsw.ef_search = {ef_search}")
        plan = conn.execute(f"EXPLAIN SELECT id FROM items {where} ORDER BY embedding <-> %s::vector LIMIT {limit}",
                            [query]).fetchall()
        assert any("items_hnsw" in row[0] for row in plan), plan
        rows = conn.execute(f"SELECT id FROM items {where} ORDER BY embedding <-> %s::vector LIMIT {limit}",
                            [query]).fetchall()
    return [r[0] for r in rows]


def numpy_recall(items: np.ndarray, query: np.ndarray, returned: list[int], exclude: int | None = None) -> float:
    """Brute-force truth in float64 and the same distance-threshold recall@k as vecmon."""
    distances = np.linalg.norm(items.astype(np.float64) - query.astype(np.float64), axis=1)
    if exclude is not None:
        distances[exclude] = np.inf
        returned = [i for i in returned if i != exclude]
    returned = returned[:K]
    kth = np.sort(distances)[K - 1]
    threshold = kth + 1e-6 * max(1.0, abs(kth))
    return sum(1 for i in returned if distances[i] <= threshold) / K


# ----------------------------------------------------------------------------- tests
def test_recall_at_k_counts_ties_by_distance():
    exact = [0.0, 1.0, 1.0, 1.0]
    # any rows at the k-th distance are correct, whatever their ids
    assert recall_at_k([("a", 0.0), ("x", 1.0), ("y", 1.0)], exact, 3, 1e-6) == 1.0
    assert recall_at_k([("a", 0.0), ("x", 1.0), ("y", 1.5)], exact, 3, 1e-6) == pytest.approx(2 / 3)
    # fewer rows than k returned: a shortfall is a miss
    assert recall_at_k([("a", 0.0)], exact, 3, 1e-6) == pytest.approx(1 / 3)
    # fewer rows exist than k: the denominator is what the exact search found
    assert recall_at_k([("a", 0.0)], [0.0], 3, 1e-6) == 1.0
    assert recall_at_k([], [], 3, 1e-6) is None
    # negative inner product: smaller is still better
    assert recall_at_k([("a", -5.0), ("b", -4.5)], [-5.0, -4.5], 2, 1e-6) == 1.0
    assert recall_at_k([("a", -5.0), ("b", -4.0)], [-5.0, -4.5], 2, 1e-6) == 0.5


def test_null_distances_are_skipped_not_fatal():
    rows = [(16384, "(0,1)", None), (16384, "(0,2)", 0.5), (16384, "(0,3)", 0.1), (16384, "(0,4)", float("nan"))]
    pairs = result_rows(rows, "16384:(0,3)")
    assert pairs[0] == ("16384:(0,2)", 0.5) and pairs[1][0] == "16384:(0,4)" and len(pairs) == 2
    assert result_rows([(1, "(0,1)", None)], None) == []


def test_model_versions_never_repeat_a_label():
    # real values "other" and "null" keep their own series; NULL and the rest get reserved values
    rows = [("other", 5), (None, 4), ("null", 3), ("x", 2), ("y", 1)]
    assert dict(_version_counts(rows, 3)) == {"other": 5, "__null__": 4, "null": 3, "__other__": 3}
    # a real value equal to a reserved one is merged, not exported twice
    assert _version_counts([("__other__", 5), ("a", 1)], 1) == [("__other__", 6)]
    assert _version_counts([(None, 2), ("v1", 1)], 5) == [("__null__", 2), ("v1", 1)]


def test_vector_settings_validation():
    base = {"name": "x", "dsn": "host=h"}
    target = DatabaseTarget.model_validate(base)
    assert target.vector.recall.k == 10 and target.vector.recall.resolved_state_url().startswith("sqlite:///")
    with pytest.raises(ValueError, match="exactly one of index or table"):
        DatabaseTarget.model_validate({**base, "vector": {"filters": [{"name": "f", "where": "a = 1"}]}})
    with pytest.raises(ValueError, match="';' is not allowed"):
        DatabaseTarget.model_validate({**base, "vector": {"filters": [
            {"name": "f", "table": "t", "where": "a = 1; DROP TABLE t"}]}})
    for where in ("a = 1 -- ) OR (true", "a = 1 /* ) OR (true */"):
        with pytest.raises(ValueError, match=r"comments \('(--|/\*)'\) are not allowed"):
            DatabaseTarget.model_validate({**base, "vector": {"filters": [
                {"name": "f", "table": "t", "where": where}]}})
    with pytest.raises(ValueError, match="between 1 and 1000"):
        DatabaseTarget.model_validate({**base, "vector": {"recall": {"ef_search_values": [0, 2000]}}})
    with pytest.raises(ValueError, match="needs table and column"):
        DatabaseTarget.model_validate({**base, "vector": {"recall": {"queries": {"source": "table"}}}})
    ok = DatabaseTarget.model_validate({**base, "vector": {
        "filters": [{"name": "t42", "table": '"App".items', "where": "tenant_id = 42"}],
        "freshness": [{"table": "app.docs", "timestamp_column": "updated_at"}]}})
    assert ok.vector.filters[0].table == '"App".items'


def test_collectors_disabled_without_pgvector(pg18):
    db = new_database(pg18)
    for name in ("vector_indexes", "recall", "ann_latency", "vector_freshness"):
        with pytest.raises(CollectorDisabled, match="pgvector is not installed"):
            run_collector(db.monitor_dsn, name)


def test_discovery_options_settings_and_caching(pg18, tmp_path):
    db = new_database(pg18, ("vector",))
    with db.admin() as conn:
        conn.execute("CREATE SCHEMA app")
        conn.execute("CREATE TABLE app.docs (id int PRIMARY KEY, category int, embedding vector(3), "
                     "emb_any vector, h halfvec(4), b bit(8), s sparsevec(5))")
        conn.execute("INSERT INTO app.docs SELECT i, i % 10, CASE WHEN i % 4 <> 0 THEN "
                     "ARRAY[random(), random(), random()]::vector(3) END, ARRAY[random(), random(), random()]::vector,"
                     " ARRAY[random(), random(), random(), random()]::halfvec(4), (i % 256)::bit(8),"
                     " '{1:1,3:2}/5'::sparsevec FROM generate_series(1, 400) i")
        flush_stats(conn)
        conn.execute("CREATE INDEX docs_default ON app.docs USING hnsw (embedding vector_l2_ops)")
        conn.execute("CREATE INDEX docs_cos ON app.docs USING hnsw (embedding vector_cosine_ops) "
                     "WITH (m = 24, ef_construction = 100)")
        conn.execute("CREATE INDEX docs_ivf ON app.docs USING ivfflat (embedding vector_ip_ops)")
        conn.execute("CREATE INDEX docs_bits ON app.docs USING hnsw (b bit_hamming_ops)")
        conn.execute("CREATE INDEX docs_half_expr ON app.docs USING hnsw ((embedding::halfvec(3)) halfvec_l2_ops)")
        conn.execute("CREATE INDEX docs_partial ON app.docs USING hnsw (embedding vector_l2_ops) "
                     "WHERE (category = 3)")
        conn.execute("CREATE TABLE parts (id int, k int, e vector(3)) PARTITION BY RANGE (k)")
        conn.execute("CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (10)")
        conn.execute("CREATE INDEX parts_hnsw ON parts USING hnsw (e vector_cosine_ops) WITH (m = 8, "
                     "ef_construction = 32)")
        conn.execute("ANALYZE app.docs")
        conn.execute(f"GRANT USAGE ON SCHEMA app TO {MONITOR_ROLE}")
        conn.execute(f"GRANT SELECT ON app.docs TO {MONITOR_ROLE}")
        conn.execute(f"ALTER DATABASE {db.name} SET hnsw.ef_search = 100")
        conn.execute("DO $$BEGIN CREATE ROLE app_reader; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
        conn.execute(f"ALTER ROLE app_reader IN DATABASE {db.name} SET hnsw.iterative_scan = relaxed_order")
        flush_stats(conn)
    state: dict = {}
    vector = {"app_role": "app_reader", "recall": {"state_url": f"sqlite:///{tmp_path / 'state.sqlite'}"}}
    shared = SharedState()
    fam = run_collector(db.monitor_dsn, "vector_indexes", state=state, shared=shared, vector=vector)
    v = fam.value

    def idx(name, table="docs", schema="app", **extra):
        return {"target": "t", "schema": schema, "table": table, "index": name, **extra}

    assert v(VECTOR_COLUMN_DIMENSIONS.name, {"target": "t", "schema": "app", "table": "docs",
                                                 "column": "embedding", "type": "vector"}) == 3
    assert v(VECTOR_COLUMN_DIMENSIONS.name, {"target": "t", "schema": "app", "table": "docs", "column": "h",
                                                 "type": "halfvec"}) == 4
    assert v(VECTOR_COLUMN_DIMENSIONS.name, {"target": "t", "schema": "app", "table": "docs", "column": "b",
                                                 "type": "bit"}) == 8
    # emb_any is unconstrained: no dimensions sample
    assert not [s for s in fam.samples(VECTOR_COLUMN_DIMENSIONS.name) if s.labels["column"] == "emb_any"]
    # defaults filled in when reloptions is NULL
    assert v(VECTOR_INDEX_BUILD_OPTION.name, idx("docs_default", option="m")) == 16
    assert v(VECTOR_INDEX_BUILD_OPTION.name, idx("docs_default", option="ef_construction")) == 64
    assert v(VECTOR_INDEX_BUILD_OPTION.name, idx("docs_cos", option="m")) == 24
    assert v(VECTOR_INDEX_BUILD_OPTION.name, idx("docs_ivf", option="lists")) == 100
    assert v(VECTOR_INDEX_BUILD_OPTION.name, idx("parts_hnsw", "parts", "public", option="m")) == 8
    info = {s.labels["index"]: s.labels for s in fam.samples(VECTOR_INDEX.exposed_name)}
    assert info["docs_ivf"]["operator"] == "<#>" and info["docs_ivf"]["method"] == "ivfflat"
    assert info["docs_bits"]["operator"] == "<~>"
    # label values are bounded: a plain column by name, expressions and predicates only as hashes
    assert info["docs_default"]["key"] == "embedding"
    assert info["docs_default"]["partial"] == "false" and info["docs_default"]["predicate_hash"] == ""
    assert info["docs_half_expr"]["key"] == "expression:" + short_hash("((embedding)::halfvec(3))")
    assert info["docs_partial"]["partial"] == "true"
    assert info["docs_partial"]["predicate_hash"] == short_hash("(category = 3)")
    assert "predicate" not in info["docs_partial"]
    assert all(len(value) <= 63 for labels_ in info.values() for value in labels_.values())
    assert info["parts_1_e_idx"]["parent"] == "parts_hnsw"
    assert v(VECTOR_INDEX_DIMENSIONS.name, idx("docs_half_expr")) == 3
    assert v(VECTOR_INDEX_SIZE_BYTES.name, idx("docs_default")) > 0
    assert v(VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO.name, idx("docs_default")) > 0
    assert v(VECTOR_INDEX_MEMORY_ESTIMATE_BYTES.name, idx("docs_default")) > 0
    assert v(VECTOR_INDEX_VALID.name, idx("docs_default")) == 1
    assert v(VECTOR_TABLE_ROWS.name, {"target": "t", "schema": "app", "table": "docs"}) == 400
    # a quarter of the embeddings are NULL (pg_stats estimate, visible with SELECT on the table)
    assert v(VECTOR_COLUMN_NULL_ROWS.name, {"target": "t", "schema": "app", "table": "docs",
                                                "column": "embedding"}) == pytest.approx(100, abs=5)
    # the settings the application gets: database override + app_role override, sources named
    assert v(VECTOR_SETTING.name, {"target": "t", "setting": "hnsw.ef_search"}) == 100
    assert v(VECTOR_SETTING_VALUE.exposed_name, {"target": "t", "setting": "hnsw.iterative_scan",
                                                  "value": "relaxed_order", "source": "database role"}) == 1
    assert v(VECTOR_SETTING_OVERRIDE.exposed_name, {"target": "t", "setting": "hnsw.iterative_scan",
                                                     "value": "relaxed_order", "database": db.name,
                                                     "role": "app_reader"}) == 1
    assert v(VECTOR_CATALOG_REFRESHES_TOTAL.name, {"target": "t"}) == 1
    # the embedding-API probes read the declared dimensions from the same cache
    ref = SimpleNamespace(database="t", table="app.docs", column="embedding")
    dimensions = shared.vector_columns.dimensions
    assert dimensions(ref) == 3
    assert dimensions(SimpleNamespace(database="t", table="docs", column="h")) == 4
    assert dimensions(SimpleNamespace(database="t", table="docs", column="emb_any")) is None
    shared.close()
    assert v(VECTOR_INDEX_ROWS_AT_BUILD.name, idx("docs_ivf")) == 400
    # cached while the catalog is unchanged, rediscovered when it changes
    with db.admin() as conn:
        conn.execute("INSERT INTO app.docs SELECT i, 1, '[1,2,3]' FROM generate_series(401, 800) i")
        flush_stats(conn)
    fam = run_collector(db.monitor_dsn, "vector_indexes", state=state, vector=vector)
    assert fam.value(VECTOR_CATALOG_REFRESHES_TOTAL.name, {"target": "t"}) == 1
    assert fam.value(VECTOR_TABLE_ROWS.name, {"target": "t", "schema": "app", "table": "docs"}) == 800
    assert fam.value(VECTOR_INDEX_ROWS_AT_BUILD.name, idx("docs_ivf")) == 400  # the lists are for 400 rows
    db.execute("CREATE INDEX docs_h ON app.docs USING hnsw (h halfvec_cosine_ops)")
    db.execute("REINDEX INDEX app.docs_ivf")
    fam = run_collector(db.monitor_dsn, "vector_indexes", state=state, vector=vector)
    assert fam.value(VECTOR_CATALOG_REFRESHES_TOTAL.name, {"target": "t"}) == 2
    assert fam.value(VECTOR_INDEX_VALID.name, idx("docs_h")) == 1
    assert fam.value(VECTOR_INDEX_ROWS_AT_BUILD.name, idx("docs_ivf")) == 800  # rebuilt

    # every kind of index can be probed: expression, partial, bit, halfvec, IVFFlat (the table is
    # small, so the index is measured with force_index)
    fam = run_collector(db.monitor_dsn, "recall", state={}, timeout=30, vector={"recall": {
        "state_url": f"sqlite:///{tmp_path / 'kinds.sqlite'}", "sample_size": 5, "force_index": True,
        "ef_search_values": [40], "probes_values": [1, 10]}})
    runs = {s.labels["index"]: s.labels["result"] for s in fam.samples(RECALL_PROBE_RUNS_TOTAL.name)}
    assert runs == {"docs_default": "ok", "docs_cos": "ok", "docs_ivf": "ok", "docs_bits": "ok",
                    "docs_half_expr": "ok", "docs_partial": "ok", "docs_h": "ok", "parts_hnsw": "no_privilege"}
    used = {s.labels["index"] for s in fam.samples(VECTOR_INDEX_USED.name) if s.value == 1}
    assert {"docs_default", "docs_cos", "docs_ivf", "docs_bits", "docs_half_expr", "docs_h"} <= used
    means = {s.labels["index"]: s.value for s in fam.samples(RECALL_MEAN_RATIO.name)}
    assert all(0 <= value <= 1 for value in means.values()) and "docs_ivf" in means and "docs_bits" in means
    assert fam.value(RECALL_APP_SETTING.name, idx("docs_ivf", param="probes")) == 1
    assert fam.value(RECALL_APP_SETTING.name, idx("docs_cos", param="ef_search")) == 100


def test_recall_matches_numpy_with_fixed_query_set(vdb, tmp_path):
    overrides = recall_overrides(tmp_path, queries={"source": "table", "table": "golden", "column": "embedding",
                                                    "order_by": "id"})
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **overrides)
    assert fam.value(RECALL_APP_SETTING.name, labels(param="ef_search")) == APP_EF
    queries = [vec_text(v) for v in vdb.golden[:20]]
    for ef in (APP_EF, 40, 100):
        assert fam.value(VECTOR_INDEX_USED.name, point(ef)) == 1
        ours = np.mean([numpy_recall(vdb.items, vdb.golden[i], ann_ids(vdb, q, ef, K)) for i, q in enumerate(queries)])
        theirs = fam.value(RECALL_MEAN_RATIO.name, point(ef))
        assert abs(theirs - ours) <= 0.01, (ef, theirs, ours)
        if ef == APP_EF:
            assert theirs < 0.9  # the weak index really misses neighbours
    curve = [fam.value(RECALL_MEAN_RATIO.name, point(ef)) for ef in (10, 40, 100)]
    assert curve == sorted(curve)
    assert fam.value(f"{RECALL_QUERY_RECALL_RATIO.name}_count", labels(filter="")) == 20
    assert fam.value(RECALL_QUERIES_TOTAL.name, labels(filter="")) == 20
    hist_le_09 = fam.value(f"{RECALL_QUERY_RECALL_RATIO.name}_bucket", labels(filter="", le="0.9"))
    assert hist_le_09 <= 20
    assert fam.value(RECALL_ANN_QUERY_DURATION_SECONDS.name, point(APP_EF)) > 0
    assert fam.value(RECALL_EXACT_QUERY_DURATION_SECONDS.name, labels(filter="")) > 0


def test_sampled_queries_exclude_themselves_and_exact_results_are_reused(vdb, tmp_path):
    overrides = recall_overrides(tmp_path)
    state: dict = {}

    def exact_calls() -> int:
        rows = vdb.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid "
                           "FROM pg_database WHERE datname = current_database()) AND "
                           "query LIKE '%%vecmon:recall:exact%%' AND query NOT LIKE 'EXPLAIN%%'")
        return int(rows[0][0])

    before = exact_calls()
    first = run_collector(vdb.monitor_dsn, "recall", state=state, timeout=30, **overrides)
    exact_first = first.value(RECALL_EXACT_QUERIES_TOTAL.name, labels())
    assert exact_first == 40  # 20 queries, unfiltered + tenant_4
    assert exact_calls() - before == 40

    # vecmon's recall for its sampled rows, recomputed here with the row itself excluded
    queries = state["recall"].queries[("public", "items_hnsw")]
    assert len(queries) == 20 and all(q.self_id for q in queries)
    ours = []
    for q in queries:
        ctid = q.self_id.split(":", 1)[1]
        own_id = vdb.execute("SELECT id FROM items WHERE ctid = %s::tid", [ctid])[0][0]
        ours.append(numpy_recall(vdb.items, vdb.items[own_id], ann_ids(vdb, q.vector, APP_EF + 1, K + 1),
                                  exclude=own_id))  # one more candidate for the own row
    theirs = first.value(RECALL_MEAN_RATIO.name, point(APP_EF))
    assert abs(theirs - float(np.mean(ours))) <= 0.01

    # unchanged table: no exact query at all in the second cycle
    before = exact_calls()
    second = run_collector(vdb.monitor_dsn, "recall", state=state, timeout=30, **overrides)
    assert second.value(RECALL_EXACT_QUERIES_TOTAL.name, labels()) == exact_first
    assert second.value(RECALL_EXACT_REUSED_TOTAL.name, labels()) == 40
    assert exact_calls() == before
    assert second.value(RECALL_MEAN_RATIO.name, point(APP_EF)) == theirs
    assert second.value(f"{RECALL_QUERY_RECALL_RATIO.name}_count", labels(filter="")) == 40  # cumulative

    # a write changes the table's signature: the truth is recomputed
    with vdb.admin() as conn:
        conn.execute("UPDATE items SET tenant_id = tenant_id WHERE id = 1")
        flush_stats(conn)
    third = run_collector(vdb.monitor_dsn, "recall", state=state, timeout=30, **overrides)
    assert third.value(RECALL_EXACT_QUERIES_TOTAL.name, labels()) > exact_first


def test_filter_shortfall_and_iterative_scan(vdb, tmp_path):
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **recall_overrides(tmp_path))
    plain = point(APP_EF, "tenant_4")
    iterative = point(APP_EF, "tenant_4", iterative="relaxed_order")
    assert fam.value(VECTOR_INDEX_USED.name, plain) == 1
    assert fam.value(RECALL_EXPECTED_ROWS.name, labels(filter="tenant_4")) == K
    returned = fam.value(RECALL_RETURNED_ROWS.name, plain)
    assert returned < K / 2  # a 10% filter after ef_search=10 candidates: about one row comes back
    assert fam.value(RECALL_SHORTFALL_RATIO.name, plain) > 0.5
    assert fam.value(RECALL_RETURNED_ROWS.name, iterative) > returned + 5
    assert fam.value(RECALL_MEAN_RATIO.name, iterative) > fam.value(RECALL_MEAN_RATIO.name, plain)
    # independent check of the shortfall at the application's setting
    counts = [len(ann_ids(vdb, vec_text(v), APP_EF, K, "WHERE tenant_id = 4")) for v in vdb.golden[:10]]
    assert np.mean(counts) < K / 2


def test_a_broken_filter_is_counted_and_does_not_stop_the_probe(vdb, tmp_path):
    overrides = recall_overrides(tmp_path, sample_size=5)
    overrides["vector"]["filters"].append({"name": "broken", "table": "items", "where": "no_such_column = 1"})
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **overrides)
    assert fam.value(RECALL_QUERY_ERRORS_TOTAL.name, labels(filter="broken", side="explain")) == 1
    assert fam.value(RECALL_PROBE_RUNS_TOTAL.name, labels(result="ok")) == 1
    assert fam.value(RECALL_MEAN_RATIO.name, point(APP_EF)) is not None
    assert fam.value(RECALL_MEAN_RATIO.name, point(APP_EF, "tenant_4")) is not None


def test_index_not_used_is_reported_not_recall_one(vdb, tmp_path):
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **recall_overrides(tmp_path))
    tiny = [s for s in fam.samples(VECTOR_INDEX_USED.name) if s.labels["index"] == "tiny_hnsw"]
    assert tiny and all(s.value == 0 for s in tiny)
    assert not [s for f in fam.families for s in f.samples
                if s.labels.get("index") == "tiny_hnsw" and s.name.startswith(RECALL_MEAN_RATIO.name)]
    assert fam.value(RECALL_EXACT_QUERIES_TOTAL.name, labels("tiny_hnsw", "tiny")) == 0
    # force_index measures the index itself
    forced = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30,
                           **recall_overrides(tmp_path, force_index=True))
    assert forced.value(VECTOR_INDEX_USED.name, point(APP_EF, index="tiny_hnsw", table="tiny")) == 1
    assert forced.value(RECALL_MEAN_RATIO.name, point(APP_EF, index="tiny_hnsw", table="tiny")) is not None


def test_second_instance_skips_a_probe_held_by_the_first(vdb, tmp_path):
    overrides = recall_overrides(tmp_path)
    with psycopg.connect(vdb.admin_dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [recall_lock_key("public", "items_hnsw")])
        fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **overrides)
        assert fam.value(RECALL_PROBE_SKIPPED.name, labels(reason="locked")) == 1
        assert fam.value(RECALL_PROBE_RUNS_TOTAL.name, labels(result="locked")) == 1
        assert fam.value(RECALL_EXACT_QUERIES_TOTAL.name, labels()) == 0
        assert fam.value(RECALL_ANN_QUERIES_TOTAL.name, labels()) == 0
        assert fam.value(RECALL_MEAN_RATIO.name, point(APP_EF)) is None
        # the other index is not blocked
        assert fam.value(RECALL_PROBE_RUNS_TOTAL.name, labels("tiny_hnsw", "tiny", result="ok")) == 1
        holder.execute("SELECT pg_advisory_unlock_all()")
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **overrides)
    assert fam.value(RECALL_PROBE_RUNS_TOTAL.name, labels(result="ok")) == 1


def test_probes_can_run_on_a_replica_connection(vdb, tmp_path):
    overrides = recall_overrides(tmp_path, replica_dsn=vdb.monitor_dsn, sample_size=5)
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **overrides)
    assert fam.value(RECALL_PROBE_RUNS_TOTAL.name, labels(result="ok")) == 1
    assert fam.value(RECALL_MEAN_RATIO.name, point(APP_EF)) is not None
    bad = recall_overrides(tmp_path, replica_dsn="host=127.0.0.1 port=1 connect_timeout=1", sample_size=5)
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **bad)
    assert fam.value(RECALL_PROBE_SKIPPED.name, labels(reason="replica_unavailable")) == 1


def test_an_unreachable_state_store_falls_back_to_memory_without_leaking_its_password(vdb, tmp_path, caplog):
    bad = recall_overrides(tmp_path, sample_size=5,
                           state_url="postgresql+psycopg://vecmon:s3cret@127.0.0.1:1/state")
    shared = SharedState()
    state: dict = {}
    try:
        with caplog.at_level(logging.INFO):
            first = run_collector(vdb.monitor_dsn, "recall", state=state, shared=shared, timeout=30, **bad)
            second = run_collector(vdb.monitor_dsn, "recall", state=state, shared=shared, timeout=30, **bad)
    finally:
        shared.close()
    errors = [r.getMessage() for r in caplog.records if r.name == "collectors.recall_state"
              and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "127.0.0.1:1/state" in errors[0] and "in-memory" in errors[0], errors
    assert "s3cret" not in caplog.text and "s3cret" not in second.text()
    assert first.value(RECALL_MEAN_RATIO.name, point(APP_EF)) is not None  # recall goes on
    assert second.value(RECALL_EXACT_REUSED_TOTAL.name, labels()) == 10  # cached in memory


def test_ann_latency_histogram(vdb, tmp_path):
    overrides = recall_overrides(tmp_path)
    overrides["vector"]["ann_latency"] = {"queries": 4}
    state: dict = {}
    run_collector(vdb.monitor_dsn, "ann_latency", state=state, **overrides)
    fam = run_collector(vdb.monitor_dsn, "ann_latency", state=state, **overrides)
    assert fam.value(f"{ANN_QUERY_DURATION_SECONDS.name}_count", labels(filter="")) == 8
    assert fam.value(f"{ANN_QUERY_DURATION_SECONDS.name}_count", labels(filter="tenant_4")) == 8
    assert fam.value(f"{ANN_QUERY_DURATION_SECONDS.name}_sum", labels(filter="")) > 0
    assert fam.value(ANN_QUERY_ERRORS_TOTAL.name, labels(filter="", reason="error")) == 0
    assert fam.value(ANN_QUERY_RETURNED_ROWS.name, labels(filter="")) == K
    assert fam.value(ANN_QUERY_RETURNED_ROWS.name, labels(filter="tenant_4")) < K


def test_freshness_model_versions_and_backlog(pg18):
    db = new_database(pg18, ("vector",))
    with db.admin() as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, updated_at timestamptz, model text, embedding vector(3))")
        conn.execute("INSERT INTO docs SELECT i, now() - interval '1 hour' - i * interval '1 minute', "
                     "CASE WHEN i % 3 = 0 THEN 'v2' WHEN i % 3 = 1 THEN 'v1' END, "
                     "CASE WHEN i % 10 <> 0 THEN '[1,2,3]'::vector END FROM generate_series(1, 300) i")
        conn.execute(f"GRANT SELECT ON docs TO {MONITOR_ROLE}")
    fam = run_collector(db.monitor_dsn, "vector_freshness", vector={"freshness": [
        {"table": "docs", "timestamp_column": "updated_at", "model_version_column": "model",
         "embedding_column": "embedding", "max_versions": 2},
        {"table": "missing_table", "timestamp_column": "updated_at"}]})
    t = {"target": "t", "schema": "public", "table": "docs"}
    age = fam.value(VECTOR_NEWEST_ROW_AGE_SECONDS.name, {**t, "column": "updated_at"})
    assert 3600 < age < 3600 + 120
    assert fam.value(VECTOR_MODEL_VERSION_ROWS.name, {**t, "version": "v1"}) == 100
    assert fam.value(VECTOR_MODEL_VERSION_ROWS.name, {**t, "version": "v2"}) == 100
    assert fam.value(VECTOR_MODEL_VERSION_ROWS.name, {**t, "version": "__other__"}) == 100  # the NULL group
    assert fam.value(VECTOR_EMBEDDING_PENDING_ROWS.name, {**t, "column": "embedding"}) == 30
    assert fam.value(VECTOR_FRESHNESS_ERRORS_TOTAL.name, {"target": "t", "schema": "public",
                                                              "table": "missing_table"}) == 1


def test_freshness_scans_a_table_once_and_uses_indexes_where_they_exist(pg18, caplog):
    """Three parts (newest row, versions, pending) cost one pass over a table without indexes, not three; with a
    btree on the timestamp and a partial index for the NULL embeddings they cost no sequential scan at all."""
    db = new_database(pg18, ("vector",))
    with db.admin() as conn:
        for name in ("plain", "indexed"):
            conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, updated_at timestamptz, model text, "
                         "embedding vector(3))")
            conn.execute(f"INSERT INTO {name} SELECT i, now() - interval '1 hour' - i * interval '1 second', "
                         "CASE WHEN i % 2 = 0 THEN 'v2' ELSE 'v1' END, "
                         "CASE WHEN i % 100 <> 0 THEN '[1,2,3]'::vector END FROM generate_series(1, 20000) i")
            conn.execute(f"GRANT SELECT ON {name} TO {MONITOR_ROLE}")
        conn.execute("CREATE INDEX ON indexed (updated_at)")
        conn.execute("CREATE INDEX ON indexed (id) WHERE embedding IS NULL")
        conn.execute("ANALYZE")

    def seq_scans() -> dict[str, int]:
        with db.admin() as conn:
            return dict(conn.execute("SELECT relname, seq_scan FROM pg_stat_user_tables").fetchall())

    before = seq_scans()
    with caplog.at_level(logging.WARNING, logger="collectors.vector_freshness"):
        fam = run_collector(db.monitor_dsn, "vector_freshness", vector={"freshness": [
            {"table": "plain", "timestamp_column": "updated_at", "model_version_column": "model",
             "embedding_column": "embedding"},
            {"table": "indexed", "timestamp_column": "updated_at", "embedding_column": "embedding"}]})
    time.sleep(0.6)  # the monitoring backend has exited; its statistics reach the views
    after = seq_scans()
    assert after["plain"] - before["plain"] == 1
    assert after["indexed"] - before["indexed"] == 0
    for table in ("plain", "indexed"):
        t = {"target": "t", "schema": "public", "table": table}
        assert 3600 < fam.value(VECTOR_NEWEST_ROW_AGE_SECONDS.name, {**t, "column": "updated_at"}) < 3600 + 120
        assert fam.value(VECTOR_EMBEDDING_PENDING_ROWS.name, {**t, "column": "embedding"}) == 200
    plain = {"target": "t", "schema": "public", "table": "plain"}
    assert fam.value(VECTOR_MODEL_VERSION_ROWS.name, {**plain, "version": "v1"}) == 10000
    assert fam.value(VECTOR_MODEL_VERSION_ROWS.name, {**plain, "version": "v2"}) == 10000
    warnings = [r.getMessage() for r in caplog.records if "no index serves" in r.getMessage()]
    assert len(warnings) == 2 and all("public.plain" in w for w in warnings), warnings
    assert any("column updated_at" in w for w in warnings) and any("column embedding" in w for w in warnings)


def test_build_progress_is_reported(pg18):
    db = new_database(pg18, ("vector",))
    data = clustered(20000, 64, seed=3)
    with db.admin() as conn:
        conn.execute("CREATE TABLE big (id int PRIMARY KEY, embedding vector(64))")
        with conn.cursor().copy("COPY big (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(data):
                copy.write_row((i, vec_text(v)))
    done = threading.Event()

    def build() -> None:
        try:
            with db.admin() as conn:
                conn.execute("SET max_parallel_maintenance_workers = 0")
                conn.execute("CREATE INDEX big_hnsw ON big USING hnsw (embedding vector_l2_ops) "
                             "WITH (m = 16, ef_construction = 200)")
        except psycopg.errors.QueryCanceled:
            pass  # cancelled once the progress was seen
        finally:
            done.set()

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    seen: list[Families] = []
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        fam = run_collector(db.monitor_dsn, "vector_indexes")
        samples = fam.samples(VECTOR_INDEX_BUILD_PROGRESS_RATIO.name)
        if samples and samples[0].labels["phase"].startswith("building index"):
            seen.append(fam)
            break
        time.sleep(0.1)
    db.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_progress_create_index WHERE relid = 'big'::regclass")
    thread.join(timeout=120)
    assert seen, "no build progress observed"
    sample = seen[0].samples(VECTOR_INDEX_BUILD_PROGRESS_RATIO.name)[0]
    assert sample.labels["table"] == "big" and sample.labels["command"] == "CREATE INDEX"
    assert 0 <= sample.value <= 1


# ----------------------------------------------------------------------------- run time, standby session
SLOW_FILTER = {"name": "slow", "table": "items", "where": "(SELECT true FROM pg_sleep(0.3))"}


def test_ann_latency_run_ends_at_its_timeout_as_a_timeout(vdb, tmp_path):
    """20 queries of 0.3 s in a 1.5 s run: the run stops at its deadline and reports a timeout; the
    cancel is not counted as a query timeout, and no statement runs on until the watchdog."""
    overrides = recall_overrides(tmp_path)
    overrides["vector"]["filters"] = [SLOW_FILTER]
    overrides["vector"]["indexes"] = ["items_hnsw"]
    overrides["vector"]["ann_latency"] = {"queries": 20}
    overrides["collectors"] = {"ann_latency": {"timeout": "1500ms"}}
    state: dict = {}
    started = time.monotonic()
    with pytest.raises(CollectionTimeout, match="cancelled after 1.5s"):
        run_collector(vdb.monitor_dsn, "ann_latency", state=state, timeout=1.5, **overrides)
    elapsed = time.monotonic() - started
    assert 1.3 < elapsed < 1.5 + 1.0, elapsed  # not 20 x 0.3 s
    latency = state["ann_latency"]
    assert not [key for key, count in latency.errors.items() if count], latency.errors
    assert latency.histograms[("public", "items", "items_hnsw", "")].counts[-1] == 20  # measured before


def test_ann_latency_query_timeout_within_the_run_is_counted(vdb, tmp_path):
    overrides = recall_overrides(tmp_path)
    overrides["vector"]["filters"] = [SLOW_FILTER]
    overrides["vector"]["indexes"] = ["items_hnsw"]
    overrides["vector"]["ann_latency"] = {"queries": 3, "timeout": "100ms"}
    fam = run_collector(vdb.monitor_dsn, "ann_latency", state={}, timeout=10, **overrides)
    assert fam.value(ANN_QUERY_ERRORS_TOTAL.name, labels(filter="slow", reason="timeout")) == 3
    assert fam.value(f"{ANN_QUERY_DURATION_SECONDS.name}_count", labels(filter="")) == 3


def test_freshness_run_ends_at_its_timeout_as_a_timeout(pg18):
    db = new_database(pg18, ("vector",))
    with db.admin() as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, updated_at timestamptz, model text, embedding vector(3))")
        conn.execute("INSERT INTO docs SELECT i, now(), 'v1', '[1,2,3]' FROM generate_series(1, 10) i")
        for i in (1, 2, 3):  # each freshness pass over these takes 0.8 s
            conn.execute(f"CREATE VIEW slow_{i} AS SELECT d.* FROM docs d, pg_sleep(0.8)")
            conn.execute(f"GRANT SELECT ON slow_{i} TO {MONITOR_ROLE}")
    entry = {"timestamp_column": "updated_at", "model_version_column": "model", "embedding_column": "embedding"}
    state: dict = {}
    started = time.monotonic()
    with pytest.raises(CollectionTimeout):
        run_collector(db.monitor_dsn, "vector_freshness", state=state, timeout=1.5,
                      vector={"freshness": [{"table": f"slow_{i}", **entry} for i in (1, 2, 3)]})
    elapsed = time.monotonic() - started
    assert 1.3 < elapsed < 1.5 + 1.0, elapsed  # not 3 x 0.8 s
    assert state["errors"] and not any(state["errors"].values()), state["errors"]  # no table blamed


def test_replica_session_follows_the_session_rules():
    target = DatabaseTarget.model_validate({"name": "t", "dsn": "host=primary dbname=app user=vecmon password=pw1",
                                            "timeout": "7s", "lock_timeout": "2s", "connect_timeout": "4s"})
    info = psycopg.conninfo.conninfo_to_dict(
        replica_conninfo(target, "postgresql://reader:pw2@standby:5433/app?application_name=other&connect_timeout=60"))
    primary = psycopg.conninfo.conninfo_to_dict(build_conninfo(target))
    assert (info["host"], info["port"], info["user"], info["password"]) == ("standby", "5433", "reader", "pw2")
    assert info["application_name"] == "vecmon" and info["connect_timeout"] == "4"
    assert info["options"] == primary["options"]
    for setting in ("default_transaction_read_only=on", "statement_timeout=7000ms", "lock_timeout=2000ms"):
        assert setting in info["options"]


def test_replica_password_never_reaches_logs_or_metrics(vdb, tmp_path, caplog):
    password = "Sup3rS3cretPw"
    bad = recall_overrides(tmp_path, sample_size=5,
                           replica_dsn=f"host=127.0.0.1 port=1 user=vecmon password={password} dbname=x")
    with caplog.at_level(logging.WARNING, logger="collectors.recall_replica"):
        fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **bad)
    assert fam.value(RECALL_PROBE_SKIPPED.name, labels(reason="replica_unavailable")) == 1
    assert "replica unavailable" in caplog.text and "port 1" in caplog.text
    assert password not in caplog.text and password not in fam.text()
    # whatever a driver puts in its message, the password is redacted
    target = DatabaseTarget.model_validate({"name": "t", "dsn": "host=h", **bad})
    text = recall_replica.error_text(psycopg.OperationalError(f"bad conninfo password={password}"), target)
    assert password not in text and "***" in text


def test_replica_session_is_cancelled_when_the_run_time_is_up(vdb, tmp_path, monkeypatch):
    """A standby statement that no statement_timeout bounds is cancelled at the end of the run's time
    (the connector's watchdog only cancels the target's connection)."""
    def stuck(conn, schema):
        conn.execute("SELECT set_config('statement_timeout', '0', true)")
        conn.execute("SELECT pg_sleep(30)")

    monkeypatch.setattr(recall_replica, "load_library", stuck)
    overrides = recall_overrides(tmp_path, replica_dsn=vdb.monitor_dsn, sample_size=5)
    started = time.monotonic()
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=3, **overrides)
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 1.5, elapsed
    assert fam.value(RECALL_PROBE_SKIPPED.name, labels(reason="replica_unavailable")) == 1
    with vdb.admin() as conn:  # nothing left running on the "standby"
        time.sleep(0.2)
        assert not conn.execute("SELECT pid FROM pg_stat_activity WHERE state = 'active' "
                                "AND query LIKE 'SELECT pg_sleep(30)%%'").fetchall()


def test_filters_and_predicates_may_contain_percent_signs(vdb, tmp_path):
    overrides = recall_overrides(tmp_path, sample_size=5)
    overrides["vector"]["filters"] = [{"name": "like4", "table": "items", "where": "tenant_id::text LIKE '4%'"}]
    fam = run_collector(vdb.monitor_dsn, "recall", state={}, timeout=30, **overrides)
    assert [s for s in fam.samples(VECTOR_INDEX_USED.name) if s.labels["filter"] == "like4"]
    assert not [s for s in fam.samples(RECALL_QUERY_ERRORS_TOTAL.name)
                if s.labels["filter"] == "like4" and s.value]


def test_an_unusable_state_store_only_costs_rows_at_build(vdb, tmp_path):
    shared = SharedState()

    def broken(url):
        raise RuntimeError("store exploded")

    shared.state_stores.open = broken
    fam = run_collector(vdb.monitor_dsn, "vector_indexes", state={}, shared=shared,
                        **recall_overrides(tmp_path))
    assert fam.value(VECTOR_INDEX_VALID.name, labels()) == 1
    assert not fam.samples(VECTOR_INDEX_ROWS_AT_BUILD.name)


def test_probes_apply_every_override_of_the_app_role(pg18, tmp_path):
    """HNSW and IVFFlat on one column: the app role's ivfflat.probes makes IVFFlat costlier, so the
    application's plan uses HNSW. The HNSW probe must plan with that override too (and so see the
    index the application uses), not with only the hnsw.* ones."""
    db = new_database(pg18, ("vector",))
    data = clustered(6000, 32, seed=1)
    role = f"app_both_{db.name}"
    with db.admin() as conn:
        conn.execute("CREATE TABLE both_items (id int PRIMARY KEY, embedding vector(32))")
        with conn.cursor().copy("COPY both_items (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(data):
                copy.write_row((i, vec_text(v)))
        conn.execute("CREATE INDEX both_hnsw ON both_items USING hnsw (embedding vector_l2_ops) "
                     "WITH (m = 8, ef_construction = 32)")
        conn.execute("CREATE INDEX both_ivf ON both_items USING ivfflat (embedding vector_l2_ops) WITH (lists = 20)")
        conn.execute("VACUUM ANALYZE both_items")
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT CONNECT ON DATABASE {db.name} TO {role}")
        conn.execute(f"GRANT SELECT ON both_items TO {role}, {MONITOR_ROLE}")
        conn.execute(f"ALTER ROLE {role} IN DATABASE {db.name} SET ivfflat.probes = 5")
    query = vec_text(data[3])
    with psycopg.connect(db.server.dsn(db.name, user=role)) as app:  # what the application's plan is
        plan = "\n".join(r[0] for r in app.execute(
            "EXPLAIN SELECT id FROM both_items ORDER BY embedding <-> %s::vector LIMIT 10", [query]).fetchall())
    assert "both_hnsw" in plan and "both_ivf" not in plan, plan
    fam = run_collector(db.monitor_dsn, "recall", state={}, timeout=30, vector={
        "app_role": role, "recall": {"state_url": f"sqlite:///{tmp_path / 'both.sqlite'}", "sample_size": 5,
                                     "ef_search_values": [40], "probes_values": [1, 5]}})

    def used(index: str, param: str, value: int) -> float | None:
        return fam.value(VECTOR_INDEX_USED.name, {"target": "t", "schema": "public", "table": "both_items",
                                                      "index": index, "filter": "", "param": param,
                                                      "value": str(value), "iterative": "off"})

    assert fam.value(RECALL_APP_SETTING.name, {"target": "t", "schema": "public", "table": "both_items",
                                                   "index": "both_ivf", "param": "probes"}) == 5
    assert used("both_hnsw", "ef_search", 40) == 1  # the application's plan: HNSW
    assert used("both_ivf", "probes", 5) == 0  # at the application's probes the planner takes HNSW
    assert used("both_ivf", "probes", 1) == 1


def test_sampled_recall_at_the_defaults_is_not_capped_by_the_own_row(pg18, tmp_path):
    """queries: {source: sample} at the defaults (k = 10, ef_search 10 among the measured values):
    each query's own row takes one of HNSW's ef_search candidates, so without one more candidate a
    healthy index returned 9 of 10 rows, the shortfall read 1.0 and recall was capped at 0.9."""
    db = new_database(pg18, ("vector",))
    data = clustered(5000 + 20, DIM, seed=21)
    items, golden = data[:5000], data[5000:]
    with db.admin() as conn:
        conn.execute(f"CREATE TABLE healthy (id int PRIMARY KEY, embedding vector({DIM}))")
        with conn.cursor().copy("COPY healthy (id, embedding) FROM STDIN") as copy:
            for i, v in enumerate(items):
                copy.write_row((i, vec_text(v)))
        conn.execute("CREATE INDEX healthy_hnsw ON healthy USING hnsw (embedding vector_l2_ops) "
                     "WITH (m = 16, ef_construction = 128)")
        conn.execute("VACUUM ANALYZE healthy")
        conn.execute(f"GRANT SELECT ON healthy TO {MONITOR_ROLE}")
    state: dict = {}
    fam = run_collector(db.monitor_dsn, "recall", state=state, timeout=60, vector={
        "recall": {"state_url": f"sqlite:///{tmp_path / 'healthy.sqlite'}"}})
    at10 = {"target": "t", "schema": "public", "table": "healthy", "index": "healthy_hnsw", "filter": "",
            "param": "ef_search", "value": "10", "iterative": "off"}
    sampled = fam.value(RECALL_MEAN_RATIO.name, at10)
    # the same index for queries that are not in the table (no own row), brute force here
    with db.admin() as conn:
        conn.execute("SET hnsw.ef_search = 10")
        external = []
        for q in golden:
            ids = [r[0] for r in conn.execute(f"SELECT id FROM healthy ORDER BY embedding <-> %s::vector "
                                              f"LIMIT {K}", [vec_text(q)]).fetchall()]
            external.append(numpy_recall(items, q, ids))
    assert np.mean(external) > 0.95  # a healthy index at ef_search = k
    assert fam.value(RECALL_RETURNED_ROWS.name, at10) == K
    assert fam.value(RECALL_SHORTFALL_RATIO.name, at10) == 0
    assert sampled > 0.92, sampled
    assert abs(sampled - np.mean(external)) < 0.05, (sampled, np.mean(external))
    # what vecmon measured, recomputed here: ef_search + 1 candidates, LIMIT k + 1, the own row dropped
    ours = []
    with db.admin() as conn:
        conn.execute("SET hnsw.ef_search = 11")
        for query in state["recall"].queries[("public", "healthy_hnsw")]:
            own = conn.execute("SELECT id FROM healthy WHERE ctid = %s::tid",
                               [query.self_id.split(":", 1)[1]]).fetchone()[0]
            ids = [r[0] for r in conn.execute(f"SELECT id FROM healthy ORDER BY embedding <-> %s::vector "
                                              f"LIMIT {K + 1}", [query.vector]).fetchall()]
            ours.append(numpy_recall(items, items[own], ids, exclude=own))
    assert sampled == pytest.approx(float(np.mean(ours)), abs=0.01)


def test_recall_comparisons_are_not_decided_by_float_rounding():
    point_ = Point("", "off", "ef_search", 10, {}, used=True, recalls=[0.9] * 30)
    assert point_.recall_mean == 0.9  # not 0.8999999999999996
    assert point_.meets(0.9, None) and point_.meets(0.9, 1.0) and point_.good_fraction(0.9) == 1.0
    assert not point_.meets(0.9 + 1e-6, None)
    assert reaches(0.9 - 1e-12, 0.9) and not reaches(0.8999, 0.9)
