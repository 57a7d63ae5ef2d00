"""Jina AI ``POST /v1/embeddings`` and ``POST /v1/rerank``.

- embeddings (OpenAI-shaped): request ``{model, input: [str][, task][, dimensions]}``; response
  ``{model, object, usage: {total_tokens, prompt_tokens}, data: [{object, index, embedding}]}``.
  ``input_type`` in the endpoint config is sent as ``task`` (e.g. ``retrieval.query``).
- rerank: request ``{model, query, documents, top_n, return_documents}``; response
  ``{model, usage: {total_tokens[, prompt_tokens]}, results: [{index, relevance_score, document?}]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.providers.common import (
    EMBEDDING,
    RERANK,
    ApiRequest,
    Params,
    ProbeResult,
    as_dict,
    as_list,
    bearer,
    data_embeddings,
    field_of,
    optional_int,
    ranked_items,
)

KINDS = frozenset({EMBEDDING, RERANK})
DEFAULT_URL = "https://api.jina.ai/v1"


def default_url(params: Params) -> str | None:
    return DEFAULT_URL


def embed_request(params: Params, texts: list[str]) -> ApiRequest:
    body: dict[str, Any] = {"model": params.model, "input": list(texts)}
    if params.input_type:
        body["task"] = params.input_type
    if params.output_dimension:
        body["dimensions"] = params.output_dimension
    return ApiRequest("/embeddings", body, bearer(params.api_key))


def parse_embed(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    return data_embeddings(body)


def rerank_request(params: Params, query: str, documents: list[str]) -> ApiRequest:
    body = {"model": params.model, "query": query, "documents": list(documents), "top_n": len(documents),
            "return_documents": False}
    return ApiRequest("/rerank", body, bearer(params.api_key))


def parse_rerank(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    obj = as_dict(body, "response")
    ranking = ranked_items(as_list(field_of(obj, "results", "response"), "response.results"), "response.results",
                           "relevance_score")
    return ProbeResult(ranking=ranking, tokens=optional_int(obj, "usage", "total_tokens"),
                       model=obj.get("model") if isinstance(obj.get("model"), str) else None)
