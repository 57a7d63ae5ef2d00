"""Exact (ground-truth) results of the recall probe: loaded from the state store and checked
against the table, or computed by full scans and stored."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from collectors.base import CollectorError
from collectors.query_vectors import QueryVector, row_id
from collectors.recall_budget import BudgetExhausted, is_fatal
from collectors.recall_queries import exact_query, stored_neighbours_query
from collectors.recall_records import ExactResult, TableSignature
from collectors.recall_results import IndexResult, RecallState
from collectors.recall_scoring import result_rows
from collectors.recall_state import RecallStateStore
from collectors.run_deadline import RunDeadline
from collectors.vector_model import VectorIndex
from collectors.vector_plans import explain_json, local_settings, plan_index_names

# Stored and recomputed distances come from the same expression; this only absorbs float noise.
DISTANCE_TOLERANCE = 1e-9


class ExactRun:
    """Exact results of one (index, filter) in one probe: loaded from the store and checked against
    the table, or computed (and stored)."""

    def __init__(self, pconn: psycopg.Connection, idx: VectorIndex, where: str | None, fname: str, fetch: int,
                 rc: Any, store: RecallStateStore, state: RecallState, budget: RunDeadline, db_key: str,
                 signature: TableSignature, cache_ok: bool, result: IndexResult, vector_index_names: set[str]):
        self.pconn, self.idx, self.where, self.fname, self.fetch = pconn, idx, where, fname, fetch
        self.rc, self.store, self.state, self.budget = rc, store, state, budget
        self.db_key, self.signature, self.cache_ok, self.result = db_key, signature, cache_ok, result
        self.vector_index_names = vector_index_names
        self.filter_key = f"{fname}:{hashlib.md5((where or '').encode()).hexdigest()[:12]}"

    def load(self, queries: list[QueryVector]) -> dict[str, ExactResult]:
        """Stored exact results whose table signature allows reuse (not yet checked against the table)."""
        return self.store.load_exact(self.db_key, self.idx.probe_key, self.filter_key, self.rc.k,
                                     [q.qid for q in queries], self.signature, self.rc.max_changed_fraction)

    def changed(self, queries: list[QueryVector], entries: dict[Any, tuple[str, Sequence[tuple[str, float]]]]
                ) -> set[Any]:
        """Keys of ``entries`` (``key -> (query id, stored (row id, distance) pairs)``) whose rows are
        not all still in the table (same row version, matching the filter) at the stored distance:
        one statement fetching them by TID. The statistics counters that key the store lag behind
        the table by up to seconds, this does not."""
        vectors = {q.qid: q.vector for q in queries}
        order = sorted({qid for qid, _ in entries.values() if qid in vectors})
        number = {qid: n for n, qid in enumerate(order, start=1)}
        wanted: dict[tuple[int, str], float] = {}
        for qid, pairs in entries.values():
            for rid, distance in pairs:
                if qid in number and distance is not None and not math.isnan(distance):
                    wanted[(number[qid], rid)] = distance
        rels, tids, numbers = [], [], []
        for n, rid in wanted:
            rel, _, ctid = rid.partition(":")
            rels.append(int(rel))
            tids.append(ctid)
            numbers.append(n)
        if not tids:
            return {key for key, (qid, _) in entries.items() if qid not in number}
        seen: dict[tuple[int, str], float] = {}
        try:
            # a TID scan, however small the table: the check must not cost a full scan on a large one
            with local_settings(self.pconn, {"enable_seqscan": "off",
                                             "statement_timeout": self.budget.statement_timeout(self.rc.ann_timeout)}):
                rows = self.pconn.execute(stored_neighbours_query(self.idx, self.where), {
                    "vectors": [vectors[qid] for qid in order], "rels": rels, "tids": tids, "numbers": numbers},
                    prepare=False).fetchall()
            self.state.bump(self.state.check_queries, self.idx.labels)
        except psycopg.Error as exc:
            if is_fatal(self.pconn):
                raise
            self.state.bump(self.state.check_queries, self.idx.labels)
            if self.budget.spent_by(exc):
                raise BudgetExhausted() from None
            self.state.bump(self.state.errors, (*self.idx.labels, self.fname, "check"))
            return set(entries)  # unchecked: recompute rather than trust
        for n, rel, ctid, distance in rows:
            if distance is not None:
                seen[(int(n), row_id(rel, ctid))] = float(distance)
        changed = set()
        for key, (qid, pairs) in entries.items():
            position = number.get(qid)
            if position is None:
                changed.add(key)
                continue
            for rid, distance in pairs:
                if (position, rid) not in wanted:  # a NaN distance: nothing to compare
                    continue
                now = seen.get((position, rid))
                if now is None or abs(now - distance) > DISTANCE_TOLERANCE * max(1.0, abs(distance)):
                    changed.add(key)
                    break
        return changed

    def compute(self, missing: list[QueryVector]) -> dict[str, ExactResult]:
        """Exact results of ``missing`` by full scans, stored when the probe connection is current."""
        if not missing:
            return {}
        pconn, rc, budget, state, labels = self.pconn, self.rc, self.budget, self.state, self.idx.labels
        computed: dict[str, ExactResult] = {}
        exact_sql = exact_query(self.idx, self.where, self.fetch)
        settings: dict[str, str | None] = {
            "enable_indexscan": "off", "enable_indexonlyscan": "off",
            "statement_timeout": budget.statement_timeout(rc.exact_timeout),
            "max_parallel_workers_per_gather": (str(rc.exact_parallel_workers)
                                                if rc.exact_parallel_workers is not None else None),
        }
        try:
            with local_settings(pconn, settings):
                plan = explain_json(pconn, exact_sql, {"q": missing[0].vector})
                approximate = plan_index_names(plan) & self.vector_index_names
                if approximate:
                    raise CollectorError(f"exact plan uses approximate index {', '.join(sorted(approximate))}")
                for query in missing:
                    timeout = budget.statement_timeout(rc.exact_timeout)
                    try:
                        with pconn.transaction():
                            pconn.execute("SELECT set_config('statement_timeout', %s, true)", [timeout])
                            started = time.perf_counter()
                            rows = pconn.execute(exact_sql, {"q": query.vector}, prepare=False).fetchall()
                            seconds = time.perf_counter() - started
                    except psycopg.Error as exc:
                        if is_fatal(pconn):
                            raise
                        state.bump(state.exact_queries, labels)
                        if budget.spent_by(exc):
                            break
                        state.bump(state.errors, (*labels, self.fname, "exact"))
                        if budget.spent():
                            break
                        continue
                    state.bump(state.exact_queries, labels)
                    pairs = [(rid, d) for rid, d in result_rows(rows, query.self_id) if not math.isnan(d)][:rc.k]
                    computed[query.qid] = ExactResult(tuple(d for _, d in pairs), tuple(r for r, _ in pairs),
                                                      seconds)
        except psycopg.Error as exc:
            if is_fatal(pconn):
                raise
            if budget.spent_by(exc):
                raise BudgetExhausted() from None
            state.bump(state.errors, (*labels, self.fname, "explain"))
            raise
        finally:
            if computed and self.cache_ok:
                self.store.save_exact(self.db_key, self.idx.probe_key, self.filter_key, rc.k, self.signature,
                                      computed)
        if len(computed) < len(missing) and budget.spent():
            raise BudgetExhausted()
        return computed

    def record_durations(self, exact: dict[str, ExactResult]) -> None:
        durations = [r.duration for r in exact.values()]
        if durations:
            self.result.exact_seconds[self.fname] = sum(durations) / len(durations)

