"""Small helpers shared by the PostgreSQL collectors (``collectors/pg_*.py``).

They run inside the one read-only transaction :meth:`monitor.pg.DatabaseConnector.run`
opens for a collection, so a failing statement aborts the whole run: collectors must
check privileges or versions *before* calling something that may fail, never catch and
continue.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

T = TypeVar("T")
SLOW_INTERVAL = 300.0  # seconds: how often what rarely changes and costs the server is read again


def every(state: dict[str, Any], key: str, compute: Callable[[], T], seconds: float = SLOW_INTERVAL) -> T:
    """``compute()`` at most every ``seconds`` per target and collector (kept in ``ctx.state``), the
    last result in between: settings and planner statistics change rarely, and reading them
    (pg_settings, pg_stats) costs the server more than the rest of a run."""
    computed = state.get(key)
    now = time.monotonic()
    if computed is None or now - computed[0] >= seconds:
        computed = state[key] = (now, compute())
    return computed[1]

Query = str | sql.SQL | sql.Composed  # what psycopg's Cursor.execute takes


def fetch(conn: psycopg.Connection, query: Query, params: Sequence[Any] | Mapping[str, Any] | None = None
          ) -> list[dict[str, Any]]:
    """Run ``query`` with bound ``params`` and return every row as a dict (column name -> value)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def fetch_one(conn: psycopg.Connection, query: Query, params: Sequence[Any] | Mapping[str, Any] | None = None
              ) -> dict[str, Any]:
    """Like :func:`fetch` for a query that returns exactly one row (an empty dict if it returns none)."""
    rows = fetch(conn, query, params)
    return rows[0] if rows else {}


def ratio(numerator: Any, denominator: Any) -> float | None:
    """``numerator / denominator`` as a float; None (skipped by Emitter) for a NULL or a zero denominator."""
    if numerator is None or denominator is None:
        return None
    divisor = float(denominator)
    if divisor == 0:
        return None
    return float(numerator) / divisor


def version_tuple(version: str | None) -> tuple[int, ...]:
    """``"1.10"`` -> ``(1, 10)``; extension versions compare numerically, not as strings."""
    parts = re.findall(r"\d+", version or "")
    return tuple(int(part) for part in parts)


# pg_settings.unit -> factor to the base unit (bytes or seconds). pg_settings reports
# units such as "8kB" (blocks) or "16MB", so a leading count multiplies the unit.
_UNIT_FACTORS = {
    "B": 1.0, "kB": 1024.0, "MB": 1024.0 ** 2, "GB": 1024.0 ** 3, "TB": 1024.0 ** 4,
    "us": 1e-6, "ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
}
_UNIT = re.compile(r"^\s*(\d+)?\s*([A-Za-z]+)\s*$")


_MEMORY_UNITS = {"B", "kB", "MB", "GB", "TB"}


def setting_unit_kind(unit: str | None) -> str:
    """``"bytes"``, ``"seconds"`` or ``""`` (a plain number) for a pg_settings unit."""
    match = _UNIT.match(unit or "")
    if match is None:
        return ""
    return "bytes" if match.group(2) in _MEMORY_UNITS else "seconds"


def setting_in_base_units(setting: Any, unit: str | None) -> float | None:
    """Convert a pg_settings ``setting`` with its ``unit`` to bytes or seconds.

    Returns None (skip) for non-numeric settings, unknown units, and negative values of
    settings that have a unit (PostgreSQL uses -1 for "disabled" or "use the default").
    """
    try:
        value = float(setting)
    except (TypeError, ValueError):
        return None
    if not unit:
        return value
    match = _UNIT.match(unit)
    if match is None or match.group(2) not in _UNIT_FACTORS:
        return None
    if value < 0:
        return None
    count = int(match.group(1)) if match.group(1) else 1
    return value * count * _UNIT_FACTORS[match.group(2)]
