"""Query vectors of the vector probes: sampled from the indexed table, or a fixed set from a table."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from collectors.vector_model import VectorIndex
from collectors.vector_names import parse_qualified


@dataclass(frozen=True)
class QueryVector:
    qid: str  # stable id: same vector (and excluded row) -> same id
    self_id: str | None  # row the vector was sampled from, excluded from its own results
    vector: str  # pgvector text form


def make_qid(vector: str, self_id: str | None) -> str:
    return hashlib.md5(f"{self_id or ''}|{vector}".encode()).hexdigest()[:16]


def row_id(rel: Any, ctid: Any) -> str:
    return f"{rel}:{ctid}"


def sample_query_vectors(conn: psycopg.Connection, index: VectorIndex, n: int, estimated_rows: float,
                         rng: random.Random | None = None) -> list[QueryVector]:
    """``n`` stored, non-NULL key values (in the index's own space: an expression index samples
    the expression), each with the row it came from.

    Candidate rows are found by ``(tableoid, ctid)`` only: a small table is read whole (at most
    20000 rows), a larger one through ``TABLESAMPLE SYSTEM`` sized for about 20 candidates per
    wanted vector (``ORDER BY random()`` would read and sort all of it). The chosen rows' values
    are then fetched by TID.
    """
    rng = rng or random.Random()
    where = sql.SQL(" AND ").join(index.conditions(not_null=True))
    want = max(n * 20, 200)
    candidates: list[tuple[Any, ...]] = []
    if estimated_rows > 20000:
        percent = min(100.0, 100.0 * want / estimated_rows)
        query = sql.SQL("SELECT tableoid::oid, ctid::text FROM {table} TABLESAMPLE SYSTEM (%s::float4) "
                        "WHERE {where} LIMIT %s").format(table=index.table_sql(), where=where)
        candidates = conn.execute(query, [round(percent, 6), want * 4], prepare=False).fetchall()
    if len(candidates) < n:
        query = sql.SQL("SELECT tableoid::oid, ctid::text FROM {table} WHERE {where} LIMIT %s").format(
            table=index.table_sql(), where=where)
        candidates = conn.execute(query, [20000], prepare=False).fetchall()
    if len(candidates) > n:
        candidates = rng.sample(candidates, n)
    if not candidates:
        return []
    chosen = {(int(rel), ctid) for rel, ctid in candidates}
    query = sql.SQL("SELECT tableoid::oid, ctid::text, ({key})::text FROM {table} WHERE ctid = ANY(%s::tid[])").format(
        key=index.key_composable(), table=index.table_sql())
    rows = conn.execute(query, [sorted({ctid for _, ctid in chosen})], prepare=False).fetchall()
    result = []
    for rel, ctid, vector in rows:
        if (int(rel), ctid) not in chosen or vector is None:
            continue
        self_id = row_id(rel, ctid)
        result.append(QueryVector(qid=make_qid(vector, self_id), self_id=self_id, vector=vector))
    result.sort(key=lambda q: q.qid)
    return result


def table_query_vectors(conn: psycopg.Connection, table: str, column: str, n: int,
                        order_by: str | None = None) -> list[QueryVector]:
    """A fixed query set: the first ``n`` non-NULL vectors of ``table.column`` (stable order)."""
    schema, name = parse_qualified(table)
    order = sql.Identifier(order_by) if order_by else sql.SQL("ctid")
    query = sql.SQL("SELECT ({col})::text FROM {schema}.{table} WHERE {col} IS NOT NULL ORDER BY {order} "
                    "LIMIT %s").format(col=sql.Identifier(column), schema=sql.Identifier(schema or "public"),
                                       table=sql.Identifier(name), order=order)
    vectors = [r[0] for r in conn.execute(query, [n], prepare=False).fetchall()]
    return [QueryVector(qid=make_qid(v, None), self_id=None, vector=v) for v in vectors]

