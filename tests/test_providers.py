"""Provider wire formats: every provider module against a local server speaking that provider's
documented format, plus the parsers against the response shapes kept in tests/shapes/."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from fake_providers import COMBOS, MODELS, SHAPES, FakeProvider, Fault, Probe

from collectors import providers
from collectors.model_metrics import (
    EMBEDDING_DIMENSIONS,
    MODEL_API_LAST_STATUS_CODE,
    MODEL_API_PROBE_SUCCESS,
    MODEL_API_RATE_LIMIT_HEADROOM_RATIO,
    MODEL_API_RATE_LIMIT_LIMIT,
    MODEL_API_RATE_LIMIT_REMAINING,
    MODEL_API_RATE_LIMIT_RESET_SECONDS,
    MODEL_API_SERVER_DURATION_SECONDS,
    MODEL_API_TOKENS_TOTAL,
    RERANK_RELEVANT_DOCUMENT_RANK,
    RERANK_SEARCH_UNITS_TOTAL,
)
from collectors.providers import cohere, ollama, openai, tei, voyage
from collectors.providers.common import (
    MAX_COUNT,
    Params,
    ParseError,
    as_number,
    finite_number,
    header_int,
    optional_int,
    optional_number,
    parse_duration_header,
    parse_rate_limits,
    parse_retry_after,
)
from collectors.settings.endpoints import RERANK_PROVIDERS, EndpointTarget, ProbeInputs

KEY = "sk-test-0123456789abcdef"
TEXTS = ProbeInputs().texts
QUERY = ProbeInputs().query
DOCS = ProbeInputs().documents


def expected_request(provider: str, kind: str, model: str) -> tuple[str, dict]:
    """The path and JSON body each provider documents for the default probe inputs."""
    if kind == "rerank":
        return {
            "cohere": ("/v2/rerank", {"model": model, "query": QUERY, "documents": DOCS, "top_n": 3}),
            "voyage": ("/v1/rerank", {"query": QUERY, "documents": DOCS, "model": model, "top_k": 3,
                                      "return_documents": False, "truncation": True}),
            "jina": ("/v1/rerank", {"model": model, "query": QUERY, "documents": DOCS, "top_n": 3,
                                    "return_documents": False}),
            "tei": ("/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": False, "return_text": False,
                                "truncate": False}),
        }[provider]
    return {
        "openai": ("/v1/embeddings", {"model": model, "input": TEXTS, "encoding_format": "float"}),
        "openai_compatible": ("/v1/embeddings", {"model": model, "input": TEXTS, "encoding_format": "float"}),
        "azure_openai": (f"/openai/deployments/{model}/embeddings", {"input": TEXTS, "encoding_format": "float"}),
        "cohere": ("/v2/embed", {"model": model, "texts": TEXTS, "input_type": "search_query",
                                 "embedding_types": ["float"]}),
        "voyage": ("/v1/embeddings", {"input": TEXTS, "model": model, "input_type": None, "truncation": True}),
        "jina": ("/v1/embeddings", {"model": model, "input": TEXTS}),
        "tei": ("/embed", {"inputs": TEXTS, "normalize": True, "truncate": False}),
        "ollama": ("/api/embed", {"model": model, "input": TEXTS}),
    }[provider]


@pytest.mark.parametrize("provider,kind", COMBOS, ids=[f"{p}-{k}" for p, k in COMBOS])
@pytest.mark.integration
def test_probe_speaks_each_providers_wire_format(provider, kind):
    with FakeProvider(provider, api_key=KEY) as fake:
        probe = Probe(fake, kind)
        run = probe.run()
        assert run.outcomes() == {"success": 1}, probe.state
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 1
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 200
        assert run.latency_count() == 1

        (request,) = fake.requests
        path, body = expected_request(provider, kind, MODELS[(provider, kind)])
        assert request.method == "POST"
        assert request.path == path
        assert request.body == body
        assert request.headers["content-type"] == "application/json"
        if provider == "azure_openai":
            assert request.headers["api-key"] == KEY and "authorization" not in request.headers
            assert request.query == {"api-version": [openai.AZURE_API_VERSION]}
        else:
            assert request.headers["authorization"] == f"Bearer {KEY}"

        # usage as the server reported it
        (billed,) = fake.billed
        if "tokens" in billed:
            assert run.value(MODEL_API_TOKENS_TOTAL.name) == billed["tokens"]
        if "search_units" in billed:
            assert run.value(RERANK_SEARCH_UNITS_TOTAL.name) == billed["search_units"]
        if kind == "embedding":
            assert run.value(EMBEDDING_DIMENSIONS.name) == fake.dims
        else:
            assert run.value(RERANK_RELEVANT_DOCUMENT_RANK.name) == 1


@pytest.mark.integration
def test_openai_compatible_without_key_sends_no_authorization():
    with FakeProvider("openai_compatible") as fake:
        run = Probe(fake).run()
        assert run.outcomes() == {"success": 1}
        assert "authorization" not in fake.requests[0].headers


@pytest.mark.integration
def test_wrong_key_is_http_4xx_and_cohere_input_type_is_sent():
    with FakeProvider("cohere", api_key=KEY) as fake:
        run = Probe(fake, api_key="wrong-key", input_type="search_document").run()
        assert run.outcomes() == {"http_4xx": 1}
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 401
        assert fake.requests[0].body["input_type"] == "search_document"


def test_output_dimension_goes_into_each_providers_field():
    params = dict(model="m", output_dimension=256)
    assert openai.embed_request(Params("openai", **params), TEXTS).body["dimensions"] == 256
    assert cohere.embed_request(Params("cohere", **params), TEXTS).body["output_dimension"] == 256
    assert voyage.embed_request(Params("voyage", **params), TEXTS).body["output_dimension"] == 256
    assert providers.get("jina").embed_request(Params("jina", **params), TEXTS).body["dimensions"] == 256
    assert tei.embed_request(Params("tei", **params), TEXTS).body["dimensions"] == 256
    assert ollama.embed_request(Params("ollama", **params), TEXTS).body["dimensions"] == 256


def test_default_urls():
    assert openai.default_url(Params("openai", "m")) == "https://api.openai.com/v1"
    assert openai.default_url(Params("azure_openai", "m")) is None
    assert cohere.default_url(Params("cohere", "m")) == "https://api.cohere.com"
    assert voyage.default_url(Params("voyage", "m", api_key="pa-123")) == "https://api.voyageai.com/v1"
    assert voyage.default_url(Params("voyage", "m", api_key="al-123")) == "https://ai.mongodb.com/v1"
    assert ollama.default_url(Params("ollama", "m")) == "http://localhost:11434"


@pytest.mark.integration
def test_azure_deployment_and_api_version():
    with FakeProvider("azure_openai", api_key=KEY) as fake:
        run = Probe(fake, deployment="prod-embed", api_version="2024-02-01").run()
        assert run.outcomes() == {"success": 1}
        assert fake.requests[0].path == "/openai/deployments/prod-embed/embeddings"
        assert fake.requests[0].query == {"api-version": ["2024-02-01"]}


def test_registry_matches_config():
    for name, module in providers.PROVIDERS.items():
        assert "embedding" in module.KINDS
        assert ("rerank" in module.KINDS) == (name in RERANK_PROVIDERS), name
    with pytest.raises(KeyError):
        providers.get("nope")
    with pytest.raises(ValueError, match="no re-ranker"):
        EndpointTarget.model_validate({"name": "x", "provider": "ollama", "kind": "rerank", "model": "m"})


# --------------------------------------------------------------------------- shapes


def load(name: str):
    return json.loads((SHAPES / f"{name}.json").read_text())


def test_documented_shapes_parse():
    r = openai.parse_embed(load("openai_embeddings"), {"openai-processing-ms": "31"}, Params("openai", "m"))
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == 3
    assert r.tokens == 18 and r.model == "text-embedding-3-small"
    assert r.server_timings == {"processing": 0.031}

    r = cohere.parse_embed(load("cohere_embed"), {}, Params("cohere", "m"))
    assert len(r.embeddings) == 2 and r.tokens == 20
    r = cohere.parse_rerank(load("cohere_rerank"), {}, Params("cohere", "m"))
    assert r.ranking[0] == (0, 0.9987) and r.search_units == 1.0

    r = voyage.parse_embed(load("voyage_embeddings"), {}, Params("voyage", "m"))
    assert len(r.embeddings) == 2 and r.tokens == 19
    r = voyage.parse_rerank(load("voyage_rerank"), {}, Params("voyage", "m"))
    assert [i for i, _ in r.ranking] == [0, 2, 1] and r.tokens == 62

    jina = providers.get("jina")
    r = jina.parse_embed(load("jina_embeddings"), {}, Params("jina", "m"))
    assert len(r.embeddings) == 2 and r.tokens == 21
    r = jina.parse_rerank(load("jina_rerank"), {}, Params("jina", "m"))
    assert [i for i, _ in r.ranking] == [0, 1, 2] and r.tokens == 57

    headers = {"x-compute-tokens": "14", "x-total-time": "12", "x-tokenization-time": "1", "x-queue-time": "0",
               "x-inference-time": "10"}
    r = tei.parse_embed(load("tei_embed"), headers, Params("tei", "m"))
    assert len(r.embeddings) == 2 and r.tokens == 14
    assert r.server_timings == {"total": 0.012, "tokenization": 0.001, "queue": 0.0, "inference": 0.010}
    r = tei.parse_rerank(load("tei_rerank"), headers, Params("tei", "m"))
    assert r.ranking[0] == (0, 0.99762)

    r = ollama.parse_embed(load("ollama_embed"), {}, Params("ollama", "m"))
    assert len(r.embeddings) == 2 and r.tokens == 16
    assert r.server_timings == {"total": pytest.approx(0.014143917), "load": pytest.approx(0.0010195)}


def test_parsers_reject_undocumented_shapes():
    strict = Params("openai", "m")
    body = load("openai_embeddings")
    del body["usage"]
    with pytest.raises(ParseError, match="usage"):
        openai.parse_embed(body, {}, strict)
    # an OpenAI-compatible server may omit usage
    assert openai.parse_embed(body, {}, Params("openai_compatible", "m")).tokens is None
    with pytest.raises(ParseError, match="index"):
        body = load("openai_embeddings")
        body["data"][1]["index"] = 0
        openai.parse_embed(body, {}, strict)
    with pytest.raises(ParseError, match="missing .data."):  # Voyage says data, not results
        voyage.parse_rerank(load("cohere_rerank"), {}, Params("voyage", "m"))
    with pytest.raises(ParseError, match="float"):
        cohere.parse_embed({"embeddings": {"int8": [[1, 2]]}}, {}, Params("cohere", "m"))
    with pytest.raises(ParseError):
        tei.parse_rerank([{"index": 0, "relevance_score": 0.3}], {}, Params("tei", "m"))  # TEI says score
    with pytest.raises(ParseError):
        ollama.parse_embed({"embedding": [0.1]}, {}, Params("ollama", "m"))  # legacy /api/embeddings shape


@pytest.mark.integration
def test_strict_openai_shape_violation_is_bad_response():
    with FakeProvider("openai") as fake:
        body = load("openai_embeddings")
        del body["usage"]
        fake.push(Fault(raw_body=json.dumps(body).encode()))
        run = Probe(fake).run()
        assert run.outcomes() == {"bad_response": 1}
        assert run.failures("malformed") == 1


# --------------------------------------------------------------------------- headers


@pytest.mark.integration
def test_rate_limit_headers_and_server_timings_become_metrics():
    with FakeProvider("openai", api_key=KEY) as fake:
        fake.push(Fault(delay=0.05))
        run = Probe(fake).run()
        tokens = fake.billed[0]["tokens"]
        assert run.value(MODEL_API_RATE_LIMIT_LIMIT.name, resource="requests") == 3000
        assert run.value(MODEL_API_RATE_LIMIT_REMAINING.name, resource="requests") == 2999
        assert run.value(MODEL_API_RATE_LIMIT_RESET_SECONDS.name, resource="requests") == pytest.approx(0.02)
        assert run.value(MODEL_API_RATE_LIMIT_RESET_SECONDS.name, resource="tokens") == 360
        assert run.value(MODEL_API_RATE_LIMIT_HEADROOM_RATIO.name, resource="tokens") == pytest.approx(
            (1_000_000 - tokens) / 1_000_000)
        assert run.value(MODEL_API_SERVER_DURATION_SECONDS.name, phase="processing") == pytest.approx(0.051)
    with FakeProvider("tei") as fake:
        fake.push(Fault(delay=0.05))
        run = Probe(fake).run()
        assert run.value(MODEL_API_SERVER_DURATION_SECONDS.name, phase="total") == pytest.approx(0.052)
        assert run.value(MODEL_API_SERVER_DURATION_SECONDS.name, phase="inference") == pytest.approx(0.051)
        assert run.value(MODEL_API_SERVER_DURATION_SECONDS.name, phase="queue") == 0
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == fake.billed[0]["tokens"]
    with FakeProvider("ollama") as fake:
        run = Probe(fake).run()
        assert run.value(MODEL_API_SERVER_DURATION_SECONDS.name, phase="load") == pytest.approx(0.0010195)
        assert run.value(MODEL_API_SERVER_DURATION_SECONDS.name, phase="total") == pytest.approx(0.002)


@pytest.mark.integration
def test_azure_rate_limit_placeholders_are_not_reported_as_headroom():
    """Azure OpenAI sends ``limit-tokens: -1, remaining-tokens: -1, reset-tokens: 0`` (MS Q&A
    5625878, openai-dotnet#838): no quota, not a full one."""
    with FakeProvider("azure_openai", api_key=KEY) as fake:
        run = Probe(fake, deployment="d").run()
        assert fake.requests and run.outcomes() == {"success": 1}
        for name in ("headroom_ratio", "limit", "remaining", "reset_seconds"):
            assert run.value(f"vecmon_model_api_rate_limit_{name}", resource="tokens") is None, name
        assert run.value(MODEL_API_RATE_LIMIT_HEADROOM_RATIO.name, resource="requests") == pytest.approx(
            2999 / 3000)
    assert parse_rate_limits({"x-ratelimit-limit-tokens": "-1", "x-ratelimit-remaining-tokens": "-1",
                              "x-ratelimit-reset-tokens": "0", "x-ratelimit-limit-requests": "0",
                              "x-ratelimit-remaining-requests": "0"}) == {"requests": {"limit": 0, "remaining": 0}}


def test_header_parsers():
    assert parse_duration_header("6m0s") == 360
    assert parse_duration_header("12ms") == pytest.approx(0.012)
    assert parse_duration_header("1h2m3.5s") == pytest.approx(3723.5)
    assert parse_duration_header("1.5") == 1.5
    assert parse_duration_header("soon") is None and parse_duration_header("5x") is None
    now = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    assert parse_rate_limits({"x-ratelimit-remaining-requests": "9", "x-ratelimit-limit-requests": "10"}) == {
        "requests": {"limit": 10, "remaining": 9}}
    assert parse_rate_limits({}) == {}


def test_accessors_never_raise_on_numbers_a_server_can_send():
    huge = 10 ** 400
    assert as_number(huge, "x") == math.inf and as_number(-huge, "x") == -math.inf
    assert as_number(None, "x") != as_number(None, "x")  # NaN
    assert finite_number(2, "x") == 2.0
    for bad in (huge, math.inf, math.nan, None, "1", True):
        with pytest.raises(ParseError):
            finite_number(bad, "x")
    # usage quantities feed counters: negative, huge or non-finite values count as missing
    assert optional_int({"u": {"t": 12}}, "u", "t") == 12 and optional_int({"u": 12.0}, "u") == 12
    for bad in (-1, -0.5, huge, float(MAX_COUNT) * 2, math.inf, math.nan, True, "12"):
        assert optional_int({"u": bad}, "u") is None, bad
        assert optional_number({"u": bad}, "u") is None, bad
    assert optional_number({"u": 0.5}, "u") == 0.5 and optional_int({"u": MAX_COUNT}, "u") == MAX_COUNT
    assert header_int({"x": " 14 "}, "x") == 14 and header_int({}, "x") is None
    for bad in ("-7", "+7", "1_000", "1.5", "\u0661\u0662", "9" * 40, "9" * 5000, ""):
        assert header_int({"x": bad}, "x") is None, bad
    # Retry-After: digits float() refuses, absurd dates and numbers are ignored, never raised
    assert parse_retry_after("\u00b2") is None and parse_retry_after("Mon, 99 Foo 99999 99:99:99 GMT") is None
    assert parse_retry_after("9" * 400) == math.inf  # never fits a timeout, so never waited for


def test_model_api_metric_declarations_follow_conventions():
    from collectors.registry import api_collector_classes
    from collectors.self_metrics import SELF_METRICS

    names = {spec.name for spec in SELF_METRICS}
    allowed = ("vecmon_model_api_", "vecmon_embedding_", "vecmon_rerank_", "vecmon_cost_", "vecmon_redis_",
               "vecmon_app_")
    for cls in api_collector_classes():
        for spec in cls.METRICS:
            assert spec.name.startswith(allowed), spec.name
            assert spec.name not in names, f"{spec.name} declared twice"
            names.add(spec.name)
            assert spec.help and spec.help[0].isupper() and spec.help.endswith("."), spec.name
            assert "target" not in spec.labels
            assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
            if "seconds" in spec.name or "bytes" in spec.name or "usd" in spec.name:
                assert spec.kind in ("gauge", "counter", "histogram")
            # bounded labels only: never a URL, key, text or free-form id
            assert set(spec.labels) <= {"provider", "model", "kind", "outcome", "reason", "phase", "resource",
                                        "unit", "period", "line_item", "api", "db", "prefix", "version", "mode",
                                        "maxmemory_policy", "assertion"}, spec.name  # assertion: json[i], from config
