"""Cost: the price table, probe spend that matches it, the OpenAI costs/usage poller with
restated days, budgets, the config schema of the model-API side, and job wiring."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import requests
import yaml
from fake_providers import MODELS, FakeProvider, Fault, Probe
from helpers import Families, run_collector

from collectors.base import CollectContext
from collectors.cost_metrics import (
    COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COST_API_POLLS_TOTAL,
    COST_BUDGET_LIMIT_USD,
    COST_BUDGET_SOURCES_MISSING,
    COST_BUDGET_SPEND_USD,
    COST_BUDGET_USED_RATIO,
    COST_PROVIDER_EMBEDDING_REQUESTS,
    COST_PROVIDER_EMBEDDING_TOKENS,
    COST_PROVIDER_LINE_ITEM_SPEND_USD,
    COST_PROVIDER_SPEND_USD,
)
from collectors.model_metrics import MODEL_API_COST_USD_TOTAL, MODEL_API_PRICE_USD, RERANK_SEARCH_UNITS_TOTAL
from collectors.provider_costs import BudgetCollector, PriceTable, ProviderCostsCollector, price_cost
from collectors.settings.cost_apis import PriceEntry, Pricing
from collectors.settings.endpoints import DimensionsFrom
from collectors.spend_ledger import SpendLedger
from monitor.config import Config
from monitor.loader import ConfigError, parse_config
from monitor.scheduler import Runtime, build_api_jobs
from monitor.shared import SharedState
from monitor.snapshot import SnapshotStore

ROOT = Path(__file__).resolve().parent.parent
PRICES = yaml.safe_load((ROOT / "collectors" / "data" / "prices.yaml").read_text())["prices"]


def table_price(provider: str, model: str) -> PriceEntry:
    """The newest entry of collectors/data/prices.yaml, read straight from the file."""
    rows = [r for r in PRICES if r["provider"] == provider and r["model"] == model]
    return PriceEntry.model_validate(max(rows, key=lambda r: r["effective"]))


# --------------------------------------------------------------------------- price table


def test_shipped_price_table_is_valid_dated_and_sourced():
    table = PriceTable.load()
    assert len(table.entries) == len(PRICES) >= 10
    keys = set()
    for entry in table.entries:
        assert entry.source and entry.effective <= date(2026, 12, 31)
        assert (entry.provider, entry.model.lower(), entry.effective) not in keys
        keys.add((entry.provider, entry.model.lower(), entry.effective))
    assert table.lookup("openai", "text-embedding-3-small").usd_per_1m_tokens == 0.02
    assert table.lookup("openai", "TEXT-EMBEDDING-3-LARGE").usd_per_1m_tokens == 0.13
    assert table.lookup("cohere", "rerank-v3.5").usd_per_1k_searches == 2.00
    assert table.lookup("voyage", "rerank-2.5").usd_per_1m_tokens == 0.05
    assert table.lookup("tei", "anything").usd_per_1m_tokens == 0
    assert table.lookup("jina", "jina-embeddings-v3") is None


def test_price_lookup_precedence():
    def entry(model, price, effective, provider="openai"):
        return PriceEntry(provider=provider, model=model, usd_per_1m_tokens=price, effective=effective, source="t")

    table = PriceTable(
        [entry("m", 1.0, date(2024, 1, 1)), entry("m", 2.0, date(2025, 1, 1)), entry("m", 9.0, date(2030, 1, 1)),
         entry("*", 5.0, date(2025, 1, 1))],
        [entry("m", 3.0, date(2024, 6, 1))])
    on = date(2026, 1, 1)
    assert table.lookup("openai", "m", on).usd_per_1m_tokens == 3.0  # an override beats a newer table entry
    assert table.lookup("openai", "other", on).usd_per_1m_tokens == 5.0  # wildcard
    no_override = PriceTable(table.entries)
    assert no_override.lookup("openai", "m", on).usd_per_1m_tokens == 2.0  # newest not in the future
    assert no_override.lookup("openai", "m", date(2031, 1, 1)).usd_per_1m_tokens == 9.0
    assert no_override.lookup("openai", "m", date(2024, 3, 1)).usd_per_1m_tokens == 1.0
    assert price_cost(entry("m", 0.02, on), 1_000_000, None) == pytest.approx(0.02)
    searches = PriceEntry(provider="cohere", model="r", usd_per_1k_searches=2.0, effective=on, source="t")
    assert price_cost(searches, 500, 3) == pytest.approx(0.006)
    assert price_cost(searches, 500, None) is None


def test_a_broken_price_file_is_a_located_config_error(tmp_path):
    bad = tmp_path / "prices.yaml"
    bad.write_text("version: 1\nprices:\n  - {provider: openai, model: m, effective: 2026-01-01, source: x}\n")
    with pytest.raises(ConfigError, match=r"pricing: .*exactly one of usd_per_1m_tokens"):
        parse_config(f"pricing: {{file: {bad}}}\n")
    with pytest.raises(ConfigError, match="cannot read price table"):
        parse_config(f"pricing: {{file: {tmp_path / 'missing.yaml'}}}\n")


# --------------------------------------------------------------------------- probe spend


@pytest.mark.parametrize("provider,kind", [("openai", "embedding"), ("cohere", "embedding"), ("cohere", "rerank"),
                                           ("voyage", "embedding"), ("voyage", "rerank"), ("tei", "embedding")])
@pytest.mark.integration
def test_probe_cost_counters_match_the_price_table(provider, kind):
    model = MODELS[(provider, kind)]
    price = table_price(provider, model) if provider != "tei" else table_price("tei", "*")
    ledger = SpendLedger()
    with FakeProvider(provider) as fake:
        probe = Probe(fake, kind, ledger=ledger)
        fake.push(Fault(), Fault(status=500), Fault(), Fault(raw_body=b"not json"), Fault())
        for _ in range(5):
            run = probe.run()
        readable = [b for b in fake.billed if not b.get("unreadable")]
        tokens = sum(b.get("tokens", 0) for b in readable)
        searches = sum(b.get("search_units", 0) for b in readable)
        assert len(fake.billed) == 4 and len(readable) == 3  # the 500 is not billed; malformed JSON unreadable
        if price.usd_per_1m_tokens is not None:
            expected = tokens * price.usd_per_1m_tokens / 1e6
            assert run.value(MODEL_API_PRICE_USD.name, unit="million_tokens") == price.usd_per_1m_tokens
        else:
            expected = searches * price.usd_per_1k_searches / 1e3
            assert run.value(MODEL_API_PRICE_USD.name, unit="thousand_searches") == price.usd_per_1k_searches
            assert run.value(RERANK_SEARCH_UNITS_TOTAL.name) == searches == 3
        assert run.value(MODEL_API_COST_USD_TOTAL.name) == pytest.approx(expected, rel=1e-12)
        today = datetime.now(UTC).date()
        assert ledger.spend(["ep"], today)["day"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.integration
def test_price_overrides_and_pricing_provider():
    overrides = [PriceEntry(provider="openai", model="BAAI/bge-small-en-v1.5", usd_per_1m_tokens=1.0,
                            effective=date(2020, 1, 1), source="contract")]
    with FakeProvider("openai_compatible") as fake:
        probe = Probe(fake, prices=PriceTable(PriceTable.load().entries, overrides), pricing_provider="openai")
        run = probe.run()
        assert run.value(MODEL_API_COST_USD_TOTAL.name) == pytest.approx(fake.billed[0]["tokens"] * 1.0 / 1e6)
    with FakeProvider("openai_compatible") as fake:
        run = Probe(fake).run()  # unpriced: no cost series rather than a wrong 0
        assert run.value(MODEL_API_COST_USD_TOTAL.name) is None


# --------------------------------------------------------------------------- OpenAI costs / usage API

ADMIN = "sk-admin-SECRET-4242"
TODAY = date(2026, 3, 3)
NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC).timestamp()
EMBED = "text-embedding-3-small, input"


def cost_fake() -> FakeProvider:
    fake = FakeProvider("openai", admin_key=ADMIN, today=TODAY, page_size=2)
    for day in (25, 26, 27, 28):
        fake.cost_days[date(2026, 2, day)] = [(EMBED, 1.0)]
    fake.cost_days[date(2026, 3, 1)] = [(EMBED, 0.5), ("gpt-4o-2024-08-06, input", 2.0)]
    fake.cost_days[date(2026, 3, 2)] = [(EMBED, 0.25)]
    fake.cost_days[date(2026, 3, 3)] = [(EMBED, 0.125)]
    fake.usage_days[date(2026, 3, 2)] = [("text-embedding-3-small", 1000, 10)]
    fake.usage_days[date(2026, 3, 3)] = [("text-embedding-3-small", 500, 5), ("text-embedding-3-large", 200, 2)]
    return fake


class CostPoller:
    def __init__(self, fake: FakeProvider, ledger: SpendLedger, **overrides):
        from collectors.settings.cost_apis import CostApiTarget

        self.target = CostApiTarget.model_validate({"name": "org", "url": fake.url, "api_key": ADMIN, **overrides})
        session = requests.Session()
        session.trust_env = False
        self.collector = ProviderCostsCollector(session=session, ledger=ledger, clock=lambda: NOW)
        self.state: dict = {}

    def run(self) -> Families:
        return Families(self.collector.collect(CollectContext("org", self.target, state=self.state)))


def spend(families: Families, period: str, line_item: str | None = None) -> float | None:
    if line_item is None:
        return families.value(COST_PROVIDER_SPEND_USD.name,
                              {"target": "org", "provider": "openai", "period": period})
    return families.value(COST_PROVIDER_LINE_ITEM_SPEND_USD.name,
                          {"target": "org", "provider": "openai", "period": period, "line_item": line_item})


@pytest.mark.integration
def test_cost_api_poll_reads_daily_buckets_with_pagination():
    ledger = SpendLedger()
    with cost_fake() as fake:
        families = CostPoller(fake, ledger).run()
        costs = [r for r in fake.requests if r.path == "/v1/organization/costs"]
        usage = [r for r in fake.requests if r.path == "/v1/organization/usage/embeddings"]
        assert len(costs) == 4 and len(usage) == 4  # 7 days, 2 buckets per page
        first = costs[0]
        start = int(datetime(2026, 2, 25, tzinfo=UTC).timestamp())  # lookback 7 days < month start
        assert first.query == {"start_time": [str(start)], "bucket_width": ["1d"], "limit": ["7"],
                               "group_by": ["line_item"]}
        assert first.headers["authorization"] == f"Bearer {ADMIN}"
        assert [r.query.get("page") for r in costs] == [None, ["2"], ["4"], ["6"]]
        assert usage[0].query["group_by"] == ["model"] and "end_time" not in usage[0].query
    assert spend(families, "day") == pytest.approx(0.125)
    assert spend(families, "month") == pytest.approx(2.875)  # February days are not this month
    assert spend(families, "month", EMBED) == pytest.approx(0.875)
    assert spend(families, "month", "gpt-4o-2024-08-06, input") == pytest.approx(2.0)
    labels = {"target": "org", "provider": "openai", "model": "text-embedding-3-small"}
    assert families.value(COST_PROVIDER_EMBEDDING_TOKENS.name, {**labels, "period": "month"}) == 1500
    assert families.value(COST_PROVIDER_EMBEDDING_REQUESTS.name, {**labels, "period": "day"}) == 5
    assert families.value(COST_API_POLLS_TOTAL.name,
                          {"target": "org", "provider": "openai", "api": "costs", "outcome": "success"}) == 1
    assert families.value(COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS.name,
                          {"target": "org", "provider": "openai", "api": "usage"}) == NOW
    assert ledger.spend(["org"], TODAY) == pytest.approx({"day": 0.125, "month": 2.875})


@pytest.mark.integration
def test_restated_days_replace_earlier_values_and_failures_keep_the_last_good_ones():
    ledger = SpendLedger()
    with cost_fake() as fake:
        poller = CostPoller(fake, ledger)
        poller.run()
        fake.cost_days[date(2026, 3, 2)] = [(EMBED, 0.75)]  # the provider restated yesterday
        families = poller.run()
        assert spend(families, "month") == pytest.approx(3.375)  # replaced, not added
        fake.push(Fault(status=500))
        families = poller.run()
        assert families.value(COST_API_POLLS_TOTAL.name,
                              {"target": "org", "provider": "openai", "api": "costs", "outcome": "http_5xx"}) == 1
        assert spend(families, "month") == pytest.approx(3.375)  # still served
        fake.push(Fault(status=401))
        families = poller.run()
        assert families.value(COST_API_POLLS_TOTAL.name,
                              {"target": "org", "provider": "openai", "api": "costs", "outcome": "http_4xx"}) == 1
    assert ledger.spend(["org"], TODAY)["month"] == pytest.approx(3.375)


def _first_bucket(**changes):
    return Fault(edit=lambda page: page["data"][0].update(changes))


def _first_amount(value):
    return Fault(edit=lambda page: page["data"][0]["results"][0]["amount"].update(value=value))


@pytest.mark.parametrize("fault", [
    _first_bucket(start_time=10 ** 400),  # OverflowError in datetime.fromtimestamp
    _first_bucket(start_time=10 ** 18),  # OSError (beyond time_t)
    _first_bucket(start_time=-10 ** 15),  # ValueError (year out of range)
    _first_amount(10 ** 400),  # OverflowError in float()
    _first_amount(float("nan")),  # the JSON token NaN would poison the ledger and budgets
    _first_amount("NaN"),  # strings are read as decimals, but only finite ones
    _first_amount("12 USD"),
    Fault(raw_body=b'{"object": "page", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}"),  # RecursionError
], ids=["start-overflow", "start-beyond-time_t", "start-before-year-1", "amount-overflow", "amount-nan",
        "amount-string-nan", "amount-string-with-unit", "nested-5000"])
@pytest.mark.integration
def test_an_unparseable_cost_answer_is_a_failed_poll_not_a_collector_failure(fault):
    ledger = SpendLedger()
    with cost_fake() as fake:
        poller = CostPoller(fake, ledger)
        poller.run()
        fake.push(fault)  # the first costs page of the second poll
        families = poller.run()  # does not raise

        def polls(api, outcome):
            return families.value(COST_API_POLLS_TOTAL.name,
                                  {"target": "org", "provider": "openai", "api": api, "outcome": outcome})

        assert polls("costs", "bad_response") == 1 and polls("costs", "success") == 1
        assert polls("usage", "success") == 2  # the other API is polled as usual
        assert spend(families, "month") == pytest.approx(2.875)  # the last good values are still served
        assert families.value(COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS.name,
                              {"target": "org", "provider": "openai", "api": "costs"}) == NOW
    assert ledger.spend(["org"], TODAY) == pytest.approx({"day": 0.125, "month": 2.875})


@pytest.mark.integration
def test_an_unparseable_usage_answer_is_a_failed_usage_poll():
    with cost_fake() as fake:
        poller = CostPoller(fake, SpendLedger())
        # 4 costs pages, then the first usage page carries a token count no float can hold
        fake.push(Fault(), Fault(), Fault(), Fault(),
                  Fault(edit=lambda page: page["data"][0]["results"].append(
                      {"object": "organization.usage.embeddings.result", "input_tokens": 10 ** 400,
                       "num_model_requests": 1, "model": "text-embedding-3-small"})))
        families = poller.run()
        labels = {"target": "org", "provider": "openai"}
        for api, outcome in (("usage", "bad_response"), ("costs", "success")):
            assert families.value(COST_API_POLLS_TOTAL.name, {**labels, "api": api, "outcome": outcome}) == 1
        assert families.samples(COST_PROVIDER_EMBEDDING_TOKENS.name) == []  # nothing good to serve yet
        assert spend(families, "month") == pytest.approx(2.875)


@pytest.mark.integration
def test_amounts_sent_as_numeric_strings_are_read_like_numbers():
    """The live costs API sent ``amount.value`` as strings for months in 2026 (openai-java#771)."""
    ledger = SpendLedger()
    with cost_fake() as fake:
        fake.amounts_as_strings = True
        fake.cost_days[date(2026, 3, 3)] = [(EMBED, 0.125), ("gpt-4o-2024-08-06, input", 12.5), ("free", 0.0)]
        page = requests.get(f"{fake.url}/organization/costs", headers={"Authorization": f"Bearer {ADMIN}"},
                            params={"start_time": int(datetime(2026, 3, 3, tzinfo=UTC).timestamp())},
                            timeout=5).json()
        assert [r["amount"]["value"] for r in page["data"][0]["results"]] == ["0.125", "12.50", "0E-6176"]
        poller = CostPoller(fake, ledger)
        families = poller.run()
    assert families.value(COST_API_POLLS_TOTAL.name,
                          {"target": "org", "provider": "openai", "api": "costs", "outcome": "success"}) == 1
    assert spend(families, "day") == pytest.approx(12.625)
    assert spend(families, "month") == pytest.approx(2.75 + 12.625)
    assert spend(families, "day", "gpt-4o-2024-08-06, input") == pytest.approx(12.5)
    assert spend(families, "day", "free") == 0
    assert ledger.spend(["org"], TODAY) == pytest.approx({"day": 12.625, "month": 2.75 + 12.625})


@pytest.mark.parametrize("headers,waited", [({"retry_after_ms": "250"}, 0.25),
                                            ({"retry_after_ms": "500", "retry_after": "30"}, 0.5),
                                            ({"retry_after": "1"}, 1.0)])
@pytest.mark.integration
def test_a_rate_limited_cost_poll_honours_retry_after_ms_first(headers, waited):
    with cost_fake() as fake:
        poller = CostPoller(fake, SpendLedger(), timeout="5s")
        sleeps: list[float] = []
        poller.collector.sleep = sleeps.append
        fake.push(Fault(status=429, **headers))
        families = poller.run()
    assert sleeps == [waited]
    assert families.value(COST_API_POLLS_TOTAL.name,
                          {"target": "org", "provider": "openai", "api": "costs", "outcome": "success"}) == 1
    assert spend(families, "month") == pytest.approx(2.875)


@pytest.mark.integration
def test_cost_api_without_line_items_or_usage():
    with cost_fake() as fake:
        families = CostPoller(fake, SpendLedger(), line_items=False, usage=False, lookback_days=1).run()
        assert all(r.path == "/v1/organization/costs" for r in fake.requests)
        assert "group_by" not in fake.requests[0].query
        assert fake.requests[0].query["limit"] == ["3"]  # the month so far
        assert spend(families, "month") == pytest.approx(2.875)
        assert families.samples(COST_PROVIDER_LINE_ITEM_SPEND_USD.name) == []


# --------------------------------------------------------------------------- budgets


def test_budgets_combine_cost_api_and_probe_spend():
    ledger = SpendLedger()
    ledger.replace("org", date(2026, 2, 25), {date(2026, 3, 1): 2.0, date(2026, 3, 3): 0.5}, TODAY)
    ledger.add("probe", 0.25, TODAY)
    ledger.add("probe", 9.0, date(2026, 2, 28))  # last month
    from collectors.settings.cost_apis import Budget

    budget = Budget.model_validate({"name": "b", "sources": ["org", "probe", "never"], "daily_usd": 1.0,
                                    "monthly_usd": 10})
    families = Families(BudgetCollector(ledger, clock=lambda: NOW).collect(CollectContext("b", budget)))

    def value(name, period=None):
        return families.value(name, {"target": "b", **({"period": period} if period else {})})

    assert value(COST_BUDGET_SPEND_USD.name, "day") == pytest.approx(0.75)
    assert value(COST_BUDGET_SPEND_USD.name, "month") == pytest.approx(2.75)
    assert value(COST_BUDGET_LIMIT_USD.name, "month") == 10
    assert value(COST_BUDGET_USED_RATIO.name, "day") == pytest.approx(0.75)
    assert value(COST_BUDGET_USED_RATIO.name, "month") == pytest.approx(0.275)
    assert value(COST_BUDGET_SOURCES_MISSING.name) == 1


# --------------------------------------------------------------------------- config and wiring

EXAMPLE = """
databases:
  - name: app
    dsn: postgresql://vecmon@db.internal/app
endpoints:
  - name: openai-embed
    provider: openai
    model: text-embedding-3-small
    api_key: ${OPENAI_API_KEY}
    dimensions_from: {database: app, table: public.chunks, column: embedding}
    interval: 60s
    timeout: 10s
  - name: vllm-embed
    provider: openai_compatible
    url: http://vllm.internal:8000/v1
    model: BAAI/bge-m3
    dimensions: 1024
  - name: azure-embed
    provider: azure_openai
    url: https://myres.openai.azure.com
    deployment: embed-prod
    api_version: "2024-10-21"
    model: text-embedding-3-large
    pricing_provider: openai
    api_key_file: azure.key
  - name: cohere-rerank
    provider: cohere
    kind: rerank
    model: rerank-v3.5
    api_key: ${COHERE_API_KEY}
    probe:
      query: What is the capital of France?
      documents: [Paris is the capital of France., Berlin is in Germany.]
      relevant: 0
  - name: tei-rerank
    provider: tei
    kind: rerank
    url: http://tei-rerank.internal:8080
    model: BAAI/bge-reranker-base
  - name: ollama-embed
    provider: ollama
    model: nomic-embed-text
    dimensions: 768
cost_apis:
  - name: openai-org
    provider: openai
    api_key: ${OPENAI_ADMIN_KEY}
    interval: 1h
    lookback_days: 7
budgets:
  - name: embeddings
    sources: [openai-org, cohere-rerank]
    daily_usd: 20
    monthly_usd: 400
redis:
  - name: embedding-cache
    host: redis.internal
    password: ${REDIS_PASSWORD}
    key_prefixes: ["emb:", "rerank:"]
pricing:
  prices:
    - {provider: cohere, model: rerank-v3.5, usd_per_1k_searches: 1.0, effective: 2026-01-01, source: contract}
"""
ENV = {"OPENAI_API_KEY": "sk-a", "COHERE_API_KEY": "co-b", "OPENAI_ADMIN_KEY": "sk-admin-c", "REDIS_PASSWORD": "r"}


def test_example_config_parses_and_builds_jobs(tmp_path, monkeypatch):
    (tmp_path / "azure.key").write_text("az-key-value\n")
    monkeypatch.chdir(tmp_path)
    config = parse_config(EXAMPLE, env=ENV)
    assert config.endpoints[2].key() == "az-key-value"
    assert config.endpoints[3].probe.documents[1] == "Berlin is in Germany."
    assert config.cost_apis[0].interval_for("provider_costs") == 3600
    assert config.endpoints[0].timeout_for("model_probe") == 10
    assert 0 < config.endpoints[0].jitter_for("model_probe") <= 6
    runtime = Runtime(config, SnapshotStore())
    keys = runtime.keys()
    for key in [("openai-embed", "model_probe"), ("cohere-rerank", "model_probe"), ("openai-org", "provider_costs"),
                ("embeddings", "budget"), ("embedding-cache", "redis_cache")]:
        assert key in keys
    runtime.stop()


@pytest.mark.parametrize("snippet,message", [
    ("endpoints: [{name: e, provider: openai, model: m, api_key: x, api_key_file: f}]", "api_key_file"),
    ("endpoints: [{name: e, provider: openai, model: m, api_key_file: /nonexistent/key}]",
     "endpoints[0].api_key_file: cannot read secret file"),
    ("endpoints: [{name: e, provider: tei, model: m}]", "needs url"),
    ("endpoints: [{name: e, provider: openai, model: m, kind: rerank}]", "no re-ranker"),
    ("endpoints: [{name: e, provider: openai, model: m, dimensions: 3, dimensions_from: "
     "{database: a, table: t, column: c}}]", "not both"),
    ("endpoints: [{name: e, provider: openai, model: m, dimensions_from: {database: a, table: t, column: c}}]",
     "is not a databases[] target"),
    ("endpoints: [{name: e, provider: openai, model: m, probe: {documents: [a, b], relevant: 5}}]", "relevant=5"),
    ("endpoints: [{name: e, provider: openai, model: m, colour: red}]", "unknown key"),
    ("budgets: [{name: b, sources: [nope], daily_usd: 1}]", "unknown source"),
    ("budgets: [{name: b, sources: [x]}]", "daily_usd and/or monthly_usd"),
    ("cost_apis: [{name: c}]", "admin key"),
    ("databases: [{name: x, dsn: 'postgresql://h/d'}]\nredis: [{name: x}]", "duplicate target name 'x'"),
    ("redis: [{name: r, password: a, password_file: b}]", "password_file"),
    ("endpoints: [{name: e, provider: tei, model: m, url: 'ftp://h/'}]", "url: invalid URL: must start with http"),
    ("cost_apis: [{name: c, api_key: k, url: 'http://127.0.0.1:99999/v1'}]",
     "cost_apis[0].url: invalid URL: port out of range"),
])
def test_config_errors_are_reported(snippet, message):
    with pytest.raises(ConfigError) as info:
        parse_config(snippet)
    assert message in str(info.value)


URL_SECRET = "gw-SECRET-key-8675309"


@pytest.mark.parametrize("url,message", [
    (f"http://127.0.0.1:99999/v1?key={URL_SECRET}", "invalid URL: port out of range"),
    (f"https://u:{URL_SECRET}@h:0/v1", "invalid URL: port out of range"),
    (f"http://h:80x/v1?key={URL_SECRET}", "invalid URL: port is not a number"),
    (f"http://[::1/v1?key={URL_SECRET}", "invalid URL: malformed host"),
    (f"http://:8080/v1?key={URL_SECRET}", "invalid URL: no host name"),
    (f"file:///v1?key={URL_SECRET}", "invalid URL: must start with http:// or https://"),
], ids=["port-99999", "port-0", "port-not-a-number", "bad-ipv6-host", "no-host", "file-scheme"])
def test_urls_are_validated_without_echoing_them(url, message):
    for section in ("endpoints: [{name: e, provider: openai_compatible, model: m, url: '%s'}]",
                    "cost_apis: [{name: c, api_key: k, url: '%s'}]"):
        with pytest.raises(ConfigError) as info:
            parse_config(section % url)
        assert message in str(info.value)
        assert URL_SECRET not in str(info.value)
    for ok in (f"http://127.0.0.1:65535/v1?key={URL_SECRET}", "https://[::1]:8443", "HTTPS://api.example.com/v1"):
        config = parse_config(f"endpoints: [{{name: e, provider: openai_compatible, model: m, url: '{ok}'}}]")
        assert config.endpoints[0].url == ok


def test_runners_own_sessions_and_know_secrets():
    config = Config.model_validate({
        "endpoints": [{"name": "e", "provider": "openai", "model": "m", "api_key": "sk-1",
                       "headers": {"OpenAI-Project": "proj-2"}, "url": "https://gw/v1?code=gateway-3"}],
        "cost_apis": [{"name": "c", "api_key": "sk-admin-4"}],
        "redis": [{"name": "r", "password": "pw-5"}],
        "budgets": [{"name": "b", "sources": ["e"], "monthly_usd": 1}]})
    jobs, runners = build_api_jobs(config, SnapshotStore(), SharedState(), prices=PriceTable())
    assert [j.key for j in jobs] == [("e", "model_probe"), ("c", "provider_costs"), ("b", "budget"),
                                     ("r", "redis_cache")]
    assert runners[0].secrets == ["sk-1", "proj-2", "gateway-3"]
    assert runners[0].redact("x sk-1 gateway-3") == "x *** ***"
    assert runners[1].secrets == ["sk-admin-4"] and runners[3].secrets == ["pw-5"]
    for runner in runners:
        runner.close()
    assert Pricing().file is None


def test_dimensions_from_come_from_the_vector_discovery(db18):
    db18.execute("CREATE TABLE public.chunks (id int, embedding vector(384), h halfvec(96), anydim vector)")
    db18.execute("GRANT SELECT ON public.chunks TO vecmon_monitor")
    config = Config.model_validate({
        "databases": [{"name": "app", "dsn": db18.monitor_dsn}],
        "endpoints": [{"name": "e", "provider": "openai", "model": "m", "api_key": "k",
                       "dimensions_from": {"database": "app", "table": "public.chunks", "column": "embedding"}}]})
    shared = SharedState()
    jobs, runners = build_api_jobs(config, SnapshotStore(), shared, prices=PriceTable())
    resolve = jobs[0].collector.default_dimension_source
    ref = config.endpoints[0].dimensions_from
    assert resolve(ref) is None  # discovery has not run on "app" yet
    run_collector(db18.monitor_dsn, "vector_indexes", shared=shared, name="app")
    assert resolve(ref) == 384
    assert resolve(DimensionsFrom(database="app", table="chunks", column="h")) == 96
    assert resolve(DimensionsFrom(database="app", table="chunks", column="anydim")) is None  # unconstrained
    assert resolve(DimensionsFrom(database="app", table="missing", column="embedding")) is None
    for runner in runners:
        runner.close()
    shared.close()
