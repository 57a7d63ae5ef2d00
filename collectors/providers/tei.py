"""Hugging Face text-embeddings-inference: ``POST /embed`` and ``POST /rerank`` (router source).

- ``/embed`` request ``{inputs: [str], normalize, truncate[, dimensions]}`` -> ``[[f32]]``.
- ``/rerank`` request ``{query, texts, raw_scores, return_text, truncate}`` -> ``[{index, score, text?}]``
  (field names differ from Cohere/Voyage/Jina), sorted by score.
- No usage in the body: ``x-compute-tokens`` is the token count; ``x-total-time``,
  ``x-tokenization-time``, ``x-queue-time``, ``x-inference-time`` are integer milliseconds.
- Errors ``{error, error_type}``; 429 means the queue is full (overloaded).
- The OpenAI-compatible ``/v1/embeddings`` route is covered by provider ``openai_compatible``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from collectors.providers.common import (
    EMBEDDING,
    RERANK,
    ApiRequest,
    Params,
    ProbeResult,
    as_list,
    bearer,
    field_of,
    header_int,
    header_millis,
    ranked_items,
    vector,
)

KINDS = frozenset({EMBEDDING, RERANK})
TIMING_HEADERS = MappingProxyType({"total": "x-total-time", "tokenization": "x-tokenization-time",
                                   "queue": "x-queue-time", "inference": "x-inference-time"})


def default_url(params: Params) -> str | None:
    return None


def _timings(headers: Mapping[str, str]) -> dict[str, float]:
    out = {}
    for phase, name in TIMING_HEADERS.items():
        value = header_millis(headers, name)
        if value is not None:
            out[phase] = value
    return out


def embed_request(params: Params, texts: list[str]) -> ApiRequest:
    body: dict[str, Any] = {"inputs": list(texts), "normalize": True, "truncate": False}
    if params.output_dimension:
        body["dimensions"] = params.output_dimension
    return ApiRequest("/embed", body, bearer(params.api_key))


def parse_embed(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    vectors = [vector(v, f"response[{i}]") for i, v in enumerate(as_list(body, "response"))]
    return ProbeResult(embeddings=vectors, tokens=header_int(headers, "x-compute-tokens"),
                       server_timings=_timings(headers))


def rerank_request(params: Params, query: str, documents: list[str]) -> ApiRequest:
    body = {"query": query, "texts": list(documents), "raw_scores": False, "return_text": False,
            "truncate": False}
    return ApiRequest("/rerank", body, bearer(params.api_key))


def parse_rerank(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    items = as_list(body, "response")
    for i, item in enumerate(items):
        field_of(item, "score", f"response[{i}]")
    return ProbeResult(ranking=ranked_items(items, "response", "score"),
                       tokens=header_int(headers, "x-compute-tokens"), server_timings=_timings(headers))
