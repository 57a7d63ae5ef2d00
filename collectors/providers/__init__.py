"""Provider wire formats, one small module each; :data:`PROVIDERS` maps config names to modules.

Every module exposes ``KINDS`` (``embedding``/``rerank``), ``default_url(params)``,
``embed_request(params, texts)`` / ``parse_embed(body, headers, params)`` and, for
re-rankers, ``rerank_request(params, query, documents)`` / ``parse_rerank(body, headers, params)``.
Parsers raise :class:`~collectors.providers.common.ParseError` on a shape the provider does not
document.

| provider | embeddings | rerank |
|---|---|---|
| openai | ``/embeddings`` | no |
| openai_compatible (vLLM, LiteLLM, TEI /v1) | ``/embeddings`` | no |
| azure_openai | ``/openai/deployments/{d}/embeddings`` | no |
| cohere | ``/v2/embed`` | ``/v2/rerank`` |
| voyage | ``/embeddings`` | ``/rerank`` |
| jina | ``/embeddings`` | ``/rerank`` |
| tei | ``/embed`` | ``/rerank`` |
| ollama | ``/api/embed`` | no |
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from collectors.providers import cohere, jina, ollama, openai, tei, voyage

PROVIDERS: Mapping[str, ModuleType] = MappingProxyType({  # read-only: no module state
    "openai": openai,
    "openai_compatible": openai,
    "azure_openai": openai,
    "cohere": cohere,
    "voyage": voyage,
    "jina": jina,
    "tei": tei,
    "ollama": ollama,
})


def get(name: str) -> ModuleType:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(sorted(PROVIDERS))}") from None


def supports(name: str, kind: str) -> bool:
    return kind in get(name).KINDS
