"""The public metric names are pinned: code refers to the declared constants, and this test
(with ``tests/metric_names.txt``) is where a rename shows up as a failure, on purpose."""

from pathlib import Path

from collectors.custom_queries import QUERY_METRICS
from collectors.registry import all_collector_classes, api_collector_classes
from collectors.self_metrics import BUILD_INFO, COLLECTOR_UP, SELF_METRICS, UP

NAMES_FILE = Path(__file__).resolve().parent / "metric_names.txt"


def declared_exposed_names() -> set[str]:
    specs = [*SELF_METRICS, *QUERY_METRICS]
    for cls in all_collector_classes() + api_collector_classes():
        specs.extend(cls.METRICS)
    return {spec.exposed_name for spec in specs}


def test_declared_metric_names_match_the_checked_in_list():
    pinned = {line.strip() for line in NAMES_FILE.read_text().splitlines() if line.strip()}
    declared = declared_exposed_names()
    assert declared - pinned == set(), "new metric names: add them to tests/metric_names.txt"
    assert pinned - declared == set(), "metric names gone or renamed: dashboards and alerts break"


def test_the_most_used_names_are_spelled_out():
    # literal on purpose: these are the names users' own alerts and dashboards query
    assert UP.name == "vecmon_up"
    assert COLLECTOR_UP.name == "vecmon_collector_up"
    assert BUILD_INFO.exposed_name == "vecmon_build_info"
    names = declared_exposed_names()
    for name in ("vecmon_recall_mean_ratio", "vecmon_ann_query_duration_seconds",
                 "vecmon_model_api_request_duration_seconds", "vecmon_pg_connections_used_ratio",
                 "vecmon_redis_server_info", "vecmon_query_rows"):
        assert name in names, name
