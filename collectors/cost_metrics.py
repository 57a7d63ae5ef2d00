"""The metrics of the provider cost APIs and the budgets (:mod:`collectors.provider_costs`), declared
apart from the pollers so that the console, alerts and dashboards can name them without loading
the HTTP client (requests) the pollers need."""

from __future__ import annotations

from collectors.base import MetricSpec

COST_PROVIDER_SPEND_USD = MetricSpec(
    "vecmon_cost_provider_spend_usd", "gauge",
    "Spend reported by the provider's cost API for the current UTC day or month (restated days "
    "replaced).", ("provider", "period"))
COST_PROVIDER_LINE_ITEM_SPEND_USD = MetricSpec(
    "vecmon_cost_provider_line_item_spend_usd", "gauge",
    "Provider-reported spend per line item for the current UTC day or month (top max_series).",
    ("provider", "period", "line_item"))
COST_PROVIDER_EMBEDDING_TOKENS = MetricSpec(
    "vecmon_cost_provider_embedding_tokens", "gauge",
    "Embedding input tokens reported by the provider's usage API for the current UTC day or month.",
    ("provider", "period", "model"))
COST_PROVIDER_EMBEDDING_REQUESTS = MetricSpec(
    "vecmon_cost_provider_embedding_requests", "gauge",
    "Embedding requests reported by the provider's usage API for the current UTC day or month.",
    ("provider", "period", "model"))
COST_API_POLLS_TOTAL = MetricSpec(
    "vecmon_cost_api_polls_total", "counter",
    "Polls of a provider cost/usage API by outcome (success, http_4xx, http_5xx, rate_limited, "
    "timeout, connection_error, bad_response).", ("provider", "api", "outcome"))
COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS = MetricSpec(
    "vecmon_cost_api_last_success_timestamp_seconds", "gauge",
    "Unix time of the last successful poll of a provider cost/usage API.", ("provider", "api"))


COST_METRICS = (
    COST_PROVIDER_SPEND_USD,
    COST_PROVIDER_LINE_ITEM_SPEND_USD,
    COST_PROVIDER_EMBEDDING_TOKENS,
    COST_PROVIDER_EMBEDDING_REQUESTS,
    COST_API_POLLS_TOTAL,
    COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS,
)


COST_BUDGET_SPEND_USD = MetricSpec(
    "vecmon_cost_budget_spend_usd", "gauge",
    "Spend of the budget's sources in the current UTC day or month (probe spend is counted since "
    "vecmon started; cost APIs are authoritative).", ("period",))
COST_BUDGET_LIMIT_USD = MetricSpec(
    "vecmon_cost_budget_limit_usd", "gauge", "The budget's configured limit for the period.",
    ("period",))
COST_BUDGET_USED_RATIO = MetricSpec(
    "vecmon_cost_budget_used_ratio", "gauge", "Spend divided by the limit for the period (1 = exhausted).",
    ("period",))
COST_BUDGET_SOURCES_MISSING = MetricSpec(
    "vecmon_cost_budget_sources_missing", "gauge",
    "Sources of the budget that have reported no spend data yet (their spend counts as 0).")


BUDGET_METRICS = (
    COST_BUDGET_SPEND_USD,
    COST_BUDGET_LIMIT_USD,
    COST_BUDGET_USED_RATIO,
    COST_BUDGET_SOURCES_MISSING,
)
