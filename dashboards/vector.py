"""Vector indexes and recall: per index, recall against its target, the recall/ef_search (probes)
curve, shortfall under filters, ANN latency p50/p95/p99, index size against memory, build
progress and embedding freshness. Sections follow the enabled vector collectors and the config
(filter panels only with filters, freshness panels only for what ``vector.freshness`` measures).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

from collectors.ann_latency import ANN_QUERY_DURATION_SECONDS, ANN_QUERY_ERRORS_TOTAL, ANN_QUERY_RETURNED_ROWS
from collectors.recall_metrics import RECALL_APP_SETTING, RECALL_MEAN_RATIO
from collectors.self_metrics import BUILD_INFO
from collectors.vector_freshness import (
    VECTOR_EMBEDDING_PENDING_ROWS,
    VECTOR_MODEL_VERSION_ROWS,
    VECTOR_NEWEST_ROW_AGE_SECONDS,
)
from collectors.vector_indexes import (
    VECTOR_INDEX_BUILD_OPTION,
    VECTOR_INDEX_BUILD_PROGRESS_RATIO,
    VECTOR_INDEX_DIMENSIONS,
    VECTOR_INDEX_MEMORY_ESTIMATE_BYTES,
    VECTOR_INDEX_SCANS_TOTAL,
    VECTOR_INDEX_SIZE_BYTES,
    VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO,
    VECTOR_INDEX_VALID,
    VECTOR_MEMORY_SETTING_BYTES,
    VECTOR_TABLE_DEAD_ROWS,
    VECTOR_TABLE_ROWS,
)
from dashboards.facade import (
    Panel,
    bargauge,
    dashboard,
    explain_empty,
    heatmap,
    higher_is_better,
    lower_is_better,
    m,
    missing_capability,
    q,
    query_var,
    rate,
    row,
    standard_vars,
    stat,
    steps,
    table,
    timeseries,
)
from dashboards.targets import Targets

UID = "vecmon-vector"
VECTOR_COLLECTORS = frozenset({"vector_indexes", "recall", "ann_latency", "vector_freshness"})
INDEX = 'index=~"$index"'
NO_FILTER, FILTERED = 'filter=""', 'filter!=""'
IDX = "target, schema, table, index"
ANN = f"{ANN_QUERY_DURATION_SECONDS.name}_bucket"
YES_NO = [{"type": "value", "options": {"0": {"text": "NO", "color": "red", "index": 0},
                                        "1": {"text": "YES", "color": "green", "index": 1}}}]


class Selector(Protocol):
    """Builds a metric selector from the metric name and extra label matchers (like :func:`v`)."""

    def __call__(self, name: str, /, *extra: str) -> str: ...


def v(name: str, *extra: str) -> str:
    """Selector of a per-index metric: job, instance, target and index."""
    return m(name, INDEX, *extra)


def at_app_setting(metric: str, *extra: str, sel: Selector = v) -> str:
    """A curve metric (labelled param/value) at the ef_search/probes value the application's sessions
    get: ``count_values`` turns vecmon_recall_app_setting's value into a ``value`` label to join on."""
    app = f'count_values by ({IDX}, param) ("value", {sel(RECALL_APP_SETTING.name)})'
    return f"({sel(metric, *extra)} and on ({IDX}, param, value) {app})"


def enabled(config: Any) -> set[str]:
    return {name for db in getattr(config, "databases", []) or [] if db.enabled for name in db.enabled_collectors()
            if name in VECTOR_COLLECTORS}


def _vector_dbs(config: Any) -> list[Any]:
    return [db for db in config.databases if db.enabled and set(db.enabled_collectors()) & VECTOR_COLLECTORS]


def variables() -> list[Any]:
    anchor = VECTOR_INDEX_SIZE_BYTES.name
    return [*standard_vars(BUILD_INFO.name),
            query_var("target", "Database", f'label_values({anchor}{{job=~"$job", instance=~"$instance"}}, target)'),
            query_var("index", "Index", f'label_values({anchor}{{job=~"$job", instance=~"$instance", '
                                        f'target=~"$target"}}, index)')]


def recall_stats(t: Targets, w: int = 6) -> list[Panel]:
    """Recall at the application's setting and whether it meets the target (the strictest configured)."""
    return [
        stat("Recall@k at the application's setting", "Mean recall@k of the probe queries (approximate vs exact "
             f"search) at the ef_search/probes the application gets; target {t.recall:g}.", "percentunit",
             [q(f"min by (target, index) ({at_app_setting('vecmon_recall_mean_ratio', NO_FILTER)})", "{{index}}")],
             thresholds=steps(("red", None), ("green", t.recall)), decimals=3, w=w),
        stat("Recall target met", "Whether recall at the application's setting meets the configured target.",
             "none", [q(f"min by (target, index) ({v('vecmon_recall_target_met', NO_FILTER)})", "{{index}}")],
             mappings=YES_NO, thresholds=steps(("red", None), ("green", 1)), color_mode="background", w=w),
    ]


def _recall(config: Any, t: Targets) -> list[Panel]:
    curve = "by (target, index, param, value)"
    return [
        row("Recall"),
        *recall_stats(t),
        stat("Planner uses the index", "Whether EXPLAIN of the probe query (as the application writes it) shows "
             "the index at the application's setting; without it searches are exact sequential scans.", "none",
             [q(f"min by (target, index) ({at_app_setting('vecmon_vector_index_used', NO_FILTER)})", "{{index}}")],
             mappings=YES_NO, thresholds=steps(("red", None), ("green", 1)), color_mode="background", w=6),
        stat("ef_search / probes", "The value the application's sessions get (database and role overrides "
             "included) and the smallest measured value whose recall meets the target.", "none",
             [q(f"max by (target, index, param) ({v('vecmon_recall_app_setting')})", "{{index}} {{param}} (app)"),
              q(f"min by (target, index, param) ({v('vecmon_recall_recommended_setting', NO_FILTER)})",
                "{{index}} {{param}} (recommended)")], w=6),
        timeseries("Recall over time", "Recall@k at the application's setting per index, against the configured "
                   "target.", "percentunit",
                   [q(f"max by (target, index) ({at_app_setting('vecmon_recall_mean_ratio', NO_FILTER)})", "{{index}}"),
                    q(f"max by (target) ({m('vecmon_recall_target')})", "target {{target}}")],
                   thresholds=steps(("red", None), ("green", t.recall)), threshold_style="line", max=1, w=12),
        bargauge("Recall by ef_search / probes", "The recall curve: mean recall@k at each measured setting "
                 "(unfiltered); the smallest value in the green meets the target.", "percentunit",
                 [q(f"max {curve} ({v('vecmon_recall_mean_ratio', NO_FILTER)})", "{{index}} {{param}}={{value}}")],
                 thresholds=steps(("red", None), ("green", t.recall)), w=6),
        bargauge("Probe query time by ef_search / probes", "Mean duration of one approximate probe query at each "
                 "measured setting: what a higher ef_search costs.", "s",
                 [q(f"max {curve} ({v('vecmon_recall_ann_query_duration_seconds', NO_FILTER)})",
                    "{{index}} {{param}}={{value}}")],
                 thresholds=lower_is_better(t.ann_latency_p50.good, t.ann_latency_p50.bad), max=None, w=6),
    ]


def _filters(config: Any, t: Targets) -> list[Panel]:
    if not any(db.vector.filters for db in _vector_dbs(config)) or "recall" not in enabled(config):
        return []
    by = "by (target, index, filter, iterative)"
    return [
        row("Filtered search"),
        bargauge("Shortfall under filters", "Share of filtered probe queries that returned fewer rows than exact "
                 "search at the application's setting (post-filtering starves HNSW); iterative scans fix it.",
                 "percentunit",
                 [q(f"max {by} ({at_app_setting('vecmon_recall_shortfall_ratio', FILTERED)})",
                    "{{index}} {{filter}} (iterative {{iterative}})")],
                 thresholds=lower_is_better(0.01, 0.1), w=8),
        bargauge("Recall under filters", "Mean recall@k of filtered probe queries at the application's setting, "
                 "with and without an iterative scan.", "percentunit",
                 [q(f"max {by} ({at_app_setting('vecmon_recall_mean_ratio', FILTERED)})",
                    "{{index}} {{filter}} (iterative {{iterative}})")],
                 thresholds=steps(("red", None), ("green", t.recall)), w=8),
        timeseries("Rows returned under filters", "Mean rows the filtered approximate query returned, against the "
                   "rows exact search found (min(k, matching rows)).", "short",
                   [q(f"max {by} ({at_app_setting('vecmon_recall_returned_rows', FILTERED)})",
                      "{{index}} {{filter}} returned (iterative {{iterative}})"),
                    q(f"max by (target, index, filter) ({v('vecmon_recall_expected_rows', FILTERED)})",
                      "{{index}} {{filter}} expected")], w=8),
    ]


def _latency(config: Any, t: Targets) -> list[Panel]:
    if "ann_latency" not in enabled(config):
        return []
    hist = f"sum by (le, target, index) ({rate(v(ANN, NO_FILTER))})"
    panels = [
        row("ANN query latency"),
        timeseries("ANN latency p50 / p95 / p99", "Latency of approximate k-NN queries run like the application "
                   f"runs them, unfiltered (target p50 {t.ann_latency_p50.good * 1000:.0f} ms, "
                   f"p99 {t.ann_latency_p99.good * 1000:.0f} ms).", "s",
                   [q(f"histogram_quantile({p}, {hist})", f"{{{{index}}}} p{n}")
                    for p, n in ((0.5, 50), (0.95, 95), (0.99, 99))],
                   thresholds=lower_is_better(t.ann_latency_p99.good, t.ann_latency_p99.bad),
                   threshold_style="line", w=12),
        heatmap("ANN latency distribution", "Latency probe queries per bucket and rate interval (all indexes and "
                "filters selected).", "s", q(f"sum by (le) (increase({v(ANN)}[$__rate_interval]))"), w=12),
    ]
    latency_filters = any(db.vector.filters and db.vector.ann_latency.filters for db in _vector_dbs(config))
    if latency_filters:
        panels.append(timeseries(
            "Filtered ANN latency p95", "p95 latency of the latency probe queries per configured filter.", "s",
            [q(f"histogram_quantile(0.95, sum by (le, target, index, filter) ({rate(v(ANN, FILTERED))}))",
               "{{index}} {{filter}}")],
            thresholds=lower_is_better(t.ann_latency_p99.good, t.ann_latency_p99.bad), threshold_style="line", w=8))
    errors = f"sum by (target, index, reason) ({rate(v(ANN_QUERY_ERRORS_TOTAL.name))})"
    panels += [
        timeseries("ANN query errors", "Latency probe queries failing per second, by reason (timeout, error).", "ops",
                   [q(errors, "{{index}} {{reason}}")], w=8 if latency_filters else 12),
        timeseries("Rows returned by latency probes", "Mean rows the latency probe queries returned (k at most); "
                   "fewer means overfiltering or ef_search below k.", "short",
                   [q(f"max by (target, index, filter) ({v(ANN_QUERY_RETURNED_ROWS.name)})",
                      "{{index}} {{filter}}")], w=8 if latency_filters else 12),
    ]
    return panels


def _indexes(config: Any, t: Targets) -> list[Panel]:
    if "vector_indexes" not in enabled(config):
        return []

    def setting(name: str) -> str:
        return m(VECTOR_MEMORY_SETTING_BYTES.name, f'setting="{name}"')

    return [
        row("Index size, memory and builds"),
        timeseries("Index size against shared_buffers", "On-disk size of each vector index and the server's "
                   "shared_buffers: an HNSW index larger than the cache makes searches read from disk.", "bytes",
                   [q(f"max by (target, index) ({v(VECTOR_INDEX_SIZE_BYTES.name)})", "{{index}}"),
                    q(f"max by (target) ({setting('shared_buffers')})", "shared_buffers {{target}}")], w=8),
        bargauge("Index size / shared_buffers", "Index size divided by shared_buffers; above 1 the index cannot "
                 "stay cached.", "percentunit",
                 [q(f"max by (target, index) ({v(VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO.name)})", "{{index}}")],
                 thresholds=lower_is_better(0.5, 1.0), max=None, w=8),
        timeseries("HNSW memory estimate", "Estimated HNSW graph size for the table's current rows against "
                   "maintenance_work_mem: a build that does not fit is much slower.", "bytes",
                   [q(f"max by (target, index) ({v(VECTOR_INDEX_MEMORY_ESTIMATE_BYTES.name)})", "{{index}}"),
                    q(f"max by (target) ({setting('maintenance_work_mem')})", "maintenance_work_mem {{target}}")],
                   w=8),
        bargauge("Build progress", "Running CREATE INDEX / REINDEX of vector indexes (fraction done, by phase); "
                 "an index with no build running shows 1 when valid and 0 when invalid.", "percentunit",
                 [q(f"max by (target, index, phase) ({v(VECTOR_INDEX_BUILD_PROGRESS_RATIO.name)}) "
                    f"or max by (target, index) ({v(VECTOR_INDEX_VALID.name)})", "{{index}} {{phase}}")],
                 thresholds=higher_is_better(0.5, 1.0), w=8),
        timeseries("Index scans", "Scans per second started on each vector index (idx_scan).", "ops",
                   [q(f"sum by (target, index) ({rate(v(VECTOR_INDEX_SCANS_TOTAL.name))})", "{{index}}")], w=8),
        table("Indexes", "Each vector index: dimensions of the indexed values and size.", "short",
              [q(f"max by ({IDX}) ({v(VECTOR_INDEX_DIMENSIONS.name)})"),
               q(f"max by ({IDX}) ({v(VECTOR_INDEX_SIZE_BYTES.name)})")],
              rename={"Value #A": "Dimensions", "Value #B": "Size"}, column_units={"Size": "bytes"},
              sort_by="Size", w=8),
        table("Build options", "Build options of each index (m and ef_construction for HNSW, lists for IVFFlat) "
              "with pgvector's defaults filled in.", "short",
              [q(f"max by ({IDX}, option) ({v(VECTOR_INDEX_BUILD_OPTION.name)})")],
              rename={"Value": "Setting"}, w=8),
    ]


def _freshness(config: Any, t: Targets) -> list[Panel]:
    panels = []
    dbs = _vector_dbs(config)
    tables = m  # table-level: no index label
    if "vector_indexes" in enabled(config):
        panels.append(timeseries("Rows and dead rows", "Live and dead rows of tables with vector columns; dead "
                                 "rows take HNSW search slots (lower recall) until VACUUM.", "short",
                                 [q(f"max by (target, schema, table) ({tables(VECTOR_TABLE_ROWS.name)})",
                                    "{{schema}}.{{table}} rows"),
                                  q(f"max by (target, schema, table) ({tables(VECTOR_TABLE_DEAD_ROWS.name)})",
                                    "{{schema}}.{{table}} dead")], w=8))
    if "vector_freshness" in enabled(config):
        entries = [f for db in dbs for f in db.vector.freshness]
        if any(f.timestamp_column for f in entries):
            panels.append(timeseries("Newest row age", "Age of the newest row by the configured timestamp column: "
                                     "how stale the newest indexed content is.", "s",
                                     [q(f"max by (target, schema, table) "
                                        f"({tables(VECTOR_NEWEST_ROW_AGE_SECONDS.name)})", "{{schema}}.{{table}}")],
                                     w=8))
        if any(f.embedding_column for f in entries):
            panels.append(timeseries("Rows waiting for an embedding", "Rows whose embedding column is NULL: the "
                                     "ingest backlog.", "short",
                                     [q(f"max by (target, schema, table) "
                                        f"({tables(VECTOR_EMBEDDING_PENDING_ROWS.name)})", "{{schema}}.{{table}}")],
                                     w=8))
        if any(f.model_version_column for f in entries):
            panels.append(timeseries("Rows by embedding model", "Rows per embedding-model version: follow a "
                                     "re-embedding until the old version reaches 0.", "short",
                                     [q(f"max by (target, schema, table, version) "
                                        f"({tables(VECTOR_MODEL_VERSION_ROWS.name)})",
                                        "{{schema}}.{{table}} {{version}}")], stack=True, w=8))
    return [row("Tables and freshness"), *panels] if panels else []


def _probes(config: Any, t: Targets) -> list[Panel]:
    if "recall" not in enabled(config):
        return []
    return [
        row("Recall probe"),
        timeseries("Time since last recall probe", "Seconds since each index's last successful recall probe.",
                   "s", [q(f"time() - max by (target, index) ({v('vecmon_recall_last_success_timestamp_seconds')})",
                           "{{index}}")], w=8),
        # the probe runs every 10m: per-second rates over $__rate_interval are mostly 0 with spikes
        timeseries("Recall probe runs per hour", "Probe attempts over the last hour by result (ok, locked, budget, "
                   "error...).", "short",
                   [q(f"sum by (target, index, result) (increase({v('vecmon_recall_probe_runs_total')}[1h]))",
                      "{{index}} {{result}}")], w=8),
        timeseries("Exact queries per hour", "Exact (full scan) queries run and exact results reused over the last "
                   "hour: once the table is unchanged, probes run approximate queries only.", "short",
                   [q(f"sum by (target, index) (increase({v('vecmon_recall_exact_queries_total')}[1h]))",
                      "{{index}} run"),
                    q(f"sum by (target, index) (increase({v('vecmon_recall_exact_reused_total')}[1h]))",
                      "{{index}} reused")], w=8),
    ]


def overview_panels(config: Any, t: Targets) -> list[Panel]:
    """Search signals for the overview: recall and ANN latency of all indexes."""
    collectors = enabled(config)
    panels = []
    if "recall" in collectors:
        app = at_app_setting(RECALL_MEAN_RATIO.name, NO_FILTER, sel=partial(m, target=False))
        panels.append(stat("Worst recall@k", f"Lowest recall@k at the application's setting among all indexes "
                           f"(target {t.recall:g}).", "percentunit", [q(f"min({app})", "worst index")],
                           thresholds=steps(("red", None), ("green", t.recall)), decimals=3, w=6))
    if "ann_latency" in collectors:
        selector = m(ANN, NO_FILTER, target=False)
        panels.append(stat("ANN latency p95", "p95 latency of unfiltered approximate k-NN probe queries across "
                           f"indexes (target p99 {t.ann_latency_p99.good * 1000:.0f} ms).", "s",
                           [q(f"histogram_quantile(0.95, sum by (le) ({rate(selector)}))", "p95")], graph=True,
                           thresholds=lower_is_better(t.ann_latency_p99.good, t.ann_latency_p99.bad), w=6))
    if "vector_indexes" in collectors:
        ratio = m(VECTOR_INDEX_SIZE_TO_SHARED_BUFFERS_RATIO.name, target=False)
        panels.append(stat("Largest index / shared_buffers", "Size of the largest vector index relative to "
                           "shared_buffers; above 100 % it cannot stay cached and searches read from disk.",
                           "percentunit", [q(f"max({ratio})", "largest")], decimals=1,
                           thresholds=lower_is_better(0.5, 1.0), w=6))
    if "ann_latency" in collectors:
        errors = m(ANN_QUERY_ERRORS_TOTAL.name, target=False)
        panels.append(stat("ANN probe errors", "Latency probe queries failing per second (timeouts, errors) "
                           "across indexes.", "ops", [q(f"sum({rate(errors)})", "errors/s")],
                           thresholds=steps(("green", None), ("red", 0.001)), w=6))
    return panels


def build(config: Any, t: Targets) -> dict[str, Any]:
    panels = [*(_recall(config, t) if "recall" in enabled(config) else []), *_filters(config, t),
              *_latency(config, t), *_indexes(config, t), *_freshness(config, t), *_probes(config, t)]
    panels = explain_empty(panels, missing_capability("pgvector", "vector_indexes"))
    return dashboard(UID, "vecmon / Vector indexes and recall", "pgvector HNSW and IVFFlat indexes: recall against "
                     "target, the recall/ef_search curve, filtered search, ANN latency, size against memory, builds "
                     "and freshness.", variables(), panels, tags=["pgvector"])
