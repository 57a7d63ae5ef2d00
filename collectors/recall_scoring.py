"""Recall@k by distance, and what an approximate answer proves about a stored exact result."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from collectors.query_vectors import row_id
from collectors.recall_records import ExactResult

RECALL_BUCKETS = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0)
# Recall values are ratios like 9/10 and means of them: a value "reaches" a target or bucket bound
# within this much, so 0.8999999999999999 (float rounding of a mean of 0.9s) reaches 0.9.
RECALL_TOLERANCE = 1e-9


def reaches(value: float, target: float) -> bool:
    """``value >= target`` up to :data:`RECALL_TOLERANCE` (float rounding never decides)."""
    return value >= target - RECALL_TOLERANCE



def recall_at_k(ann: Sequence[tuple[str, float]], exact_distances: Sequence[float], k: int,
                epsilon: float) -> float | None:
    """Distance-threshold recall@k (None when the exact search found nothing).

    ``ann``: (row id, distance) of the approximate results, self row already removed;
    ``exact_distances``: the exact top distances, ascending.
    """
    truth = [d for d in exact_distances if not math.isnan(d)][:k]
    if not truth:
        return None
    kth = truth[-1]
    threshold = kth + epsilon * max(1.0, abs(kth))
    hits = sum(1 for _, d in ann[:k] if d is not None and not math.isnan(d) and d <= threshold)
    return min(1.0, hits / len(truth))


def contradicts(ann: Sequence[tuple[str, float]], truth: ExactResult, k: int, epsilon: float) -> bool:
    """Whether an approximate answer proves a stored exact result stale: it returned a row that the
    exact search would have had to return (closer than the k-th exact distance, or any row when the
    exact search found fewer than k) and that the stored result lacks."""
    known = set(truth.row_ids)
    distances = [d for d in truth.distances if not math.isnan(d)]
    kth = distances[-1] if distances else math.inf
    below = kth - epsilon * max(1.0, abs(kth)) if distances else math.inf
    for rid, distance in ann:
        if rid in known or distance is None or math.isnan(distance):
            continue
        if len(distances) < k or distance < below:
            return True
    return False


def result_rows(rows: Sequence[tuple[Any, Any, Any]], self_id: str | None) -> list[tuple[str, float]]:
    """(row id, distance) of a probe query's (tableoid, ctid, distance) rows, the query's own row
    dropped. A row whose distance is NULL (a NULL key value) is skipped: it is no neighbour, and
    ``float(None)`` must not abort the run."""
    pairs = [(row_id(rel, ctid), float(d)) for rel, ctid, d in rows if d is not None]
    if self_id is not None:
        pairs = [(rid, d) for rid, d in pairs if rid != self_id]
    return pairs

