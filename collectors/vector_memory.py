"""Memory estimate of vector indexes: the size of one stored value and of an HNSW graph."""

from __future__ import annotations


def vector_bytes(typname: str, dims: int | None) -> float | None:
    """On-disk size of one value (varlena header included), or None when unknown."""
    if dims is None:
        return None
    if typname == "vector":
        return 4.0 * dims + 8
    if typname == "halfvec":
        return 2.0 * dims + 8
    if typname == "bit":
        return (dims + 7) // 8 + 8.0
    return None  # sparsevec: depends on the non-zero count


def _maxalign(size: float) -> float:
    return float(int(size + 7) // 8 * 8)


def hnsw_memory_estimate(rows: float, m: int, value_bytes: float) -> float:
    """Approximate size of an HNSW graph of ``rows`` elements (what must fit in memory to be fast).

    Per element pgvector stores an element tuple (about 72 bytes of header and heap TIDs plus the
    value) and a neighbour tuple of ``(level + 2) * m`` 6-byte TIDs (layer 0 has ``2m``
    neighbours); the expected level is ``1 / (m - 1)``. Each tuple also takes a 4-byte line
    pointer. Compare it with ``pg_relation_size`` for the real size of a built index.
    """
    expected_level = 1.0 / max(m - 1, 1)
    element = _maxalign(72 + value_bytes) + 4
    neighbours = _maxalign(4 + (expected_level + 2) * m * 6) + 4
    pages_overhead = 1.0 + 24.0 / 8192.0
    return rows * (element + neighbours) * pages_overhead

