"""Cohere v2 ``POST /v2/embed`` and ``POST /v2/rerank`` (cohere-python v2 raw client).

- embed request ``{model, texts, input_type (required), embedding_types: ["float"][, output_dimension]}``;
  response ``{id, embeddings: {float: [[...]]}, texts, meta}``.
- rerank request ``{model, query, documents, top_n}``; response ``{id, results: [{index,
  relevance_score}], meta}``.
- ``meta.billed_units``: embed bills ``input_tokens`` (+ ``image_tokens``), rerank bills
  ``search_units`` (one query with up to 100 documents).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.providers.common import (
    EMBEDDING,
    RERANK,
    ApiRequest,
    Params,
    ParseError,
    ProbeResult,
    as_dict,
    as_list,
    bearer,
    field_of,
    optional_int,
    optional_number,
    ranked_items,
    vector,
)

KINDS = frozenset({EMBEDDING, RERANK})
DEFAULT_URL = "https://api.cohere.com"
INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")


def default_url(params: Params) -> str | None:
    return DEFAULT_URL


def embed_request(params: Params, texts: list[str]) -> ApiRequest:
    body: dict[str, Any] = {"model": params.model, "texts": list(texts),
                            "input_type": params.input_type or "search_query", "embedding_types": ["float"]}
    if params.output_dimension:
        body["output_dimension"] = params.output_dimension
    return ApiRequest("/v2/embed", body, bearer(params.api_key))


def parse_embed(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    obj = as_dict(body, "response")
    by_type = as_dict(field_of(obj, "embeddings", "response"), "response.embeddings")
    if "float" not in by_type:
        raise ParseError("response.embeddings: missing 'float'")
    vectors = [vector(v, f"response.embeddings.float[{i}]")
               for i, v in enumerate(as_list(by_type["float"], "response.embeddings.float"))]
    tokens = optional_int(obj, "meta", "billed_units", "input_tokens")
    images = optional_int(obj, "meta", "billed_units", "image_tokens")
    if images:
        tokens = (tokens or 0) + images
    return ProbeResult(embeddings=vectors, tokens=tokens)


def rerank_request(params: Params, query: str, documents: list[str]) -> ApiRequest:
    body = {"model": params.model, "query": query, "documents": list(documents), "top_n": len(documents)}
    return ApiRequest("/v2/rerank", body, bearer(params.api_key))


def parse_rerank(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    obj = as_dict(body, "response")
    ranking = ranked_items(as_list(field_of(obj, "results", "response"), "response.results"), "response.results",
                           "relevance_score")
    return ProbeResult(ranking=ranking, search_units=optional_number(obj, "meta", "billed_units", "search_units"),
                       tokens=optional_int(obj, "meta", "billed_units", "input_tokens"))
