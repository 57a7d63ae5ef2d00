"""The recall probe's SQL: exact k-NN, the check of stored neighbours, and the table's signature."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import psycopg
from psycopg import sql

from collectors.recall_records import TableSignature
from collectors.vector_model import VectorIndex
from collectors.vector_plans import fetch_value

# Inside the statement (pg_stat_statements drops leading comments), so probe queries are easy to find.
EXACT_TAG = "/* vecmon:recall:exact */"
CHECK_TAG = "/* vecmon:recall:check */"


def exact_query(index: VectorIndex, filter_where: str | None, limit: int) -> sql.Composed:
    """Exact k-NN: ``+ 0`` keeps any vector index from answering the ORDER BY."""
    conditions = index.conditions(filter_where, not_null=True)
    return sql.SQL("SELECT " + EXACT_TAG + " tableoid::oid, ctid::text, ({dist}) + 0 AS distance FROM {table} "
                   "WHERE {where} ORDER BY 3 LIMIT {limit}").format(
        dist=index.distance_sql(), table=index.table_sql(), where=sql.SQL(" AND ").join(conditions),
        limit=sql.Literal(limit))


def settings_key(settings: Mapping[str, str], query_sql: str) -> str:
    """Identifies how an approximate query ran: its settings and its SQL (LIMIT, filter, predicate)."""
    return hashlib.md5(json.dumps([sorted(settings.items()), query_sql]).encode()).hexdigest()


def stored_neighbours_query(index: VectorIndex, filter_where: str | None) -> sql.Composed:
    """The stored neighbours of several queries, fetched by (tableoid, ctid) with their distance now.

    Parameters: ``vectors`` (the query vectors, text), and per stored neighbour ``rels``, ``tids``
    and ``numbers`` (1-based position of its query in ``vectors``). A row that was deleted or
    updated since (a new version has a new ctid) or no longer matches the filter is not returned.
    """
    conditions = [sql.SQL("t.ctid = ANY(%(tids)s::tid[])"), *index.conditions(filter_where, not_null=True)]
    # the query vectors are cast once (a constant array), not once per fetched row
    distance = sql.SQL("{key} {op} ((%(vectors)s::text[])::{type}[])[vecmon_n.vecmon_number]").format(
        key=index.key_composable(), op=index.operator_sql(), type=sql.SQL(index.key_type))
    return sql.SQL(
        "SELECT " + CHECK_TAG + " vecmon_n.vecmon_number, t.tableoid::oid, t.ctid::text, ({dist}) + 0 "
        "FROM {table} AS t JOIN unnest(%(rels)s::oid[], %(tids)s::tid[], %(numbers)s::int[]) "
        "AS vecmon_n(vecmon_rel, vecmon_tid, vecmon_number) "
        "ON vecmon_n.vecmon_tid = t.ctid AND vecmon_n.vecmon_rel = t.tableoid "
        "WHERE {where}").format(dist=distance, table=index.table_sql(), where=sql.SQL(" AND ").join(conditions))


_SIGNATURE_SQL = """
SELECT coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::bigint AS changes,
       coalesce(string_agg(c.oid::text || ':' || c.relfilenode::text, ',' ORDER BY c.oid), '') AS files,
       coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 AS reltuples,
       coalesce(sum(s.n_live_tup), 0)::float8 AS live,
       coalesce(sum(s.vacuum_count + s.autovacuum_count), 0)::bigint AS vacuums
FROM (SELECT relid FROM pg_partition_tree(%(oid)s::oid::regclass) WHERE isleaf
      UNION SELECT %(oid)s::oid WHERE (SELECT relkind FROM pg_class WHERE oid = %(oid)s::oid) <> 'p') AS leaf
JOIN pg_class c ON c.oid = leaf.relid
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
"""


def table_signature(conn: psycopg.Connection, index: VectorIndex, in_recovery: bool) -> TableSignature:
    row = conn.execute(_SIGNATURE_SQL, {"oid": index.table_oid}).fetchone()
    assert row is not None  # an aggregate returns one row
    changes, files, reltuples, live, vacuums = row
    if in_recovery:  # a standby's statistics do not see replayed writes: only an unchanged replay position counts
        lsn = fetch_value(conn, "SELECT pg_last_wal_replay_lsn()::text")
        files = f"{files}@{lsn}"
    return TableSignature(files=files, changes=int(changes), rows=max(float(reltuples), float(live)),
                          vacuums=int(vacuums))

