"""Name -> collector class, for every collector vecmon ships.

Classes are referenced by import path so the config can validate collector names
without importing every collector (and its dependencies).
"""

from __future__ import annotations

import importlib
from typing import Any

# PostgreSQL collectors run once per database target, each as its own scheduled job.
DATABASE_COLLECTORS: dict[str, str] = {
    "connections": "collectors.pg_connections:ConnectionsCollector",
    "databases": "collectors.pg_databases:DatabasesCollector",
    "tables": "collectors.pg_tables:TablesCollector",
    "indexes": "collectors.pg_indexes:IndexesCollector",
    "statements": "collectors.pg_statements:StatementsCollector",
    "server": "collectors.pg_server:ServerCollector",
}

# Collectors whose natural period differs from the database's ``interval``; a
# ``collectors.<name>.interval`` in the config still wins.
DEFAULT_INTERVALS: dict[str, float] = {}
# Likewise for collectors that legitimately need longer than the database's ``timeout``.
DEFAULT_TIMEOUTS: dict[str, float] = {}


def load(path: str) -> Any:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def database_collector(name: str) -> Any:
    return load(DATABASE_COLLECTORS[name])


def all_collector_classes() -> list[Any]:
    return [load(path) for path in DATABASE_COLLECTORS.values()]
