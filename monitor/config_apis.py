"""Typed configuration of the model-API side: embedding/re-ranker endpoints, provider cost
APIs, the embedding-cache Redis, budgets and the price table.

:mod:`monitor.config` imports this module; both build on :mod:`monitor.config_base`.

Every target model has ``name``, ``interval_for``, ``timeout_for`` and ``jitter_for``, like
:class:`monitor.config.DatabaseTarget`, so the scheduler treats all targets alike.

Secrets: ``api_key`` (usually ``${ENV_VAR}``) or ``api_key_file`` (first line of the file,
stripped; a relative path is resolved against the config file's directory). They are
:class:`~pydantic.SecretStr` and never rendered.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.config_base import NAME_PATTERN, Duration, ForDuration, Model, SecretFilePath, one_secret

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import Config

EMBEDDING_PROVIDERS = ("openai", "openai_compatible", "azure_openai", "cohere", "voyage", "jina", "tei", "ollama")
RERANK_PROVIDERS = ("cohere", "voyage", "jina", "tei")


def url_secrets(url: str | None) -> list[str]:
    """The password of ``user:password@`` and every query value of a URL (gateways put keys there)."""
    if not url:
        return []
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    values = [parts.password or ""] + [v for _, v in parse_qsl(parts.query)]
    return [v for v in values if len(v) >= 4]


def check_http_url(url: str | None) -> str | None:
    """An http(s) URL with a host name and, if given, a port in 1..65535 (what callers of
    ``urlsplit(url).port`` and ``requests`` rely on). The error never echoes the URL: its query
    string or user info may hold a key."""
    if url is None:
        return url
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in an IPv6 host
        raise ValueError("invalid URL: malformed host") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("invalid URL: must start with http:// or https://")
    try:
        port = parts.port
    except ValueError as exc:  # out of range, or not a number
        reason = "port out of range" if "out of range" in str(exc) else "port is not a number"
        raise ValueError(f"invalid URL: {reason}") from None
    if port == 0:
        raise ValueError("invalid URL: port out of range")
    if not parts.hostname:
        raise ValueError("invalid URL: no host name")
    return url


class _Scheduled(Model):
    """Common scheduling fields of a non-database target."""

    name: str = Field(pattern=NAME_PATTERN, description="the target label value")
    enabled: bool = Field(True, description="false keeps the entry but schedules nothing")
    jitter: ForDuration | None = Field(None, description="random delay added to each run; default 10% of interval")

    def interval_for(self, collector: str) -> float:
        return self.interval  # type: ignore[attr-defined]

    def timeout_for(self, collector: str) -> float:
        return min(self.timeout, self.interval_for(collector))  # type: ignore[attr-defined]

    def jitter_for(self, collector: str) -> float:
        return self.jitter if self.jitter is not None else round(self.interval_for(collector) * 0.1, 3)


class _WithApiKey(Model):
    api_key: SecretStr | None = Field(None, description="use ${ENV_VAR}; never logged or exported")
    api_key_file: SecretFilePath | None = Field(None, description="file whose first line is the API key")

    @model_validator(mode="after")
    def _one_key(self):
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("give api_key or api_key_file, not both")
        return self

    def key(self) -> str | None:
        """The API key in clear text (for the Authorization header only)."""
        return one_secret(self.api_key, self.api_key_file)


# --------------------------------------------------------------------------- endpoints


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


class EndpointTarget(_WithApiKey, _Scheduled):
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


# --------------------------------------------------------------------------- cost APIs


class CostApiTarget(_WithApiKey, _Scheduled):
    """A provider's organization cost/usage API, polled for authoritative spend."""

    provider: Literal["openai"] = Field("openai", description="only OpenAI has a cost API among the providers")
    url: str = Field("https://api.openai.com/v1", description="API base URL")
    interval: Duration = Field(3600.0, description="poll period (daily buckets; recent days are restated)")
    timeout: Duration = Field(30.0, description="per poll, all pages included")
    lookback_days: int = Field(7, ge=1, le=31, description="recent days re-read every poll (restatements)")
    project_ids: list[str] = Field(default_factory=list, description="restrict to these projects")
    line_items: bool = Field(True, description="also export month-to-date spend per line item")
    usage: bool = Field(True, description="also poll /organization/usage/embeddings (tokens, requests by model)")
    max_series: int = Field(50, ge=1, le=500, description="most line items / models exported")

    @field_validator("url")
    @classmethod
    def _url_is_valid(cls, url: str | None) -> str | None:
        return check_http_url(url)

    @model_validator(mode="after")
    def _needs_key(self) -> CostApiTarget:
        if self.key() is None:
            raise ValueError("a cost API needs an admin key (api_key or api_key_file)")
        return self

    def secrets(self) -> list[str]:
        return [k for k in [self.key()] if k]


# --------------------------------------------------------------------------- redis


class RedisTarget(_Scheduled):
    """The embedding cache's Redis (a single node; RESP2 over TCP, optionally TLS)."""

    host: str = Field("127.0.0.1", description="Redis host (one node; Cluster is not supported)")
    port: int = Field(6379, ge=1, le=65535, description="Redis port")
    username: str | None = Field(None, description="ACL user (Redis 6+); default user when unset")
    password: SecretStr | None = Field(None, description="use ${ENV_VAR}; never logged")
    password_file: SecretFilePath | None = Field(None, description="file whose first line is the password")
    db: int = Field(0, ge=0, description="database the key prefixes are counted in")
    tls: bool = Field(False, description="connect with TLS")
    tls_verify: bool = Field(True, description="verify the server certificate (with tls)")
    key_prefixes: list[str] = Field(default_factory=list, max_length=20,
                                    description="count keys under each prefix (SCAN; bounded by max_scan_keys)")
    max_scan_keys: int = Field(100_000, ge=1, le=10_000_000, description="stop counting a prefix after this many")
    scan_count: int = Field(1000, ge=10, le=100_000, description="COUNT hint per SCAN call")
    interval: Duration = Field(30.0, description="time between collections")
    timeout: Duration = Field(5.0, description="per collection: connect, INFO and the prefix scans")

    @model_validator(mode="after")
    def _one_password(self) -> RedisTarget:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if any(not p for p in self.key_prefixes):
            raise ValueError("key_prefixes must not be empty strings")
        return self

    def secret(self) -> str | None:
        return one_secret(self.password, self.password_file)

    def secrets(self) -> list[str]:
        return [s for s in [self.secret()] if s]


# --------------------------------------------------------------------------- budgets and prices


class Budget(_Scheduled):
    """Spend today and this month (UTC) of some sources against limits."""

    sources: list[str] = Field(min_length=1, description="names of endpoints (probe spend) and/or cost_apis")
    daily_usd: float | None = Field(None, gt=0, description="limit for the current UTC day")
    monthly_usd: float | None = Field(None, gt=0, description="limit for the current UTC month")
    interval: Duration = Field(60.0, description="how often the budget gauges are recomputed")
    timeout: Duration = Field(5.0, description="per run (in-memory only)")

    @model_validator(mode="after")
    def _a_limit(self) -> Budget:
        if self.daily_usd is None and self.monthly_usd is None:
            raise ValueError("give daily_usd and/or monthly_usd")
        return self


class PriceEntry(Model):
    """One dated price: USD per 1M tokens or per 1K searches."""

    provider: str = Field(description="provider name as in endpoints[].provider (or pricing_provider)")
    model: str = Field(description="model name (case-insensitive), or * for every model of the provider")
    usd_per_1m_tokens: float | None = Field(None, ge=0)
    usd_per_1k_searches: float | None = Field(None, ge=0)
    effective: date = Field(description="first day the price applies (UTC)")
    source: str = Field(min_length=1, description="where the price comes from")
    note: str | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> PriceEntry:
        if (self.usd_per_1m_tokens is None) == (self.usd_per_1k_searches is None):
            raise ValueError("give exactly one of usd_per_1m_tokens and usd_per_1k_searches")
        return self


class PriceFile(Model):
    """The layout of a price table (the shipped one: collectors/data/prices.yaml)."""

    version: Literal[1] = 1
    prices: list[PriceEntry] = Field(default_factory=list)


def load_price_file(path: str | Path) -> list[PriceEntry]:
    """Read and validate a price table; ValueError names the file and the problem."""
    import yaml
    from pydantic import ValidationError

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read price table {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"price table {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return list(PriceFile.model_validate(data or {}).prices)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"price table {str(path)!r}: {problems}") from None


class Pricing(Model):
    file: str | None = Field(None, description="price table; default: the one shipped with vecmon "
                                               "(collectors/data/prices.yaml)")
    prices: list[PriceEntry] = Field(
        default_factory=list, description="overrides; they win over the table (newest effective date first)")

    @model_validator(mode="after")
    def _file_is_valid(self) -> Pricing:
        if self.file is not None:
            load_price_file(self.file)  # a broken table is a config error, not a failed reload
        return self


def check_references(config: Config) -> None:
    """Cross-references between sections; raises ValueError (reported at the top level)."""
    databases = {db.name for db in getattr(config, "databases", [])}
    endpoints = {e.name for e in getattr(config, "endpoints", [])}
    cost_apis = {c.name for c in getattr(config, "cost_apis", [])}
    for endpoint in getattr(config, "endpoints", []):
        ref = endpoint.dimensions_from
        if ref is not None and ref.database not in databases:
            raise ValueError(f"endpoint {endpoint.name!r}: dimensions_from.database {ref.database!r} "
                             f"is not a databases[] target")
    for budget in getattr(config, "budgets", []):
        unknown = [s for s in budget.sources if s not in endpoints | cost_apis]
        if unknown:
            raise ValueError(f"budget {budget.name!r}: unknown source(s) {', '.join(unknown)} "
                             f"(sources are endpoint or cost_api names)")


def all_api_targets(config: Config) -> list[_Scheduled]:
    return [*getattr(config, "endpoints", []), *getattr(config, "cost_apis", []),
            *getattr(config, "redis", []), *getattr(config, "budgets", []), *getattr(config, "applications", [])]
