"""Model APIs dashboard: embedding and re-ranker probes (latency percentiles, outcomes, answer
checks), tokens and spend against budgets, provider cost APIs and the embedding-cache Redis.

Sections follow the config: re-ranker panels only when a re-ranker endpoint is configured,
budget panels only with budgets, and so on, so no panel waits for data that cannot come.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from collectors.cost_metrics import (
    COST_API_POLLS_TOTAL,
    COST_BUDGET_LIMIT_USD,
    COST_BUDGET_SPEND_USD,
    COST_BUDGET_USED_RATIO,
    COST_PROVIDER_SPEND_USD,
)
from collectors.model_metrics import (
    EMBEDDING_DIMENSION_MISMATCH,
    EMBEDDING_DIMENSIONS,
    EMBEDDING_EXPECTED_DIMENSIONS,
    MODEL_API_COST_USD_TOTAL,
    MODEL_API_LAST_STATUS_CODE,
    MODEL_API_PROBE_DURATION_SECONDS,
    MODEL_API_PROBE_SUCCESS,
    MODEL_API_RATE_LIMIT_HEADROOM_RATIO,
    MODEL_API_REQUEST_DURATION_SECONDS,
    MODEL_API_REQUESTS_TOTAL,
    MODEL_API_RETRIES_TOTAL,
    MODEL_API_SERVER_DURATION_SECONDS,
    MODEL_API_TOKENS_TOTAL,
    MODEL_API_VALIDATION_FAILURES_TOTAL,
    RERANK_RELEVANT_DOCUMENT_RANK,
    RERANK_SEARCH_UNITS_TOTAL,
)
from collectors.redis_cache import (
    REDIS_EVICTED_KEYS_TOTAL,
    REDIS_EXPIRED_KEYS_TOTAL,
    REDIS_KEYSPACE_HITS_TOTAL,
    REDIS_KEYSPACE_MISSES_TOTAL,
    REDIS_MEMORY_MAX_BYTES,
    REDIS_MEMORY_USED_BYTES,
    REDIS_PREFIX_KEYS,
)
from collectors.self_metrics import BUILD_INFO
from dashboards.facade import (
    Panel,
    Query,
    bargauge,
    dashboard,
    heatmap,
    higher_is_better,
    lower_is_better,
    m,
    q,
    query_var,
    rate,
    row,
    standard_vars,
    stat,
    steps,
    timeseries,
)
from dashboards.targets import Targets

UID = "vecmon-model-apis"
HIST = f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_bucket"
REQUESTS = MODEL_API_REQUESTS_TOTAL.name
SUCCESS, NOT_SUCCESS = 'outcome="success"', 'outcome!="success"'
# Probes run every minute or so: a ratio over $__rate_interval (one or two probes) reads 0, 100% or
# nothing. Ratios use the error-ratio alert's window instead.
PROBE_WINDOW = "30m"
# Providers whose answers carry server-side timings / x-ratelimit-* headers (collectors/providers).
TIMING_PROVIDERS = {"tei", "ollama", "openai", "azure_openai"}
RATE_LIMIT_PROVIDERS = {"openai", "azure_openai"}
OK_MAPPINGS = [{"type": "value", "options": {"0": {"text": "FAILING", "color": "red", "index": 0},
                                             "1": {"text": "OK", "color": "green", "index": 1}}}]


KIND_VARS = {"embedding": ("embedding", "Embedding endpoint"), "rerank": ("reranker", "Re-ranker endpoint")}


def variables(config: Any) -> list[Any]:
    """One endpoint variable per kind configured, so a kind's panels never filter on the other kind's endpoints."""
    kinds = _kinds(config)
    return [*standard_vars(BUILD_INFO.name),
            *(query_var(name, label, f'label_values({MODEL_API_PROBE_SUCCESS.name}{{job=~"$job", '
                                     f'instance=~"$instance", kind="{kind}"}}, target)')
              for kind, (name, label) in KIND_VARS.items() if kind in kinds)]


def _kinds(config: Any) -> set[str]:
    return {e.kind for e in _endpoints(config)}


def endpoint_matcher(config: Any, kind: str | None = None) -> str:
    """``target=~"$embedding|$reranker"`` (the kinds configured), or one kind's variable."""
    names = [KIND_VARS[k][0] for k in KIND_VARS if k in _kinds(config) and kind in (None, k)]
    return 'target=~"' + "|".join(f"${n}" for n in names) + '"'


def em(config: Any, name: str, *extra: str, kind: str | None = None) -> str:
    """An endpoint metric selector: job, instance and the endpoint variable(s)."""
    return m(name, endpoint_matcher(config, kind), *extra, target=False)


def _endpoints(config: Any) -> list[Any]:
    return [e for e in getattr(config, "endpoints", []) or [] if getattr(e, "enabled", True)]


def percentiles(selector: str, by: str = "target") -> list[Query]:
    return [q(f"histogram_quantile({p}, sum by (le, {by}) ({rate(selector)}))", f"{{{{{by}}}}} p{pct}")
            for p, pct in ((0.5, 50), (0.95, 95), (0.99, 99))]


def zero_by_target(selector: str) -> str:
    """0 per endpoint (from its request counter), so ratio and failure panels read 0, not "No data"."""
    return f"sum by (target) ({rate(selector)}) * 0"


def _status(config: Any, t: Targets) -> list[Panel]:
    e = partial(em, config)
    kinds = {e.kind for e in _endpoints(config)}
    success = f"sum by (target) (increase({e(REQUESTS, SUCCESS)}[{PROBE_WINDOW}]))"
    panels = [
        row("Probes"),
        stat("Last probe", "Whether each endpoint's last probe got a valid answer.", "none",
             [q(f"min by (target) ({e(MODEL_API_PROBE_SUCCESS.name)})", "{{target}}")], mappings=OK_MAPPINGS,
             thresholds=steps(("red", None), ("green", 1)), color_mode="background", w=6),
        stat("Probe success ratio", f"Share of probe requests with a valid answer over the last {PROBE_WINDOW} "
             f"(the error-ratio alert fires below {1 - t.model_error_ratio.bad:.0%}).", "percentunit",
             [q(f"{success} / sum by (target) (increase({e(REQUESTS)}[{PROBE_WINDOW}]))", "{{target}}")],
             thresholds=higher_is_better(1 - t.model_error_ratio.bad, 1 - t.model_error_ratio.good), decimals=2,
             w=6),
        stat("Last HTTP status", "HTTP status of each endpoint's last probe attempt (0: no response).", "none",
             [q(f"max by (target) ({e(MODEL_API_LAST_STATUS_CODE.name)})", "{{target}}")],
             thresholds=steps(("red", None), ("green", 200), ("red", 300)), w=6 if "rerank" in kinds else 12),
    ]
    if "rerank" in kinds:
        panels.append(stat("Relevant document rank", "Rank of the known relevant document in the last re-rank "
                           "answer (1 = first, 0 = missing).", "none",
                           [q(f"max by (target) ({e(RERANK_RELEVANT_DOCUMENT_RANK.name, kind='rerank')})",
                              "{{target}}")],
                           thresholds=steps(("red", None), ("green", 1), ("red", 2)), w=6))
    if "embedding" in kinds:
        expected = any(x.kind == "embedding" and (x.dimensions or x.dimensions_from) for x in _endpoints(config))
        dims = [q(f"max by (target) ({e(EMBEDDING_DIMENSIONS.name, kind='embedding')})", "{{target}}")]
        if expected:
            dims.append(q(f"max by (target) ({e(EMBEDDING_EXPECTED_DIMENSIONS.name, kind='embedding')})",
                          "{{target}} expected"))
        panels.append(stat("Embedding dimensions", "Dimension of the vectors in each embedding endpoint's last "
                           "answer" + (", and the dimension expected (config or pgvector column)." if expected
                                       else "."), "none", dims, w=12))
        if expected:
            panels.append(stat("Dimension mismatch", "1 when the embeddings' dimension differs from the expected one "
                               "(the configured dimensions or the pgvector column): a model change the index does "
                               "not match.", "bool_yes_no",
                               [q(f"max by (target) ({e(EMBEDDING_DIMENSION_MISMATCH.name, kind='embedding')})",
                                  "{{target}}")],
                               thresholds=steps(("green", None), ("red", 1)), color_mode="background", w=12))
    return panels


def _latency(config: Any, t: Targets) -> list[Panel]:
    e = partial(em, config)
    endpoints = _endpoints(config)
    kinds = {e.kind for e in endpoints}
    panels = [row("Latency")]
    for kind, title, limits in (("embedding", "Embedding latency", t.embedding_latency),
                                ("rerank", "Re-ranker latency", t.rerank_latency)):
        if kind in kinds:
            panels.append(timeseries(
                title, f"p50, p95 and p99 round-trip time of successful {kind} probes (request start to last body "
                f"byte), target {limits.good * 1000:.0f} ms, alert {limits.bad * 1000:.0f} ms.", "s",
                percentiles(e(HIST, f'kind="{kind}"', SUCCESS, kind=kind)),
                thresholds=lower_is_better(limits.good, limits.bad),
                threshold_style="line", w=12 if len(kinds) > 1 else 8))
    panels.append(heatmap("Latency distribution", "Round-trip times of the selected endpoints' successful probes "
                          "per rate interval (histogram buckets).", "s",
                          q(f"sum by (le) (increase({e(HIST, SUCCESS)}[$__rate_interval]))"),
                          w=12 if len(kinds) > 1 else 8))
    panels.append(timeseries("Probe wall time", "Wall time of each endpoint's last probe, including a "
                             "Retry-After wait.", "s",
                             [q(f"max by (target) ({e(MODEL_API_PROBE_DURATION_SECONDS.name)})", "{{target}}")],
                             w=12 if len(kinds) > 1 else 8))
    if any(e.provider in TIMING_PROVIDERS for e in endpoints):
        panels.append(timeseries("Server-side time", "Time the provider reports spending on the last answer, by "
                                 "phase (queue, inference, tokenization...); the rest of the round trip is "
                                 "network and queueing in front of the model.", "s",
                                 [q(f"max by (target, phase) ({e(MODEL_API_SERVER_DURATION_SECONDS.name)})",
                                    "{{target}} {{phase}}")], w=12))
    return panels


def _outcomes(config: Any, t: Targets) -> list[Panel]:
    e = partial(em, config)
    failed = f"sum by (target) (increase({e(REQUESTS, NOT_SUCCESS)}[{PROBE_WINDOW}]))"
    validation = f"sum by (target, reason) ({rate(e(MODEL_API_VALIDATION_FAILURES_TOTAL.name))})"
    panels = [
        row("Outcomes and answer checks"),
        timeseries("Requests by outcome", f"Probe attempts over the last {PROBE_WINDOW} by outcome: success, "
                   "http_4xx, http_5xx, rate_limited, timeout, connection_error, bad_response.", "short",
                   [q(f"sum by (target, outcome) (increase({e(REQUESTS)}[{PROBE_WINDOW}])) > 0 or "
                      f"sum by (target, outcome) (increase({e(REQUESTS, SUCCESS)}[{PROBE_WINDOW}]))",
                      "{{target}} {{outcome}}")], stack=True, w=8),
        timeseries("Error ratio", f"Share of probe attempts that did not succeed over the last {PROBE_WINDOW} (0 "
                   "while all succeed; the window of the error-ratio alert).", "percentunit",
                   [q(f"{failed} / sum by (target) (increase({e(REQUESTS)}[{PROBE_WINDOW}]))", "{{target}}")],
                   thresholds=lower_is_better(t.model_error_ratio.good, t.model_error_ratio.bad),
                   threshold_style="line", min=0, w=8),
        timeseries("Answer check failures", "Answers that failed validation per second, by reason (wrong count or "
                   "dimension, NaN, zero vector, wrong top document...).", "ops",
                   [q(f"{validation} > 0 or sum by (target) ({rate(e(MODEL_API_VALIDATION_FAILURES_TOTAL.name))})"
                      " * 0", "{{target}} {{reason}}")], w=8),
        timeseries("Retries", "Second attempts per second made because the provider sent Retry-After.", "ops",
                   [q(f"sum by (target) ({rate(e(MODEL_API_RETRIES_TOTAL.name))})", "{{target}}")], w=12),
    ]
    if any(e.provider in RATE_LIMIT_PROVIDERS for e in _endpoints(config)):
        panels.append(timeseries("Rate-limit headroom", "Remaining / limit of the provider's request and token "
                                 "quotas (x-ratelimit-* headers); 0 means throttling is next.", "percentunit",
                                 [q(f"min by (target, resource) ({e(MODEL_API_RATE_LIMIT_HEADROOM_RATIO.name)})",
                                    "{{target}} {{resource}}")],
                                 thresholds=higher_is_better(0.1, 0.25), threshold_style="line", min=0, max=1, w=12))
    else:
        panels[-1].w = 24
    return panels


def _spend(config: Any, t: Targets) -> list[Panel]:
    e = partial(em, config)
    endpoints = _endpoints(config)
    panels = [
        row("Usage and spend"),
        timeseries("Probe tokens", "Tokens per hour the providers reported for probe requests.", "short",
                   [q(f"sum by (target) ({rate(e(MODEL_API_TOKENS_TOTAL.name))}) * 3600", "{{target}}")], w=12),
        timeseries("Probe spend", "Probe spend per hour at list prices (price table); 0 for endpoints without a "
                   "price (self-hosted models).", "currencyUSD",
                   [q(f"sum by (target) ({rate(e(MODEL_API_COST_USD_TOTAL.name))}) * 3600 "
                      f"or sum by (target) (increase({e(REQUESTS)}[{PROBE_WINDOW}])) * 0", "{{target}}")], w=12),
    ]
    if any(e.kind == "rerank" and e.provider == "cohere" for e in endpoints):
        panels.append(timeseries("Re-rank search units", "Cohere search units billed per hour for probe "
                                 "re-rank requests.", "short",
                                 [q(f"sum by (target) "
                                    f"({rate(e(RERANK_SEARCH_UNITS_TOTAL.name, kind='rerank'))}) * 3600",
                                    "{{target}}")], w=24))
    if getattr(config, "budgets", None):
        budget = partial(m, target=False)  # budgets are their own targets
        panels += [
            bargauge("Budget used", "Spend of each budget's sources in the current UTC day and month divided by "
                     "its limit (1 = exhausted).", "percentunit",
                     [q(f"max by (target, period) ({budget(COST_BUDGET_USED_RATIO.name)})",
                        "{{target}} {{period}}")],
                     thresholds=lower_is_better(t.budget_used.good, t.budget_used.bad), max=1, w=12),
            timeseries("Spend against budget", "Spend in the current UTC day and month against each budget's "
                       "limit.", "currencyUSD",
                       [q(f"max by (target, period) ({budget(COST_BUDGET_SPEND_USD.name)})",
                          "{{target}} {{period}} spend"),
                        q(f"max by (target, period) ({budget(COST_BUDGET_LIMIT_USD.name)})",
                          "{{target}} {{period}} limit")], w=12),
        ]
    if getattr(config, "cost_apis", None):
        cost = partial(m, target=False)
        panels += [
            timeseries("Provider-reported spend", "Spend the provider's cost API reports for the current UTC day "
                       "and month (authoritative; restated days replaced).", "currencyUSD",
                       [q(f"max by (target, provider, period) ({cost(COST_PROVIDER_SPEND_USD.name)})",
                          "{{target}} {{period}}")], w=12),
            timeseries("Cost API polls", "Polls of the provider cost/usage APIs per second by outcome.", "ops",
                       [q(f"sum by (target, api, outcome) ({rate(cost(COST_API_POLLS_TOTAL.name))})",
                          "{{target}} {{api}} {{outcome}}")], w=12),
        ]
    return panels


def _cache(config: Any, t: Targets) -> list[Panel]:
    redis = [r for r in getattr(config, "redis", []) or [] if getattr(r, "enabled", True)]
    if not redis:
        return []
    r = partial(m, target=False)  # Redis servers are their own targets
    hits = f"sum by (target) ({rate(r(REDIS_KEYSPACE_HITS_TOTAL.name))})"
    misses = f"sum by (target) ({rate(r(REDIS_KEYSPACE_MISSES_TOTAL.name))})"
    panels = [
        row("Embedding cache (Redis)"),
        timeseries("Cache hit ratio", "Keyspace hits / lookups over the rate interval; every miss is an "
                   "embedding API call.", "percentunit", [q(f"{hits} / ({hits} + {misses} > 0)", "{{target}}")],
                   thresholds=higher_is_better(0.1, 0.3), min=0, max=1, w=8),
        timeseries("Cache memory", "Memory Redis uses, and its maxmemory (0 = no limit).", "bytes",
                   [q(f"max by (target) ({r(REDIS_MEMORY_USED_BYTES.name)})", "{{target}} used"),
                    q(f"max by (target) ({r(REDIS_MEMORY_MAX_BYTES.name)})", "{{target}} max")], w=8),
        timeseries("Evicted and expired keys", "Keys evicted for maxmemory and keys expired per second; "
                   "evictions drop cached embeddings.", "ops",
                   [q(f"sum by (target) ({rate(r(REDIS_EVICTED_KEYS_TOTAL.name))})", "{{target}} evicted"),
                    q(f"sum by (target) ({rate(r(REDIS_EXPIRED_KEYS_TOTAL.name))})", "{{target}} expired")],
                   w=8),
    ]
    if any(x.key_prefixes for x in redis):
        panels.append(timeseries("Cached keys by prefix", "Keys under each configured prefix (a lower bound when "
                                 "the scan was cut short).", "short",
                                 [q(f"max by (target, prefix) ({r(REDIS_PREFIX_KEYS.name)})",
                                    "{{target}} {{prefix}}")], w=24))
    return panels


def build(config: Any, t: Targets) -> dict[str, Any]:
    panels = [*_status(config, t), *_latency(config, t), *_outcomes(config, t), *_spend(config, t),
              *_cache(config, t)]
    return dashboard(UID, "vecmon / Model APIs", "Embedding and re-ranker endpoints probed by vecmon: latency "
                     "percentiles, outcomes, answer checks, tokens and spend against budget.", variables(config),
                     panels, tags=["model-apis"])
