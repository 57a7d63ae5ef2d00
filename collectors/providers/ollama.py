"""Ollama ``POST /api/embed`` (not the legacy ``/api/embeddings``, which takes ``prompt``).

Request ``{model, input: [str][, dimensions]}``; response ``{model, embeddings: [[...]],
total_duration, load_duration, prompt_eval_count}``. Durations are **nanoseconds**; a large
``load_duration`` is a cold model load. ``prompt_eval_count`` is the token count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.providers.common import (
    EMBEDDING,
    ApiRequest,
    Params,
    ProbeResult,
    as_dict,
    as_list,
    bearer,
    field_of,
    optional_int,
    vector,
)

KINDS = frozenset({EMBEDDING})
DEFAULT_URL = "http://localhost:11434"


def default_url(params: Params) -> str | None:
    return DEFAULT_URL


def embed_request(params: Params, texts: list[str]) -> ApiRequest:
    body: dict[str, Any] = {"model": params.model, "input": list(texts)}
    if params.output_dimension:
        body["dimensions"] = params.output_dimension
    return ApiRequest("/api/embed", body, bearer(params.api_key))  # a key only matters behind a proxy


def parse_embed(body: Any, headers: Mapping[str, str], params: Params) -> ProbeResult:
    obj = as_dict(body, "response")
    vectors = [vector(v, f"response.embeddings[{i}]")
               for i, v in enumerate(as_list(field_of(obj, "embeddings", "response"), "response.embeddings"))]
    timings = {}
    for phase, key in (("total", "total_duration"), ("load", "load_duration")):
        nanos = optional_int(obj, key)
        if nanos is not None and nanos >= 0:
            timings[phase] = nanos / 1e9
    return ProbeResult(embeddings=vectors, tokens=optional_int(obj, "prompt_eval_count"), server_timings=timings,
                       model=obj.get("model") if isinstance(obj.get("model"), str) else None)
