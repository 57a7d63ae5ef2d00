"""Synthetic probes of embedding and re-ranker endpoints: latency, outcome, usage, cost, validity.

One job per configured endpoint (collector name ``model_probe``). A run sends the configured
probe inputs once through the provider module, measures the round trip with
``time.perf_counter`` (request start to last body byte), classifies the outcome, parses the
answer exactly as the provider documents it and validates it:

- embeddings: one vector per input, the expected dimension (``dimensions`` in config, or the
  declared dimension of the pgvector column named by ``dimensions_from``), no NaN/inf, no
  all-zero vector;
- re-rankers: one finite score per document, valid distinct indices, and the known relevant
  document ranked first.

A failed validation is outcome ``bad_response`` with the reasons in
``vecmon_model_api_validation_failures_total``. HTTP problems are data, never a collector
failure: whatever goes wrong while decoding, parsing or validating an answer (a 400-digit
number, arrays nested thousands deep, a negative usage count) is ``bad_response`` or ignored,
and the attempt is counted. Only configuration/programming problems raise
:class:`CollectorError`.

Retries: only when the provider asks, i.e. a 429/503 with ``retry-after-ms`` or ``Retry-After``
that still leaves a quarter of the timeout (at most 1 s) for the second attempt; at most one
retry per run (``vecmon_model_api_retries_total``), and it runs inside the same deadline. Every
attempt is counted and observed. The whole run ends by the endpoint's ``timeout`` whatever the
server does (trickled headers or body included; see
:mod:`collectors.providers.http_deadline`); an answer over 32 MiB is ``bad_response``.

Counters and the latency histogram accumulate in ``ctx.state`` (per job, across runs).

Expected dimensions from pgvector: ``default_dimension_source(ref) -> int | None`` (``ref`` is a
:class:`collectors.settings.endpoints.DimensionsFrom`); :func:`monitor.scheduler.build_api_jobs` passes the
vector columns that the ``vector_indexes`` discovery last found (``ctx.shared.vector_columns``),
so the probe opens no database session of its own.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar, TypedDict

import requests
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from collectors import providers
from collectors.base import CollectContext, CollectorError, Emitter, MetricSpec
from collectors.model_metrics import (
    BUCKETS,
    EMBEDDING_DIMENSION_MISMATCH,
    EMBEDDING_DIMENSIONS,
    EMBEDDING_EXPECTED_DIMENSIONS,
    MODEL_API_COST_USD_TOTAL,
    MODEL_API_LAST_STATUS_CODE,
    MODEL_API_PRICE_USD,
    MODEL_API_PROBE_DURATION_SECONDS,
    MODEL_API_PROBE_SUCCESS,
    MODEL_API_RATE_LIMIT_HEADROOM_RATIO,
    MODEL_API_RATE_LIMIT_LIMIT,
    MODEL_API_RATE_LIMIT_REMAINING,
    MODEL_API_RATE_LIMIT_RESET_SECONDS,
    MODEL_API_REQUEST_DURATION_SECONDS,
    MODEL_API_REQUESTS_TOTAL,
    MODEL_API_RETRIES_TOTAL,
    MODEL_API_SERVER_DURATION_SECONDS,
    MODEL_API_TOKENS_TOTAL,
    MODEL_API_VALIDATION_FAILURES_TOTAL,
    PROBE_METRICS,
    RERANK_RELEVANT_DOCUMENT_RANK,
    RERANK_SEARCH_UNITS_TOTAL,
)
from collectors.provider_costs import PriceTable, price_cost
from collectors.providers.common import (
    EMBEDDING,
    OUTCOMES,
    Attempt,
    Params,
    ParseError,
    ProbeResult,
    join_url,
    parse_rate_limits,
    send,
)
from collectors.redaction import redact
from collectors.settings.endpoints import DimensionsFrom, EndpointTarget
from collectors.spend_ledger import SpendLedger

log = logging.getLogger(__name__)

EMBED_REASONS = ("malformed", "count_mismatch", "dimension_mismatch", "non_finite", "zero_vector")
RERANK_REASONS = ("malformed", "score_count_mismatch", "invalid_index", "non_finite", "wrong_top_document")
RETRY_STATUSES = ("rate_limited", "http_5xx")

DimensionSource = Callable[[DimensionsFrom], "int | None"]




class LatencyHistogram(TypedDict):
    """Request durations of one outcome: a count per bucket of ``BUCKETS`` (not cumulative)."""

    buckets: list[int]
    count: int
    sum: float


def new_histogram() -> LatencyHistogram:
    return {"buckets": [0] * len(BUCKETS), "count": 0, "sum": 0.0}


def observe(hist: LatencyHistogram, value: float) -> None:
    for i, bound in enumerate(BUCKETS):
        if value <= bound:
            hist["buckets"][i] += 1
            break
    hist["count"] += 1
    hist["sum"] += value


def cumulative(hist: LatencyHistogram) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(BUCKETS, hist["buckets"], strict=True):  # new_histogram sizes them alike
        running += count
        # floatToGoString: prometheus_client leaves it unannotated
        out.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
    out.append(("+Inf", hist["count"]))
    return out


def validate_embeddings(result: ProbeResult, inputs: int, expected: int | None) -> list[str]:
    vectors = result.embeddings or []
    reasons = []
    if len(vectors) != inputs:
        reasons.append("count_mismatch")
    lengths = {len(v) for v in vectors}
    if (expected is not None and lengths != {expected}) or len(lengths) > 1:
        reasons.append("dimension_mismatch")
    if any(not math.isfinite(x) for v in vectors for x in v):
        reasons.append("non_finite")
    if any(all(x == 0 for x in v) for v in vectors):
        reasons.append("zero_vector")
    return reasons


def rank_order(ranking: list[tuple[int, float]]) -> list[int]:
    """Document indices best first: by score, ties in the order the provider returned them."""
    order = sorted(range(len(ranking)), key=lambda pos: (-ranking[pos][1] if math.isfinite(ranking[pos][1])
                                                         else math.inf, pos))
    return [ranking[pos][0] for pos in order]


def validate_ranking(result: ProbeResult, documents: int, relevant: int) -> list[str]:
    ranking = result.ranking or []
    reasons = []
    indices = [index for index, _ in ranking]
    if len(ranking) != documents:
        reasons.append("score_count_mismatch")
    if len(set(indices)) != len(indices) or any(not 0 <= i < documents for i in indices):
        reasons.append("invalid_index")
    if any(not math.isfinite(score) for _, score in ranking):
        reasons.append("non_finite")
    order = rank_order(ranking)
    if not order or order[0] != relevant:
        reasons.append("wrong_top_document")
    return reasons


class ModelProbeCollector:
    """Probes one embedding or re-ranker endpoint per run."""

    name: ClassVar[str] = "model_probe"
    METRICS: ClassVar[tuple[MetricSpec, ...]] = PROBE_METRICS

    def __init__(self, session: requests.Session | None = None, prices: PriceTable | None = None,
                 ledger: SpendLedger | None = None, default_dimension_source: DimensionSource | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.session = session or requests.Session()
        self.prices = prices if prices is not None else PriceTable()
        self.ledger = ledger if ledger is not None else SpendLedger()
        self.default_dimension_source = default_dimension_source
        self.clock = clock
        self.sleep = sleep

    # -- setup

    @staticmethod
    def params(endpoint: EndpointTarget) -> Params:
        return Params(provider=endpoint.provider, model=endpoint.model, api_key=endpoint.key(),
                      input_type=endpoint.input_type, output_dimension=endpoint.output_dimension,
                      deployment=endpoint.deployment, api_version=endpoint.api_version)

    def expected_dimensions(self, endpoint: EndpointTarget, state: dict[str, Any]) -> int | None:
        if endpoint.dimensions is not None:
            return endpoint.dimensions
        ref = endpoint.dimensions_from
        if ref is None:
            return None
        source = self.default_dimension_source
        if source is None:
            return None
        try:
            dims = source(ref)
        except Exception as exc:  # noqa: BLE001 - a resolver problem must not stop the probe
            if not state.get("_dims_error_logged"):
                log.warning("endpoint %s: cannot read dimensions of %s.%s on %s: %s", endpoint.name, ref.table,
                            ref.column, ref.database, type(exc).__name__)
                state["_dims_error_logged"] = True
            return None
        state.pop("_dims_error_logged", None)
        return dims if isinstance(dims, int) and dims > 0 else None

    # -- one run

    def collect(self, ctx: CollectContext) -> list[Metric]:
        endpoint: EndpointTarget = ctx.settings
        kind = endpoint.kind
        try:
            module = providers.get(endpoint.provider)
        except KeyError as exc:
            raise CollectorError(str(exc)) from None
        if kind not in module.KINDS:
            raise CollectorError(f"provider {endpoint.provider} has no {kind} API")
        params = self.params(endpoint)
        base = endpoint.url or module.default_url(params)
        if not base:
            raise CollectorError(f"provider {endpoint.provider} needs url")
        probe = endpoint.probe
        if kind == EMBEDDING:
            request, parse = module.embed_request(params, probe.texts), module.parse_embed
        else:
            request, parse = module.rerank_request(params, probe.query, probe.documents), module.parse_rerank
        if endpoint.headers:  # configured headers win (e.g. a gateway's own auth header)
            request = replace(request, headers={**request.headers, **{
                name: value.get_secret_value() for name, value in endpoint.headers.items()}})
        url = join_url(base, request.path)
        state = ctx.state
        expected = self.expected_dimensions(endpoint, state) if kind == EMBEDDING else None
        state["expected_dims"] = expected
        secrets = endpoint.secrets()

        timeout = endpoint.timeout_for(self.name)
        started = time.perf_counter()
        deadline = started + timeout
        attempt: Attempt | None = None
        for attempt_no in (1, 2):
            attempt = send(self.session, url, request, deadline, verify=endpoint.tls_verify)
            result: ProbeResult | None = None
            reasons: list[str] = []
            if attempt.outcome == "success":
                try:
                    result = parse(attempt.body, attempt.headers, params)
                    reasons = (validate_embeddings(result, len(probe.texts), expected) if kind == EMBEDDING
                               else validate_ranking(result, len(probe.documents), probe.relevant))
                except ParseError as exc:
                    result, reasons = None, ["malformed"]
                    attempt.error = f"unexpected response shape: {exc}"
                except Exception as exc:  # noqa: BLE001 - whatever the body holds, it is data, not a failure
                    result, reasons = None, ["malformed"]
                    attempt.error = f"unexpected response ({type(exc).__name__})"
                if reasons:
                    attempt.outcome = "bad_response"
                    attempt.error = attempt.error or "invalid answer: " + ", ".join(reasons)
            elif attempt.outcome == "bad_response" and attempt.status and 200 <= attempt.status < 300:
                reasons = ["malformed"]  # undecodable JSON or an oversized body
            self._record(state, attempt, reasons, kind)
            if result is not None:
                self._account(endpoint, state, result)
            if attempt.outcome != "success":
                log.info("probe %s (%s %s): %s, %s", endpoint.name, endpoint.provider, kind, attempt.outcome,
                         redact(attempt.error, secrets))
            if attempt_no == 1 and attempt.outcome in RETRY_STATUSES and attempt.retry_after is not None:
                reserve = min(1.0, timeout * 0.25)
                if attempt.retry_after + reserve <= deadline - time.perf_counter():
                    state["retries"] = state.get("retries", 0) + 1
                    self.sleep(attempt.retry_after)
                    continue
            break
        assert attempt is not None
        state["last"] = {"success": attempt.outcome == "success", "status": attempt.status,
                         "duration": time.perf_counter() - started}
        return self._emit(endpoint, state)

    def _record(self, state: dict[str, Any], attempt: Attempt, reasons: list[str], kind: str) -> None:
        requests_by_outcome = state.setdefault("requests", dict.fromkeys(OUTCOMES, 0))
        requests_by_outcome[attempt.outcome] += 1
        observe(state.setdefault("hist", {}).setdefault(attempt.outcome, new_histogram()), attempt.latency)
        failures = state.setdefault("validation", dict.fromkeys(EMBED_REASONS if kind == EMBEDDING
                                                                else RERANK_REASONS, 0))
        for reason in reasons:
            failures[reason] = failures.get(reason, 0) + 1
        limits = parse_rate_limits(attempt.headers)
        if limits:
            state["rate_limits"] = limits

    def _account(self, endpoint: EndpointTarget, state: dict[str, Any], result: ProbeResult) -> None:
        if result.server_timings:
            state["server_timings"] = dict(result.server_timings)
        if result.embeddings:
            state["observed_dims"] = len(result.embeddings[0])
        if result.ranking is not None:
            order = rank_order(result.ranking)
            relevant = endpoint.probe.relevant
            state["relevant_rank"] = order.index(relevant) + 1 if relevant in order else 0
        if result.tokens is not None:
            state["tokens"] = state.get("tokens", 0) + result.tokens
        if result.search_units is not None:
            state["search_units"] = state.get("search_units", 0.0) + result.search_units
        now = self.clock()
        today = datetime.fromtimestamp(now, UTC).date()
        entry = self.prices.lookup(endpoint.pricing_provider or endpoint.provider, endpoint.model, today)
        state["price"] = entry
        cost = price_cost(entry, result.tokens, result.search_units)
        if cost is not None:
            state["cost"] = state.get("cost", 0.0) + cost
            self.ledger.add(endpoint.name, cost, today)

    def _emit(self, endpoint: EndpointTarget, state: dict[str, Any]) -> list[Metric]:
        out = Emitter(endpoint.name, self.METRICS)
        pmk = (endpoint.provider, endpoint.model, endpoint.kind)
        pm = pmk[:2]
        for outcome in OUTCOMES:
            hist = state.get("hist", {}).get(outcome)
            if hist is not None:
                out.histogram(MODEL_API_REQUEST_DURATION_SECONDS.name, cumulative(hist), hist["sum"], *pmk,
                              outcome)
            out.add(MODEL_API_REQUESTS_TOTAL.name, state["requests"][outcome], *pmk, outcome)
        out.add(MODEL_API_RETRIES_TOTAL.name, state.get("retries", 0), *pmk)
        last = state["last"]
        out.add(MODEL_API_PROBE_SUCCESS.name, 1 if last["success"] else 0, *pmk)
        out.add(MODEL_API_PROBE_DURATION_SECONDS.name, last["duration"], *pmk)
        out.add(MODEL_API_LAST_STATUS_CODE.name, last["status"], *pmk)
        out.add(MODEL_API_TOKENS_TOTAL.name, state.get("tokens", 0), *pmk)
        for reason, count in state["validation"].items():
            out.add(MODEL_API_VALIDATION_FAILURES_TOTAL.name, count, *pmk, reason)
        entry = state.get("price") or self.prices.lookup(endpoint.pricing_provider or endpoint.provider,
                                                         endpoint.model)
        if entry is not None:
            out.add(MODEL_API_COST_USD_TOTAL.name, state.get("cost", 0.0), *pmk)
            if entry.usd_per_1m_tokens is not None:
                out.add(MODEL_API_PRICE_USD.name, entry.usd_per_1m_tokens, *pmk, "million_tokens")
            else:
                out.add(MODEL_API_PRICE_USD.name, entry.usd_per_1k_searches, *pmk, "thousand_searches")
        for phase, seconds in sorted(state.get("server_timings", {}).items()):
            out.add(MODEL_API_SERVER_DURATION_SECONDS.name, seconds, *pmk, phase)
        for resource, values in sorted(state.get("rate_limits", {}).items()):
            if "limit" in values:
                out.add(MODEL_API_RATE_LIMIT_LIMIT.name, values["limit"], *pmk, resource)
            if "remaining" in values:
                out.add(MODEL_API_RATE_LIMIT_REMAINING.name, values["remaining"], *pmk, resource)
            if "reset" in values:
                out.add(MODEL_API_RATE_LIMIT_RESET_SECONDS.name, values["reset"], *pmk, resource)
            if values.get("limit", 0) > 0 and "remaining" in values:
                out.add(MODEL_API_RATE_LIMIT_HEADROOM_RATIO.name, values["remaining"] / values["limit"], *pmk,
                        resource)
        if endpoint.kind == EMBEDDING:
            observed, expected = state.get("observed_dims"), state.get("expected_dims")
            if observed is not None:
                out.add(EMBEDDING_DIMENSIONS.name, observed, *pm)
            if expected is not None:
                out.add(EMBEDDING_EXPECTED_DIMENSIONS.name, expected, *pm)
                if observed is not None:
                    out.add(EMBEDDING_DIMENSION_MISMATCH.name, 1 if observed != expected else 0, *pm)
        else:
            if "search_units" in state or endpoint.provider == "cohere":
                out.add(RERANK_SEARCH_UNITS_TOTAL.name, state.get("search_units", 0.0), *pm)
            if "relevant_rank" in state:
                out.add(RERANK_RELEVANT_DOCUMENT_RANK.name, state["relevant_rank"], *pm)
        return out.families()


__all__ = ["BUCKETS", "PROBE_METRICS", "ModelProbeCollector"]
