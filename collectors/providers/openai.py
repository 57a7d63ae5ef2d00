"""OpenAI ``POST /v1/embeddings`` and the servers that speak it.

Variants (``Params.provider``):

- ``openai``: ``{base}/embeddings`` with ``Authorization: Bearer``; base default
  ``https://api.openai.com/v1``. The response's four top-level fields (object, data, model,
  usage) are required (openapi ``CreateEmbeddingResponse``).
- ``openai_compatible``: vLLM, LiteLLM, TEI's ``/v1/embeddings``: same request; ``data`` is
  required, ``usage``/``model`` are read when present; the key is optional.
- ``azure_openai``: ``{base}/openai/deployments/{deployment}/embeddings?api-version=...`` with
  an ``api-key`` header; the deployment names the model, so the body carries no ``model``.

Request: ``{model, input: [str], encoding_format: "float"[, dimensions]}`` (``dimensions`` only
for text-embedding-3 and later). Response: ``{object: "list", data: [{object: "embedding",
index, embedding}], model, usage: {prompt_tokens, total_tokens}}``. Header
``openai-processing-ms`` is the server-side time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from collectors.providers.common import (
    EMBEDDING,
    ApiRequest,
    Params,
    ParseError,
    ProbeResult,
    as_dict,
    as_list,
    bearer,
    field_of,
    header_millis,
    indexed_items,
    optional_int,
)

KINDS = frozenset({EMBEDDING})
DEFAULT_URL = "https://api.openai.com/v1"
AZURE_API_VERSION = "2024-10-21"


def default_url(params: Params) -> str | None:
    return DEFAULT_URL if params.provider == "openai" else None


def embed_request(params: Params, texts: list[str]) -> ApiRequest:
    body: dict[str, Any] = {"model": params.model, "input": list(texts), "encoding_format": "float"}
    if params.output_dimension:
        body["dimensions"] = params.output_dimension
    if params.provider == "azure_openai":
        body.pop("model")
        deployment = quote(params.deployment or params.model, safe="")
        headers = {"api-key": params.api_key} if params.api_key else {}
        return ApiRequest(f"/openai/deployments/{deployment}/embeddings", body, headers,
                          {"api-version": params.api_version or AZURE_API_VERSION})
    return ApiRequest("/embeddings", body, bearer(params.api_key))


def parse_embed(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    obj = as_dict(body, "response")
    strict = params.provider == "openai"
    if strict:
        for key in ("object", "data", "model", "usage"):
            field_of(obj, key, "response")
        if obj["object"] != "list":
            raise ParseError(f"response.object: expected 'list', got {obj['object']!r:.40}")
    embeddings = indexed_items(as_list(field_of(obj, "data", "response"), "response.data"), "response.data",
                               "embedding")
    tokens = optional_int(obj, "usage", "total_tokens")
    if tokens is None:
        tokens = optional_int(obj, "usage", "prompt_tokens")
    if strict and tokens is None:
        raise ParseError("response.usage: missing total_tokens")
    timings = {}
    processing = header_millis(headers, "openai-processing-ms")
    if processing is not None:
        timings["processing"] = processing
    model = obj.get("model") if isinstance(obj.get("model"), str) else None
    return ProbeResult(embeddings=embeddings, tokens=tokens, server_timings=timings, model=model)
