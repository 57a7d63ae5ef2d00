"""/api/status from a snapshot store built by hand: selectors, SLO budget arithmetic, recall curves."""

from __future__ import annotations

from collectors.base import Emitter, MetricSpec
from collectors.model_metrics import MODEL_API_REQUESTS_TOTAL
from monitor.loader import parse_config
from monitor.snapshot import SnapshotStore
from monitor.status import Sample, Samples, build_status

REQUESTS = MetricSpec(MODEL_API_REQUESTS_TOTAL.name, "counter", "Requests.", ("outcome",))
RECALL = MetricSpec("vecmon_recall_mean_ratio", "gauge", "Recall.",
                    ("schema", "table", "index", "filter", "param", "value", "iterative"))
APP = MetricSpec("vecmon_recall_app_setting", "gauge", "App.", ("schema", "table", "index", "param"))


def test_selectors_match_like_promql():
    s = Samples([Sample("m", {"target": "a", "outcome": "success"}, 1),
                 Sample("m", {"target": "b", "outcome": "timeout"}, 2),
                 Sample("m", {"target": "ab", "outcome": "success"}, 4)])
    assert [x.value for x in s.select('m{target="a"}')] == [1]
    assert [x.value for x in s.select('m{target=~"a.*"}')] == [1, 4]
    assert [x.value for x in s.select('m{target=~"a"}')] == [1]  # anchored, as in PromQL
    assert [x.value for x in s.select('m{outcome!="success"}')] == [2]
    assert [x.value for x in s.select('m{target!~"a.*", outcome="timeout"}')] == [2]
    assert [x.value for x in s.select("m")] == [1, 2, 4]


def test_slo_budget_left_and_recall_curve_from_the_snapshot():
    config = parse_config("""
slos:
  - name: availability
    service: embeddings
    objective: 0.99
    sli: {events: {good: 'vecmon_model_api_requests_total{outcome="success"}', total: vecmon_model_api_requests_total}}
  - name: nothing-yet
    service: embeddings
    objective: 0.9
    sli: {events: {bad: 'vecmon_app_probe_requests_total{outcome="timeout"}', total: vecmon_app_probe_requests_total}}
""")
    store = SnapshotStore()
    store.expect([("openai", "model_probe"), ("db", "recall")])
    api = Emitter("openai", [REQUESTS])
    api.add(REQUESTS.name, 995, "success")
    api.add(REQUESTS.name, 5, "timeout")
    store.record_success(("openai", "model_probe"), api.families(), 0.1)
    rec = Emitter("db", [RECALL, APP])
    for value, recall in ((10, 0.5), (40, 0.9), (20, 0.8)):
        rec.add("vecmon_recall_mean_ratio", recall, "public", "docs", "docs_hnsw", "", "ef_search", str(value), "off")
    rec.add("vecmon_recall_mean_ratio", 0.3, "public", "docs", "docs_hnsw", "tenant", "ef_search", "40", "off")
    rec.add("vecmon_recall_app_setting", 40, "public", "docs", "docs_hnsw", "ef_search")
    store.record_success(("db", "recall"), rec.families(), 1.0)
    status = build_status(store, lambda: {"db": "h:5432/app", "openai": "https://api"}, config.slos, now=0)
    availability, nothing = status["slos"]
    assert abs(availability["error_ratio"] - 0.005) < 1e-12
    assert abs(availability["budget_left_ratio"] - 0.5) < 1e-9  # half of the 1% budget spent
    assert availability["span"] == "since vecmon started"
    assert nothing["budget_left_ratio"] is None  # no total series: no data, not total failure
    (index,) = status["vector_indexes"]
    assert [(p["value"], p["recall"]) for p in index["curve"]] == [(10, 0.5), (20, 0.8), (40, 0.9)]
    assert index["recall_now"] == 0.9 and index["app_setting"] == 40 and index["param"] == "ef_search"
    assert index["filters"] == [{"name": "tenant", "iterative": "off", "recall": 0.3, "shortfall_ratio": None}]
    assert {t["name"]: t["status"] for t in status["targets"]} == {"db": "up", "openai": "up"}
