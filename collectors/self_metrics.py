"""vecmon's own metrics: build info, whether each target was reached, and how each collector ran.

They are exported by the daemon (``monitor.exposition``) and by ``/probe`` (``monitor.probe``),
and declared here, at the bottom of the package graph, so alerts, dashboards and tests can
import the constants instead of retyping the names.
"""

from __future__ import annotations

from collectors.base import MetricSpec

BUILD_INFO = MetricSpec(
    "vecmon_build_info", "gauge",
    "Version of the running vecmon and its Python; always 1.", ("version", "python_version"))
UP = MetricSpec("vecmon_up", "gauge", "Whether vecmon reached the target on its last attempt (1) or not (0).")
TARGET_UNREACHABLE_REASON = MetricSpec(
    "vecmon_target_unreachable_reason", "gauge",
    "Why vecmon could not reach the database target on its last attempt: 1 for the reason (auth_failed, "
    "refused, dns, timeout, database_missing, tls, other); absent while the target is up.", ("reason",))
COLLECTOR_UP = MetricSpec(
    "vecmon_collector_up", "gauge",
    "Whether the collector's last run succeeded (1) or failed (0); absent while disabled; while the "
    "target is down (vecmon_up 0), the value from before.", ("collector",))
COLLECTOR_DISABLED = MetricSpec(
    "vecmon_collector_disabled", "gauge",
    "Whether the collector reported it cannot run on this target, e.g. an extension is missing.", ("collector",))
COLLECTOR_DURATION_SECONDS = MetricSpec(
    "vecmon_collector_duration_seconds", "gauge", "Duration of the collector's last run, from "
    "the moment it had its database connection (the wait for it is not counted).", ("collector",))
COLLECTOR_POOL_WAIT_SECONDS = MetricSpec(
    "vecmon_collector_pool_wait_seconds", "gauge",
    "How long the collector's last run waited for a worker and a pooled database connection before "
    "it started.", ("collector",))
COLLECTOR_RUNS_TOTAL = MetricSpec(
    "vecmon_collector_runs_total", "counter",
    "Collector runs by result (success, error, timeout, disabled).", ("collector", "result"))
COLLECTOR_SKIPPED_RUNS_TOTAL = MetricSpec(
    "vecmon_collector_skipped_runs_total", "counter",
    "Scheduled runs skipped because the previous run was still going (overlap) or late (missed).",
    ("collector", "reason"))
COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS = MetricSpec(
    "vecmon_collector_last_success_timestamp_seconds", "gauge",
    "Unix time of the collector's last successful run.", ("collector",))
COLLECTOR_SERIES = MetricSpec(
    "vecmon_collector_series", "gauge", "Series the collector currently exports.", ("collector",))
COLLECTOR_INTERVAL_SECONDS = MetricSpec(
    "vecmon_collector_interval_seconds", "gauge",
    "Configured interval between the collector's scheduled runs.", ("collector",))
COLLECTOR_STALE = MetricSpec(
    "vecmon_collector_stale", "gauge",
    "Whether the exported series come from an earlier run because the last run failed.", ("collector",))

SELF_METRICS: tuple[MetricSpec, ...] = (
    BUILD_INFO,
    UP,
    TARGET_UNREACHABLE_REASON,
    COLLECTOR_UP,
    COLLECTOR_DISABLED,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_POOL_WAIT_SECONDS,
    COLLECTOR_RUNS_TOTAL,
    COLLECTOR_SKIPPED_RUNS_TOTAL,
    COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COLLECTOR_SERIES,
    COLLECTOR_INTERVAL_SECONDS,
    COLLECTOR_STALE,
)
