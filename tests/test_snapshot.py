"""Snapshot store and exposition: atomic replacement, merging, staleness, self-metrics."""

from __future__ import annotations

from prometheus_client import generate_latest

from collectors.base import Emitter, MetricSpec
from collectors.self_metrics import (
    BUILD_INFO,
    COLLECTOR_DISABLED,
    COLLECTOR_INTERVAL_SECONDS,
    COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COLLECTOR_RUNS_TOTAL,
    COLLECTOR_SERIES,
    COLLECTOR_STALE,
    COLLECTOR_UP,
    TARGET_UNREACHABLE_REASON,
    UP,
)
from monitor.exposition import build_registry
from monitor.snapshot import SnapshotStore

SPEC = (MetricSpec("vecmon_test_rows", "gauge", "Rows.", ("table",)),
        MetricSpec("vecmon_test_events_total", "counter", "Events.", ()))


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def families(target: str, rows: dict[str, float], events: float = 1):
    emitter = Emitter(target, SPEC)
    for table, value in rows.items():
        emitter.add("vecmon_test_rows", value, table)
    emitter.add("vecmon_test_events_total", events)
    return emitter.families()


def test_families_from_targets_merge_into_one_family():
    store = SnapshotStore(clock=Clock())
    store.expect([("a", "rows"), ("b", "rows")])
    store.record_success(("a", "rows"), families("a", {"t1": 1, "t2": 2}), 0.01)
    store.record_success(("b", "rows"), families("b", {"t1": 5}), 0.02)
    registry = build_registry(store, stale_after=60)
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t2"}) == 2
    assert registry.get_sample_value("vecmon_test_rows", {"target": "b", "table": "t1"}) == 5
    assert registry.get_sample_value("vecmon_test_events_total", {"target": "b"}) == 1
    text = generate_latest(registry).decode()
    assert text.count("# TYPE vecmon_test_rows gauge") == 1
    assert registry.get_sample_value(COLLECTOR_SERIES.name, {"target": "a", "collector": "rows"}) == 3
    assert registry.get_sample_value(UP.name, {"target": "a"}) == 1
    assert registry.get_sample_value(BUILD_INFO.name, {"version": "0.1.0",
                                                           "python_version": __import__("platform").python_version()})


def test_a_new_result_replaces_the_old_one_whole():
    store = SnapshotStore(clock=Clock())
    store.expect([("a", "rows")])
    store.record_success(("a", "rows"), families("a", {"t1": 1, "gone": 2}), 0.01)
    store.record_success(("a", "rows"), families("a", {"t1": 3}), 0.01)
    registry = build_registry(store, stale_after=60)
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) == 3
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "gone"}) is None
    assert registry.get_sample_value(COLLECTOR_RUNS_TOTAL.name,
                                     {"target": "a", "collector": "rows", "result": "success"}) == 2


def test_failing_collector_is_marked_stale_then_dropped():
    clock = Clock()
    store = SnapshotStore(clock=clock)
    store.expect([("a", "rows")])
    store.record_success(("a", "rows"), families("a", {"t1": 1}), 0.01)
    clock.now += 30
    store.record_failure(("a", "rows"), "boom", 0.5)
    registry = build_registry(store, stale_after=60)
    labels = {"target": "a", "collector": "rows"}
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) == 1
    assert registry.get_sample_value(COLLECTOR_STALE.name, labels) == 1
    assert registry.get_sample_value(COLLECTOR_UP.name, labels) == 0
    assert registry.get_sample_value(COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS.name, labels) == 1000
    assert registry.get_sample_value(COLLECTOR_RUNS_TOTAL.name, {**labels, "result": "error"}) == 1
    clock.now += 31  # 61 s after the last success
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) is None
    assert registry.get_sample_value(COLLECTOR_STALE.name, labels) == 0
    assert registry.get_sample_value(COLLECTOR_SERIES.name, labels) == 0
    store.record_success(("a", "rows"), families("a", {"t1": 7}), 0.01)
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) == 7
    assert registry.get_sample_value(COLLECTOR_UP.name, labels) == 1


def test_target_down_and_disabled_and_readiness():
    store = SnapshotStore(clock=Clock())
    store.expect([("a", "rows"), ("a", "statements"), ("b", "rows")])
    assert set(store.not_ready()) == {("a", "rows"), ("a", "statements"), ("b", "rows")}
    store.record_failure(("b", "rows"), "cannot connect", 2.0, target_down=True)
    store.record_disabled(("a", "statements"), "pg_stat_statements is not installed", 0.01)
    store.record_success(("a", "rows"), families("a", {}), 0.01)
    assert store.not_ready() == []
    registry = build_registry(store, stale_after=60)
    assert registry.get_sample_value(UP.name, {"target": "b"}) == 0
    assert registry.get_sample_value(UP.name, {"target": "a"}) == 1
    assert registry.get_sample_value(COLLECTOR_DISABLED.name, {"target": "a", "collector": "statements"}) == 1
    assert registry.get_sample_value(COLLECTOR_UP.name, {"target": "a", "collector": "statements"}) is None


def test_results_of_a_replaced_config_are_ignored():
    store = SnapshotStore(clock=Clock())
    store.expect([("old", "rows")])
    store.expect([("new", "rows")])
    store.record_success(("old", "rows"), families("old", {"t": 1}), 0.01)
    store.record_failure(("old", "rows"), "cannot connect", 1.0, target_down=True)
    registry = build_registry(store, stale_after=60)
    assert registry.get_sample_value("vecmon_test_rows", {"target": "old", "table": "t"}) is None
    assert registry.get_sample_value(UP.name, {"target": "old"}) is None


def test_emitter_rejects_undeclared_metrics_and_skips_bad_values(caplog):
    emitter = Emitter("a", SPEC)
    emitter.add("vecmon_test_rows", None, "t")
    emitter.add("vecmon_test_rows", float("nan"), "t")
    emitter.add("vecmon_test_rows", float("inf"), "t")
    emitter.add("vecmon_test_rows", "12 kB", "odd")  # a SQL result that is not a number
    emitter.add("vecmon_test_rows", "7", "fine")
    assert [s.labels["table"] for f in emitter.families() for s in f.samples] == ["fine"]
    assert "skipped vecmon_test_rows['odd']: expected a number, got '12 kB'" in caplog.text
    try:
        emitter.add("vecmon_undeclared", 1)
    except KeyError as exc:
        assert "not declared" in str(exc)
    else:
        raise AssertionError("undeclared metric accepted")


def test_one_failed_run_of_a_slow_collector_keeps_its_series_for_two_intervals():
    """stale_after (300 s) is shorter than the recall interval (600 s): one failed run must not drop
    every recall series; they stay for max(stale_after, 2 x interval) after the last success."""
    clock = Clock()
    store = SnapshotStore(clock=clock)
    store.expect([("a", "recall"), ("a", "rows")], {("a", "recall"): 600.0, ("a", "rows"): 30.0})
    store.record_success(("a", "recall"), families("a", {"t1": 1}), 0.01)
    store.record_success(("a", "rows"), families("a", {"t2": 2}), 0.01)
    registry = build_registry(store, stale_after=300)
    assert registry.get_sample_value(COLLECTOR_INTERVAL_SECONDS.name, {"target": "a", "collector": "recall"}) == 600
    assert registry.get_sample_value(COLLECTOR_INTERVAL_SECONDS.name, {"target": "a", "collector": "rows"}) == 30
    clock.now += 600
    store.record_failure(("a", "recall"), "timeout", 60.0, timeout=True)  # the next run fails
    store.record_failure(("a", "rows"), "boom", 0.1)
    clock.now += 300  # 900 s after the last success: past stale_after, within two recall intervals
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) == 1
    assert registry.get_sample_value(COLLECTOR_STALE.name, {"target": "a", "collector": "recall"}) == 1
    # a fast collector keeps the stale_after limit
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t2"}) is None
    clock.now += 301  # 1201 s: more than two intervals
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) is None
    assert registry.get_sample_value(COLLECTOR_STALE.name, {"target": "a", "collector": "recall"}) == 0


def _cache(store, stale_after=60):
    from monitor.exposition import ExpositionCache, SnapshotCollector

    return ExpositionCache(SnapshotCollector(store, stale_after))


def test_metrics_are_rendered_once_per_change_and_match_prometheus_client():
    import gzip

    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

    store = SnapshotStore(clock=Clock())
    store.expect([("a", "rows")], {("a", "rows"): 15.0})
    store.record_success(("a", "rows"), families("a", {"t1": 1}), 0.01)
    cache = _cache(store)
    registry = build_registry(store, stale_after=60)
    text, content_type, gzipped = cache.body(None, None)
    assert (text, gzipped) == (generate_latest(registry), False)
    assert content_type.startswith("text/plain; version=0.0.4")
    for _ in range(5):
        assert cache.body(None, None)[0] is text  # the same bytes, not re-rendered
    assert cache.renders == 1
    prometheus_accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                         "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    om, om_type, _ = cache.body(prometheus_accept, None)
    assert om == openmetrics_latest(registry) and om_type.startswith("application/openmetrics-text; version=1.0.0")
    zipped, _, gzipped = cache.body(prometheus_accept, "gzip, deflate")
    assert gzipped and gzip.decompress(zipped) == om
    assert cache.body(None, "identity")[2] is False
    assert cache.renders == 1  # three encodings, one build of the families
    store.record_success(("a", "rows"), families("a", {"t1": 5}), 0.01)
    assert b'vecmon_test_rows{table="t1",target="a"} 5.0' in cache.body(None, None)[0]
    assert cache.renders == 2
    only, _, _ = cache.body(None, None, ["vecmon_test_rows"])
    assert b"vecmon_test_rows{" in only and UP.name.encode() not in only


def test_the_cache_follows_time_based_transitions():
    clock = Clock()
    store = SnapshotStore(clock=clock)
    store.expect([("a", "rows")], {("a", "rows"): 10.0})
    store.record_success(("a", "rows"), families("a", {"t1": 1}), 0.01)
    clock.now += 30
    store.record_failure(("a", "rows"), "boom", 0.5)
    cache = _cache(store, stale_after=60)
    assert b'vecmon_test_rows{table="t1"' in cache.body(None, None)[0]
    clock.now += 30  # exactly at the limit: still served
    assert b'vecmon_test_rows{table="t1"' in cache.body(None, None)[0]
    assert cache.renders == 1
    clock.now += 1  # past it: no store change, yet the series are dropped
    body = cache.body(None, None)[0]
    assert b"vecmon_test_rows{" not in body
    assert b'vecmon_collector_stale{collector="rows",target="a"} 0.0' in body
    assert cache.renders == 2
    cache.collector.stale_after = 600  # a reload changing daemon.stale_after
    assert b'vecmon_test_rows{table="t1"' in cache.body(None, None)[0]
def test_collectors_keep_their_state_while_the_target_is_down():
    clock = Clock()
    store = SnapshotStore(clock=clock)
    store.expect([("a", "rows"), ("a", "statements"), ("a", "broken")])
    store.record_success(("a", "rows"), families("a", {"t1": 1}), 0.01)
    store.record_disabled(("a", "statements"), "pg_stat_statements is not installed", 0.01)
    store.record_failure(("a", "broken"), "boom", 0.01)
    for collector in ("rows", "statements", "broken"):
        for _ in range(2):
            store.record_failure(("a", collector), "cannot connect: Connection refused", 0.01, target_down=True,
                                 reason="refused")
    registry = build_registry(store, stale_after=60)
    value = lambda name, collector: registry.get_sample_value(name, {"target": "a", "collector": collector})  # noqa: E731
    assert registry.get_sample_value(UP.name, {"target": "a"}) == 0
    assert registry.get_sample_value(TARGET_UNREACHABLE_REASON.name, {"target": "a", "reason": "refused"}) == 1
    assert value(COLLECTOR_UP.name, "rows") == 1 and value(COLLECTOR_STALE.name, "rows") == 1
    assert registry.get_sample_value("vecmon_test_rows", {"target": "a", "table": "t1"}) == 1
    assert value(COLLECTOR_DISABLED.name, "statements") == 1 and value(COLLECTOR_UP.name, "statements") is None
    assert value(COLLECTOR_UP.name, "broken") == 0
    assert {e.collector: e.state for e in store.entries()} == dict.fromkeys(("rows", "statements", "broken"),
                                                                            "target-down")
    store.record_disabled(("a", "statements"), "pg_stat_statements is not installed", 0.01)
    assert registry.get_sample_value(UP.name, {"target": "a"}) == 1
    assert registry.get_sample_value(TARGET_UNREACHABLE_REASON.name, {"target": "a", "reason": "refused"}) is None
