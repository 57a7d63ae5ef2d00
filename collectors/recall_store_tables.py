"""The recall state store's tables (SQLAlchemy Core) and how rows are encoded.

Keys and reuse rules are described in :mod:`collectors.recall_state`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

exact_results = Table(
    "vecmon_recall_exact", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("filter_key", String(200), primary_key=True),
    Column("k", Integer, primary_key=True),
    Column("query_id", String(64), primary_key=True),
    Column("table_files", Text, nullable=False),
    Column("table_changes", BigInteger, nullable=False),
    Column("distances", Text, nullable=False),  # JSON list of floats, ascending
    Column("row_ids", Text, nullable=False),  # JSON list of "tableoid:ctid"
    Column("duration_seconds", Float, nullable=False),
    Column("computed_at", Float, nullable=False),
)

query_sets = Table(
    "vecmon_recall_queries", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("requested", Integer, nullable=False),
    Column("table_files", Text, nullable=False),
    Column("table_changes", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("queries", Text, nullable=False),  # JSON [[qid, self_id, vector], ...]
)

# Approximate answers per (query, setting): reused while the table, its counters, its vacuums and
# the index are unchanged (``marker``) and the returned rows are still there (checked by the probe).
ann_answers = Table(
    "vecmon_recall_ann", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("filter_key", String(200), primary_key=True),
    Column("settings_key", String(64), primary_key=True),  # hash of the settings and LIMIT the query ran with
    Column("query_id", String(64), primary_key=True),
    Column("marker", Text, nullable=False),
    Column("distances", Text, nullable=False),  # JSON list of floats, in answer order
    Column("row_ids", Text, nullable=False),  # JSON list of "tableoid:ctid"
    Column("duration_seconds", Float, nullable=False),
    Column("computed_at", Float, nullable=False),
)

index_builds = Table(
    "vecmon_index_builds", metadata,
    Column("database", String(200), primary_key=True),
    Column("index_key", String(400), primary_key=True),
    Column("relfilenode", BigInteger, nullable=False),
    Column("rows", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)



def json_floats(values: Iterable[float]) -> str:
    # NaN is excluded before storing; repr keeps float8 values exact.
    return json.dumps([float(v) for v in values])


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

