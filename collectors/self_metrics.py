"""The families vecmon reports about its own collection of every target (``/metrics`` adds them,
:mod:`monitor.exposition`): whether the target and each collector are up, run durations, results.

They are declared here, beside the collectors' own, so every layer that checks metric names (the
docs, the dashboards, the SLI check of the alerts, custom queries) finds them below it.
"""

from __future__ import annotations

from collectors.base import MetricSpec

SELF_METRICS = (
    MetricSpec("vecmon_build_info", "gauge", "Version of the running vecmon and its Python; always 1.",
               ("version", "python_version")),
    MetricSpec("vecmon_up", "gauge", "Whether vecmon reached the target on its last attempt (1) or not (0)."),
    MetricSpec("vecmon_target_unreachable_reason", "gauge",
               "Why vecmon could not reach the database target on its last attempt: 1 for the reason (auth_failed, "
               "refused, dns, timeout, database_missing, tls, other); absent while the target is up.", ("reason",)),
    MetricSpec("vecmon_collector_up", "gauge",
               "Whether the collector's last run succeeded (1) or failed (0); absent while disabled; while the "
               "target is down (vecmon_up 0), the value from before.", ("collector",)),
    MetricSpec("vecmon_collector_disabled", "gauge",
               "Whether the collector reported it cannot run on this target, e.g. an extension is missing.",
               ("collector",)),
    MetricSpec("vecmon_collector_duration_seconds", "gauge", "Duration of the collector's last run, from "
               "the moment it had its database connection (the wait for it is not counted).", ("collector",)),
    MetricSpec("vecmon_collector_pool_wait_seconds", "gauge",
               "How long the collector's last run waited for a worker and a pooled database connection before "
               "it started.", ("collector",)),
    MetricSpec("vecmon_collector_runs_total", "counter",
               "Collector runs by result (success, error, timeout, disabled).", ("collector", "result")),
    MetricSpec("vecmon_collector_skipped_runs_total", "counter",
               "Scheduled runs skipped because the previous run was still going (overlap) or late (missed).",
               ("collector", "reason")),
    MetricSpec("vecmon_collector_last_success_timestamp_seconds", "gauge",
               "Unix time of the collector's last successful run.", ("collector",)),
    MetricSpec("vecmon_collector_series", "gauge", "Series the collector currently exports.", ("collector",)),
    MetricSpec("vecmon_collector_interval_seconds", "gauge",
               "Configured interval between the collector's scheduled runs.", ("collector",)),
    MetricSpec("vecmon_collector_stale", "gauge",
               "Whether the exported series come from an earlier run because the last run failed.",
               ("collector",)),
)
