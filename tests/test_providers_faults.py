"""Injected faults land in the right outcome class, latency is measured to within 10 ms,
probes retry only on Retry-After, answers no parser expects (a 400-digit number, arrays nested
5000 deep, negative usage) are counted data rather than collector failures, the daemon keeps
serving, and secrets never leak."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime

import pytest
from fake_providers import FakeProvider, Fault, Probe
from helpers import Families
from prometheus_client import generate_latest

from collectors.model_metrics import (
    BUCKETS,
    EMBEDDING_DIMENSION_MISMATCH,
    EMBEDDING_DIMENSIONS,
    EMBEDDING_EXPECTED_DIMENSIONS,
    MODEL_API_COST_USD_TOTAL,
    MODEL_API_LAST_STATUS_CODE,
    MODEL_API_PROBE_DURATION_SECONDS,
    MODEL_API_PROBE_SUCCESS,
    MODEL_API_REQUEST_DURATION_SECONDS,
    MODEL_API_REQUESTS_TOTAL,
    MODEL_API_RETRIES_TOTAL,
    MODEL_API_TOKENS_TOTAL,
    RERANK_RELEVANT_DOCUMENT_RANK,
    RERANK_SEARCH_UNITS_TOTAL,
)
from collectors.providers.common import OUTCOMES
from collectors.spend_ledger import SpendLedger
from monitor.config import Config
from monitor.exposition import build_registry
from monitor.loader import parse_config
from monitor.scheduler import Runtime, build_api_jobs
from monitor.shared import SharedState
from monitor.snapshot import SnapshotStore

pytestmark = pytest.mark.integration  # servers, sockets or processes without a server fixture

TOLERANCE = 0.010  # the bound: measured latency within 10 ms of the injected delay
# Wall-clock bounds: a loaded 2-core CI machine can stall any thread for hundreds of ms, so the
# "bounded by the timeout" checks allow SLACK past the timeout, and the faults they guard
# against stall for STALL, far longer: a timeout that is not enforced still fails them.
SLACK = 1.2
STALL = 10.0


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- latency


def measure(probe: Probe, fake: FakeProvider, delay: float, attempts: int = 5) -> list[float]:
    """Observations of up to ``attempts`` probes with ``delay`` injected, stopping at the first
    within tolerance: a busy CI machine can delay any one request, but the measurement method
    itself must add less than 10 ms."""
    observed = []
    for _ in range(attempts):
        before = probe.state.get("hist", {}).get("success", {}).get("sum", 0.0)
        fake.push(Fault(delay=delay))
        run = probe.run()
        observed.append(run.latency_sum() - before)
        if observed[-1] - delay < TOLERANCE:
            break
    return observed


@pytest.mark.parametrize("provider,kind,delay", [("openai", "embedding", 0.05), ("tei", "rerank", 0.25),
                                                 ("cohere", "embedding", 0.12), ("ollama", "embedding", 0.3)])
def test_measured_latency_is_within_10ms_of_the_injected_delay(provider, kind, delay):
    with FakeProvider(provider) as fake:
        probe = Probe(fake, kind)
        probe.run()  # warm the keep-alive connection
        observed = measure(probe, fake, delay)
        assert all(o >= delay for o in observed), observed  # never less than the server took
        assert min(observed) - delay < TOLERANCE, f"observed {observed} for delay {delay}s"
        last = observed[-1]
        run = probe.run()  # one more, undelayed, to read the state back
        assert run.latency_count() == len(observed) + 2
        # the observation landed in the first bucket whose bound is >= it
        bound = next(b for b in BUCKETS if last <= b)
        assert run.value(f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_bucket", outcome="success",
                         le=str(float(bound))) >= 1
        assert run.value(f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_bucket", outcome="success",
                         le="+Inf") == len(observed) + 2


def test_cold_connection_latency_is_within_10ms_too():
    errors = []
    for _ in range(5):
        with FakeProvider("voyage") as fake:
            fake.push(Fault(delay=0.2))
            run = Probe(fake).run()  # a new session: TCP connect included
            errors.append(run.latency_sum() - 0.2)
            assert run.value(MODEL_API_PROBE_DURATION_SECONDS.name) >= run.latency_sum()
        if errors[-1] < TOLERANCE:
            break
    assert all(e >= 0 for e in errors) and min(errors) < TOLERANCE, errors


def test_histogram_and_counters_accumulate_across_runs():
    with FakeProvider("jina") as fake:
        probe = Probe(fake, "rerank")
        fake.push(Fault(), Fault(status=500), Fault())
        for _ in range(3):
            run = probe.run()
        assert run.outcomes() == {"success": 2, "http_5xx": 1}
        assert run.latency_count("success") == 2 and run.latency_count("http_5xx") == 1
        assert run.value(f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_bucket", outcome="success", le="+Inf") == 2
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == sum(b["tokens"] for b in fake.billed)
        # every outcome series exists from the first run, so rate() works without gaps
        assert run.requests("timeout") == 0 and run.requests("connection_error") == 0


# --------------------------------------------------------------------------- HTTP outcomes and retries


def test_429_with_retry_after_is_retried_once_when_it_fits():
    with FakeProvider("openai") as fake:
        fake.push(Fault(status=429, retry_after="1"))
        probe = Probe(fake, timeout="5s")
        run = probe.run()
        assert probe.sleeps == [1.0]
        assert run.outcomes() == {"rate_limited": 1, "success": 1}
        assert run.value(MODEL_API_RETRIES_TOTAL.name) == 1
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 1
        assert len(fake.requests) == 2


def test_429_whose_retry_after_does_not_fit_the_timeout_is_not_retried():
    with FakeProvider("cohere") as fake:
        fake.push(Fault(status=429, retry_after="30"))
        probe = Probe(fake, "rerank", timeout="2s")
        started = time.perf_counter()
        run = probe.run()
        assert time.perf_counter() - started < 1.5  # no wait, not even until the 2 s deadline
        assert probe.sleeps == []
        assert run.outcomes() == {"rate_limited": 1}
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 429
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 0
        assert run.value(MODEL_API_RETRIES_TOTAL.name) == 0


@pytest.mark.parametrize("provider", ["openai", "azure_openai"])
def test_429_with_only_retry_after_ms_is_retried(provider):
    """openai-python and the Azure clients read ``retry-after-ms`` before ``Retry-After``."""
    with FakeProvider(provider) as fake:
        probe = Probe(fake, timeout="5s", **({"deployment": "d"} if provider == "azure_openai" else {}))
        fake.push(Fault(status=429, retry_after_ms="1000"))
        run = probe.run()
        assert run.outcomes() == {"rate_limited": 1, "success": 1}
        assert probe.sleeps == [1.0]
        fake.push(Fault(status=429, retry_after_ms="250", retry_after="30"))
        run = probe.run()  # both headers: the milliseconds win
        assert probe.sleeps == [1.0, 0.25] and run.value(MODEL_API_RETRIES_TOTAL.name) == 2
        fake.push(Fault(status=429, retry_after_ms="30000"))
        run = probe.run()  # 30 s does not fit a 5 s timeout
        assert probe.sleeps == [1.0, 0.25] and run.value(MODEL_API_PROBE_SUCCESS.name) == 0
        assert len(fake.requests) == 5


def test_no_retry_without_retry_after_and_none_on_500():
    with FakeProvider("voyage") as fake:
        fake.push(Fault(status=429), Fault(status=500))
        probe = Probe(fake)
        assert probe.run().outcomes() == {"rate_limited": 1}
        assert probe.run().outcomes() == {"rate_limited": 1, "http_5xx": 1}
        assert probe.sleeps == [] and len(fake.requests) == 2


def test_503_with_retry_after_is_retried_and_tei_overload_is_rate_limited():
    with FakeProvider("tei") as fake:
        fake.push(Fault(status=503, retry_after="1"), Fault(status=429))
        probe = Probe(fake)
        run = probe.run()
        assert run.outcomes() == {"http_5xx": 1, "rate_limited": 1}  # retried, then overloaded (429)
        assert probe.sleeps == [1.0]


def test_http_4xx_and_5xx():
    with FakeProvider("jina") as fake:
        fake.push(Fault(status=400), Fault(status=404), Fault(status=502))
        probe = Probe(fake)
        for _ in range(3):
            run = probe.run()
        assert run.outcomes() == {"http_4xx": 2, "http_5xx": 1}
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 502


def test_timeout_is_bounded_by_the_configured_timeout():
    with FakeProvider("openai") as fake:
        fake.push(Fault(delay=STALL))
        probe = Probe(fake, timeout="300ms")
        started = time.perf_counter()
        run = probe.run()
        elapsed = time.perf_counter() - started
        assert run.outcomes() == {"timeout": 1}
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 0
        assert 0.3 <= run.latency_sum("timeout") < 0.3 + SLACK
        assert elapsed < 0.3 + SLACK


def test_a_stalled_body_is_a_timeout_not_a_connection_error():
    with FakeProvider("cohere") as fake:
        fake.push(Fault(body_delay=STALL))
        started = time.perf_counter()
        run = Probe(fake, "rerank", timeout="300ms").run()
        assert run.outcomes() == {"timeout": 1}
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 200  # the headers had arrived
        assert time.perf_counter() - started < 0.3 + SLACK


def test_connection_refused_is_connection_error():
    with FakeProvider("ollama") as fake:
        probe = Probe(fake, url=f"http://127.0.0.1:{free_port()}")
        run = probe.run()
        assert run.outcomes() == {"connection_error": 1}
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 0


# --------------------------------------------------------------------------- bad answers


def test_malformed_json_is_bad_response():
    with FakeProvider("cohere") as fake:
        fake.push(Fault(raw_body=b'{"id": "x", "embeddings": {"float": [[0.1, 0.2'))
        run = Probe(fake).run()
        assert run.outcomes() == {"bad_response": 1}
        assert run.failures("malformed") == 1
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 200
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == 0


def test_wrong_dimensions_are_bad_response_and_their_own_metric():
    with FakeProvider("openai", dims=8) as fake:
        probe = Probe(fake, dimensions=8)
        fake.push(Fault(dims=4))
        run = probe.run()
        assert run.outcomes() == {"bad_response": 1}
        assert run.failures("dimension_mismatch") == 1
        assert run.value(EMBEDDING_DIMENSIONS.name) == 4
        assert run.value(EMBEDDING_EXPECTED_DIMENSIONS.name) == 8
        assert run.value(EMBEDDING_DIMENSION_MISMATCH.name) == 1
        run = probe.run()  # the model is back
        assert run.outcomes() == {"bad_response": 1, "success": 1}
        assert run.value(EMBEDDING_DIMENSION_MISMATCH.name) == 0
        # the provider billed the bad answer too
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == sum(b["tokens"] for b in fake.billed)


def test_expected_dimensions_from_a_pgvector_column():
    seen = []

    def source(ref):
        seen.append((ref.database, ref.table, ref.column))
        return 1536

    with FakeProvider("tei", dims=768) as fake:
        probe = Probe(fake, dimension_source=source,
                      dimensions_from={"database": "app", "table": "public.chunks", "column": "embedding"})
        run = probe.run()
        assert seen == [("app", "public.chunks", "embedding")]
        assert run.outcomes() == {"bad_response": 1}
        assert run.value(EMBEDDING_EXPECTED_DIMENSIONS.name) == 1536
        assert run.value(EMBEDDING_DIMENSION_MISMATCH.name) == 1


def test_a_failing_dimension_source_does_not_stop_the_probe(caplog):
    def source(ref):
        raise ConnectionError("database down")

    with FakeProvider("ollama") as fake:
        probe = Probe(fake, dimension_source=source,
                      dimensions_from={"database": "app", "table": "chunks", "column": "embedding"})
        run = probe.run()
        assert run.outcomes() == {"success": 1}
        assert run.value(EMBEDDING_EXPECTED_DIMENSIONS.name) is None
        assert "cannot read dimensions" in caplog.text


@pytest.mark.parametrize("fault,reason", [
    (Fault(nan=True), "non_finite"),  # the JSON token NaN
    (Fault(null=True), "non_finite"),  # null, what a Rust server sends for NaN
    (Fault(zero=True), "zero_vector"),
    (Fault(drop_one=True), "count_mismatch"),
])
def test_invalid_vectors_are_bad_response(fault, reason):
    with FakeProvider("voyage") as fake:
        fake.push(fault)
        run = Probe(fake).run()
        assert run.outcomes() == {"bad_response": 1}
        assert run.failures(reason) == 1
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 0


@pytest.mark.parametrize("provider", ["cohere", "voyage", "jina", "tei"])
def test_reranker_must_rank_the_relevant_document_first(provider):
    with FakeProvider(provider) as fake:
        fake.push(Fault(wrong_top=True), Fault(drop_one=True), Fault(nan=True))
        probe = Probe(fake, "rerank")
        run = probe.run()
        assert run.outcomes() == {"bad_response": 1}
        assert run.failures("wrong_top_document") == 1
        assert run.value(RERANK_RELEVANT_DOCUMENT_RANK.name) == 3
        run = probe.run()
        assert run.failures("score_count_mismatch") == 1
        run = probe.run()
        assert run.failures("non_finite") == 1
        run = probe.run()
        assert run.outcomes() == {"bad_response": 3, "success": 1}
        assert run.value(RERANK_RELEVANT_DOCUMENT_RANK.name) == 1


HUGE = 10 ** 400  # sent as a 401-digit JSON integer: no float can hold it (the decoder keeps an int)
NESTED = b"[" * 5000 + b"]" * 5000  # arrays nested deeper than the JSON decoder's recursion limit


def set_first_value(body, provider: str, value) -> None:
    """Put ``value`` into the first vector element (embeddings) or the first score (re-rank)."""
    if isinstance(body, list):  # TEI: [[...]] or [{index, score}]
        if isinstance(body[0], dict):
            body[0]["score"] = value
        else:
            body[0][0] = value
    elif "embeddings" in body:  # Cohere {float: [[...]]}, Ollama [[...]]
        vectors = body["embeddings"]["float"] if provider == "cohere" else body["embeddings"]
        vectors[0][0] = value
    else:  # OpenAI-style data[].embedding, or results[]/data[] with relevance_score
        item = (body.get("results") or body["data"])[0]
        if "embedding" in item:
            item["embedding"][0] = value
        else:
            item["relevance_score"] = value


@pytest.mark.parametrize("provider,kind", [
    ("openai", "embedding"), ("cohere", "embedding"), ("voyage", "embedding"), ("jina", "embedding"),
    ("tei", "embedding"), ("ollama", "embedding"),
    ("cohere", "rerank"), ("voyage", "rerank"), ("jina", "rerank"), ("tei", "rerank")])
def test_a_number_too_big_for_a_float_is_bad_response(provider, kind):
    with FakeProvider(provider) as fake:
        probe = Probe(fake, kind)
        fake.push(Fault(edit=lambda b: set_first_value(b, provider, HUGE)),
                  Fault(edit=lambda b: set_first_value(b, provider, -HUGE)))
        run = probe.run()
        assert run.outcomes() == {"bad_response": 1}  # counted, not a collector failure
        assert run.failures("non_finite") == 1  # like the float literal 1e400, it is +inf
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 0
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 200
        run = probe.run()
        assert run.outcomes() == {"bad_response": 2} and run.failures("non_finite") == 2
        run = probe.run()
        assert run.outcomes() == {"bad_response": 2, "success": 1}


@pytest.mark.parametrize("raw", [NESTED, b'{"object": "list", "data": ' + NESTED + b"}"],
                         ids=["bare", "inside-an-object"])
def test_deeply_nested_json_is_bad_response(raw):
    with FakeProvider("openai") as fake:
        probe = Probe(fake)
        fake.push(Fault(raw_body=raw))
        run = probe.run()
        assert run.outcomes() == {"bad_response": 1}
        assert run.failures("malformed") == 1
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == 200
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == 0
        assert probe.run().outcomes() == {"bad_response": 1, "success": 1}


def _usage(**usage):
    return lambda body: body.update(usage=usage)


@pytest.mark.parametrize("provider,kind,faults", [
    ("voyage", "embedding", [Fault(edit=_usage(total_tokens=-1000)), Fault(edit=_usage(total_tokens=HUGE)),
                             Fault(edit=_usage(total_tokens=-0.5)), Fault(edit=_usage(total_tokens=1e300))]),
    ("jina", "rerank", [Fault(edit=_usage(total_tokens=-3))]),
    ("ollama", "embedding", [Fault(edit=lambda b: b.update(prompt_eval_count=-12))]),
    ("cohere", "embedding", [Fault(edit=lambda b: b["meta"].update(billed_units={"input_tokens": -9,
                                                                                "image_tokens": -2}))]),
    ("tei", "embedding", [Fault(headers={"x-compute-tokens": "-7"}), Fault(headers={"x-compute-tokens": "1_000"}),
                          Fault(headers={"x-compute-tokens": "9" * 40})]),
])
def test_negative_or_absurd_usage_never_moves_the_counters(provider, kind, faults):
    ledger = SpendLedger()
    with FakeProvider(provider) as fake:
        probe = Probe(fake, kind, ledger=ledger)
        run = probe.run()
        tokens, cost = run.value(MODEL_API_TOKENS_TOTAL.name), run.value(MODEL_API_COST_USD_TOTAL.name)
        assert tokens == fake.billed[0]["tokens"] > 0
        fake.push(*faults)
        for _ in faults:
            run = probe.run()
            # the answer itself is fine; only the usage is unusable, so it counts as not reported
            assert set(run.outcomes()) == {"success"}
            assert run.value(MODEL_API_TOKENS_TOTAL.name) == tokens
            assert run.value(MODEL_API_COST_USD_TOTAL.name) == cost
        assert run.requests("success") == 1 + len(faults)
        run = probe.run()  # a sane answer counts again
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == tokens + fake.billed[-1]["tokens"]
        spent = ledger.spend(["ep"], datetime.now(UTC).date())["day"]
        assert spent >= 0 and spent == pytest.approx(run.value(MODEL_API_COST_USD_TOTAL.name) or 0.0)


def test_negative_search_units_are_ignored_and_openai_needs_sane_usage():
    with FakeProvider("cohere") as fake:
        probe = Probe(fake, "rerank")
        probe.run()
        fake.push(Fault(edit=lambda b: b["meta"].update(billed_units={"search_units": -1})))
        run = probe.run()
        assert run.outcomes() == {"success": 2}
        assert run.value(RERANK_SEARCH_UNITS_TOTAL.name) == 1
    with FakeProvider("openai") as fake:  # OpenAI documents usage as required: unusable usage is a bad answer
        probe = Probe(fake)
        fake.push(Fault(edit=_usage(prompt_tokens=-5, total_tokens=-5)),
                  Fault(edit=_usage(prompt_tokens=HUGE, total_tokens=HUGE)),
                  Fault(edit=_usage(prompt_tokens=7, total_tokens=-5)))
        run = probe.run()
        assert run.outcomes() == {"bad_response": 1} and run.failures("malformed") == 1
        run = probe.run()
        assert run.outcomes() == {"bad_response": 2} and run.value(MODEL_API_TOKENS_TOTAL.name) == 0
        run = probe.run()  # total_tokens unusable, prompt_tokens fine
        assert run.outcomes() == {"bad_response": 2, "success": 1}
        assert run.value(MODEL_API_TOKENS_TOTAL.name) == 7


# --------------------------------------------------------------------------- the daemon keeps serving


def test_every_fault_is_data_not_a_collector_failure():
    store = SnapshotStore()
    with FakeProvider("openai", dims=8) as fake:
        config = Config.model_validate({"endpoints": [
            {"name": "ep", "provider": "openai", "url": fake.url, "model": "text-embedding-3-small",
             "dimensions": 8, "timeout": "300ms"}]})
        (job,), runners = build_api_jobs(config, store, SharedState(), trust_env=False)
        store.expect([job.key])
        faults = [Fault(status=429), Fault(status=500), Fault(status=401), Fault(delay=1.0), Fault(raw_body=b"{"),
                  Fault(dims=3), Fault(nan=True), Fault(edit=lambda b: set_first_value(b, "openai", HUGE)),
                  Fault(raw_body=NESTED), Fault(edit=lambda b: b.update(usage={"prompt_tokens": -5,
                                                                             "total_tokens": -5})),
                  Fault(edit=lambda b: b.update(usage={"prompt_tokens": HUGE, "total_tokens": HUGE})), Fault()]
        fake.push(*faults)
        results = [job.run() for _ in faults]
        assert results == ["success"] * len(faults)
        (entry,) = store.entries()
        assert entry.last_error is None
        families = Families(entry.families)
        labels = {"target": "ep", "provider": "openai", "model": "text-embedding-3-small", "kind": "embedding"}
        counted = {o: families.value(MODEL_API_REQUESTS_TOTAL.name, {**labels, "outcome": o})
                   for o in OUTCOMES}
        assert counted == {"success": 1, "rate_limited": 1, "http_5xx": 1, "http_4xx": 1, "timeout": 1,
                           "connection_error": 0, "bad_response": 7}  # every attempt counted
        for runner in runners:
            runner.close()


def test_a_hanging_endpoint_never_delays_the_others(monkeypatch):
    store = SnapshotStore()
    with FakeProvider("tei") as slow, FakeProvider("tei") as fast:
        slow.default = Fault(delay=3 * STALL)
        config = Config.model_validate({"endpoints": [
            {"name": "slow", "provider": "tei", "url": slow.url, "model": "m", "timeout": f"{STALL:g}s",
             "interval": "60s"},
            {"name": "fast", "provider": "tei", "url": fast.url, "model": "m", "interval": "1s", "jitter": "10ms"}]})
        runtime = Runtime(config, store)
        registry = build_registry(store, 300)
        runtime.start()
        try:
            deadline = time.monotonic() + STALL / 2  # fast needs ~1 s; slow stays in flight for STALL
            fast_runs = 0
            while time.monotonic() < deadline:
                entries = {e.target: e for e in store.entries()}
                fast_runs = entries["fast"].count("success")
                if fast_runs >= 2:
                    break
                time.sleep(0.02)
            entries = {e.target: e for e in store.entries()}
            assert fast_runs >= 2, "the fast endpoint was held up"
            assert entries["slow"].last_run is None, "the slow probe should still be in flight"
            started = time.perf_counter()
            text = generate_latest(registry).decode()
            # a scrape that waited for the in-flight probe would take several seconds
            assert time.perf_counter() - started < 1.5
            assert f'{MODEL_API_PROBE_SUCCESS.name}{{kind="embedding",model="m",provider="tei",target="fast"}} 1.0' \
                in text
        finally:
            slow.stopping.set()  # let the slow answer go, so stopping does not wait for its timeout
            runtime.stop()


# --------------------------------------------------------------------------- secrets

KEY = "sk-live-SECRET-9f8e7d6c5b4a"
FILE_KEY = "jina_SECRET_file_key_1234"
HEADER_SECRET = "proj_SECRET_header_5678"


def test_no_secret_in_logs_metrics_or_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "jina.key"
    key_file.write_text(FILE_KEY + "\n")
    store = SnapshotStore()
    with FakeProvider("openai", api_key=KEY) as openai_fake, FakeProvider("jina", api_key=FILE_KEY) as jina_fake:
        yaml_text = f"""
endpoints:
  - name: openai
    provider: openai
    url: {openai_fake.url}
    model: text-embedding-3-small
    api_key: ${{EMBED_KEY}}
    headers: {{OpenAI-Project: "{HEADER_SECRET}"}}
  - name: jina
    provider: jina
    kind: rerank
    url: {jina_fake.url}
    model: jina-reranker-v2-base-multilingual
    api_key_file: {key_file}
  - name: down
    provider: voyage
    url: http://127.0.0.1:{free_port()}/v1?key={KEY}
    model: voyage-3.5
    api_key: ${{EMBED_KEY}}
"""
        config = parse_config(yaml_text, env={"EMBED_KEY": KEY})
        assert KEY not in repr(config) and FILE_KEY not in repr(config)
        assert FILE_KEY not in str(config.model_dump())
        assert KEY in config.endpoints[2].secrets()  # the key in the URL's query is redacted too
        jobs, runners = build_api_jobs(config, store, SharedState(), trust_env=False)
        store.expect(job.key for job in jobs)
        openai_fake.push(Fault(), Fault(status=401))
        for job in jobs:
            job.run()
            job.run()
        # the request really carried the secrets
        assert openai_fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
        assert openai_fake.requests[0].headers["openai-project"] == HEADER_SECRET
        assert jina_fake.requests[0].headers["authorization"] == f"Bearer {FILE_KEY}"
        # a collector failure whose message contains the key is redacted before it is logged or stored
        job = jobs[0]
        monkey_collect = job.collector.collect

        def leaky(ctx):
            raise RuntimeError(f"boom with {KEY} and {HEADER_SECRET}")

        job.collector.collect = leaky
        assert job.run() == "error"
        job.collector.collect = monkey_collect

        exposition = generate_latest(build_registry(store, 300)).decode()
        errors = " ".join(e.last_error or "" for e in store.entries())
        assert "***" in errors
        for secret in (KEY, FILE_KEY, HEADER_SECRET, KEY[:12]):
            assert secret not in caplog.text
            assert secret not in exposition
            assert secret not in errors
        assert 'outcome="http_4xx",provider="openai"' in exposition
        assert 'outcome="connection_error",provider="voyage"' in exposition
        assert 'kind="rerank",model="jina-reranker-v2-base-multilingual",outcome="success"' in exposition
        for runner in runners:
            runner.close()
