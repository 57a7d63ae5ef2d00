"""Probe statements: settings applied inside a savepoint, EXPLAIN plans, and the approximate query."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.abc import Params

from collectors.vector_model import VectorIndex


def numeric(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@contextmanager
def local_settings(conn: psycopg.Connection, settings: Mapping[str, str | None]) -> Iterator[None]:
    """Apply ``settings`` transaction-locally inside a savepoint, and undo them afterwards.

    ``set_config(name, value, true)`` inside a savepoint outlives the savepoint's RELEASE (it
    lasts until the outer transaction ends), so the previous values are restored explicitly on
    success; on an error the savepoint's rollback restores them. ``None`` values are skipped.
    """
    wanted = {k: v for k, v in settings.items() if v is not None}
    with conn.transaction():
        previous: dict[str, str | None] = {}
        if wanted:
            names = list(wanted)
            row = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
                sql.SQL("current_setting(%s, true)") for _ in names)), names).fetchone()
            assert row is not None  # a SELECT without FROM returns one row
            previous = dict(zip(names, row, strict=True))
            _set_many(conn, wanted)
        yield
        restore = {k: v for k, v in previous.items() if v is not None}
        if restore:
            _set_many(conn, restore)


def _set_many(conn: psycopg.Connection, values: Mapping[str, str]) -> None:
    parts = []
    params: list[str] = []
    for name, value in values.items():
        parts.append(sql.SQL("set_config(%s, %s, true)"))
        params.extend([name, str(value)])
    conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(parts)), params)


def plan_nodes(plan: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()) or ():
        yield from plan_nodes(child)


def fetch_value(conn: psycopg.Connection, query: str | sql.SQL | sql.Composed, params: Params | None = None) -> Any:
    """The first column of a statement that returns one row (``SELECT current_database()``...)."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, "the statement returned no row"
    return row[0]


def explain_json(conn: psycopg.Connection, query: sql.Composable, params: Mapping[str, Any]) -> Mapping[str, Any]:
    row = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params, prepare=False).fetchone()
    assert row is not None  # EXPLAIN returns one row
    document = row[0]
    if isinstance(document, str):
        document = json.loads(document)
    plan: Mapping[str, Any] = document[0]["Plan"]
    return plan


_SCAN_NODES = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan",
               "Sample Scan", "Foreign Scan", "Custom Scan")


def plan_uses_index(plan: Mapping[str, Any], index_names: set[str], table_names: set[str]) -> bool:
    """True when every scan of the table (or its partitions) is an index scan on ``index_names``."""
    used = False
    for node in plan_nodes(plan):
        node_type = node.get("Node Type")
        if node_type in ("Index Scan", "Index Only Scan") and node.get("Index Name") in index_names:
            used = True
            continue
        if node_type in _SCAN_NODES and node.get("Relation Name") in table_names:
            return False
    return used


def plan_index_names(plan: Mapping[str, Any]) -> set[str]:
    return {str(n.get("Index Name")) for n in plan_nodes(plan) if n.get("Index Name")}



ANN_TAG = "/* vecmon:recall:ann */"  # marks the approximate queries of recall and ann_latency


def ann_query(index: VectorIndex, filter_where: str | None, limit: int) -> sql.Composed:
    """The query an application runs (plus tableoid/ctid to identify rows)."""
    conditions = index.conditions(filter_where)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    return sql.SQL("SELECT " + ANN_TAG + " tableoid::oid, ctid::text, {dist} AS distance FROM {table}{where} "
                   "ORDER BY {dist} LIMIT {limit}").format(
        dist=index.distance_sql(), table=index.table_sql(), where=where, limit=sql.Literal(limit))
