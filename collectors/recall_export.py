"""What the recall probe exports: per index the last results, the curve and the recommended setting,
and the counters kept across runs."""

from __future__ import annotations

from typing import Any

from collectors.base import Emitter
from collectors.recall_results import Point, RecallState
from collectors.recall_scoring import RECALL_BUCKETS
from collectors.vector_model import VectorIndex


def emit_index(em: Emitter, idx: VectorIndex, state: RecallState, skipped: str | None, rc: Any) -> None:
    labels = idx.labels
    if skipped is not None:
        em.add("vecmon_recall_probe_skipped", 1, *labels, skipped)
    result = state.results.get(idx.probe_key)
    if result is None or skipped in ("no_privilege", "not_ready"):
        return
    em.add("vecmon_recall_app_setting", result.app_value, *labels, result.param)
    em.add("vecmon_recall_probe_queries", result.queries, *labels)
    em.add("vecmon_recall_last_success_timestamp_seconds", result.finished_at, *labels)
    em.add("vecmon_recall_probe_duration_seconds", result.duration, *labels)
    groups: dict[tuple[str, str], list[Point]] = {}
    for p in result.points:
        pt = (*labels, p.filter, p.param, str(p.value), p.iterative)
        if p.used is not None:
            em.add("vecmon_vector_index_used", 1 if p.used else 0, *pt)
        if p.used and p.recalls:
            em.add("vecmon_recall_mean_ratio", p.recall_mean, *pt)
            em.add("vecmon_recall_good_queries_ratio", p.good_fraction(rc.target), *pt)
            em.add("vecmon_recall_returned_rows", p.mean(p.returned), *pt)
            em.add("vecmon_recall_shortfall_ratio", p.shortfall_fraction, *pt)
        if p.used and p.seconds:
            em.add("vecmon_recall_ann_query_duration_seconds", p.mean(p.seconds), *pt)
        groups.setdefault((p.filter, p.iterative), []).append(p)
    filters = sorted({p.filter for p in result.points})
    for fname in filters:
        pf = (*labels, fname)
        if fname in result.exact_seconds:
            em.add("vecmon_recall_exact_query_duration_seconds", result.exact_seconds[fname], *pf)
        app = result.app_point(fname)
        if app is not None and app.used and app.recalls:
            em.add("vecmon_recall_expected_rows", app.mean(app.expected), *pf)
            em.add("vecmon_recall_app_returned_rows", app.mean(app.returned), *pf)
            em.add("vecmon_recall_target_met", 1 if app.meets(rc.target, rc.target_fraction) else 0, *pf)
            if skipped is None:  # measured in this run: one per-cycle judgement
                state.bump(state.cycles, pf)
                if app.meets(rc.target, rc.target_fraction):
                    state.bump(state.good_cycles, pf)
                state.good_cycles.setdefault(pf, 0)
        for name, table in (("vecmon_recall_cycles_total", state.cycles),
                            ("vecmon_recall_good_cycles_total", state.good_cycles)):
            if pf in table:
                em.add(name, table[pf], *pf)
    for (fname, mode), points in groups.items():
        for p in sorted(points, key=lambda x: x.value):
            if p.meets(rc.target, rc.target_fraction):
                em.add("vecmon_recall_recommended_setting", p.value, *labels, fname, p.param, mode)
                break


def emit_counters(em: Emitter, state: RecallState, indexes: list[VectorIndex]) -> None:
    current = {idx.labels for idx in indexes}
    for key, hist in state.hist.items():
        if key[:3] not in current:
            continue
        buckets = [(bucket_bound(b), hist[i]) for i, b in enumerate(RECALL_BUCKETS)]
        buckets.append(("+Inf", hist[-2]))
        em.histogram("vecmon_recall_query_recall_ratio", buckets, hist[-1], *key)
    for name, table in (("vecmon_recall_queries_total", state.total),
                        ("vecmon_recall_good_queries_total", state.good)):
        for key, value in table.items():
            if key[:3] in current:
                em.add(name, value, *key)
    for idx in indexes:
        labels = idx.labels
        for name, table in (("vecmon_recall_exact_queries_total", state.exact_queries),
                            ("vecmon_recall_exact_reused_total", state.exact_reused),
                            ("vecmon_recall_exact_stale_total", state.exact_stale),
                            ("vecmon_recall_exact_check_queries_total", state.check_queries),
                            ("vecmon_recall_ann_queries_total", state.ann_queries),
                            ("vecmon_recall_ann_reused_total", state.ann_reused)):
            em.add(name, table.get(labels, 0), *labels)
    for key, value in state.errors.items():
        if key[:3] in current:
            em.add("vecmon_recall_query_errors_total", value, *key)
    for key, value in state.runs.items():
        if key[:3] in current:
            em.add("vecmon_recall_probe_runs_total", value, *key)


def bucket_bound(value: float) -> str:
    return repr(float(value))
