"""Voyage AI ``POST /v1/embeddings`` and ``POST /v1/rerank`` (voyageai-python).

- Base URL ``https://api.voyageai.com/v1``; keys starting ``al-`` use ``https://ai.mongodb.com/v1``.
- embeddings request ``{input, model, input_type (null|query|document), truncation[, output_dimension]}``;
  response ``{object, data: [{object, embedding, index}], model, usage: {total_tokens}}``.
- rerank request ``{query, documents, model, top_k, return_documents, truncation}`` (``top_k``, not
  ``top_n``); response ``{object, data: [{index, relevance_score}], model, usage: {total_tokens}}``
  (``data``, not ``results``).
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
DEFAULT_URL = "https://api.voyageai.com/v1"
MONGODB_URL = "https://ai.mongodb.com/v1"


def default_url(params: Params) -> str | None:
    return MONGODB_URL if (params.api_key or "").startswith("al-") else DEFAULT_URL


def embed_request(params: Params, texts: list[str]) -> ApiRequest:
    body: dict[str, Any] = {"input": list(texts), "model": params.model, "input_type": params.input_type,
                            "truncation": True}
    if params.output_dimension:
        body["output_dimension"] = params.output_dimension
    return ApiRequest("/embeddings", body, bearer(params.api_key))


def parse_embed(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    return data_embeddings(body)


def rerank_request(params: Params, query: str, documents: list[str]) -> ApiRequest:
    body = {"query": query, "documents": list(documents), "model": params.model, "top_k": len(documents),
            "return_documents": False, "truncation": True}
    return ApiRequest("/rerank", body, bearer(params.api_key))


def parse_rerank(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    obj = as_dict(body, "response")
    ranking = ranked_items(as_list(field_of(obj, "data", "response"), "response.data"), "response.data",
                           "relevance_score")
    return ProbeResult(ranking=ranking, tokens=optional_int(obj, "usage", "total_tokens"),
                       model=obj.get("model") if isinstance(obj.get("model"), str) else None)
