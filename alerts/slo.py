"""SLO rules: SLI recordings, Sloth-compatible metadata, multi-window multi-burn-rate alerts.

Output follows Sloth's conventions (``slo:sli_error:ratio_rate<window>``, ``slo:objective:ratio``,
``slo:error_budget:ratio``, ``slo:time_period:days``, ``slo:current_burn_rate:ratio``,
``slo:period_burn_rate:ratio``, ``slo:period_error_budget_remaining:ratio``, ``sloth_slo_info``;
labels ``sloth_id``, ``sloth_service``, ``sloth_slo``, ``sloth_window``), so Sloth's Grafana
dashboards (grafana.com 14348 and 14643) work on vecmon's rules. Two things differ on purpose:

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

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alerts.config import SLO, AlertingSettings
from alerts.promql import duration, humanize_duration, le_matcher, number, with_matchers


@dataclass(frozen=True)
class Window:
    tier: str  # page | ticket
    speed: str  # fast | slow
    long: float
    short: float
    budget_share: Decimal

    def factor(self, period: float) -> Decimal:
        """budget share x period / long window, to 6 decimals (28d: 13.44, 5.6, 2.8, 0.933333)."""
        exact = self.budget_share * Decimal(int(period)) / Decimal(int(self.long))
        return exact.quantize(Decimal("0.000001")).normalize()


WINDOWS = (
    Window("page", "fast", 3600, 300, Decimal("0.02")),
    Window("page", "slow", 21600, 1800, Decimal("0.05")),
    Window("ticket", "fast", 86400, 7200, Decimal("0.10")),
    Window("ticket", "slow", 259200, 21600, Decimal("0.10")),
)
EVENTS_WINDOW = 300.0  # the 5m event rates the period SLI and the no-data alert are built on
BURN_ALERT, NO_DATA_ALERT, EXHAUSTED_ALERT = "SLOErrorBudgetBurn", "SLOSLIDataMissing", "SLOErrorBudgetExhausted"


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

    @property
    def matcher(self) -> str:
        return ", ".join(f'{k}="{v}"' for k, v in self.ids.items())

    def groups(self) -> list[dict[str, Any]]:
        return [g for g in (self.sli_group, self.meta_group, self.alert_group) if g]


# --------------------------------------------------------------------------- SLI expressions


def _rate(selector: str, window: str) -> str:
    return f"sum(rate({selector}[{window}]))"


def error_ratio(slo: SLO, w: str) -> str:
    """The SLI as an error ratio over window ``w``; absent (not NaN) when there are no events."""
    sli = slo.sli
    if sli.events is not None:
        total = _rate(sli.events.total, w)
        if sli.events.bad is not None:
            bad = f"({_rate(sli.events.bad, w)} or vector(0))"
        else:
            bad = f"(\n  {total}\n  -\n  ({_rate(sli.events.good, w)} or vector(0))\n)"
        return f"{bad}\n/\n({total} > 0)"
    if sli.latency is not None:
        count = _rate(with_matchers(sli.latency.histogram, suffix="_count"), w)
        good = _rate(with_matchers(sli.latency.histogram, le_matcher(sli.latency.threshold), suffix="_bucket"), w)
        return f"(\n  {count}\n  -\n  ({good} or vector(0))\n)\n/\n({count} > 0)"
    ratio = sli.probe.ratio
    return (f"1 - (\n  sum(sum_over_time({ratio}[{w}]))\n  /\n"
            f"  (sum(count_over_time({ratio}[{w}])) > 0)\n)")


def event_rates(slo: SLO) -> tuple[str, str]:
    """(error events per second, all events per second) over 5m; probes count samples."""
    sli, w = slo.sli, duration(EVENTS_WINDOW)
    if sli.events is not None:
        total = _rate(sli.events.total, w)
        if sli.events.bad is not None:
            return f"{_rate(sli.events.bad, w)} or vector(0)", total
        return f"{total}\n-\n({_rate(sli.events.good, w)} or vector(0))", total
    if sli.latency is not None:
        count = _rate(with_matchers(sli.latency.histogram, suffix="_count"), w)
        good = _rate(with_matchers(sli.latency.histogram, le_matcher(sli.latency.threshold), suffix="_bucket"), w)
        return f"{count}\n-\n({good} or vector(0))", count
    ratio, seconds = sli.probe.ratio, number(EVENTS_WINDOW)
    return (f"(\n  sum(count_over_time({ratio}[{w}]))\n  -\n  sum(sum_over_time({ratio}[{w}]))\n) / {seconds}",
            f"sum(count_over_time({ratio}[{w}])) / {seconds}")


def sli_windows(slo: SLO) -> list[float]:
    windows = {EVENTS_WINDOW}
    for window in active_windows(slo):
        windows |= {window.long, window.short}
    return sorted(windows)


def active_windows(slo: SLO) -> list[Window]:
    """Windows whose alert is enabled and can fire (threshold below a 100% error ratio)."""
    out = []
    for window in WINDOWS:
        if not slo.alerting.enabled or not getattr(slo.alerting, window.tier):
            continue
        if window.factor(slo.period) * slo.error_budget >= 1:
            continue
        out.append(window)
    return out


# --------------------------------------------------------------------------- rules


def slo_rules(slo: SLO, settings: AlertingSettings, version: str) -> SLORules:
    ids = {"sloth_id": slo.id, "sloth_service": slo.service, "sloth_slo": slo.name}
    labels = {**ids, **slo.labels}
    m = ", ".join(f'{k}="{v}"' for k, v in ids.items())
    period = duration(slo.period)
    budget = slo.error_budget

    sli_rules: list[dict[str, Any]] = []
    errors, total = event_rates(slo)
    sli_rules.append({"record": "slo:sli_error_events:rate5m", "expr": errors, "labels": labels})
    sli_rules.append({"record": "slo:sli_total_events:rate5m", "expr": total, "labels": labels})
    for seconds in sli_windows(slo):
        w = duration(seconds)
        sli_rules.append({"record": f"slo:sli_error:ratio_rate{w}", "expr": error_ratio(slo, w),
                          "labels": {**labels, "sloth_window": w}})
    sli_rules.append({
        "record": f"slo:sli_error:ratio_rate{period}",
        "expr": (f"sum_over_time(slo:sli_error_events:rate5m{{{m}}}[{period}])\n/\n"
                 f"(sum_over_time(slo:sli_total_events:rate5m{{{m}}}[{period}]) > 0)"),
        "labels": {**labels, "sloth_window": period}})

    on = "on (sloth_id, sloth_slo, sloth_service) group_left"
    meta_rules = [
        {"record": "slo:objective:ratio", "expr": f"vector({dec(Decimal(1) - budget)})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({dec(budget)})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({number(slo.period / 86400)})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate5m{{{m}}}\n/ {on}\nslo:error_budget:ratio{{{m}}}", "labels": labels},
        {"record": "slo:period_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate{period}{{{m}}}\n/ {on}\nslo:error_budget:ratio{{{m}}}",
         "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio", "expr": f"1 - slo:period_burn_rate:ratio{{{m}}}",
         "labels": labels},
        {"record": "sloth_slo_info", "expr": "vector(1)",
         "labels": {**labels, "sloth_mode": "cli-gen-prom", "sloth_objective": dec((1 - budget) * 100),
                    "sloth_spec": "prometheus/v1", "sloth_version": f"vecmon-{version}"}},
    ]

    burn_alerts: list[BurnAlert] = []
    alert_rules: list[dict[str, Any]] = []
    alerting = slo.alerting
    extra = {**settings.labels, **alerting.labels}
    url = f"{settings.runbook_base_url}#"
    for window in active_windows(slo):
        factor = window.factor(slo.period)
        threshold = f"({dec(factor)} * {dec(budget)})"
        long, short = duration(window.long), duration(window.short)
        severity = alerting.page_severity if window.tier == "page" else alerting.ticket_severity
        for_ = getattr(alerting, f"{window.tier}_{window.speed}_for")
        lasts = humanize_duration(slo.period / float(factor))
        rule = {
            "alert": BURN_ALERT,
            "expr": (f"max without (sloth_window) (slo:sli_error:ratio_rate{long}{{{m}}} > {threshold})\nand\n"
                     f"max without (sloth_window) (slo:sli_error:ratio_rate{short}{{{m}}} > {threshold})"),
            "for": duration(for_),
            "labels": {"severity": severity, "service": slo.service, "sloth_severity": window.tier,
                       "long_window": long, "short_window": short, **ids, **extra},
            "annotations": {
                "summary": "{{ $labels.sloth_service }} SLO {{ $labels.sloth_slo }} burns its error budget "
                           + ("too fast." if window.tier == "page" else "faster than it can afford."),
                "description": (f"Error ratio over the last {long} is {{{{ $value | humanizePercentage }}}} (and "
                                f"over {short} too), above {dec(factor)}x the {dec(budget * 100)}% error budget of "
                                f"the {period} objective: at this rate the budget is gone in {lasts}."),
                "runbook_url": url + BURN_ALERT.lower(),
            },
        }
        alert_rules.append(rule)
        burn_alerts.append(BurnAlert(window, factor, float(factor * budget), for_, severity, rule))

    no_data = exhausted = None
    if alerting.enabled and alerting.no_data:
        no_data = {
            "alert": NO_DATA_ALERT,
            "expr": f"absent(slo:sli_total_events:rate5m{{{m}}})\nor\nslo:sli_total_events:rate5m{{{m}}} == 0",
            "for": duration(alerting.no_data_for),
            "labels": {"severity": alerting.no_data_severity, "service": slo.service, **labels, **extra},
            "annotations": {
                "summary": "SLO {{ $labels.sloth_slo }} of {{ $labels.sloth_service }} has no data.",
                "description": (f"The SLI of {slo.id} has counted no events for {duration(alerting.no_data_for)}: "
                                "its burn-rate alerts cannot fire. The metrics may be gone (renamed, scrape or "
                                "collector failing) or there is no traffic."),
                "runbook_url": url + NO_DATA_ALERT.lower(),
            },
        }
        alert_rules.append(no_data)
    if alerting.enabled and alerting.budget_exhausted:
        exhausted = {
            "alert": EXHAUSTED_ALERT,
            "expr": f"slo:period_error_budget_remaining:ratio{{{m}}} <= 0",
            "for": duration(alerting.budget_exhausted_for),
            "labels": {"severity": alerting.budget_exhausted_severity, "service": slo.service, **ids, **extra},
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
        sli_group={"name": f"vecmon-slo-sli-recordings-{slo.id}", "rules": sli_rules},
        meta_group={"name": f"vecmon-slo-meta-recordings-{slo.id}", "rules": meta_rules},
        alert_group={"name": f"vecmon-slo-alerts-{slo.id}", "rules": alert_rules} if alert_rules else None,
        burn_alerts=tuple(burn_alerts), no_data=no_data, exhausted=exhausted)


def all_slo_rules(config: Any) -> list[SLORules]:
    from monitor import __version__

    return [slo_rules(slo, config.alerting, __version__) for slo in config.slos]

