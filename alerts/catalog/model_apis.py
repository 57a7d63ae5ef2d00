"""Alerts on the model APIs (embedding and re-ranker endpoints: latency, errors, dimensions; rule
group ``vecmon-model-apis``) and on spend (``vecmon-cost``)."""

from __future__ import annotations

from alerts.fixtures import MINUTE, Fixture, gauge
from alerts.model import AlertDef, Custom, Doc, Params, T, V, W
from alerts.shapes import FailedOutcomes, GaugeOver, MeanLatency
from alerts.targets import DAILY_BUDGET, endpoints
from collectors.cost_metrics import COST_BUDGET_USED_RATIO
from collectors.model_metrics import (
    EMBEDDING_DIMENSIONS,
    EMBEDDING_EXPECTED_DIMENSIONS,
    MODEL_API_REQUEST_DURATION_SECONDS,
    MODEL_API_REQUESTS_TOTAL,
)

PROBE = {"target": "openai-embed", "provider": "openai", "model": "text-embedding-3-small"}


def _latency_alert(kind: str, name: str, what: str) -> AlertDef:
    return AlertDef(
        name=name, group="model-apis", service="model-api", severity="warning", for_=10 * MINUTE,
        threshold=0.5, window=10 * MINUTE, fmt="duration",
        summary=what + " {{ $labels.target }} is slow.",
        description="Successful probes of {{ $labels.target }} ({{ $labels.model }}) took " + V + " on average over "
                    "the last " + W + " (threshold " + T + ").",
        shape=MeanLatency(MODEL_API_REQUEST_DURATION_SECONDS.name, "target, provider, model", PROBE,
                          {"kind": kind, "outcome": "success"}),
        applies=endpoints(kind),
        doc=Doc(f"Mean round trip (request start to last body byte) of vecmon's successful {kind} probes over the "
                "window. Probes send a short fixed input, so this is the provider's floor latency as seen from the "
                "vecmon host; real requests with larger batches take longer.",
                f"seeds: {'embedding API' if kind == 'embedding' else 're-ranker'} latency target "
                f"< {'100' if kind == 'embedding' else '200'}ms, alert > 500ms.",
                ("Check the provider's status page and `vecmon_model_api_server_duration_seconds` (server-side time: "
                 "if it is low the delay is in the network or a proxy).",
                 "Rate limiting shows as `rate_limited` outcomes and `vecmon_model_api_retries_total`.",
                 "Self-hosted (TEI, Ollama): GPU/CPU saturation, a cold model load "
                 "(`vecmon_model_api_server_duration_seconds{phase=\"load\"}`), batch size.")),
        metrics=(MODEL_API_REQUEST_DURATION_SECONDS.name,))


def _dims_fixture(p: Params, value: float) -> Fixture:
    labels = dict(PROBE)
    got = 768 if value else 1536
    return Fixture((gauge(EMBEDDING_DIMENSIONS.name, labels, got),
                    gauge(EMBEDDING_EXPECTED_DIMENSIONS.name, labels, 1536)), labels, got)


MODEL_APIS = [
    _latency_alert("embedding", "EmbeddingLatencyHigh", "Embedding endpoint"),
    _latency_alert("rerank", "RerankLatencyHigh", "Re-ranker endpoint"),
    AlertDef(
        name="ModelApiErrorRatioHigh", group="model-apis", service="model-api", severity="warning",
        for_=10 * MINUTE, threshold=0.05, window=30 * MINUTE, minimum=10, fmt="percent",
        minimum_doc="probe requests in the window the endpoint must have at least",
        summary="Requests to {{ $labels.target }} fail.",
        description=V + " of the probe requests to {{ $labels.target }} ({{ $labels.kind }}, {{ $labels.model }}) "
                    "failed over the last " + W + " (threshold " + T + ").",
        shape=FailedOutcomes(MODEL_API_REQUESTS_TOTAL.name, "target, provider, model, kind",
                             dict(PROBE, kind="embedding"), 10000),
        applies=endpoints(),
        doc=Doc("Share of vecmon's probe requests to an embedding or re-ranker endpoint whose outcome was not "
                "`success` (HTTP 4xx/5xx, rate limited, timeout, connection error, or an answer that failed "
                "validation), over the window, once the endpoint had at least `minimum` requests in it.",
                "seeds: high error rate > 5% of requests.",
                ("Break it down by outcome: `sum by (outcome) (increase(vecmon_model_api_requests_total"
                 "{target=\"...\"}[30m]))`; validation failures by reason in "
                 "`vecmon_model_api_validation_failures_total`.",
                 "`http_4xx`: an expired or revoked key, a renamed model; `rate_limited`: quota "
                 "(`vecmon_model_api_rate_limit_headroom_ratio`); `http_5xx`/`timeout`: the provider's status "
                 "page.",
                 "Fail over to a second provider or a cached path if the application has one.")),
        metrics=(MODEL_API_REQUESTS_TOTAL.name,)),
    AlertDef(
        name="EmbeddingDimensionMismatch", group="model-apis", service="model-api", severity="critical", for_=0.0,
        compare="event",
        condition="dimensions differ from the expected ones",
        summary="{{ $labels.target }} returns embeddings of the wrong dimension.",
        description="{{ $labels.target }} ({{ $labels.model }}) returned {{ $value }}-dimensional embeddings, which "
                    "is not the dimension the config or the pgvector column (dimensions_from) expects.",
        shape=Custom(
            lambda p: (f"{EMBEDDING_DIMENSIONS.name}\n!= on (target, provider, model)\n"
                       f"{EMBEDDING_EXPECTED_DIMENSIONS.name}"),
            _dims_fixture), applies=endpoints("embedding"),
        doc=Doc("The last embedding answer's vector length differs from the expected one (`dimensions`, or the "
                "declared dimension of the `dimensions_from` column). Inserting such vectors fails, and querying "
                "with them fails or compares incompatible spaces.",
                "vecmon default (any mismatch).",
                ("Check whether the model (or its default `dimensions`) changed at the provider or in the "
                 "application's config.",
                 "Stop writers that embed with the new model until the column and index are migrated "
                 "(new column, re-embed, rebuild the index).")),
        metrics=(EMBEDDING_DIMENSIONS.name, EMBEDDING_EXPECTED_DIMENSIONS.name)),
]

COST = [
    AlertDef(
        name="DailySpendOverBudget", group="cost", service="cost", severity="warning", for_=5 * MINUTE,
        threshold=1.0, fmt="percent",
        summary="Budget {{ $labels.target }} has spent <threshold> of its daily limit.",
        description="Budget {{ $labels.target }} has spent " + V + " of its daily limit today (UTC; threshold " + T +
                    ").",
        shape=GaugeOver(COST_BUDGET_USED_RATIO.name, {"target": "embeddings", "period": "day"},
                        match={"period": "day"}),
        applies=DAILY_BUDGET,
        doc=Doc("Spend of the budget's sources today (UTC), from the probes' computed cost and the providers' cost "
                "APIs, divided by `daily_usd`. A threshold below 1 warns before the limit is reached.",
                "seeds: budget alerts at 50%, 80% and 100% (vecmon default: 100%).",
                ("See which source spends: `vecmon_cost_provider_line_item_spend_usd`, "
                 "`increase(vecmon_model_api_cost_usd_total[1h])`.",
                 "Look for a re-embedding job or a retry loop in the application; a cache miss storm shows in "
                 "`vecmon_redis_keyspace_misses_total`.",
                 "Set a hard limit at the provider if the spend must stop.")),
        metrics=(COST_BUDGET_USED_RATIO.name,)),
]
