"""Config that names what does not exist: vector.indexes and filters checked once connected.

On the real embedded PostgreSQL 18 + pgvector: a target whose config names an index and a filter
table that are not there still collects what exists, warns once per change with the YAML path, and
marks the collector misconfigured in its metrics and on the status page.
"""

from __future__ import annotations

import logging

from collectors.ann_latency import ANN_QUERIES_TOTAL
from collectors.base import CollectContext
from collectors.registry import database_collector
from collectors.vector_selection import MISCONFIGURED
from monitor.config import Config
from monitor.console import render_console
from monitor.pg import DatabaseConnector
from monitor.shared import SharedState
from monitor.snapshot import SnapshotStore
from monitor.status import build_status
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import Families


def _db_with_index(pg18):
    db = new_database(pg18, ("vector",))
    with db.admin() as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, embedding vector(3))")
        conn.execute("INSERT INTO items SELECT i, ARRAY[random(), random(), random()]::vector(3) "
                     "FROM generate_series(1, 200) i")
        conn.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
        conn.execute("ANALYZE items")
        conn.execute(f"GRANT SELECT ON items TO {MONITOR_ROLE}")
    return db


def _config(db, tmp_path, indexes, filters) -> Config:
    return Config.model_validate({"databases": [
        {"name": "other", "dsn": "postgresql://nobody@127.0.0.1:1/x", "enabled": False},
        {"name": "docs", "dsn": db.monitor_dsn, "vector": {
            "indexes": indexes, "filters": filters,
            "recall": {"state_url": f"sqlite:///{tmp_path / 'recall.sqlite'}", "sample_size": 5,
                       "ef_search_values": [10]},
            "ann_latency": {"queries": 1}}}]})


def _run(target, collector: str, state: dict, shared: SharedState) -> Families:
    connector = DatabaseConnector(target)
    connector.open()
    try:
        ctx = CollectContext(target=target.name, settings=target, state=state, shared=shared)
        return Families(connector.run(database_collector(collector)().collect, ctx, 30.0))
    finally:
        connector.close()


def test_unknown_index_and_filter_table_are_reported_with_their_config_path(pg18, tmp_path, caplog):
    db = _db_with_index(pg18)
    config = _config(db, tmp_path, ["public.items_hnsw", "public.no_such_index"],
                     [{"name": "gone", "table": "public.no_such_table", "where": "id > 1"},
                      {"name": "nope", "index": "no_such_hnsw", "where": "id > 1"}])
    target = config.databases[1]
    shared = SharedState()
    store = SnapshotStore()
    try:
        for collector in ("recall", "ann_latency"):
            state: dict = {}
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                fam = _run(target, collector, state, shared)
                _run(target, collector, state, shared)  # same config, same database: no second warning
            warnings = [r.getMessage() for r in caplog.records if "databases[1].vector" in r.getMessage()]
            assert sorted(warnings) == sorted([
                f"{collector} on docs: databases[1].vector.indexes[1]: no index public.no_such_index on target docs",
                f"{collector} on docs: databases[1].vector.filters[0].table: no table public.no_such_table with "
                f"an HNSW or IVFFlat index on target docs",
                f"{collector} on docs: databases[1].vector.filters[1].index: no index no_such_hnsw on target docs",
            ]), warnings
            flagged = {(s.labels["reason"], s.labels["path"]): s.value
                       for s in fam.samples(MISCONFIGURED.name)}
            assert flagged == {("unknown_index", "databases[1].vector.indexes[1]"): 1,
                               ("unknown_filter_table", "databases[1].vector.filters[0].table"): 1,
                               ("unknown_filter_index", "databases[1].vector.filters[1].index"): 1}
            assert {s.labels["collector"] for s in fam.samples(MISCONFIGURED.name)} == {collector}
            store.expect([("docs", collector)])
            store.record_success(("docs", collector), fam.families, 0.1)
            status = build_status(store, lambda: {"docs": "db"}, (), now=0)
            entry = status["targets"][0]["collectors"][0]
            assert entry["misconfigured"] == [
                {"path": "databases[1].vector.filters[0].table", "reason": "unknown_filter_table"},
                {"path": "databases[1].vector.filters[1].index", "reason": "unknown_filter_index"},
                {"path": "databases[1].vector.indexes[1]", "reason": "unknown_index"}]
            assert status["targets"][0]["status"] == "misconfigured"
            page = render_console(status)
            assert "databases[1].vector.indexes[1]: unknown_index" in page

        # the existing index was still probed
        assert fam.value(ANN_QUERIES_TOTAL.name, {"target": "docs", "schema": "public", "table": "items",
                                                      "index": "items_hnsw", "filter": ""}) >= 1
    finally:
        shared.close()


def test_a_config_naming_only_what_exists_is_not_flagged(pg18, tmp_path, caplog):
    db = _db_with_index(pg18)
    config = _config(db, tmp_path, ["items_hnsw"], [{"name": "f", "table": "items", "where": "id > 1"}])
    shared = SharedState()
    try:
        with caplog.at_level(logging.WARNING):
            fam = _run(config.databases[1], "recall", {}, shared)
    finally:
        shared.close()
    assert fam.samples(MISCONFIGURED.name) == []
    assert not [r for r in caplog.records if "vector." in r.getMessage()]
