"""What a recall probe measures per index (the curve's points) and what it keeps across runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from collectors.query_vectors import QueryVector
from collectors.recall_scoring import reaches
from collectors.vector_model import VectorIndex


@dataclass
class Point:
    """One (filter, iterative mode, setting value) of one index."""

    filter: str
    iterative: str
    param: str
    value: int
    settings: dict[str, str]
    used: bool | None = None  # None: could not be determined (error)
    recalls: list[float] = field(default_factory=list)
    returned: list[int] = field(default_factory=list)
    expected: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def mean(self, values: Sequence[float]) -> float | None:
        return math.fsum(values) / len(values) if values else None  # fsum: thirty 0.9s average to 0.9

    @property
    def recall_mean(self) -> float | None:
        return self.mean(self.recalls)

    def good_fraction(self, target: float) -> float | None:
        return self.mean([1.0 if reaches(r, target) else 0.0 for r in self.recalls])

    @property
    def shortfall_fraction(self) -> float | None:
        pairs = list(zip(self.returned, self.expected, strict=False))
        return self.mean([1.0 if got < want else 0.0 for got, want in pairs]) if pairs else None

    def meets(self, target: float, fraction: float | None) -> bool:
        if not self.used or not self.recalls:
            return False
        if fraction is None:
            return reaches(self.recall_mean or 0.0, target)
        return reaches(self.good_fraction(target) or 0.0, fraction)


@dataclass
class IndexResult:
    index: VectorIndex
    param: str
    app_value: int
    app_iterative: str
    points: list[Point] = field(default_factory=list)
    exact_seconds: dict[str, float] = field(default_factory=dict)
    queries: int = 0
    finished_at: float = 0.0
    duration: float = 0.0

    def app_point(self, filter_name: str) -> Point | None:
        for p in self.points:
            if p.filter == filter_name and p.iterative == self.app_iterative and p.value == self.app_value:
                return p
        return None


@dataclass
class RecallState:
    """Per-target state kept across runs in ``ctx.state['recall']``."""

    results: dict[str, IndexResult] = field(default_factory=dict)
    hist: dict[tuple[str, ...], list[float]] = field(default_factory=dict)  # [count per bucket..., sum]
    good: dict[tuple[str, ...], int] = field(default_factory=dict)
    total: dict[tuple[str, ...], int] = field(default_factory=dict)
    exact_queries: dict[tuple[str, ...], int] = field(default_factory=dict)
    exact_reused: dict[tuple[str, ...], int] = field(default_factory=dict)
    exact_stale: dict[tuple[str, ...], int] = field(default_factory=dict)
    ann_reused: dict[tuple[str, ...], int] = field(default_factory=dict)
    check_queries: dict[tuple[str, ...], int] = field(default_factory=dict)
    ann_queries: dict[tuple[str, ...], int] = field(default_factory=dict)
    errors: dict[tuple[str, ...], int] = field(default_factory=dict)
    runs: dict[tuple[str, ...], int] = field(default_factory=dict)
    cycles: dict[tuple[str, ...], int] = field(default_factory=dict)  # per-cycle judgements (recall SLO)
    good_cycles: dict[tuple[str, ...], int] = field(default_factory=dict)
    last_attempt: dict[str, float] = field(default_factory=dict)
    queries: dict[tuple[str, str], list[QueryVector]] = field(default_factory=dict)
    database_key: str | None = None
    last_prune: float = 0.0

    def bump(self, table: dict[tuple[str, ...], int], key: tuple[str, ...], amount: int = 1) -> None:
        table[key] = table.get(key, 0) + amount

    @property
    def total_exact_queries(self) -> int:
        return sum(self.exact_queries.values())

