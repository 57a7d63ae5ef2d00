"""Sloth's naming conventions for SLO recording rules, labels and alerts, in one place.

:mod:`alerts.slo` writes these names, the SLO rule tests and ``dashboards.slos`` read them, and
Sloth's Grafana dashboards (grafana.com 14348 and 14643) expect them: ``slo:sli_error:ratio_rate<window>``,
``slo:objective:ratio``, ``slo:error_budget:ratio``, ``slo:time_period:days``,
``slo:current_burn_rate:ratio``, ``slo:period_burn_rate:ratio``,
``slo:period_error_budget_remaining:ratio``, ``sloth_slo_info``, with the labels ``sloth_id``,
``sloth_service``, ``sloth_slo`` and ``sloth_window``.

vecmon's own additions keep Sloth's ``slo:`` prefix: the 5m event rates the event-weighted period
SLI is built on (:data:`ERROR_EVENTS_RATE5M`, :data:`TOTAL_EVENTS_RATE5M`) and the events in a
long window that the minimum-events guard reads (:func:`total_events_increase`).
"""

from __future__ import annotations

ERROR_RATIO_PREFIX = "slo:sli_error:ratio_rate"
TOTAL_EVENTS_INCREASE_PREFIX = "slo:sli_total_events:increase"
ERROR_EVENTS_RATE5M = "slo:sli_error_events:rate5m"
TOTAL_EVENTS_RATE5M = "slo:sli_total_events:rate5m"
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
TIME_PERIOD_DAYS = "slo:time_period:days"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
PERIOD_ERROR_BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
SLO_INFO = "sloth_slo_info"

ID_LABEL = "sloth_id"
SERVICE_LABEL = "sloth_service"
SLO_LABEL = "sloth_slo"
WINDOW_LABEL = "sloth_window"
SEVERITY_LABEL = "sloth_severity"
ID_LABELS = (ID_LABEL, SERVICE_LABEL, SLO_LABEL)

BURN_ALERT = "SLOErrorBudgetBurn"
NO_DATA_ALERT = "SLOSLIDataMissing"
EXHAUSTED_ALERT = "SLOErrorBudgetExhausted"


def error_ratio(window: str) -> str:
    """The recorded SLI error ratio over ``window`` (``5m``, ``30d``): ``slo:sli_error:ratio_rate5m``."""
    return ERROR_RATIO_PREFIX + window


def total_events_increase(window: str) -> str:
    """The recorded number of SLI events in ``window``: ``slo:sli_total_events:increase1h``."""
    return TOTAL_EVENTS_INCREASE_PREFIX + window


def sli_group(slo_id: str) -> str:
    return f"vecmon-slo-sli-recordings-{slo_id}"


def meta_group(slo_id: str) -> str:
    return f"vecmon-slo-meta-recordings-{slo_id}"


def alert_group(slo_id: str) -> str:
    return f"vecmon-slo-alerts-{slo_id}"
