"""What the recall probe and its state store exchange: the table's signature, exact results,
approximate answers and query sets (plain records: importing them loads no SQLAlchemy).

Reuse rules are described in :mod:`collectors.recall_state`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSignature:
    files: str
    changes: int
    rows: float
    vacuums: int = 0  # vacuum_count + autovacuum_count: a vacuum changes an HNSW graph, not exact results

    def allows_reuse(self, stored_files: str, stored_changes: int, tolerance: float) -> bool:
        """True when results computed at (stored_files, stored_changes) still describe the table."""
        if stored_files != self.files:
            return False
        delta = self.changes - int(stored_changes)
        if delta < 0:  # statistics reset: unknown, recompute
            return False
        if tolerance <= 0:
            return delta == 0
        return delta <= tolerance * max(self.rows, 1.0)


@dataclass(frozen=True)
class ExactResult:
    distances: tuple[float, ...]
    row_ids: tuple[str, ...]
    duration: float


@dataclass(frozen=True)
class ApproximateAnswer:
    rows: tuple[tuple[str, float], ...]  # (row id, distance) in answer order, the query's own row dropped
    duration: float


@dataclass(frozen=True)
class StoredQuerySet:
    requested: int
    files: str
    changes: int
    created_at: float
    queries: tuple[tuple[str, str | None, str], ...]
