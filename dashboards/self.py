"""vecmon itself: targets reached, collector results, durations, failures, skips and staleness."""

from __future__ import annotations

from typing import Any

from collectors.self_metrics import (
    BUILD_INFO,
    COLLECTOR_DISABLED,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COLLECTOR_RUNS_TOTAL,
    COLLECTOR_SERIES,
    COLLECTOR_SKIPPED_RUNS_TOTAL,
    COLLECTOR_STALE,
    COLLECTOR_UP,
    UP,
)
from dashboards.facade import (
    Panel,
    dashboard,
    lower_is_better,
    m,
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

UID = "vecmon-self"
RUNS = COLLECTOR_RUNS_TOTAL.name


def variables() -> list[Any]:
    return [*standard_vars(BUILD_INFO.name),
            query_var("target", "Target", f'label_values({UP.name}{{job=~"$job", instance=~"$instance"}}, target)'),
            query_var("collector", "Collector", f'label_values({COLLECTOR_RUNS_TOTAL.name}{{job=~"$job", '
                                                'instance=~"$instance", target=~"$target"}, collector)')]


def sel(name: str, *extra: str) -> str:
    return m(name, 'collector=~"$collector"', *extra)


def _status(t: Targets) -> list[Panel]:
    return [
        row("Status"),
        stat("Targets reachable", "Targets vecmon reached on its last attempt, out of all targets.", "short",
             [q(f"sum({m(UP.name)})", "reachable"), q(f"count({m(UP.name)})", "targets")],
             thresholds=steps(("text", None)), w=5),
        stat("Collectors failing", "Collectors whose last run failed (error or timeout).", "short",
             [q(f"sum(1 - {sel(COLLECTOR_UP.name)})", "failing")],
             thresholds=steps(("green", None), ("red", 1)), color_mode="background", w=5),
        stat("Collectors stale", "Collectors serving series from an earlier run because the last run failed.",
             "short", [q(f"sum({sel(COLLECTOR_STALE.name)})", "stale")],
             thresholds=steps(("green", None), ("orange", 1)), color_mode="background", w=5),
        stat("Collectors disabled", "Collectors that cannot run on their target (e.g. an extension is missing); "
             "the status page names the reason.", "short",
             [q(f"sum({sel(COLLECTOR_DISABLED.name)})", "disabled")],
             thresholds=steps(("green", None), ("blue", 1)), w=5),
        stat("vecmon version", f"Version of each vecmon instance ({BUILD_INFO.name}).", "none",
             [q(f"max by (instance, version, python_version) ({m(BUILD_INFO.name, target=False)})",
                "{{version}} (Python {{python_version}})")], text_mode="name", w=4),
    ]


def _runs(t: Targets) -> list[Panel]:
    failed = rate(sel(RUNS, 'result=~"error|timeout"'))
    skipped = rate(sel(COLLECTOR_SKIPPED_RUNS_TOTAL.name))
    return [
        row("Collection"),
        timeseries("Collection duration", "Duration of each collector's last run; a run is cancelled at its "
                   "timeout.", "s",
                   [q(f"max by (target, collector) ({sel(COLLECTOR_DURATION_SECONDS.name)})",
                      "{{target}}/{{collector}}")], w=12),
        timeseries("Runs by result", "Collector runs per second by result (success, error, timeout, disabled).",
                   "ops", [q(f"sum by (result) ({rate(sel(RUNS))})", "{{result}}")], stack=True, w=12),
        timeseries("Failed runs", "Failed or timed-out runs per second by target and collector (0 while "
                   "everything succeeds).", "ops",
                   [q(f"sum by (target, collector) ({failed})", "{{target}}/{{collector}}")],
                   thresholds=steps(("green", None), ("red", 0.001)), threshold_style="area", w=12),
        timeseries("Skipped runs", "Scheduled runs skipped because the previous run was still going or the "
                   "run was late (0 while none are skipped).", "ops",
                   [q(f"sum by (target, collector) ({skipped})", "{{target}}/{{collector}}")],
                   w=12),
    ]


def _freshness(t: Targets) -> list[Panel]:
    age = f"time() - max by (target, collector) ({sel(COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS.name)})"
    by = "by (target, collector)"
    return [
        row("Freshness"),
        timeseries("Time since last success", "Seconds since each collector last succeeded; series are dropped "
                   "once this passes daemon.stale_after.", "s", [q(age, "{{target}}/{{collector}}")],
                   thresholds=lower_is_better(t.collector_stale_after / 2, t.collector_stale_after),
                   threshold_style="line", w=12),
        timeseries("Series exported", "Series each collector currently exports; a sudden change means "
                   "objects appeared or disappeared (or a limit was hit).", "short",
                   [q(f"sum {by} ({sel(COLLECTOR_SERIES.name)})", "{{target}}/{{collector}}")], w=12),
        table("Collectors", "Every collector on every target: last result, staleness, last duration, time "
              "since the last success and series exported.", "short",
              [q(f"max {by} ({sel(COLLECTOR_UP.name)})"),
               q(f"max {by} ({sel(COLLECTOR_STALE.name)})"),
               q(f"max {by} ({sel(COLLECTOR_DURATION_SECONDS.name)})"),
               q(age),
               q(f"sum {by} ({sel(COLLECTOR_SERIES.name)})")],
              rename={"Value #A": "Up", "Value #B": "Stale", "Value #C": "Duration", "Value #D": "Since success",
                      "Value #E": "Series"},
              column_units={"Up": "bool_yes_no", "Stale": "bool_yes_no", "Duration": "s", "Since success": "s"},
              sort_by="Since success", h=10),
    ]


def build(config: Any, t: Targets) -> dict[str, Any]:
    return dashboard(UID, "vecmon / Self-monitoring", "vecmon's own health: targets reached, collector "
                     "results, durations, failures, skipped runs and staleness.", variables(),
                     [*_status(t), *_runs(t), *_freshness(t)], tags=["self"])
