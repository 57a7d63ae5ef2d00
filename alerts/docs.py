"""The README's alert reference, generated from the alert catalog so it cannot drift.

:func:`alert_reference` returns Markdown: an overview table, then one section per alert whose
heading is the alert name, so ``runbook_url`` (``alerting.runbook_base_url`` + ``#`` + the
lower-case alert name) lands on it: what the alert means, its default threshold and where that
comes from, when it is generated, and the first steps to take.
"""

from __future__ import annotations

from alerts.promql import duration, number
from alerts.rules import CATALOG, AlertDef, threshold_text
from alerts.slo import BURN_ALERT, EXHAUSTED_ALERT, NO_DATA_ALERT, WINDOWS, dec

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


def _slo_sections() -> list[str]:
    rows = ["| tier | long / short window | budget spent | factor for 30d | default `for` | severity |",
            "|---|---|---|---|---|---|"]
    defaults = {"page fast": "2m", "page slow": "15m", "ticket fast": "1h", "ticket slow": "3h"}
    for w in WINDOWS:
        rows.append(f"| {w.tier} | {duration(w.long)} / {duration(w.short)} | {dec(w.budget_share * 100)}% | "
                    f"{dec(w.factor(30 * 86400))} | {defaults[f'{w.tier} {w.speed}']} | "
                    f"`{'critical' if w.tier == 'page' else 'warning'}` |")
    return [
        f"#### {BURN_ALERT}",
        "",
        "The SLO's error ratio is above `factor x error budget` over both a long and a short window (multi-window, "
        "multi-burn-rate alerts from the Google SRE workbook; the short window makes the alert resolve soon after "
        "the problem ends). One rule per window pair, labelled `long_window`, `short_window`, `sloth_severity` "
        "(page or ticket), `sloth_id`, `sloth_service`, `sloth_slo` and `service`. Factors scale with the period: "
        "factor = budget spent x period / long window; a window whose threshold would be an error ratio of 100% "
        "or more can never fire and is not generated.",
        "",
        *rows,
        "",
        "- **Change it**: `slos[].alerting` (`page`, `ticket`, `page_severity`, `ticket_severity`, "
        "`page_fast_for`, `page_slow_for`, `ticket_fast_for`, `ticket_slow_for`, `labels`).",
        "",
        "First steps:",
        "",
        "1. Open the SLO in Grafana (Sloth's SLO dashboards work on vecmon's rules: `slo:sli_error:ratio_rate*`, "
        "`slo:period_error_budget_remaining:ratio`) and see when the error ratio rose.",
        "2. Follow the SLI back to its metric: the threshold alerts of the same service (latency, errors, recall) "
        "usually name the cause.",
        "3. A page means about 2% (1h) or 5% (6h) of the period's budget is already gone; a ticket means the "
        "budget will run out before the period ends at this rate.",
        "",
        f"#### {NO_DATA_ALERT}",
        "",
        "The SLI counted no events in the last 5 minutes (or its series is missing) for `no_data_for` (15m): the "
        "burn-rate alerts cannot fire without data. Every SLI division is guarded, so no traffic gives no SLI "
        "rather than NaN.",
        "",
        "- **Defaults**: severity `warning`, for `15m`. **Change it**: `slos[].alerting.no_data`, `no_data_for`, "
        "`no_data_severity`.",
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
        "`alertname`, `target` and `sloth_id` fires, and every other alert of a target while `VecmonTargetDown` "
        "fires for it.",
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
        f"| [{NO_DATA_ALERT}](#{NO_DATA_ALERT.lower()}) | the SLI has no events | warning | 15m | the SLO's |",
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
