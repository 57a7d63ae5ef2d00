"""What the recall probe exports: per index the last results, the curve and the recommended setting,
and the counters kept across runs."""

from __future__ import annotations

from typing import Any

from collectors.base import Emitter
from collectors.recall_metrics import (
    RECALL_ANN_QUERIES_TOTAL,
    RECALL_ANN_QUERY_DURATION_SECONDS,
    RECALL_ANN_REUSED_TOTAL,
    RECALL_APP_RETURNED_ROWS,
    RECALL_APP_SETTING,
    RECALL_CYCLES_TOTAL,
    RECALL_EXACT_CHECK_QUERIES_TOTAL,
    RECALL_EXACT_QUERIES_TOTAL,
    RECALL_EXACT_QUERY_DURATION_SECONDS,
    RECALL_EXACT_REUSED_TOTAL,
    RECALL_EXACT_STALE_TOTAL,
    RECALL_EXPECTED_ROWS,
    RECALL_GOOD_CYCLES_TOTAL,
    RECALL_GOOD_QUERIES_RATIO,
    RECALL_GOOD_QUERIES_TOTAL,
    RECALL_LAST_SUCCESS_TIMESTAMP_SECONDS,
    RECALL_MEAN_RATIO,
    RECALL_PROBE_DURATION_SECONDS,
    RECALL_PROBE_QUERIES,
    RECALL_PROBE_RUNS_TOTAL,
    RECALL_PROBE_SKIPPED,
    RECALL_QUERIES_TOTAL,
    RECALL_QUERY_ERRORS_TOTAL,
    RECALL_QUERY_RECALL_RATIO,
    RECALL_RECOMMENDED_SETTING,
    RECALL_RETURNED_ROWS,
    RECALL_SHORTFALL_RATIO,
    RECALL_TARGET_MET,
    VECTOR_INDEX_USED,
)
from collectors.recall_results import Point, RecallState
from collectors.recall_scoring import RECALL_BUCKETS
from collectors.vector_model import VectorIndex


def emit_index(em: Emitter, idx: VectorIndex, state: RecallState, skipped: str | None, rc: Any) -> None:
    labels = idx.labels
    if skipped is not None:
        em.add(RECALL_PROBE_SKIPPED.name, 1, *labels, skipped)
    result = state.results.get(idx.probe_key)
    if result is None or skipped in ("no_privilege", "not_ready"):
        return
    em.add(RECALL_APP_SETTING.name, result.app_value, *labels, result.param)
    em.add(RECALL_PROBE_QUERIES.name, result.queries, *labels)
    em.add(RECALL_LAST_SUCCESS_TIMESTAMP_SECONDS.name, result.finished_at, *labels)
    em.add(RECALL_PROBE_DURATION_SECONDS.name, result.duration, *labels)
    groups: dict[tuple[str, str], list[Point]] = {}
    for p in result.points:
        pt = (*labels, p.filter, p.param, str(p.value), p.iterative)
        if p.used is not None:
            em.add(VECTOR_INDEX_USED.name, 1 if p.used else 0, *pt)
        if p.used and p.recalls:
            em.add(RECALL_MEAN_RATIO.name, p.recall_mean, *pt)
            em.add(RECALL_GOOD_QUERIES_RATIO.name, p.good_fraction(rc.target), *pt)
            em.add(RECALL_RETURNED_ROWS.name, p.mean(p.returned), *pt)
            em.add(RECALL_SHORTFALL_RATIO.name, p.shortfall_fraction, *pt)
        if p.used and p.seconds:
            em.add(RECALL_ANN_QUERY_DURATION_SECONDS.name, p.mean(p.seconds), *pt)
        groups.setdefault((p.filter, p.iterative), []).append(p)
    filters = sorted({p.filter for p in result.points})
    for fname in filters:
        pf = (*labels, fname)
        if fname in result.exact_seconds:
            em.add(RECALL_EXACT_QUERY_DURATION_SECONDS.name, result.exact_seconds[fname], *pf)
        app = result.app_point(fname)
        if app is not None and app.used and app.recalls:
            em.add(RECALL_EXPECTED_ROWS.name, app.mean(app.expected), *pf)
            em.add(RECALL_APP_RETURNED_ROWS.name, app.mean(app.returned), *pf)
            em.add(RECALL_TARGET_MET.name, 1 if app.meets(rc.target, rc.target_fraction) else 0, *pf)
            if skipped is None:  # measured in this run: one per-cycle judgement
                state.bump(state.cycles, pf)
                if app.meets(rc.target, rc.target_fraction):
                    state.bump(state.good_cycles, pf)
                state.good_cycles.setdefault(pf, 0)
        for name, table in ((RECALL_CYCLES_TOTAL.name, state.cycles),
                            (RECALL_GOOD_CYCLES_TOTAL.name, state.good_cycles)):
            if pf in table:
                em.add(name, table[pf], *pf)
    for (fname, mode), points in groups.items():
        for p in sorted(points, key=lambda x: x.value):
            if p.meets(rc.target, rc.target_fraction):
                em.add(RECALL_RECOMMENDED_SETTING.name, p.value, *labels, fname, p.param, mode)
                break


def emit_counters(em: Emitter, state: RecallState, indexes: list[VectorIndex]) -> None:
    current = {idx.labels for idx in indexes}
    for key, hist in state.hist.items():
        if key[:3] not in current:
            continue
        buckets = [(bucket_bound(b), hist[i]) for i, b in enumerate(RECALL_BUCKETS)]
        buckets.append(("+Inf", hist[-2]))
        em.histogram(RECALL_QUERY_RECALL_RATIO.name, buckets, hist[-1], *key)
    for name, table in ((RECALL_QUERIES_TOTAL.name, state.total),
                        (RECALL_GOOD_QUERIES_TOTAL.name, state.good)):
        for key, value in table.items():
            if key[:3] in current:
                em.add(name, value, *key)
    for idx in indexes:
        labels = idx.labels
        for name, table in ((RECALL_EXACT_QUERIES_TOTAL.name, state.exact_queries),
                            (RECALL_EXACT_REUSED_TOTAL.name, state.exact_reused),
                            (RECALL_EXACT_STALE_TOTAL.name, state.exact_stale),
                            (RECALL_EXACT_CHECK_QUERIES_TOTAL.name, state.check_queries),
                            (RECALL_ANN_QUERIES_TOTAL.name, state.ann_queries),
                            (RECALL_ANN_REUSED_TOTAL.name, state.ann_reused)):
            em.add(name, table.get(labels, 0), *labels)
    for key, value in state.errors.items():
        if key[:3] in current:
            em.add(RECALL_QUERY_ERRORS_TOTAL.name, value, *key)
    for key, value in state.runs.items():
        if key[:3] in current:
            em.add(RECALL_PROBE_RUNS_TOTAL.name, value, *key)


def bucket_bound(value: float) -> str:
    return repr(float(value))
