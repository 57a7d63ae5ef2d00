"""The metrics of the embedding and re-ranker probes (:mod:`collectors.model_probe`), declared apart
from the probe so that the console, alerts and dashboards can name them without loading the HTTP
client (requests) the probe needs."""

from __future__ import annotations

from collectors.base import MetricSpec

# 10 ms .. 30 s
BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0)

PMK = ("provider", "model", "kind")
MODEL_API_REQUEST_DURATION_SECONDS = MetricSpec(
    "vecmon_model_api_request_duration_seconds", "histogram",
    "Round-trip time of probe requests (request start to last body byte) by outcome.", PMK + ("outcome",))
MODEL_API_REQUESTS_TOTAL = MetricSpec(
    "vecmon_model_api_requests_total", "counter",
    "Probe HTTP attempts by outcome: success, http_4xx, http_5xx, rate_limited, timeout, "
    "connection_error, bad_response.", PMK + ("outcome",))
MODEL_API_RETRIES_TOTAL = MetricSpec(
    "vecmon_model_api_retries_total", "counter",
    "Second attempts made because the provider sent Retry-After or retry-after-ms (at most one per "
    "probe).", PMK)
MODEL_API_PROBE_SUCCESS = MetricSpec("vecmon_model_api_probe_success", "gauge",
                                     "Whether the last probe got a valid answer (1) or not (0).", PMK)
MODEL_API_PROBE_DURATION_SECONDS = MetricSpec("vecmon_model_api_probe_duration_seconds", "gauge",
                                              "Wall time of the last probe, Retry-After wait included.", PMK)
MODEL_API_LAST_STATUS_CODE = MetricSpec("vecmon_model_api_last_status_code", "gauge",
                                        "HTTP status of the last probe attempt (0 when no response arrived).", PMK)
MODEL_API_TOKENS_TOTAL = MetricSpec(
    "vecmon_model_api_tokens_total", "counter",
    "Tokens the provider reported for probe requests (usage fields, TEI x-compute-tokens, Ollama "
    "prompt_eval_count).", PMK)
MODEL_API_COST_USD_TOTAL = MetricSpec("vecmon_model_api_cost_usd_total", "counter",
                                      "Probe spend computed from reported usage and the price table.", PMK)
MODEL_API_PRICE_USD = MetricSpec("vecmon_model_api_price_usd", "gauge",
                                 "Price applied to the probe's usage, per unit (million_tokens or thousand_searches).",
                                 PMK + ("unit",))
MODEL_API_SERVER_DURATION_SECONDS = MetricSpec(
    "vecmon_model_api_server_duration_seconds", "gauge",
    "Server-side time of the last answer as the provider reports it (TEI x-*-time headers, Ollama "
    "total/load durations, OpenAI openai-processing-ms).", PMK + ("phase",))
MODEL_API_RATE_LIMIT_LIMIT = MetricSpec(
    "vecmon_model_api_rate_limit_limit", "gauge",
    "Rate limit from x-ratelimit-limit-* headers of the last response that had them.",
    PMK + ("resource",))
MODEL_API_RATE_LIMIT_REMAINING = MetricSpec(
    "vecmon_model_api_rate_limit_remaining", "gauge",
    "Remaining quota from x-ratelimit-remaining-* headers.", PMK + ("resource",))
MODEL_API_RATE_LIMIT_RESET_SECONDS = MetricSpec(
    "vecmon_model_api_rate_limit_reset_seconds", "gauge",
    "Time until the quota resets, from x-ratelimit-reset-* headers.", PMK + ("resource",))
MODEL_API_RATE_LIMIT_HEADROOM_RATIO = MetricSpec("vecmon_model_api_rate_limit_headroom_ratio", "gauge",
                                                 "Remaining divided by limit (0 = exhausted).", PMK + ("resource",))
MODEL_API_VALIDATION_FAILURES_TOTAL = MetricSpec(
    "vecmon_model_api_validation_failures_total", "counter",
    "Answers that failed validation, by reason (malformed, count_mismatch, dimension_mismatch, "
    "non_finite, zero_vector, score_count_mismatch, invalid_index, wrong_top_document).",
    PMK + ("reason",))
EMBEDDING_DIMENSIONS = MetricSpec("vecmon_embedding_dimensions", "gauge",
                                  "Dimension of the vectors in the last embedding answer.", ("provider", "model"))
EMBEDDING_EXPECTED_DIMENSIONS = MetricSpec(
    "vecmon_embedding_expected_dimensions", "gauge",
    "Dimension the embeddings must have (config, or the pgvector column named by dimensions_from).",
    ("provider", "model"))
EMBEDDING_DIMENSION_MISMATCH = MetricSpec(
    "vecmon_embedding_dimension_mismatch", "gauge",
    "Whether the last embedding answer's dimension differs from the expected one (1: a model change "
    "the index does not match) or not (0).", ("provider", "model"))
RERANK_SEARCH_UNITS_TOTAL = MetricSpec(
    "vecmon_rerank_search_units_total", "counter",
    "Search units billed for probe re-rank requests (Cohere meta.billed_units.search_units).",
    ("provider", "model"))
RERANK_RELEVANT_DOCUMENT_RANK = MetricSpec(
    "vecmon_rerank_relevant_document_rank", "gauge",
    "Rank (1 = first) of the known relevant document in the last re-rank answer; 0 if missing.",
    ("provider", "model"))


PROBE_METRICS = (
    MODEL_API_REQUEST_DURATION_SECONDS,
    MODEL_API_REQUESTS_TOTAL,
    MODEL_API_RETRIES_TOTAL,
    MODEL_API_PROBE_SUCCESS,
    MODEL_API_PROBE_DURATION_SECONDS,
    MODEL_API_LAST_STATUS_CODE,
    MODEL_API_TOKENS_TOTAL,
    MODEL_API_COST_USD_TOTAL,
    MODEL_API_PRICE_USD,
    MODEL_API_SERVER_DURATION_SECONDS,
    MODEL_API_RATE_LIMIT_LIMIT,
    MODEL_API_RATE_LIMIT_REMAINING,
    MODEL_API_RATE_LIMIT_RESET_SECONDS,
    MODEL_API_RATE_LIMIT_HEADROOM_RATIO,
    MODEL_API_VALIDATION_FAILURES_TOTAL,
    EMBEDDING_DIMENSIONS,
    EMBEDDING_EXPECTED_DIMENSIONS,
    EMBEDDING_DIMENSION_MISMATCH,
    RERANK_SEARCH_UNITS_TOTAL,
    RERANK_RELEVANT_DOCUMENT_RANK,
)
