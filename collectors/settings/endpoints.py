"""Settings of the endpoint probes (:mod:`collectors.model_probe`): one ``endpoints[]`` entry is one
embedding or re-ranker endpoint, probed on a schedule (each probe is billed)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collectors.settings.base import Duration, Model
from collectors.settings.targets import ScheduledTarget, WithApiKey, check_http_url, url_secrets

EMBEDDING_PROVIDERS = ("openai", "openai_compatible", "azure_openai", "cohere", "voyage", "jina", "tei", "ollama")
RERANK_PROVIDERS = ("cohere", "voyage", "jina", "tei")


class DimensionsFrom(Model):
    """A pgvector column whose declared dimension the embeddings must have."""

    database: str = Field(description="name of a databases[] target")
    table: str = Field(description="table, optionally schema-qualified (public.documents)")
    column: str = Field(description="the vector/halfvec column")


class ProbeInputs(Model):
    """What a probe sends. Keep it short: every probe is billed."""

    texts: list[str] = Field(
        default_factory=lambda: ["vecmon probe: what is the capital of France?",
                                 "Paris is the capital and largest city of France."],
        min_length=1, max_length=16, description="embedding inputs (one vector expected per text)")
    query: str = Field("What is the capital of France?", description="re-ranker query")
    documents: list[str] = Field(
        default_factory=lambda: ["Paris is the capital and largest city of France.",
                                 "The Great Wall of China is a series of fortifications in northern China.",
                                 "Photosynthesis converts light energy into chemical energy in plants."],
        min_length=2, max_length=100, description="re-ranker documents (at most 100: one Cohere search unit)")
    relevant: int = Field(0, ge=0, description="index in documents of the one that must rank first")

    @model_validator(mode="after")
    def _relevant_in_range(self) -> ProbeInputs:
        if self.relevant >= len(self.documents):
            raise ValueError(f"relevant={self.relevant} but only {len(self.documents)} documents")
        if any(not t.strip() for t in self.texts):
            raise ValueError("texts must not be empty strings")
        return self


class EndpointTarget(WithApiKey, ScheduledTarget):
    """One embedding or re-ranker endpoint, probed on a schedule."""

    kind: Literal["embedding", "rerank"] = Field("embedding", description="what the endpoint does")
    provider: Literal["openai", "openai_compatible", "azure_openai", "cohere", "voyage", "jina", "tei", "ollama"] = \
        Field(description="wire format; openai_compatible covers vLLM, LiteLLM and TEI's /v1 route")
    url: str | None = Field(
        None, repr=False,
        description="base URL (e.g. https://api.openai.com/v1); default: the provider's public API")
    model: str = Field(min_length=1, description="model name (label value; price lookup key)")
    deployment: str | None = Field(None, description="azure_openai: deployment name (default: model)")
    api_version: str | None = Field(None, description="azure_openai: api-version query parameter")
    input_type: str | None = Field(
        None, description="cohere input_type (default search_query), voyage input_type, jina task")
    output_dimension: int | None = Field(
        None, ge=1, description="ask the provider for this many dimensions (dimensions/output_dimension)")
    dimensions: int | None = Field(None, ge=1, le=65536, description="expected embedding dimensions")
    dimensions_from: DimensionsFrom | None = Field(
        None, description="expected dimensions = the declared dimension of this pgvector column")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra request headers (e.g. OpenAI-Project); values treated as secrets")
    pricing_provider: str | None = Field(None, description="provider key in the price table (default: provider)")
    interval: Duration = Field(60.0, description="time between probes (each probe is billed)")
    timeout: Duration = Field(10.0, description="whole probe, including one Retry-After wait")
    tls_verify: bool = Field(True, description="verify the server certificate")
    probe: ProbeInputs = Field(default_factory=ProbeInputs, description="probe inputs")

    @field_validator("url")
    @classmethod
    def _url_is_valid(cls, url: str | None) -> str | None:
        return check_http_url(url)

    @model_validator(mode="after")
    def _consistent(self) -> EndpointTarget:
        if self.kind == "rerank" and self.provider not in RERANK_PROVIDERS:
            raise ValueError(f"provider {self.provider} has no re-ranker API here; use one of "
                             f"{', '.join(RERANK_PROVIDERS)}")
        if self.kind == "rerank" and (self.dimensions or self.dimensions_from or self.output_dimension):
            raise ValueError("dimensions/dimensions_from/output_dimension apply to embedding endpoints only")
        if self.dimensions is not None and self.dimensions_from is not None:
            raise ValueError("give dimensions or dimensions_from, not both")
        if self.url is None and self.provider in ("openai_compatible", "azure_openai", "tei"):
            raise ValueError(f"provider {self.provider} needs url")
        if (self.deployment or self.api_version) and self.provider != "azure_openai":
            raise ValueError("deployment and api_version apply to provider azure_openai only")
        return self

    def secrets(self) -> list[str]:
        """Everything to redact: the key, header values, and credentials embedded in the URL."""
        values = [self.key()] + [v.get_secret_value() for v in self.headers.values()] + url_secrets(self.url)
        return [v for v in values if v]
