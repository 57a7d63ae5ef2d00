"""The recall probe's metrics (MetricSpecs), listed by :attr:`collectors.recall_probe.RecallCollector.METRICS`."""

from __future__ import annotations

from collectors.base import MetricSpec

P = ("schema", "table", "index")
PF = (*P, "filter")
PT = (*PF, "param", "value", "iterative")

VECTOR_INDEX_USED = MetricSpec(
    "vecmon_vector_index_used", "gauge",
    "Whether EXPLAIN shows the approximate probe query scanning the index (or its partitions) at "
    "this setting (1) or another plan (0; then no recall is reported: a scan without the index "
    "is exact).", PT)
RECALL_MEAN_RATIO = MetricSpec(
    "vecmon_recall_mean_ratio", "gauge",
    "Mean recall@k over the probe queries: returned rows whose distance is within the k-th exact "
    "distance (ties count), divided by min(k, rows the exact search found).", PT)
RECALL_GOOD_QUERIES_RATIO = MetricSpec(
    "vecmon_recall_good_queries_ratio", "gauge",
    "Share of probe queries whose recall@k reached the configured target, 0..1.", PT)
RECALL_RETURNED_ROWS = MetricSpec(
    "vecmon_recall_returned_rows", "gauge",
    "Mean number of rows the approximate query returned (at most k); fewer than "
    "vecmon_recall_expected_rows means overfiltering or ef_search below k.", PT)
RECALL_SHORTFALL_RATIO = MetricSpec(
    "vecmon_recall_shortfall_ratio", "gauge",
    "Share of probe queries that returned fewer rows than the exact search, 0..1.", PT)
RECALL_ANN_QUERY_DURATION_SECONDS = MetricSpec(
    "vecmon_recall_ann_query_duration_seconds", "gauge",
    "Mean duration of one approximate probe query at this setting (client-side).", PT)
RECALL_APP_RETURNED_ROWS = MetricSpec(
    "vecmon_recall_app_returned_rows", "gauge",
    "Mean number of rows the approximate query returned at the application's settings, over the "
    "same queries as vecmon_recall_expected_rows (their ratio is the filtered-query shortfall).", PF)
RECALL_EXPECTED_ROWS = MetricSpec(
    "vecmon_recall_expected_rows", "gauge",
    "Mean number of rows the exact search found, min(k, matching rows).", PF)
RECALL_EXACT_QUERY_DURATION_SECONDS = MetricSpec(
    "vecmon_recall_exact_query_duration_seconds", "gauge",
    "Mean duration of one exact (full scan) probe query when it was last computed.", PF)
RECALL_TARGET_MET = MetricSpec(
    "vecmon_recall_target_met", "gauge",
    "Whether recall at the application's setting meets the configured target (1) or not (0).", PF)
RECALL_RECOMMENDED_SETTING = MetricSpec(
    "vecmon_recall_recommended_setting", "gauge",
    "Smallest measured ef_search/probes value whose recall meets the target (absent when none "
    "does).", (*PF, "param", "iterative"))
RECALL_APP_SETTING = MetricSpec(
    "vecmon_recall_app_setting", "gauge",
    "The ef_search/probes value the application's sessions get (database/role overrides "
    "included).", (*P, "param"))
RECALL_QUERY_RECALL_RATIO = MetricSpec(
    "vecmon_recall_query_recall_ratio", "histogram",
    "Per-query recall@k at the application's settings (cumulative over probe cycles), for SLOs "
    "such as 99% of queries reaching 0.9.", PF)
RECALL_QUERIES_TOTAL = MetricSpec(
    "vecmon_recall_queries_total", "counter",
    "Probe queries measured at the application's settings.", PF)
RECALL_GOOD_QUERIES_TOTAL = MetricSpec(
    "vecmon_recall_good_queries_total", "counter",
    "Probe queries at the application's settings whose recall@k reached the target.", PF)
RECALL_CYCLES_TOTAL = MetricSpec(
    "vecmon_recall_cycles_total", "counter",
    "Probe cycles that measured recall at the application's settings (one judgement each, for "
    "per-cycle recall SLOs).", PF)
RECALL_GOOD_CYCLES_TOTAL = MetricSpec(
    "vecmon_recall_good_cycles_total", "counter",
    "Probe cycles whose recall at the application's settings met the target (mean recall, or "
    "target_fraction of the queries, as vecmon_recall_target_met).", PF)
RECALL_PROBE_QUERIES = MetricSpec(
    "vecmon_recall_probe_queries", "gauge",
    "Query vectors in the index's probe set.", P)
RECALL_EXACT_QUERIES_TOTAL = MetricSpec(
    "vecmon_recall_exact_queries_total", "counter",
    "Exact (full scan) queries run; 0 per cycle while the table is unchanged.", P)
RECALL_EXACT_REUSED_TOTAL = MetricSpec(
    "vecmon_recall_exact_reused_total", "counter",
    "Exact results reused from the state store instead of being recomputed.", P)
RECALL_EXACT_STALE_TOTAL = MetricSpec(
    "vecmon_recall_exact_stale_total", "counter",
    "Stored exact results found stale and recomputed although the table's statistics counters "
    "were unchanged: a stored neighbour deleted, updated or no longer matching, or an "
    "approximate answer closer than the stored k-th neighbour.", P)
RECALL_EXACT_CHECK_QUERIES_TOTAL = MetricSpec(
    "vecmon_recall_exact_check_queries_total", "counter",
    "Statements checking stored exact results against the table (one per index, filter and "
    "cycle that reuses results; fetches the stored neighbours by TID).", P)
RECALL_ANN_QUERIES_TOTAL = MetricSpec(
    "vecmon_recall_ann_queries_total", "counter",
    "Approximate probe queries run.", P)
RECALL_ANN_REUSED_TOTAL = MetricSpec(
    "vecmon_recall_ann_reused_total", "counter",
    "Approximate answers reused from the state store instead of being rerun (the table, its "
    "counters and vacuums, the index and the settings unchanged, the returned rows still there).",
    P)
RECALL_QUERY_ERRORS_TOTAL = MetricSpec(
    "vecmon_recall_query_errors_total", "counter",
    "Failed probe statements by side (sample, explain, exact, check, ann), e.g. timeouts or "
    "a bad filter.", (*PF, "side"))
RECALL_PROBE_RUNS_TOTAL = MetricSpec(
    "vecmon_recall_probe_runs_total", "counter",
    "Probe attempts per index by result: ok, locked (another vecmon holds it), budget, error, "
    "no_privilege, not_ready, no_queries, replica_unavailable.", (*P, "result"))
RECALL_PROBE_SKIPPED = MetricSpec(
    "vecmon_recall_probe_skipped", "gauge",
    "Set to 1 when this run did not probe the index, with the reason (the last results are "
    "re-exported).",
    (*P, "reason"))
RECALL_LAST_SUCCESS_TIMESTAMP_SECONDS = MetricSpec(
    "vecmon_recall_last_success_timestamp_seconds", "gauge",
    "Unix time the index's last successful probe finished.", P)
RECALL_PROBE_DURATION_SECONDS = MetricSpec(
    "vecmon_recall_probe_duration_seconds", "gauge",
    "Wall-clock duration of the index's last successful probe.", P)
RECALL_TARGET = MetricSpec(
    "vecmon_recall_target", "gauge",
    "The configured recall@k target.", ())
RECALL_K = MetricSpec(
    "vecmon_recall_k", "gauge",
    "The configured k of recall@k (LIMIT of the probe queries).", ())
