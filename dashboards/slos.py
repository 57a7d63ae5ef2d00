"""SLOs: SLI against objective, error budget remaining and burn rate per window, read from the
Sloth-compatible recording rules ``vecmon generate`` writes (:mod:`alerts.slo`).

The recordings aggregate over every scrape target (their labels are ``sloth_id``,
``sloth_service``, ``sloth_slo`` and ``sloth_window``), so their selectors cannot carry job and
instance matchers: the linter rules target-job and target-instance are excluded for these panels
(:data:`LINT_EXCLUSIONS`), as the Go linter's ``.lint`` file would do, with the reason.
"""

from __future__ import annotations

from typing import Any

from alerts import conventions as names
from collectors.self_metrics import BUILD_INFO
from dashboards.facade import (
    Panel,
    bargauge,
    dashboard,
    gauge,
    higher_is_better,
    q,
    query_var,
    row,
    standard_vars,
    stat,
    steps,
    table,
    threshold_override,
    timeseries,
)
from dashboards.lint import Exclusion
from dashboards.targets import Targets

UID = "vecmon-slos"
IDS = ", ".join(names.ID_LABELS)
SLO = f'{names.SERVICE_LABEL}=~"$service", {names.SLO_LABEL}=~"$slo"'
REASON = "SLO recording rules aggregate over all scrape targets: they carry sloth_* labels, no job/instance"
# burn-rate thresholds of the SRE workbook's windows for a 30d period: page at 14.4 (1h) and 6 (6h)
BURN_STEPS = steps(("green", None), ("yellow", 1), ("orange", 6), ("red", 14.4))


LEGEND = "{{" + names.SERVICE_LABEL + "}} / {{" + names.SLO_LABEL + "}}"


def objective_overrides(config: Any, suffix: str = "") -> list[dict[str, Any]]:
    """Each configured SLO's own objective as its series' threshold (legend ``service / slo``)."""
    return [threshold_override(f"{slo.service} / {slo.name}{suffix}", steps(("red", None), ("green", slo.objective)))
            for slo in getattr(config, "slos", []) or []]


def r(name: str, *extra: str) -> str:
    """A recording-rule selector filtered by the service and SLO variables."""
    return f"{name}{{{', '.join((SLO, *extra))}}}"


def variables() -> list[Any]:
    return [*standard_vars(BUILD_INFO.name),
            query_var("service", "Service", f"label_values({names.SLO_INFO}, {names.SERVICE_LABEL})"),
            query_var("slo", "SLO", f'label_values({names.SLO_INFO}{{{names.SERVICE_LABEL}=~"$service"}}, '
                                    f'{names.SLO_LABEL})')]


def sli_period() -> str:
    """The SLI over each SLO's own period: 1 - period burn rate x error budget."""
    return (f"1 - ({r(names.PERIOD_BURN_RATE)} * on ({IDS}) group_left {r(names.ERROR_BUDGET)})")


def sli_1h() -> str:
    """The SLI over the last hour from the recorded 5m event rates: defined for every SLO, also one
    whose probe adds events only every 10 minutes (its 5m ratio is missing half the time)."""
    return (f"1 - sum by ({IDS}) (sum_over_time({r(names.ERROR_EVENTS_RATE5M)}[1h]))\n/\n"
            f"(sum by ({IDS}) (sum_over_time({r(names.TOTAL_EVENTS_RATE5M)}[1h])) > 0)")


def burn_by_window() -> str:
    """Burn rate over every recorded window (the period's included): error ratio / error budget."""
    windows = f'{{__name__=~"{names.ERROR_RATIO_PREFIX}.+", {SLO}}}'
    return f"{windows} / on ({IDS}) group_left {r(names.ERROR_BUDGET)}"


def overview_panels(config: Any, t: Targets) -> list[Panel]:
    """SLO status and error budgets for the overview (all SLOs: the overview has no SLO variables)."""
    return [
        bargauge("SLI over the SLO period", "Each SLO's SLI over its own period (default 30d) against its "
                 f"objective (strictest configured: {t.slo_objective:.3%}).", "percentunit",
                 [q(f"1 - ({names.PERIOD_BURN_RATE} * on ({IDS}) group_left {names.ERROR_BUDGET})",
                    LEGEND)],
                 thresholds=steps(("red", None), ("green", t.slo_objective)), min=None, decimals=3,
                 overrides=objective_overrides(config), w=8, h=6),
        bargauge("Error budget remaining", "Share of each SLO's error budget left over its period; 0 means the "
                 "objective is missed.", "percentunit",
                 [q(names.PERIOD_ERROR_BUDGET_REMAINING, LEGEND)],
                 thresholds=higher_is_better(0.25, 0.5), min=None, w=8, h=6),
        bargauge("Burn rate now", "How fast each SLO spends its error budget over its shortest window (5m, or 3 "
                 "probe intervals for a slow probe; 1 = exactly on budget; the fast-burn page needs 14.4 over both "
                 "its windows).", "none",
                 [q(names.CURRENT_BURN_RATE, LEGEND)],
                 thresholds=BURN_STEPS, max=None, w=8, h=6),
    ]


def _status(config: Any, t: Targets) -> list[Panel]:
    return [
        row("Objectives"),
        stat("SLI over the period", "SLI of each selected SLO over its period (event-weighted).", "percentunit",
             [q(sli_period(), LEGEND)], thresholds=steps(("red", None), ("green", t.slo_objective)),
             overrides=objective_overrides(config), decimals=3, w=6),
        stat("Objective", "The SLO's objective.", "percentunit",
             [q(f"max by ({IDS}) ({r(names.OBJECTIVE)})", LEGEND)], decimals=3, w=6),
        gauge("Error budget remaining", "Share of the error budget left over the period; at 0 the objective is "
              "missed.", "percentunit", [q(f"min by ({IDS}) ({r(names.PERIOD_ERROR_BUDGET_REMAINING)})",
                                          LEGEND)],
              thresholds=higher_is_better(0.25, 0.5), decimals=1, w=6, h=4),
        stat("Burn rate now", "Error budget consumption over the SLO's shortest window (5m, or 3 probe intervals "
             "for a slow probe), as a multiple of the sustainable rate (1 uses exactly the budget over the "
             "period).", "none",
             [q(f"max by ({IDS}) ({r(names.CURRENT_BURN_RATE)})", LEGEND)], decimals=2,
             thresholds=BURN_STEPS, w=6),
    ]


def _trends(config: Any, t: Targets) -> list[Panel]:
    return [
        row("Budget and burn"),
        timeseries("SLI (1h) against objective", "Good-event ratio over the last hour against the objective "
                   "(an hour holds several cycles even of a 10-minute probe).", "percentunit",
                   [q(sli_1h(), LEGEND + " SLI"),
                    q(f"max by ({IDS}) ({r(names.OBJECTIVE)})", LEGEND + " objective")],
                   thresholds=steps(("red", None), ("green", t.slo_objective)), threshold_style="line", max=1,
                   overrides=objective_overrides(config, " SLI"), w=12),
        timeseries("Error budget remaining over time", "Share of the error budget left over the period.",
                   "percentunit", [q(f"min by ({IDS}) ({r(names.PERIOD_ERROR_BUDGET_REMAINING)})",
                                     LEGEND)],
                   thresholds=higher_is_better(0.25, 0.5), threshold_style="area", max=1, w=12),
        bargauge("Burn rate per window", "Error ratio over each alert window divided by the error budget: the "
                 "page fires when both windows of a pair exceed its factor (30d: 14.4 on 1h/5m, 6 on 6h/30m), the "
                 "ticket at 3 (1d/2h) and 1 (3d/6h); windows follow the period and the probe's interval.", "none",
                 [q(burn_by_window(), LEGEND + " {{" + names.WINDOW_LABEL + "}}")],
                 thresholds=BURN_STEPS, max=None, w=12),
        timeseries("Burn rate over time", "Budget consumption over the shortest window and over the whole period, "
                   "as multiples of the sustainable rate.", "none",
                   [q(f"max by ({IDS}) ({r(names.CURRENT_BURN_RATE)})", LEGEND + " now"),
                    q(f"max by ({IDS}) ({r(names.PERIOD_BURN_RATE)})", LEGEND + " period")],
                   thresholds=BURN_STEPS, threshold_style="line", w=12),
    ]


def _events(t: Targets) -> list[Panel]:
    return [
        row("Events"),
        timeseries("Events", "Events per second counted by the SLI (5m rate), and the bad ones among them.",
                   "ops", [q(f"max by ({IDS}) ({r(names.TOTAL_EVENTS_RATE5M)})", LEGEND + " all"),
                           q(f"max by ({IDS}) ({r(names.ERROR_EVENTS_RATE5M)})", LEGEND + " bad")], w=12),
        table("SLOs", "Every selected SLO: objective, period (days), SLI over the period and budget left.",
              "percentunit",
              [q(f"max by ({IDS}) ({r(names.OBJECTIVE)})"),
               q(f"max by ({IDS}) ({r(names.TIME_PERIOD_DAYS)})"),
               q(sli_period()),
               q(f"min by ({IDS}) ({r(names.PERIOD_ERROR_BUDGET_REMAINING)})")],
              rename={"Value #A": "Objective", "Value #B": "Period (days)", "Value #C": "SLI",
                      "Value #D": "Budget left"}, column_units={"Period (days)": "none"}, hide=(names.ID_LABEL,), w=12),
    ]


def build(config: Any, t: Targets) -> dict[str, Any]:
    return dashboard(UID, "vecmon / SLOs", "Service-level objectives: SLI against objective, error budget "
                     "remaining and burn rate per window, from the generated recording rules.", variables(),
                     [*_status(config, t), *_trends(config, t), *_events(t)], tags=["slo"])


LINT_EXCLUSIONS = (
    Exclusion("target-job-rule", UID, "*", REASON),
    Exclusion("target-instance-rule", UID, "*", REASON),
    Exclusion("target-job-rule", "vecmon-overview", "SLI over the SLO period", REASON),
    Exclusion("target-instance-rule", "vecmon-overview", "SLI over the SLO period", REASON),
    Exclusion("target-job-rule", "vecmon-overview", "Error budget remaining", REASON),
    Exclusion("target-instance-rule", "vecmon-overview", "Error budget remaining", REASON),
    Exclusion("target-job-rule", "vecmon-overview", "Burn rate now", REASON),
    Exclusion("target-instance-rule", "vecmon-overview", "Burn rate now", REASON),
)
