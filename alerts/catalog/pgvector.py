"""Alerts on pgvector: ANN query latency and errors, recall against its target, filtered-query
shortfall, the planner not using a vector index, IVFFlat growth (rule group ``vecmon-pgvector``)."""

from __future__ import annotations

from dataclasses import dataclass

from alerts.fixtures import APP, INDEX, MINUTE, TABLE, Fixture, above, counter, gauge, split
from alerts.model import AlertDef, Custom, Doc, Params, T, V, W
from alerts.promql import go_float, number
from alerts.shapes import ratio
from alerts.targets import collectors
from collectors.ann_latency import ANN_QUERIES_TOTAL, ANN_QUERY_DURATION_SECONDS, ANN_QUERY_ERRORS_TOTAL
from collectors.recall_metrics import (
    RECALL_APP_RETURNED_ROWS,
    RECALL_EXPECTED_ROWS,
    RECALL_QUERY_RECALL_RATIO,
    RECALL_TARGET,
    VECTOR_INDEX_USED,
)
from collectors.vector_indexes import VECTOR_INDEX, VECTOR_INDEX_ROWS_AT_BUILD, VECTOR_INDEX_VALID, VECTOR_TABLE_ROWS

INDEX_BY = "target, schema, table, index, filter"
FILTER = "{{ with $labels.filter }} (filter {{ . }}){{ end }}"


@dataclass(frozen=True)
class AnnQuantile:
    """The ``q`` quantile of the ANN probe's latency histogram over the window, above the threshold."""

    q: float

    def expr(self, p: Params) -> str:
        return (f"histogram_quantile({number(self.q)}, sum by ({INDEX_BY}, le) "
                f"(rate({ANN_QUERY_DURATION_SECONDS.name}_bucket[{p.w}])))\n> {p.limit}")

    def fixture(self, p: Params, value: float) -> Fixture:
        # all observations in the bucket (0, value]: with q of them counted up to `value`, the
        # quantile q lands exactly on the bucket's upper bound
        per_minute = 100
        b = f"{ANN_QUERY_DURATION_SECONDS.name}_bucket"
        return Fixture((counter(b, dict(INDEX, le=go_float(value)), round(self.q * per_minute)),
                        counter(b, dict(INDEX, le="+Inf"), per_minute)),
                       dict(INDEX), value, active_from=MINUTE, settle=p.window or 0)


def _ann_alert(q: float, name: str, threshold: float, source: str) -> AlertDef:
    pct = f"p{number(q * 100)}"
    return AlertDef(
        name=name, group="pgvector", service="pgvector", severity="warning", for_=10 * MINUTE,
        threshold=threshold, window=10 * MINUTE, fmt="duration",
        summary=f"ANN queries on {{{{ $labels.schema }}}}.{{{{ $labels.index }}}} are slow ({pct}).",
        description=f"The {pct} latency of approximate k-NN probe queries on index {{{{ $labels.schema }}}}."
                    "{{ $labels.index }} of {{ $labels.target }}" + FILTER + " is " + V + " over the last " + W +
                    " (threshold " + T + ").",
        shape=AnnQuantile(q),
        applies=collectors("ann_latency"),
        doc=Doc(f"The {pct} of vecmon's latency probes (`ann_latency` collector: a few k-NN queries per index "
                "every run, with the application's `hnsw.*`/`ivfflat.*` settings, as the application writes "
                "them) over the window, per index and configured filter.",
                source,
                ("Check whether the index still fits in memory: "
                 "`vecmon_vector_index_size_to_shared_buffers_ratio` above 1 and a falling cache hit ratio "
                 "(`PgCacheHitRatioLow`) mean reads from disk.",
                 "Check the plan: `VectorIndexNotUsed`; a filtered query may have switched to another index.",
                 "Compare `hnsw.ef_search` (`vecmon_vector_setting`) with the recall curve: "
                 "`vecmon_recall_recommended_setting` is the smallest value meeting the recall target; CPU "
                 "saturation and concurrent index builds (`vecmon_vector_index_build_progress_ratio`) slow "
                 "every query.")),
        metrics=(ANN_QUERY_DURATION_SECONDS.name,))


def _ann_errors_expr(p: Params) -> str:
    by, attempts = f"sum by ({INDEX_BY})", ANN_QUERIES_TOTAL.name
    expr = (ratio(f"{by} (increase({ANN_QUERY_ERRORS_TOTAL.name}[{p.w}]))", f"{by} (increase({attempts}[{p.w}]))")
            + f" > {p.limit}")
    if p.minimum:
        expr += f"\nand on ({INDEX_BY})\n{by} (increase({attempts}[{p.w}])) >= {number(p.minimum)}"
    return expr


def _ann_errors_fixture(p: Params, value: float) -> Fixture:
    total = above(p.minimum, 100, 1000)  # attempts per minute, above the guard
    errors, _ = split(value, total)
    return Fixture((counter(ANN_QUERIES_TOTAL.name, INDEX, total),
                    counter(ANN_QUERY_ERRORS_TOTAL.name, dict(INDEX, reason="timeout"), errors),
                    counter(ANN_QUERY_ERRORS_TOTAL.name, dict(INDEX, reason="error"), 0)),
                   dict(INDEX), errors / total, active_from=MINUTE, settle=p.window or 0)


def _recall_expr(p: Params) -> str:
    h, by = RECALL_QUERY_RECALL_RATIO.name, f"sum by ({INDEX_BY})"
    mean = ratio(f"{by} (increase({h}_sum[{p.w}]))", f"{by} (increase({h}_count[{p.w}]))")
    if p.threshold is not None:
        return f"{mean} < {p.limit}"
    return f"{mean}\n< on (target) group_left\nmax by (target) ({RECALL_TARGET.name})"


def _recall_fixture(p: Params, value: float) -> Fixture:
    per_minute = 100  # probe queries per minute, each with recall `value`
    h = RECALL_QUERY_RECALL_RATIO.name
    series = [counter(f"{h}_sum", INDEX, value * per_minute), counter(f"{h}_count", INDEX, per_minute)]
    if p.threshold is None:
        series.append(gauge(RECALL_TARGET.name, APP, 0.9))
    return Fixture(tuple(series), dict(INDEX), value, active_from=MINUTE, settle=p.window or 0)


def _shortfall_expr(p: Params) -> str:
    by = f"max by ({INDEX_BY})"
    return (ratio(f'{by} ({RECALL_APP_RETURNED_ROWS.name}{{filter!=""}})',
                  f'{by} ({RECALL_EXPECTED_ROWS.name}{{filter!=""}})') + f" < {p.limit}")


def _shortfall_fixture(p: Params, value: float) -> Fixture:
    labels = dict(INDEX, filter="tenant_42")
    return Fixture((gauge(RECALL_APP_RETURNED_ROWS.name, labels, value * 10),
                    gauge(RECALL_EXPECTED_ROWS.name, labels, 10)), labels, value)


def _not_used_fixture(p: Params, value: float) -> Fixture:
    point = dict(INDEX, param="ef_search", value="40", iterative="off")
    return Fixture((gauge(VECTOR_INDEX_USED.name, point, 0 if value else 1),
                    gauge(VECTOR_INDEX_VALID.name, INDEX, 1)), dict(INDEX), 0)


def _growth_expr(p: Params) -> str:
    return (f"(\n  {VECTOR_TABLE_ROWS.name}\n  / on (target, schema, table) group_right ()\n"
            f"  ({VECTOR_INDEX_ROWS_AT_BUILD.name} > 0)\n  - 1\n"
            f") > {p.limit}\nand on (target, schema, table, index)\n"
            f'{VECTOR_INDEX.name}_info{{method="ivfflat"}}')


def _growth_fixture(p: Params, value: float) -> Fixture:
    info = dict(INDEX, key="embedding", method="ivfflat", opclass="vector_l2_ops", operator="<->")
    return Fixture((gauge(VECTOR_TABLE_ROWS.name, TABLE, round((1 + value) * 100000)),
                    gauge(VECTOR_INDEX_ROWS_AT_BUILD.name, INDEX, 100000),
                    gauge(f"{VECTOR_INDEX.name}_info", info, 1)), dict(INDEX), round((1 + value) * 100000) / 100000 - 1)


PGVECTOR = [
    _ann_alert(0.99, "AnnQueryLatencyP99High", 0.5, "seeds: query latency p99 target < 100ms, alert > 500ms."),
    _ann_alert(0.5, "AnnQueryLatencyP50High", 0.05, "seeds: query latency p50 target < 20ms, alert > 50ms."),
    AlertDef(
        name="AnnQueryErrorsHigh", group="pgvector", service="pgvector", severity="warning", for_=10 * MINUTE,
        threshold=0.05, window=10 * MINUTE, minimum=10, fmt="percent",
        minimum_doc="probe queries in the window the index must have at least",
        summary="ANN probe queries on {{ $labels.schema }}.{{ $labels.index }} time out or fail.",
        description=V + " of the approximate k-NN probe queries on index {{ $labels.schema }}.{{ $labels.index }} "
                    "of {{ $labels.target }}" + FILTER + " timed out or failed over the last " + W +
                    " (threshold " + T + ").",
        shape=Custom(_ann_errors_expr, _ann_errors_fixture),
        applies=collectors("ann_latency"),
        doc=Doc("Share of the latency probe's k-NN queries that hit `ann_latency.timeout` or failed, over the "
                "window (`vecmon_ann_query_errors_total` by reason over `vecmon_ann_queries_total`). Timed-out "
                "queries also count as slower than every bucket in `vecmon_ann_query_duration_seconds` (`+Inf`), "
                "so p99 and latency SLOs see them; this alert says how many there are, and catches errors that "
                "are not timeouts (a dropped index, a bad filter, permissions).",
                "vecmon default (5% of at least 10 probe queries).",
                ("Split by reason: `sum by (reason) (increase(vecmon_ann_query_errors_total{index=\"...\"}[30m]))`.",
                 "Timeouts: the same first steps as `AnnQueryLatencyP99High` (index in memory, plan, "
                 "`ef_search`), and whether `ann_latency.timeout` is realistic for the application.",
                 "Errors: the status page shows the collector's last error; check the configured filters and "
                 "that the monitoring role can still SELECT the table.")),
        metrics=(ANN_QUERY_ERRORS_TOTAL.name, ANN_QUERIES_TOTAL.name)),
    AlertDef(
        name="VectorRecallBelowTarget", group="pgvector", service="pgvector", severity="warning", for_=15 * MINUTE,
        window=30 * MINUTE, compare="<", fmt="decimal", test_threshold=0.9,
        threshold_text="the database's vector.recall.target",
        summary="Recall of index {{ $labels.schema }}.{{ $labels.index }} is below target.",
        description="Probe queries on index {{ $labels.schema }}.{{ $labels.index }} of {{ $labels.target }}" +
                    FILTER + " reach a mean recall@k of " + V + " with the application's settings over the last " +
                    W + " (target " + T + ").",
        shape=Custom(_recall_expr, _recall_fixture),
        applies=collectors("recall"),
        doc=Doc("Mean recall@k of the recall probe's queries at the application's `ef_search`/`probes` over the "
                "window, against `vector.recall.target` of the database (`vecmon_recall_target`), or against "
                "the alert's threshold when one is set. Recall is measured against an exact search of the same "
                "query, counting ties at the k-th distance as correct.",
                "issue 5 (\"recall under target\"); the target is the database's `vector.recall.target` "
                "(default 0.9).",
                ("Look at the recall curve (`vecmon_recall_mean_ratio` by `value`) and "
                 "`vecmon_recall_recommended_setting`: raise `hnsw.ef_search` (or `ivfflat.probes`) for the "
                 "application role to at least that value.",
                 "Dead tuples (`PgVectorTableDeadTuplesHigh`) and, for IVFFlat, growth since the build "
                 "(`IvfflatTableGrown`) lower recall: VACUUM, or REINDEX CONCURRENTLY.",
                 "Filtered queries: enable iterative scans (`hnsw.iterative_scan = relaxed_order`, pgvector >= "
                 "0.8) or use a partial index per frequent filter.")),
        metrics=(RECALL_QUERY_RECALL_RATIO.name, RECALL_TARGET.name)),
    AlertDef(
        name="VectorFilteredQueryShortfall", group="pgvector", service="pgvector", severity="warning",
        for_=15 * MINUTE, threshold=0.95, compare="<", fmt="percent",
        summary="Filtered queries on {{ $labels.schema }}.{{ $labels.index }} return too few rows.",
        description="Approximate queries with filter {{ $labels.filter }} on index {{ $labels.schema }}."
                    "{{ $labels.index }} of {{ $labels.target }} return " + V + " of the rows an exact search "
                    "finds (threshold " + T + ").",
        shape=Custom(_shortfall_expr, _shortfall_fixture),
        applies=collectors("recall"),
        doc=Doc("Mean rows the recall probe's filtered k-NN queries return at the application's settings "
                "(`vecmon_recall_app_returned_rows`) divided by the rows an exact search of the *same* queries "
                "finds (`min(k, matching rows)`, `vecmon_recall_expected_rows`): one probe's own numbers. HNSW and "
                "IVFFlat filter *after* the index scan, so a selective filter leaves fewer than k rows, or none, "
                "once `ef_search` candidates are used up.",
                "vecmon default: 95% (one query in 30 returning 8 of 10 rows is 99.3%, not a shortfall worth a "
                "ticket; a filter starving the scan drops it far lower).",
                ("Enable iterative index scans for the application role (pgvector >= 0.8: "
                 "`hnsw.iterative_scan = relaxed_order`, `ivfflat.iterative_scan`), or raise `hnsw.ef_search`.",
                 "For a few large tenants or categories, a partial index per value (or partitioning) keeps "
                 "filtered queries exact and fast.",
                 "`vecmon_recall_shortfall_ratio` by `value`/`iterative` shows which setting would fix it.")),
        metrics=(RECALL_APP_RETURNED_ROWS.name, RECALL_EXPECTED_ROWS.name)),
    AlertDef(
        name="VectorIndexNotUsed", group="pgvector", service="pgvector", severity="warning", for_=15 * MINUTE,
        compare="event",
        condition="the plan does not scan the index, or it is invalid",
        summary="The planner does not use vector index {{ $labels.schema }}.{{ $labels.index }}.",
        description="For the application's query shape on {{ $labels.schema }}.{{ $labels.table }} of "
                    "{{ $labels.target }}" + FILTER + ", the planner does not scan vector index "
                    "{{ $labels.index }} at any measured setting, or the index is invalid: queries run as exact "
                    "scans.",
        shape=Custom(
            lambda p: (f"max by ({INDEX_BY}) ({VECTOR_INDEX_USED.name}) == 0\nor\n"
                       f"{VECTOR_INDEX_VALID.name} == 0"),
            _not_used_fixture),
        applies=collectors("recall", "vector_indexes", any_of=True),
        doc=Doc("The recall probe EXPLAINs the approximate query as the application writes it (index key, "
                "distance operator, partial-index predicate, filter, `ORDER BY ... LIMIT k`, application "
                "settings) and the plan does not scan the vector index at any measured setting; or the index is "
                "invalid (a failed `CREATE INDEX CONCURRENTLY`). Every such query compares the query vector with "
                "every row.",
                "seeds: \"Is the HNSW index being used? (vs sequential scan)\" (vecmon default: any time).",
                ("`EXPLAIN` the application's query: `ORDER BY embedding <=> $1 LIMIT k` must use the index's "
                 "distance operator (the opclass decides: `vector_cosine_ops` needs `<=>`), ascending, with no "
                 "expression around it.",
                 "A selective filter can make a btree plan cheaper: see `VectorFilteredQueryShortfall` and "
                 "consider a partial index.",
                 "Invalid index (`vecmon_vector_index_valid == 0`): `DROP INDEX CONCURRENTLY` and build it again.")),
        metrics=(VECTOR_INDEX_USED.name, VECTOR_INDEX_VALID.name)),
    AlertDef(
        name="IvfflatTableGrown", group="pgvector", service="pgvector", severity="warning", for_=30 * MINUTE,
        threshold=0.5, fmt="percent",
        summary="IVFFlat index {{ $labels.schema }}.{{ $labels.index }} needs a rebuild.",
        description="Table {{ $labels.schema }}.{{ $labels.table }} of {{ $labels.target }} has grown by " + V +
                    " since IVFFlat index {{ $labels.index }} was built (threshold " + T + "); its lists no "
                    "longer fit the data.",
        shape=Custom(_growth_expr, _growth_fixture),
        applies=collectors("vector_indexes"),
        doc=Doc("Rows of the table now, divided by the rows it had when the IVFFlat index was (re)built, minus 1. "
                "IVFFlat picks its list centroids at build time; rows added later land in lists that no longer "
                "represent them, so recall drops at the same `probes`.",
                "seeds: \"IVFFlat needs re-indexing when data grows by 50%+\".",
                ("Rebuild without blocking writes: `REINDEX INDEX CONCURRENTLY schema.index` (check "
                 "`maintenance_work_mem` first).",
                 "Re-size `lists` for the new row count (rows / 1000 up to 1M rows, sqrt(rows) above).",
                 "For a table that keeps growing, consider HNSW, which needs no rebuild for inserts.")),
        metrics=(VECTOR_TABLE_ROWS.name, VECTOR_INDEX_ROWS_AT_BUILD.name, f"{VECTOR_INDEX.name}_info")),
]
