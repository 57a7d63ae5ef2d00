"""Alerts on vecmon itself: the scrape of vecmon, its targets and its collectors (rule group
``vecmon-self``, service ``vecmon``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alerts.fixtures import APP, MINUTE, Fixture, InputSeries, gauge, sel
from alerts.model import AlertDef, Custom, Doc, F, Params
from alerts.promql import number
from alerts.shapes import GaugeDown
from alerts.targets import ANY_TARGET, MonitoredConfig
from collectors.registry import all_api_targets
from collectors.self_metrics import (
    COLLECTOR_INTERVAL_SECONDS,
    COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COLLECTOR_UP,
    UP,
)

if TYPE_CHECKING:  # alerts.config imports the catalog
    from alerts.config import AlertingSettings


STALE_METRIC = COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS.name
INTERVAL_METRIC = COLLECTOR_INTERVAL_SECONDS.name


def _stale_expr(p: Params) -> str:
    """``time() - last_success`` against ``stale_intervals`` x the collector's own interval
    (``vecmon_collector_interval_seconds``), so a 30 s collector is stale after 90 s and an hourly
    cost poll after 3h. Series without that gauge (an older vecmon) fall back to a threshold per
    target: max(stale_after, N x the target's longest interval). A threshold override applies to all."""
    if p.threshold is not None:
        return f"(time() - {STALE_METRIC}) > {p.limit}"
    per_collector = f"(time() - {STALE_METRIC})\n> {number(p.settings.stale_intervals)} * {INTERVAL_METRIC}"
    without = f"{STALE_METRIC} unless on (target, collector) {INTERVAL_METRIC}"
    classes = stale_classes(p.config, p.settings)
    if not classes:
        return f"{per_collector}\nor\n(time() - ({without})) > {number(p.config.daemon.stale_after)}"
    parts = []
    for limit, targets in classes.items():
        matched = STALE_METRIC + '{target=~"' + "|".join(targets) + '"}'
        parts.append(f"(time() - ({without.replace(STALE_METRIC, matched, 1)})) > {number(limit)}")
    return per_collector + "\nor\n" + "\nor\n".join(parts)


def stale_classes(config: MonitoredConfig, settings: AlertingSettings) -> dict[float, list[str]]:
    """Stale threshold (seconds) -> target names, from the targets' intervals."""
    longest: dict[str, float] = {}
    for db in config.enabled_databases():
        intervals = [db.interval_for(name) for name in db.enabled_collectors()]
        if intervals:
            longest[db.name] = max(intervals)
    for target in all_api_targets(config):
        if target.enabled:
            longest[target.name] = float(target.interval)
    classes: dict[float, list[str]] = {}
    for name, interval in sorted(longest.items()):
        limit = max(float(config.daemon.stale_after), settings.stale_intervals * interval)
        classes.setdefault(limit, []).append(name)
    return dict(sorted(classes.items()))


def _stale_fixture(p: Params, value: float) -> Fixture:
    labels = {"target": "app", "collector": "connections"}
    series: tuple[InputSeries, ...]
    if p.threshold is not None:
        limit, series = p.threshold, ()
    else:
        interval = 30.0
        limit = p.settings.stale_intervals * interval
        series = (gauge(INTERVAL_METRIC, labels, interval),)
    if value:  # last success at t=0: time() - 0 grows past the limit
        first = (int(limit // MINUTE) + 1) * MINUTE
        return Fixture((gauge(STALE_METRIC, labels, 0), *series), labels, lambda t: t, active_from=first)
    return Fixture((InputSeries(sel(STALE_METRIC, labels), 0, MINUTE), *series), labels, 0.0)


VECMON = [
    AlertDef(
        name="VecmonDown", group="self", service="vecmon", severity="critical", for_=2 * MINUTE, compare="event",
        condition="the scrape of vecmon fails (`up == 0`)",
        summary="Prometheus cannot scrape vecmon at {{ $labels.instance }}.",
        description="Scrapes of {{ $labels.instance }} (job {{ $labels.job }}) have failed for " + F + ": no vecmon "
                    "metric is current, so no other vecmon alert can fire.",
        shape=Custom(
            lambda p: f'up{{job="{p.settings.scrape_job}"}} == 0',
            lambda p, v: Fixture(
                (gauge("up", {"job": p.settings.scrape_job, "instance": "vecmon:9765"}, 0 if v else 1),),
                {"job": p.settings.scrape_job, "instance": "vecmon:9765"}, 0)),
        doc=Doc("Prometheus' own `up` series for the vecmon scrape job is 0: the daemon is down, not listening, "
                "or unreachable from Prometheus.",
                "vecmon default (`alerting.scrape_job` names the job).",
                ("`curl http://HOST:9765/health` from the Prometheus host; check the process and its logs: "
                 "installed with the unit `deploy/systemd/vecmon.service` (README: systemd), "
                 "`systemctl status vecmon` and `journalctl -u vecmon`; in a container, `docker logs` or "
                 "`kubectl logs`.",
                 "`vecmon check-config -c FILE`: a config error stops a restart.",
                 "Check the scrape config (`job_name`, target address) and firewalls.")),
        metrics=("up",)),
    AlertDef(
        name="VecmonTargetDown", group="self", service="vecmon", severity="critical", for_=2 * MINUTE,
        compare="event",
        condition="the target is unreachable (`vecmon_up == 0`)",
        summary="vecmon cannot reach target {{ $labels.target }}.",
        description="vecmon's connection attempts to {{ $labels.target }} have failed for " + F + f" ({UP.name} = "
                    "{{ $value }}); all other alerts of this target are muted while it is down.",
        applies=ANY_TARGET,
        shape=GaugeDown(UP.name, APP),
        doc=Doc("vecmon could not connect to the target (database, model endpoint, cost API, Redis) on its last "
                "attempt. Alertmanager inhibits every other alert of the same target while this one fires.",
                "vecmon default.",
                ("Open vecmon's status page (`/`): it shows the last error of each collector.",
                 "Check that the server is up and reachable from the vecmon host (`pg_isready -h HOST -p PORT`, "
                 "`curl` for HTTP targets).",
                 "Check credentials (`password_file`, `api_key_file`) and, for PostgreSQL, `max_connections` and "
                 "`pg_hba.conf`.")),
        metrics=(UP.name,)),
    AlertDef(
        name="VecmonCollectorFailing", group="self", service="vecmon", severity="warning", for_=5 * MINUTE,
        compare="event",
        condition="every run fails (`vecmon_collector_up == 0`)",
        summary="Collector {{ $labels.collector }} fails on {{ $labels.target }}.",
        description="Every run of collector {{ $labels.collector }} on {{ $labels.target }} has failed for " + F +
                    " (vecmon_collector_up = {{ $value }}); its last error is on vecmon's status page.",
        applies=ANY_TARGET,
        shape=GaugeDown(COLLECTOR_UP.name, {"target": "app", "collector": "tables"},
                        unless=f"\nunless on (target)\n{UP.name} == 0"),
        doc=Doc("The collector's runs fail (an error or a timeout) although the target is reachable: a missing "
                "privilege, a query cancelled by `statement_timeout` or `lock_timeout` (e.g. a table locked by a "
                "long `ALTER TABLE`), a provider answer that does not parse. Its last good series are served, "
                "marked `vecmon_collector_stale=1`, until `daemon.stale_after`. Not while the whole target is "
                "down (`VecmonTargetDown` says so once).",
                "vecmon default.",
                ("Read the collector's last error on vecmon's status page (`/`) or in its log.",
                 "Lock waits: `SELECT pid, wait_event_type, query FROM pg_stat_activity WHERE wait_event_type = "
                 "'Lock'`; timeouts: raise `collectors.<name>.timeout` only if the query is legitimately slow.",
                 "Privileges: the monitoring role needs only `pg_monitor`.")),
        metrics=(COLLECTOR_UP.name, UP.name)),
    AlertDef(
        name="VecmonCollectorStale", group="self", service="vecmon", severity="warning", for_=MINUTE,
        compare="event", fmt="duration",
        condition="no successful run for 3 of the collector's own intervals",
        tunable_threshold=True,
        summary="Collector {{ $labels.collector }} on {{ $labels.target }} has not succeeded recently.",
        description="The last successful run of collector {{ $labels.collector }} on {{ $labels.target }} was "
                    "{{ $value | humanizeDuration }} ago; its series are stale or already dropped.",
        applies=ANY_TARGET,
        shape=Custom(_stale_expr, _stale_fixture),
        doc=Doc("No successful run for longer than `alerting.stale_intervals` (3) times the collector's own "
                "interval (`vecmon_collector_interval_seconds`): a 30 s collector is stale after 90 s, the 10m "
                "recall probe after 30m. Series of a vecmon without that gauge are judged per target "
                "(3 x the target's longest interval, at least `daemon.stale_after`). Runs that keep failing, "
                "runs that are skipped because the previous one still runs, or a scheduler that stopped all end "
                "here. A threshold override (seconds) replaces the per-collector limits.",
                "vecmon default.",
                ("Check `vecmon_collector_skipped_runs_total` (runs overlapping: the interval is shorter than the "
                 "run takes) and the collector's last error on the status page.",
                 "If every collector of the daemon is stale, restart vecmon and report the bug with its log.")),
        metrics=(COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS.name, COLLECTOR_INTERVAL_SECONDS.name)),
]
