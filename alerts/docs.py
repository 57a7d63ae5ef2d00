"""The alert reference (docs/alerts.md), generated from the alert catalog so it cannot drift.

:func:`alert_reference` returns Markdown: an overview table, then one section per alert whose
heading is the alert name, so ``runbook_url`` (``alerting.runbook_base_url`` + ``#`` + the
lower-case alert name) lands on it: what the alert means, its default threshold and where that
comes from, when it is generated, and the first steps to take.
"""

from __future__ import annotations

from decimal import Decimal

from alerts.catalog import CATALOG
from alerts.conventions import BURN_ALERT, EXHAUSTED_ALERT, NO_DATA_ALERT
from alerts.model import AlertDef
from alerts.promql import duration, number
from alerts.rules import threshold_text
from alerts.slo import DAY, alert_windows, dec, lasts

_COMPARE = {">": "above", "<": "below"}


def _threshold(alert: AlertDef) -> str:
    if alert.compare == "event":
        return alert.condition
    if alert.threshold is None:
        return f"{_COMPARE[alert.compare]} {alert.threshold_text}"
    return f"{_COMPARE[alert.compare]} {threshold_text(alert.fmt, alert.threshold)}"


def _settings(alert: AlertDef) -> str:
    parts = [f"severity `{alert.severity}`", f"for `{duration(alert.for_)}`"]
    if alert.threshold is not None:
        parts.append(f"threshold `{number(alert.threshold)}`")
    if alert.window is not None:
        parts.append(f"window `{duration(alert.window)}`")
    if alert.minimum is not None:
        parts.append(f"minimum `{number(alert.minimum)}` ({alert.minimum_doc})")
    return ", ".join(parts)


def tunables(alert: AlertDef) -> list[str]:
    keys = ["enabled"] + (["threshold"] if alert.tunable_threshold else []) + ["for", "severity"]
    keys += (["window"] if alert.window is not None else []) + (["minimum"] if alert.minimum is not None else [])
    return keys + ["labels"]


def _section(alert: AlertDef) -> list[str]:
    doc = alert.doc
    metrics = ", ".join(f"`{m}`" for m in alert.metrics)
    lines = [
        f"#### {alert.name}",
        "",
        f"{doc.meaning}",
        "",
        f"- **Fires** when {_threshold(alert)} (service `{alert.service}`). "
        + ("Always generated." if alert.applies.text == "always" else f"Generated when {alert.applies.text}."),
        f"- **Defaults**: {_settings(alert)}. Source: {doc.source}",
        f"- **Reads**: {metrics}.",
        f"- **Change it**: `alerting.alerts.{alert.name}` ("
        + ", ".join(f"`{key}`" for key in tunables(alert)) + ").",
        "",
        "First steps:",
        "",
    ]
    lines += [f"{i}. {step}" for i, step in enumerate(doc.steps, 1)]
    return lines + [""]


FACTOR_PERIODS = (3 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 30 * DAY, 90 * DAY)


def factor_table(periods: tuple[float, ...] = FACTOR_PERIODS, interval: float = 60.0,
                 budget: Decimal = Decimal("0.01")) -> list[str]:
    """Markdown rows: per period, each tier's long/short window, factor, budget spent and time to exhaustion."""
    rows = ["| period | tier | long / short window | factor | budget spent in the long window | "
            "budget gone in | default `for` |", "|---|---|---|---|---|---|---|"]
    defaults = {"page fast": "2m", "page slow": "15m", "ticket fast": "1h", "ticket slow": "3h"}
    for period in periods:
        for w in alert_windows(period, interval, budget):
            rows.append(f"| {duration(period)} | {w.tier} {w.speed} | {duration(w.long)} / {duration(w.short)} | "
                        f"{dec(w.factor)} | {dec(w.budget_spent(period) * 100)}% | {lasts(period / float(w.factor))} "
                        f"| {defaults[f'{w.tier} {w.speed}']} |")
    return rows


def _slo_sections() -> list[str]:
    return [
        f"#### {BURN_ALERT}",
        "",
        "The SLO's error ratio is above `factor x error budget` over both a long and a short window (multi-window, "
        "multi-burn-rate alerts from the Google SRE workbook; the short window makes the alert resolve soon after "
        "the problem ends). One rule per window pair, labelled `long_window`, `short_window`, `sloth_severity` "
        "(page or ticket), `sloth_id`, `sloth_service`, `sloth_slo`, `service` and, when the SLI's selectors "
        "name one vecmon target, `target` (so `VecmonTargetDown` mutes it). Page tiers are `critical`, ticket "
        "tiers `warning`.",
        "",
        "Windows and factors per period: 28d and 30d use Sloth's windows (1h/5m, 6h/30m, 1d/2h, 3d/6h) with "
        "factor = budget share (2%, 5%, 10%, 10%) x period / long window, exactly as Sloth generates them. "
        "A shorter period scales the 30d windows by period / 30d and keeps the factors 14.4, 6, 3 and 1, so the "
        "budget is gone in period / factor whatever the period (a fixed budget share with fixed windows would "
        "give a 7d SLO ticket factors of 0.7 and 0.23: tickets while the SLO is met); a longer one keeps the 30d "
        "windows and factors. A page factor below 1 is refused. Then the SLI's cadence: a short window holds at "
        "least 3 SLI intervals (`sli.interval`, default the interval of the collector exporting the metric: the "
        "10m recall probe gets 30m short "
        "windows), a long window at least 2 short ones and enough SLI intervals that one bad interval stays under "
        "the threshold (a 10m probe at 99% pages on 70m, not 1h); the factor stays. Every rule has "
        "`keep_firing_for` (two short windows for a page, one for a ticket), so a sparse probe whose windows "
        "briefly hold no bad event does not resolve and re-trigger the page, and a guard: the long window must "
        "hold enough events that a single bad one stays under the threshold (or `min_events`, if larger). A "
        "window whose threshold would be an error ratio of 100% or more can never fire and is not generated.",
        "",
        "For a 99% objective and an SLI updated every minute (a model-API probe):",
        "",
        *factor_table(),
        "",
        "For a 99% objective and an SLI updated every 10 minutes (the recall probe):",
        "",
        *factor_table(interval=600.0),
        "",
        "Recall SLOs count probe *cycles*, not probe queries: each recall probe cycle is one event "
        "(`vecmon_recall_cycles_total`), good when the mean recall@k of its query set at the application's "
        "settings meets `vector.recall.target` (`vecmon_recall_good_cycles_total`; with "
        "`recall.target_fraction`, when that share of the queries does). A query set is a fixed sample of "
        "about 30 vectors re-measured every cycle: counted per query, one persistently hard query is 3.3% "
        "of bad events for ever, above the 3% ticket threshold of a 99% objective, although the index is "
        "stable and healthy (see `config/alerting-example.yaml`).",
        "",
        "- **Change it**: `slos[].alerting` (`page`, `ticket`, `page_severity`, `ticket_severity`, "
        "`page_fast_for`, `page_slow_for`, `ticket_fast_for`, `ticket_slow_for`, `min_events`, `labels`), "
        "`slos[].sli.interval`.",
        "",
        "First steps:",
        "",
        "1. Open the SLO in Grafana (Sloth's SLO dashboards work on vecmon's rules: `slo:sli_error:ratio_rate*`, "
        "`slo:period_error_budget_remaining:ratio`) and see when the error ratio rose.",
        "2. Follow the SLI back to its metric: the threshold alerts of the same service (latency, errors, recall) "
        "usually name the cause.",
        "3. The description says how much of the budget the window spent and when the whole budget is gone at "
        "this rate.",
        "",
        f"#### {NO_DATA_ALERT}",
        "",
        "The SLI has no error ratio over 3 SLI intervals (at least 5m) for `no_data_for` (default 15m or 2 SLI "
        "intervals, whichever is longer): the burn-rate alerts cannot fire without data. That covers no events, "
        "a missing series, and a good-events series (or latency bucket) that does not exist: a missing good "
        "series reads as no data, not as 100% errors. Every SLI division is guarded, so no traffic gives no SLI "
        "rather than NaN. `VecmonDown` mutes it (same `job`) when the SLI reads vecmon's metrics.",
        "",
        "- **Defaults**: severity `warning`, for `15m` (or 2 intervals). **Change it**: `slos[].alerting.no_data`, "
        "`no_data_for`, `no_data_severity`.",
        "",
        "First steps:",
        "",
        "1. Check that Prometheus still scrapes vecmon (`VecmonDown`) and that the collector producing the SLI's "
        "metric runs (`VecmonCollectorFailing`, `VecmonCollectorStale`).",
        "2. Check the SLI's selectors against `/metrics` (a renamed target or label empties them).",
        "3. No traffic at all (e.g. probes disabled) is not an error of the service: disable the SLO or the alert.",
        "",
        f"#### {EXHAUSTED_ALERT}",
        "",
        "The error budget of the whole period is used up: `slo:period_error_budget_remaining:ratio` (1 - period "
        "error ratio / error budget) is at or below 0. The period error ratio is event-weighted (ratio of the "
        "summed 5m event rates), not a mean of 5m ratios.",
        "",
        "- **Defaults**: severity `warning`, for `5m`. **Change it**: `slos[].alerting.budget_exhausted`, "
        "`budget_exhausted_for`, `budget_exhausted_severity`.",
        "",
        "First steps:",
        "",
        "1. Apply the error-budget policy agreed for the service (e.g. freeze risky changes, prioritise "
        "reliability work).",
        "2. Review which incidents consumed the budget (`slo:sli_error:ratio_rate1d` over the period).",
        "",
    ]


def alert_reference() -> str:
    """Markdown documenting every alert ``vecmon generate`` can produce."""
    lines = [
        "Every alert has the labels `severity` (`critical`, `warning` or `info`) and `service` (for routing), and "
        "the annotations `summary`, `description` (with the current value) and `runbook_url`, which is "
        "`alerting.runbook_base_url` + `#` + the alert name in lower case: the sections below. `vecmon generate` "
        "writes only the alerts that apply to the config (no re-ranker alerts without a re-ranker endpoint), "
        "every default can be changed under `alerting.alerts.<AlertName>`, and `alerting.labels` are added to "
        "every alert. Alertmanager (`alertmanager:`) mutes warnings while a critical alert with the same "
        "`alertname`, `target` and `sloth_id` fires, every other alert of a target (SLO alerts included) while "
        "`VecmonTargetDown` fires for it, and the no-data and collector alerts of a vecmon while `VecmonDown` "
        "fires for its scrape job.",
        "",
        "| alert | fires when | severity | for | service |",
        "|---|---|---|---|---|",
    ]
    for alert in CATALOG:
        lines.append(f"| [{alert.name}](#{alert.name.lower()}) | {_threshold(alert)} | {alert.severity} | "
                     f"{duration(alert.for_)} | {alert.service} |")
    lines += [
        f"| [{BURN_ALERT}](#{BURN_ALERT.lower()}) | error ratio above factor x budget on two windows | critical "
        "(page) / warning (ticket) | 2m, 15m / 1h, 3h | the SLO's |",
        f"| [{NO_DATA_ALERT}](#{NO_DATA_ALERT.lower()}) | the SLI has no events | warning | 15m (or 2 "
        "intervals) | the SLO's |",
        f"| [{EXHAUSTED_ALERT}](#{EXHAUSTED_ALERT.lower()}) | the period's error budget is used up | warning | 5m | "
        "the SLO's |",
        "",
        "### Threshold alerts",
        "",
    ]
    for alert in CATALOG:
        lines += _section(alert)
    lines += ["### SLO alerts", "", *_slo_sections()]
    return "\n".join(lines).rstrip("\n")
