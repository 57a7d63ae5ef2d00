"""The recall curve of one index and filter: which settings the planner answers with the index, the
approximate queries at each (or their stored answers), and recall@k per query and setting."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from collectors.query_vectors import QueryVector
from collectors.recall_budget import BudgetExhausted, is_fatal
from collectors.recall_exact import ExactRun
from collectors.recall_queries import settings_key
from collectors.recall_records import ApproximateAnswer, TableSignature
from collectors.recall_results import IndexResult, Point, RecallState
from collectors.recall_scoring import contradicts, recall_at_k, result_rows
from collectors.recall_state import RecallStateStore
from collectors.run_deadline import RunDeadline
from collectors.vector_model import VectorIndex
from collectors.vector_plans import ann_query, explain_json, local_settings, plan_uses_index


def measure_filter(pconn: psycopg.Connection, idx: VectorIndex, where: str | None, fname: str,
                   points: list[Point], queries: list[QueryVector], fetch: int, rc: Any,
                   store: RecallStateStore, state: RecallState, budget: RunDeadline, db_key: str,
                   signature: TableSignature, cache_ok: bool, result: IndexResult,
                   vector_index_names: set[str], marker: str | None) -> None:
    """Measure one filter of ``idx`` at every point of its curve: fills in ``points`` (plan used, recall,
    rows, durations) and ``result`` (exact durations). ``marker`` None: answers are neither reused nor stored."""
    labels = idx.labels
    ann_sql = ann_query(idx, where, fetch)
    # 1. Which settings does the planner answer with the index?
    try:
        for point in points:
            timeout = budget.statement_timeout(rc.ann_timeout)
            with local_settings(pconn, {**point.settings, "statement_timeout": timeout}):
                plan = explain_json(pconn, ann_sql, {"q": queries[0].vector})
            point.used = plan_uses_index(plan, idx.scan_index_names(), idx.scan_table_names())
    except psycopg.Error as exc:
        if budget.spent_by(exc):
            raise BudgetExhausted() from None
        state.bump(state.errors, (*labels, fname, "explain"))
        raise
    if not any(p.used for p in points):
        return
    exact_run = ExactRun(pconn, idx, where, fname, fetch, rc, store, state, budget, db_key, signature,
                          cache_ok, result, vector_index_names)
    query_ids = [q.qid for q in queries]
    # 2. Stored exact results and approximate answers, checked against the table (one statement).
    stored_exact = exact_run.load(queries)
    reuse_answers = rc.reuse_approximate and marker is not None
    sql_text = ann_sql.as_string(pconn)
    skeys = {n: settings_key(point.settings, sql_text) for n, point in enumerate(points) if point.used}
    stored_answers: dict[tuple[str, str], ApproximateAnswer] = {}
    if reuse_answers and marker is not None:
        wanted_keys = set(skeys.values())
        stored_answers = {key: answer for key, answer in store.load_answers(
            db_key, idx.probe_key, exact_run.filter_key, marker, query_ids).items() if key[0] in wanted_keys}
    entries: dict[Any, tuple[str, Sequence[tuple[str, float]]]] = {
        ("exact", qid): (qid, tuple(zip(r.row_ids, r.distances, strict=False))) for qid, r in stored_exact.items()}
    entries.update({("ann", *key): (key[1], answer.rows) for key, answer in stored_answers.items()})
    changed = exact_run.changed(queries, entries) if entries else set()
    stale_exact = {key[1] for key in changed if key[0] == "exact"}
    if stale_exact:
        state.bump(state.exact_stale, labels, len(stale_exact))
    stored_exact = {qid: r for qid, r in stored_exact.items() if qid not in stale_exact}
    stored_answers = {key: a for key, a in stored_answers.items() if ("ann", *key) not in changed}
    exact = {**stored_exact, **exact_run.compute([q for q in queries if q.qid not in stored_exact])}
    stored = set(stored_exact)
    # 3. Approximate queries at each setting the index answers, unless a checked answer is stored.
    measured: dict[int, list[tuple[QueryVector, list[tuple[str, float]], float]]] = {}
    fresh: dict[tuple[str, str], ApproximateAnswer] = {}
    for n, point in enumerate(points):
        if not point.used:
            continue
        skey = skeys[n]
        answers = [(q, list(stored_answers[(skey, q.qid)].rows), stored_answers[(skey, q.qid)].duration)
                   for q in queries if (skey, q.qid) in stored_answers]
        ran = run_answers(pconn, idx, fname, point, ann_sql, [
            q for q in queries if (skey, q.qid) not in stored_answers], rc, state, budget)
        if ran is None:
            continue
        state.bump(state.ann_reused, labels, len(answers))
        fresh.update({(skey, q.qid): ApproximateAnswer(tuple(ann), seconds) for q, ann, seconds in ran})
        measured[n] = answers + ran
    # 4. A stored truth that an approximate answer contradicts (a row closer than its k-th
    # neighbour that it lacks: inserted since, its statistics not flushed yet) is recomputed, and
    # so are the stored answers of that query (they predate the insert as well).
    contradicted = {query.qid for answers in measured.values() for query, ann, _ in answers
                    if query.qid in stored and contradicts(ann, exact[query.qid], rc.k, rc.epsilon)}
    if contradicted:
        state.bump(state.exact_stale, labels, len(contradicted))
        for qid in contradicted:
            exact.pop(qid)
        exact.update(exact_run.compute([q for q in queries if q.qid in contradicted]))
        for n, answers in list(measured.items()):
            redo = [q for q, _, _ in answers if q.qid in contradicted and (skeys[n], q.qid) in stored_answers]
            if not redo:
                continue
            ran = run_answers(pconn, idx, fname, points[n], ann_sql, redo, rc, state, budget)
            if ran is None:
                measured.pop(n)
                continue
            state.bump(state.ann_reused, labels, -len(redo))
            fresh.update({(skeys[n], q.qid): ApproximateAnswer(tuple(ann), sec) for q, ann, sec in ran})
            measured[n] = [a for a in answers if a[0].qid not in contradicted or
                           (skeys[n], a[0].qid) not in stored_answers] + ran
    if reuse_answers and marker is not None and fresh:
        store.save_answers(db_key, idx.probe_key, exact_run.filter_key, marker, fresh)
    state.bump(state.exact_reused, labels, len(stored - contradicted))
    exact_run.record_durations(exact)
    # 5. Recall per query and setting.
    for n, answers in measured.items():
        point = points[n]
        for query, ann, seconds in answers:
            point.seconds.append(seconds)
            truth = exact.get(query.qid)
            if truth is None:
                continue
            value = recall_at_k(ann, truth.distances, rc.k, rc.epsilon)
            if value is None:
                continue
            point.recalls.append(value)
            point.returned.append(len(ann))
            point.expected.append(min(rc.k, len(truth.distances)))


def run_answers(pconn: psycopg.Connection, idx: VectorIndex, fname: str, point: Point,
                ann_sql: sql.Composed, todo: list[QueryVector], rc: Any, state: RecallState,
                budget: RunDeadline) -> list[tuple[QueryVector, list[tuple[str, float]], float]] | None:
    """Run the approximate query for ``todo`` at ``point``'s settings: ``(query, answer, seconds)``
    each, or None when a statement failed (the point is then unmeasured this cycle)."""
    labels = idx.labels
    answers: list[tuple[QueryVector, list[tuple[str, float]], float]] = []
    if not todo:
        return answers
    try:
        with local_settings(pconn, {**point.settings, "statement_timeout": budget.statement_timeout(rc.ann_timeout)}):
            for query in todo:
                started = time.perf_counter()
                rows = pconn.execute(ann_sql, {"q": query.vector}, prepare=False).fetchall()
                answers.append((query, result_rows(rows, query.self_id)[:rc.k], time.perf_counter() - started))
    except psycopg.Error as exc:
        if is_fatal(pconn):
            raise
        state.bump(state.ann_queries, labels, len(answers) + 1)
        if budget.spent_by(exc):
            raise BudgetExhausted() from None
        state.bump(state.errors, (*labels, fname, "ann"))
        point.used = None
        if budget.spent():
            raise BudgetExhausted() from None
        return None
    state.bump(state.ann_queries, labels, len(answers))
    return answers
