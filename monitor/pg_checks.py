"""What vecmon reads about a session apart from the collectors: the role's write privileges
(``vecmon check-config --connect`` and the first connection of a target), the server's facts, and
the text of SQL_ASCII databases (decoded the same way everywhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from collectors.base import ServerFacts


def facts_from_row(row: Any) -> ServerFacts:
    version_num, version, database, in_recovery, extensions = row[-5:]
    return ServerFacts(version_num=version_num, version=version, database=legacy_text(database),
                       in_recovery=in_recovery, extensions=dict(extensions or {}))


LEGACY_ENCODING = "SQL_ASCII"


def adapt_encoding(conn: psycopg.Connection) -> None:
    """On a SQL_ASCII server (no encoding at all) psycopg returns text as bytes. With the client
    encoding LATIN1 (the server converts nothing) every byte is one character: names come back as
    str and go back to the server unchanged, in identifiers too. Labels are fixed in :func:`legacy_labels`."""
    if conn.info.parameter_status("server_encoding") != LEGACY_ENCODING:
        return
    if conn.info.parameter_status("client_encoding") == "LATIN1":
        return
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        conn.execute("SET client_encoding TO 'LATIN1'")
    finally:
        conn.autocommit = autocommit


def legacy_text(value: str) -> str:
    """A string read from a SQL_ASCII server as LATIN1: its bytes as UTF-8 when they are UTF-8
    (most such databases hold UTF-8 anyway), else the LATIN1 reading. Always valid text."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def legacy_labels(families: Any) -> Any:
    """Label values of families collected from a SQL_ASCII server, through :func:`legacy_text`."""
    if not isinstance(families, list):
        return families
    for family in families:
        for sample in getattr(family, "samples", ()):
            for key, value in list(sample.labels.items()):
                if isinstance(value, str) and not value.isascii():
                    sample.labels[key] = legacy_text(value)
    return families


WRITE_CHECK_SQL = """
SELECT r.rolsuper,
       CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_write_all_data')
            THEN pg_has_role('pg_write_all_data', 'MEMBER') ELSE false END,
       (SELECT array_agg(t ORDER BY t) FROM (
           SELECT format('%I.%I (%s)', n.nspname, c.relname, concat_ws(',',
                         CASE WHEN has_table_privilege(c.oid, 'INSERT') THEN 'INSERT' END,
                         CASE WHEN has_table_privilege(c.oid, 'UPDATE') THEN 'UPDATE' END,
                         CASE WHEN has_table_privilege(c.oid, 'DELETE') THEN 'DELETE' END,
                         CASE WHEN has_table_privilege(c.oid, 'TRUNCATE') THEN 'TRUNCATE' END)) AS t
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
              AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
                   OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))
            LIMIT 21) w),
       (SELECT array_agg(quote_ident(nspname) ORDER BY nspname) FROM pg_namespace
         WHERE has_schema_privilege(oid, 'CREATE')
           AND nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)')
  FROM pg_roles r WHERE r.rolname = current_user
"""


def write_capabilities(conn: psycopg.Connection) -> list[str]:
    """What the connected role could write, in words; empty for a read-only role such as pg_monitor."""
    row = conn.execute(WRITE_CHECK_SQL).fetchone()
    if row is None:
        return []
    superuser, write_all, tables, schemas = row
    if superuser:
        return ["superuser"]
    found = []
    if write_all:
        found.append("member of pg_write_all_data")
    if tables:
        shown = [legacy_text(t) for t in tables[:20]]
        more = " and more" if len(tables) > 20 else ""
        found.append(f"INSERT/UPDATE/DELETE/TRUNCATE on {', '.join(shown)}{more}")
    if schemas:
        found.append(f"CREATE on schema {', '.join(legacy_text(s) for s in schemas)}")
    return found


@dataclass
class AccessReport:
    """The result of one direct connection attempt (``vecmon check-config --connect``)."""

    reachable: bool
    message: str  # the server version, or the cause of the failure
    reason: str | None = None
    writes: list[str] = field(default_factory=list)
