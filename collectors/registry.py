"""Name -> collector class, for every collector vecmon ships.

Classes are referenced by import path so the config can validate collector names
without importing every collector (and its dependencies). This is one of the two places
where vecmon imports lazily (the other is :mod:`monitor.entry`), for start-up cost and
memory only: a collector's module, and what it needs (SQLAlchemy for the recall state store,
say), is imported when a configured target runs it.
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
    "archiver": "collectors.pg_archiver:ArchiverCollector",
    "wal": "collectors.pg_wal:WalCollector",
    "io": "collectors.pg_io:IoCollector",
    "wraparound": "collectors.pg_wraparound:WraparoundCollector",
    "wraparound_tables": "collectors.pg_wraparound:WraparoundTablesCollector",
    "activity": "collectors.pg_activity:ActivityCollector",
    "progress": "collectors.pg_progress:ProgressCollector",
    # pgvector (disabled on databases without the extension)
    "vector_indexes": "collectors.vector_indexes:VectorIndexesCollector",
    "recall": "collectors.recall_probe:RecallCollector",
    "ann_latency": "collectors.ann_latency:AnnLatencyCollector",
    "vector_freshness": "collectors.vector_freshness:VectorFreshnessCollector",
    "vector_bloat": "collectors.vector_bloat:VectorBloatCollector",
}

# Collectors whose natural period differs from the database's ``interval``; a
# ``collectors.<name>.interval`` in the config still wins.
# Freeze ages move by at most a few million IDs an hour against limits of 200 million and more:
# every 5 minutes is plenty, and the per-table query is the costliest per-database one (issue 17).
DEFAULT_INTERVALS: dict[str, float] = {"vector_indexes": 60, "recall": 600, "ann_latency": 30,
                                     "vector_freshness": 60, "vector_bloat": 600, "wraparound_tables": 300}
# Likewise for collectors that legitimately need longer than the database's ``timeout``.
DEFAULT_TIMEOUTS: dict[str, float] = {"recall": 120, "vector_freshness": 30, "vector_bloat": 60}


def load(path: str) -> Any:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


# The recall probe's state store: SQLAlchemy, imported only when a target has recall on.
RECALL_STATE_STORE = "collectors.recall_state:RecallStateStore"


def recall_state_store(url: str) -> Any:
    """A new :class:`collectors.recall_state.RecallStateStore` for ``url``."""
    return load(RECALL_STATE_STORE)(url)


def database_collector(name: str) -> Any:
    return load(DATABASE_COLLECTORS[name])


def all_collector_classes() -> list[Any]:
    return [load(path) for path in DATABASE_COLLECTORS.values()]
