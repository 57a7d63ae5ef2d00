"""SLO rules: SLI recordings, Sloth-compatible metadata, multi-window multi-burn-rate alerts.

Output follows Sloth's conventions (the names and labels are in :mod:`alerts.conventions`), so
Sloth's Grafana dashboards (grafana.com 14348 and 14643) work on vecmon's rules. Two things differ
on purpose:

- the period SLI is event-weighted (the ratio of summed 5m event rates, recorded as
  ``slo:sli_error_events:rate5m`` and ``slo:sli_total_events:rate5m``) instead of Sloth's mean of
  5m ratios, which is biased under uneven traffic (sloth#241, #618);
- every division is guarded (``> 0`` on denominators, ``or vector(0)`` on numerators), so no
  traffic gives *no* SLI rather than NaN or ±Inf, and a no-data alert says so.

Burn-rate windows are the SRE workbook's: page on 1h/5m (2% of the budget) and 6h/30m (5%),
ticket on 1d/2h (10%) and 3d/6h (10%); factor = budget share x period / long window, so a 30d
period gives 14.4, 6, 3 and 1. A window whose threshold would be 100% errors or more can never
fire and is left out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alerts import conventions as names
from alerts.config import SLO, AlertingSettings
from alerts.conventions import BURN_ALERT, EXHAUSTED_ALERT, NO_DATA_ALERT
from alerts.promql import at_window, duration, le_matcher, number, range_selector, split_selector, with_matchers
from alerts.targets import MonitoredConfig
from collectors.registry import DATABASE_COLLECTORS, all_api_targets, database_collector
from collectors.settings.base import parse_duration


@dataclass(frozen=True)
class Tier:
    """One of the four alert tiers, as the SRE workbook defines them for a 30d period."""

    tier: str  # page | ticket
    speed: str  # fast | slow
    factor: Decimal  # burn rate: error ratio / error budget
    long: float  # seconds, for 30d
    short: float
    budget_share: Decimal  # of the period's budget spent in the long window at that burn rate


TIERS = (
    Tier("page", "fast", Decimal("14.4"), 3600, 300, Decimal("0.02")),
    Tier("page", "slow", Decimal("6"), 21600, 1800, Decimal("0.05")),
    Tier("ticket", "fast", Decimal("3"), 86400, 7200, Decimal("0.10")),
    Tier("ticket", "slow", Decimal("1"), 259200, 21600, Decimal("0.10")),
)
DAY = 86400.0
MONTH = 30 * DAY
SLOTH_PERIODS = (28 * DAY, 30 * DAY)  # Sloth's built-in AlertWindows: fixed windows, factor from the budget share
SHORT_WINDOW_INTERVALS = 3  # a short window holds at least this many SLI intervals
LONG_TO_SHORT = 2  # ... and a long window at least this many short windows
DEFAULT_INTERVAL = 60.0  # SLI interval when nothing says otherwise (a scrape every minute)


@dataclass(frozen=True)
class Window:
    """An alert window pair for one SLO: the tier's factor over ``long`` and ``short``."""

    tier: str
    speed: str
    long: float
    short: float
    factor: Decimal

    def budget_spent(self, period: float) -> Decimal:
        """Share of the period's budget spent in the long window at the factor's burn rate."""
        return (self.factor * Decimal(int(self.long)) / Decimal(int(period))).quantize(Decimal("0.0001")).normalize()

    @property
    def keep_firing_for(self) -> float:
        """A firing alert holds after its condition clears: two short windows for a page, one for a
        ticket. Sparse probe events (one per interval) leave the windows without a bad event now and
        then while the burn goes on; without it a page resolves and re-triggers every few cycles."""
        return (2 if self.tier == "page" else 1) * self.short


def _minutes(seconds: float, up: bool = False) -> float:
    minutes = math.ceil(seconds / 60) if up else round(seconds / 60)
    return max(1, minutes) * 60.0


def single_event_floor(threshold: Decimal) -> int:
    """Fewest events (SLI intervals) in which one bad one stays at or under ``threshold``."""
    return int(1 / threshold) + 1


def alert_windows(period: float, interval: float = DEFAULT_INTERVAL, budget: Decimal | None = None) -> list[Window]:
    """The four window pairs for ``period`` and an SLI producing events every ``interval`` seconds.

    - 28d and 30d: Sloth's windows (1h/5m, 6h/30m, 1d/2h, 3d/6h); factor = budget share x period /
      long window (30d: 14.4, 6, 3, 1; 28d: 13.44, 5.6, 2.8, 0.933333), as Sloth generates them.
    - a shorter period: the 30d windows scaled by period / 30d, so each window spends the same
      share of the budget, with the workbook's factors 14.4, 6, 3 and 1 (the budget is gone in
      period / factor at that burn rate, whatever the period); a longer one keeps the 30d windows
      and factors (longer windows would only page later: 20x the budget would take 2h on 90d).
    - then cadence: a short window holds at least 3 SLI intervals (rounded up to minutes) and a long
      window at least 2 short ones and, given the error ``budget``, enough intervals that a single bad
      one stays under the threshold (:func:`single_event_floor`: a 10m probe at 99% pages on 70m, not
      1h, where one bad cycle is 16.7% > 14.4%); the factor stays (it is the burn rate that alerts).

    A page factor below 1 would page while the SLO is met: refused (ValueError).
    """
    windows = []
    for t in TIERS:
        if period in SLOTH_PERIODS:
            long, short = t.long, t.short
            factor = (t.budget_share * Decimal(int(period)) / Decimal(int(long))).quantize(Decimal("0.000001"))
            factor = factor.normalize()
        else:
            scale = min(1.0, period / MONTH)
            long, short, factor = _minutes(t.long * scale), _minutes(t.short * scale), t.factor
        short = max(short, _minutes(SHORT_WINDOW_INTERVALS * interval, up=True))
        long = max(long, LONG_TO_SHORT * short)
        if budget is not None and factor * budget < 1:
            long = max(long, _minutes(single_event_floor(factor * budget) * interval, up=True))
        if t.tier == "page" and factor < 1:
            raise ValueError(f"the {t.tier} {t.speed} factor for a {duration(period)} period is {factor}, below 1")
        windows.append(Window(t.tier, t.speed, long, short, factor))
    return windows


EVENTS_WINDOW = 300.0  # the 5m event rates the period SLI and the current burn rate are built on


def dec(value: Decimal) -> str:
    return number(float(value)) if value == value.to_integral() else format(value.normalize(), "f")


@dataclass(frozen=True)
class BurnAlert:
    """One generated burn-rate rule (kept for the unit tests)."""

    window: Window
    factor: Decimal
    threshold: float  # error ratio above which both windows must be
    for_: float
    severity: str
    rule: dict[str, Any]

    @property
    def keep_firing_for(self) -> float:
        return self.window.keep_firing_for


@dataclass(frozen=True)
class SLORules:
    slo: SLO
    ids: dict[str, str]  # sloth_id, sloth_service, sloth_slo
    labels: dict[str, str]  # ids + the SLO's own labels: on every recording
    sli_group: dict[str, Any]
    meta_group: dict[str, Any]
    alert_group: dict[str, Any] | None
    burn_alerts: tuple[BurnAlert, ...]
    no_data: dict[str, Any] | None
    exhausted: dict[str, Any] | None
    interval: float = DEFAULT_INTERVAL  # seconds between the SLI's event updates
    target: str | None = None  # the vecmon target the SLI reads, if a single one

    @property
    def matcher(self) -> str:
        return ", ".join(f'{k}="{v}"' for k, v in self.ids.items())

    def groups(self) -> list[dict[str, Any]]:
        return [g for g in (self.sli_group, self.meta_group, self.alert_group) if g]


# --------------------------------------------------------------------------- SLI expressions


def _rate(selector: str, window: str) -> str:
    """Events per second over ``window``: a selector's summed rate, or a Sloth query with its range filled in."""
    return at_window(selector, window) or f"sum(rate({selector}[{window}]))"


def _increase(selector: str, window: str) -> str:
    query = at_window(selector, window)
    if query is not None:  # events per second over the window, times its length
        return f"({query}) * {number(parse_duration(window))}"
    return f"sum(increase({selector}[{window}]))"


def _parts(slo: SLO) -> tuple[str | None, str | None, str]:
    """(bad selector, good selector, total selector) of a counter SLI; latency reads the histogram."""
    sli = slo.sli
    if sli.events is not None:
        return sli.events.bad_events, sli.events.good, sli.events.all_events
    assert sli.latency is not None
    h = sli.latency.histogram
    good = with_matchers(h, le_matcher(sli.latency.threshold), suffix="_bucket")
    return None, good, with_matchers(h, suffix="_count")


def error_ratio(slo: SLO, w: str) -> str:
    """The SLI as an error ratio over window ``w``; absent (not NaN) when there are no events.

    A missing *good* series (a typo, a latency threshold that is no bucket bound) makes the ratio
    absent, which the no-data alert reports, instead of reading as 100% errors. A missing *bad*
    series is no errors (``or vector(0)``): a counter of failures may not exist until the first one.
    """
    if slo.sli.probe is not None:
        ratio = slo.sli.probe.ratio
        return (f"1 - (\n  sum(sum_over_time({ratio}[{w}]))\n  /\n"
                f"  (sum(count_over_time({ratio}[{w}])) > 0)\n)")
    bad, good, total_selector = _parts(slo)
    total = _rate(total_selector, w)
    if bad is not None:
        return f"({_rate(bad, w)} or vector(0))\n/\n({total} > 0)"
    assert good is not None
    return f"(\n  {total}\n  -\n  {_rate(good, w)}\n)\n/\n({total} > 0)"


def event_rates(slo: SLO) -> tuple[str, str]:
    """(error events per second, all events per second) over 5m; probes count samples."""
    w = duration(EVENTS_WINDOW)
    if slo.sli.probe is not None:
        ratio, seconds = slo.sli.probe.ratio, number(EVENTS_WINDOW)
        return (f"(\n  sum(count_over_time({ratio}[{w}]))\n  -\n  sum(sum_over_time({ratio}[{w}]))\n) / {seconds}",
                f"sum(count_over_time({ratio}[{w}])) / {seconds}")
    bad, good, total_selector = _parts(slo)
    total = _rate(total_selector, w)
    if bad is not None:
        return f"{_rate(bad, w)} or vector(0)", total
    assert good is not None
    return f"{total}\n-\n{_rate(good, w)}", total


def total_events(slo: SLO, w: str) -> str:
    """Events (probe samples for a probe SLI) in window ``w``: the minimum-events guard."""
    if slo.sli.probe is not None:
        return f"sum(count_over_time({slo.sli.probe.ratio}[{w}]))"
    return _increase(_parts(slo)[2], w)


def data_window(interval: float) -> float:
    """Window of the no-data check: 3 SLI intervals, at least 5m (a 10m probe has data in every one)."""
    return max(EVENTS_WINDOW, math.ceil(SHORT_WINDOW_INTERVALS * interval / 60) * 60.0)


def sli_windows(slo: SLO, interval: float) -> list[float]:
    windows = {EVENTS_WINDOW, data_window(interval)}
    for window in active_windows(slo, interval):
        windows |= {window.long, window.short}
    return sorted(windows)


def active_windows(slo: SLO, interval: float = DEFAULT_INTERVAL) -> list[Window]:
    """Windows whose alert is enabled and can fire (threshold below a 100% error ratio)."""
    out = []
    for window in alert_windows(slo.period, interval, slo.error_budget):
        if not slo.alerting.enabled or not getattr(slo.alerting, window.tier):
            continue
        if window.factor * slo.error_budget >= 1:
            continue
        out.append(window)
    return out


# --------------------------------------------------------------------------- the SLI's cadence


def _selectors(slo: SLO) -> list[str]:
    sli = slo.sli
    if sli.events is not None:
        return [range_selector(s) for s in (sli.events.good, sli.events.bad_events, sli.events.all_events) if s]
    if sli.latency is not None:
        return [sli.latency.histogram]
    assert sli.probe is not None
    return [sli.probe.ratio]


_TARGET = re.compile(r'(?:^|[{,\s])target\s*=\s*"([^"]*)"')


def sli_target(slo: SLO) -> str | None:
    """The vecmon target every selector of the SLI names with ``target="..."`` (None: not one)."""
    names = set()
    for selector in _selectors(slo):
        match = _TARGET.search(split_selector(selector)[1])
        names.add(match.group(1) if match else None)
    return names.pop() if len(names) == 1 and None not in names else None


def _collector_of(metric: str) -> str | None:
    """The database collector declaring ``metric`` (None: an API collector's or not vecmon's)."""
    for name in DATABASE_COLLECTORS:
        if any(metric in (spec.name, f"{spec.name}_bucket", f"{spec.name}_count", f"{spec.name}_sum")
               for spec in database_collector(name).METRICS):
            return name
    return None


def sli_interval(slo: SLO, config: MonitoredConfig) -> float:
    """Seconds between two updates of the SLI's events: ``sli.interval``, else the interval of the
    collector that exports its metric on the target the selectors name (the longest one when they
    name none), else 60s."""
    if slo.sli.interval is not None:
        return float(slo.sli.interval)
    target = sli_target(slo)
    metric = split_selector(_selectors(slo)[0])[0]
    collector = _collector_of(metric)
    intervals = []
    if collector is not None:
        for db in config.enabled_databases():
            if (target is None or db.name == target) and collector in db.enabled_collectors():
                intervals.append(db.interval_for(collector))
    elif metric.startswith("vecmon_"):
        for api in all_api_targets(config):
            if api.enabled and (target is None or api.name == target):
                intervals.append(float(api.interval))
    return max(intervals) if intervals else DEFAULT_INTERVAL


# --------------------------------------------------------------------------- rules


def lasts(seconds: float) -> str:
    """A time to exhaustion in days, hours and minutes, rounded to the minute (``2d 2h``, ``11h 40m``)."""
    minutes = round(seconds / 60)
    days, hours, mins = minutes // 1440, (minutes // 60) % 24, minutes % 60
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (mins, "m")) if v]
    return " ".join(parts) or "0m"


def min_events(slo: SLO, threshold: Decimal) -> float:
    """Events the long window must hold before its ratio is judged: for counter SLIs as many as keep a
    single bad event under the threshold (7 for a 14.4% threshold), or ``min_events`` if larger. A
    probe SLI counts samples, not probes: its long window is made long enough instead, and only
    ``min_events`` applies."""
    configured = float(slo.alerting.min_events)
    if slo.sli.probe is not None:
        return configured
    return max(configured, float(single_event_floor(threshold)))


def no_data_for(slo: SLO, interval: float) -> float:
    """``no_data_for``, else 15m or 2 SLI intervals, whichever is longer."""
    configured = slo.alerting.no_data_for
    return float(configured) if configured is not None else max(900.0, 2 * interval)


def slo_rules(slo: SLO, settings: AlertingSettings, version: str, interval: float = DEFAULT_INTERVAL,
              scrape_job: str | None = None) -> SLORules:
    ids = dict(zip(names.ID_LABELS, (slo.id, slo.service, slo.name), strict=True))
    labels = {**ids, **slo.labels}
    m = ", ".join(f'{k}="{v}"' for k, v in ids.items())
    period = duration(slo.period)
    budget = slo.error_budget
    target = sli_target(slo)
    windows = active_windows(slo, interval)
    dw = duration(data_window(interval))

    sli_rules: list[dict[str, Any]] = []
    errors, total = event_rates(slo)
    sli_rules.append({"record": names.ERROR_EVENTS_RATE5M, "expr": errors, "labels": labels})
    sli_rules.append({"record": names.TOTAL_EVENTS_RATE5M, "expr": total, "labels": labels})
    for seconds in sli_windows(slo, interval):
        if seconds == slo.period:
            continue
        w = duration(seconds)
        sli_rules.append({"record": names.error_ratio(w), "expr": error_ratio(slo, w),
                          "labels": {**labels, names.WINDOW_LABEL: w}})
    for seconds in sorted({window.long for window in windows}):
        w = duration(seconds)
        sli_rules.append({"record": names.total_events_increase(w), "expr": total_events(slo, w),
                          "labels": {**labels, names.WINDOW_LABEL: w}})
    sli_rules.append({
        "record": names.error_ratio(period),
        "expr": (f"sum_over_time({names.ERROR_EVENTS_RATE5M}{{{m}}}[{period}])\n/\n"
                 f"(sum_over_time({names.TOTAL_EVENTS_RATE5M}{{{m}}}[{period}]) > 0)"),
        "labels": {**labels, names.WINDOW_LABEL: period}})

    on = f"on ({names.ID_LABEL}, {names.SLO_LABEL}, {names.SERVICE_LABEL}) group_left"
    budget_ratio = f"{names.ERROR_BUDGET}{{{m}}}"
    meta_rules = [
        {"record": names.OBJECTIVE, "expr": f"vector({dec(Decimal(1) - budget)})", "labels": labels},
        {"record": names.ERROR_BUDGET, "expr": f"vector({dec(budget)})", "labels": labels},
        {"record": names.TIME_PERIOD_DAYS, "expr": f"vector({number(slo.period / 86400)})", "labels": labels},
        {"record": names.CURRENT_BURN_RATE,
         "expr": f"{names.error_ratio(dw)}{{{m}}}\n/ {on}\n{budget_ratio}", "labels": labels},
        {"record": names.PERIOD_BURN_RATE,
         "expr": f"{names.error_ratio(period)}{{{m}}}\n/ {on}\n{budget_ratio}", "labels": labels},
        {"record": names.PERIOD_ERROR_BUDGET_REMAINING, "expr": f"1 - {names.PERIOD_BURN_RATE}{{{m}}}",
         "labels": labels},
        {"record": names.SLO_INFO, "expr": "vector(1)",
         "labels": {**labels, "sloth_mode": "cli-gen-prom", "sloth_objective": dec((1 - budget) * 100),
                    "sloth_spec": "prometheus/v1", "sloth_version": f"vecmon-{version}"}},
    ]

    burn_alerts: list[BurnAlert] = []
    alert_rules: list[dict[str, Any]] = []
    alerting = slo.alerting
    extra = {**settings.labels, **alerting.labels}
    where = {"target": target} if target else {}
    url = f"{settings.runbook_base()}#"
    for window in windows:
        factor = window.factor
        threshold = f"({dec(factor)} * {dec(budget)})"
        long, short = duration(window.long), duration(window.short)
        severity = alerting.page_severity if window.tier == "page" else alerting.ticket_severity
        for_ = getattr(alerting, f"{window.tier}_{window.speed}_for")
        without = f"max without ({names.WINDOW_LABEL})"
        expr = (f"{without} ({names.error_ratio(long)}{{{m}}} > {threshold})\nand\n"
                f"{without} ({names.error_ratio(short)}{{{m}}} > {threshold})")
        minimum = min_events(slo, factor * budget)
        if minimum:
            expr += f"\nand\n{without} ({names.total_events_increase(long)}{{{m}}} >= {number(minimum)})"
        rule = {
            "alert": BURN_ALERT,
            "expr": expr,
            "for": duration(for_),
            "keep_firing_for": duration(window.keep_firing_for),
            "labels": {"severity": severity, "service": slo.service, names.SEVERITY_LABEL: window.tier,
                       "long_window": long, "short_window": short, **ids, **where, **extra},
            "annotations": {
                "summary": "{{ $labels.sloth_service }} SLO {{ $labels.sloth_slo }} burns its error budget "
                           + ("too fast." if window.tier == "page" else "faster than it can afford."),
                "description": (f"Error ratio over the last {long} is {{{{ $value | humanizePercentage }}}} (and "
                                f"over {short} too), above {dec(factor)}x the {dec(budget * 100)}% error budget of "
                                f"the {period} objective: at this rate the whole budget lasts "
                                f"{lasts(slo.period / float(factor))} and this window alone spends "
                                f"{dec(window.budget_spent(slo.period) * 100)}% of it."),
                "runbook_url": url + BURN_ALERT.lower(),
            },
        }
        alert_rules.append(rule)
        burn_alerts.append(BurnAlert(window, factor, float(factor * budget), for_, severity, rule))

    no_data = exhausted = None
    if alerting.enabled and alerting.no_data:
        wait = no_data_for(slo, interval)
        job = {"job": scrape_job} if scrape_job and all(
            split_selector(s)[0].startswith("vecmon_") for s in _selectors(slo)) else {}
        no_data = {
            "alert": NO_DATA_ALERT,
            "expr": f"absent({names.error_ratio(dw)}{{{m}}})",
            "for": duration(wait),
            "labels": {"severity": alerting.no_data_severity, "service": slo.service, **labels, **where, **job,
                       **extra},
            "annotations": {
                "summary": "SLO {{ $labels.sloth_slo }} of {{ $labels.sloth_service }} has no data.",
                "description": (f"The SLI of {slo.id} has had no error ratio over {dw} (3 intervals of "
                                f"{duration(interval)}) for {duration(wait)}: its burn-rate alerts cannot fire. "
                                "The metrics may be gone (renamed, scrape or collector failing), a good-events "
                                "series or latency bucket may not exist, or there is no traffic."),
                "runbook_url": url + NO_DATA_ALERT.lower(),
            },
        }
        alert_rules.append(no_data)
    if alerting.enabled and alerting.budget_exhausted:
        exhausted = {
            "alert": EXHAUSTED_ALERT,
            "expr": f"{names.PERIOD_ERROR_BUDGET_REMAINING}{{{m}}} <= 0",
            "for": duration(alerting.budget_exhausted_for),
            "labels": {"severity": alerting.budget_exhausted_severity, "service": slo.service, **ids, **where,
                       **extra},
            "annotations": {
                "summary": "SLO {{ $labels.sloth_slo }} of {{ $labels.sloth_service }} has used up its error budget.",
                "description": (f"The error budget of {slo.id} over the last {period} is used up: "
                                "{{ $value | humanizePercentage }} of it remains."),
                "runbook_url": url + EXHAUSTED_ALERT.lower(),
            },
        }
        alert_rules.append(exhausted)

    return SLORules(
        slo=slo, ids=ids, labels=labels,
        sli_group={"name": names.sli_group(slo.id), "rules": sli_rules},
        meta_group={"name": names.meta_group(slo.id), "rules": meta_rules},
        alert_group={"name": names.alert_group(slo.id), "rules": alert_rules} if alert_rules else None,
        burn_alerts=tuple(burn_alerts), no_data=no_data, exhausted=exhausted, interval=interval, target=target)


def all_slo_rules(config: MonitoredConfig, version: str) -> list[SLORules]:
    """The rules of every SLO of ``config``; ``version`` (vecmon's) goes into ``sloth_slo_info``."""
    settings = config.alerting
    return [slo_rules(slo, settings, version, sli_interval(slo, config), settings.scrape_job)
            for slo in config.slos]

