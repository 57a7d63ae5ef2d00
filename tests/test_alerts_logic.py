"""Hand-written checks of the alert logic that the generated tests cannot state by themselves:
per-period windows, cadence-derived settings, config checks of SLIs, per-collector staleness,
the same-probe shortfall ratio, threshold and traffic-guard boundaries, and Alertmanager
inhibition on a real Alertmanager 0.25. Rules are generated from a config and run with the real
promtool 2.42; each test states the figure it failed with before the fix in its docstring.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from alerts import conventions as names
from alerts import yamlout
from alerts.alertmanager import alertmanager_config
from alerts.promql import duration
from alerts.render import write_alerting
from alerts.rules import threshold_rules
from alerts.slo import all_slo_rules
from monitor import __version__
from monitor.loader import ConfigError, parse_config
from tests.helpers import require_tool
from tests.webhook import start_alertmanager

DB = """
databases:
  - name: app
    dsn: postgresql://vecmon@db/app
    collectors: {recall: {interval: 10m}}
"""


def slo(period: str = "30d", sli: str = "{events: {bad: 'errors_total', total: 'requests_total'}}",
        objective: float = 0.99, extra: str = "") -> str:
    return DB + f"""
slos:
  - {{name: s, service: svc, objective: {objective}, period: {period}, sli: {sli}{extra}}}
"""


def promtool_test(tmp: Path, config_text: str, tests: list[dict]) -> subprocess.CompletedProcess:
    promtool = require_tool("promtool", "prometheus")
    files = write_alerting(parse_config(config_text), tmp, __version__)
    rule_files = [p for p in files if p.name.endswith(".rules.yml")]
    groups = [g["name"] for p in rule_files for g in yaml.safe_load(p.read_text())["groups"]]
    document = {"rule_files": [str(p) for p in rule_files], "evaluation_interval": "1m",
                "group_eval_order": groups, "tests": tests}
    path = tmp / "hand_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)


def firing(alertname: str, at: str, expected: list[dict]) -> dict:
    return {"eval_time": at, "alertname": alertname, "exp_alerts": expected}


# --------------------------------------------------------------------------- 1. windows per period


@pytest.mark.parametrize("period", ["3d", "7d", "14d", "28d", "30d", "60d", "90d"])
def test_no_burn_window_fires_below_the_budget_and_pages_need_a_factor_of_at_least_one(period):
    """Before: a 7d SLO got factors 3.36, 1.4, 0.7 and 0.233 (tickets at 0.233x the budget, while the
    SLO is met), a 3d SLO a duplicate ratio_rate3d recording (promtool: duplicate sample)."""
    rules = all_slo_rules(parse_config(slo(period)), __version__)[0]
    factors = {b.window.tier + " " + b.window.speed: float(b.factor) for b in rules.burn_alerts}
    assert factors["page fast"] >= 13.44 and factors["page slow"] >= 5.6
    assert min(factors.values()) >= 0.93, factors  # half the budget never crosses a threshold
    records = [r["record"] for r in rules.sli_group["rules"]]
    assert len(records) == len(set(records)), records


def test_seven_day_descriptions_tell_the_truth():
    """Before: '... of the 7d objective: at this rate the budget is gone in 30d 0h 0m 3s' (factor 0.233)."""
    rules = all_slo_rules(parse_config(slo("7d")), __version__)[0]
    descriptions = [b.rule["annotations"]["description"] for b in rules.burn_alerts]
    assert "the whole budget lasts 11h 40m" in descriptions[0]
    assert "the whole budget lasts 7d" in descriptions[-1]
    assert not any("30d" in d for d in descriptions)


# --------------------------------------------------------------------------- 2. cadence


def test_windows_and_no_data_wait_follow_the_sli_interval():
    """Before: 1h/5m whatever the probe's interval and SLOSLIDataMissing for: 15m (a 30m probe
    leaves the 5m rate at 0 for 25 of every 30 minutes: a permanent warning)."""
    config = parse_config(slo(sli="{events: {bad: 'errors_total', total: 'requests_total'}, interval: 30m}"))
    rules = all_slo_rules(config, __version__)[0]
    assert [duration(b.window.short) for b in rules.burn_alerts] == ["90m", "90m", "2h", "6h"]
    assert all(b.window.long >= 2 * b.window.short for b in rules.burn_alerts)
    assert rules.no_data["for"] == "1h" and "ratio_rate90m" in rules.no_data["expr"]
    # the recall probe's own interval is found from the collector exporting the metric
    recall_config = parse_config(slo(sli="{events: {good: 'vecmon_recall_good_cycles_total{target=\"app\"}', "
                                         "total: 'vecmon_recall_cycles_total{target=\"app\"}'}}"))
    recall = all_slo_rules(recall_config, __version__)[0]
    assert recall.interval == 600 and duration(recall.burn_alerts[0].window.short) == "30m"
    assert recall.burn_alerts[0].rule["keep_firing_for"] == "1h"


@pytest.mark.integration
def test_keep_firing_for_holds_a_page_across_a_quiet_short_window(tmp_path):
    """promtool 2.42 accepts keep_firing_for and honours it: a 1h/5m page whose 5m window is clean for
    a few minutes (errors pause for 7 minutes) stays firing. Before: no keep_firing_for, the page
    resolved in the pause and fired again (1 resolve)."""
    config = slo(extra=", alerting: {ticket: false}")
    # 40% errors for 70 minutes, a 7-minute pause, errors again
    errors, total = "0+40x70 2800x7 2800+40x30", "0+100x107"
    page = 'ALERTS{alertname="SLOErrorBudgetBurn", alertstate="firing", long_window="1h"}'
    result = promtool_test(tmp_path, config, [{
        "interval": "1m",
        "input_series": [{"series": "errors_total", "values": errors}, {"series": "requests_total", "values": total}],
        "promql_expr_test": [
            {"expr": f"resets((count({page}) or vector(0))[105m:1m])", "eval_time": "105m",
             "exp_samples": [{"labels": "{}", "value": 0}]},
            {"expr": f"count(count_over_time({page}[105m]))", "eval_time": "105m",
             "exp_samples": [{"labels": "{}", "value": 1}]},
            # the short window really was clean during the pause
            {"expr": names.error_ratio("5m") + '{sloth_id="svc-s"}', "eval_time": "77m",
             "exp_samples": [{"labels": names.error_ratio("5m") + '{sloth_id="svc-s", sloth_service="svc", '
                                        'sloth_slo="s", sloth_window="5m"}', "value": 0}]}]}])
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- 4. SLI config checks


@pytest.mark.parametrize("sli, message", [
    ("{latency: {histogram: 'vecmon_ann_query_duration_seconds{target=\"app\"}', threshold: 150ms}}",
     "latency.threshold: 0.15s is not a bucket bound of vecmon_ann_query_duration_seconds"),
    ("{events: {good: 'vecmon_recall_good_querys_total{target=\"app\"}', total: 'vecmon_recall_queries_total'}}",
     "events.good: vecmon exports no metric vecmon_recall_good_querys_total (did you mean "
     "vecmon_recall_good_queries_total"),
    ("{events: {good: 'vecmon_recall_good_queries_total{tagret=\"app\"}', total: 'vecmon_recall_queries_total'}}",
     "events.good: vecmon_recall_good_queries_total has no label 'tagret'"),
    ("{events: {good: 'vecmon_recall_mean_ratio', total: 'vecmon_recall_queries_total'}}",
     "events.good: vecmon_recall_mean_ratio is a gauge, this SLI needs a counter"),
    ("{probe: {ratio: 'vecmon_model_api_requests_total'}}",
     "probe.ratio: vecmon_model_api_requests_total is a counter, this SLI needs a gauge"),
])
def test_sli_mistakes_are_config_errors_with_their_path(sli, message):
    """Before: accepted; a 150ms threshold or a typo in good: read as 100% errors and paged at once."""
    with pytest.raises(ConfigError) as excinfo:
        parse_config(slo(sli=sli))
    text = str(excinfo.value)
    assert message in text and "slos[0].sli" in text, text


def test_a_bucket_bound_and_foreign_metrics_are_accepted():
    latency = parse_config(slo(sli="{latency: {histogram: 'vecmon_ann_query_duration_seconds{target=\"app\"}', "
                                   "threshold: 100ms}}"))
    assert latency.slos[0].sli.latency.threshold == 0.1  # a bucket bound of vecmon's ANN histogram
    foreign = parse_config(slo(sli="{events: {good: 'http_requests_ok_total{job=\"api\"}', "
                                   "total: 'http_requests_total'}}"))
    assert foreign.slos[0].sli.events.total == "http_requests_total"  # not vecmon's: not checked against its metrics


# --------------------------------------------------------------------------- 6. staleness per collector


@pytest.mark.integration
def test_a_30s_collector_is_stale_after_90s_not_after_the_targets_30m(tmp_path):
    """Before: VecmonCollectorStale on target app fired after 1800 s (3 x the 10m recall interval),
    so a 30 s collector that stopped at t=0 was still not reported at 10m."""
    labels = 'target="app", collector="ann_latency", job="vecmon", instance="v:9765"'
    alerts = 'count(ALERTS{alertname="VecmonCollectorStale", alertstate="firing", collector="ann_latency"})'
    result = promtool_test(tmp_path, DB, [{
        "interval": "1m",
        "input_series": [
            {"series": f"vecmon_collector_last_success_timestamp_seconds{{{labels}}}", "values": "0x15"},
            {"series": f"vecmon_collector_interval_seconds{{{labels}}}", "values": "30x15"}],
        "promql_expr_test": [{"expr": alerts, "eval_time": "1m", "exp_samples": []},
                             {"expr": alerts, "eval_time": "3m", "exp_samples": [{"labels": "{}", "value": 1}]},
                             {"expr": alerts, "eval_time": "10m", "exp_samples": [{"labels": "{}", "value": 1}]}]}])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_collector_failing_is_quiet_while_its_target_is_down(tmp_path):
    """Before: VecmonCollectorFailing fired for every collector of a target that was down, next to
    VecmonTargetDown."""
    result = promtool_test(tmp_path, DB, [{
        "interval": "1m",
        "input_series": [{"series": 'vecmon_collector_up{target="app", collector="tables"}', "values": "0x20"},
                         {"series": 'vecmon_up{target="app"}', "values": "0x20"}],
        "alert_rule_test": [firing("VecmonCollectorFailing", "15m", [])]}])
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- 7. shortfall from one probe


@pytest.mark.integration
def test_shortfall_reads_the_recall_probes_own_rows(tmp_path):
    """Before: the latency probe's 3 random queries (5 rows) over the recall probe's expected rows
    (10): VectorFilteredQueryShortfall fired at 50% while the recall probe's own queries got all 10."""
    config = DB
    labels = 'target="app", schema="public", table="items", index="items_idx", filter="tenant"'
    result = promtool_test(tmp_path, config, [{
        "interval": "1m",
        "input_series": [{"series": f"vecmon_ann_query_returned_rows{{{labels}}}", "values": "5x40"},
                         {"series": f"vecmon_recall_app_returned_rows{{{labels}}}", "values": "10x40"},
                         {"series": f"vecmon_recall_expected_rows{{{labels}}}", "values": "10x40"}],
        "alert_rule_test": [firing("VectorFilteredQueryShortfall", "30m", [])]}])
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- 10. boundaries and guards


@pytest.mark.integration
def test_threshold_alerts_are_silent_exactly_at_their_threshold_and_under_their_traffic_guard(tmp_path):
    """Before: no test at == the threshold and none under the minimum-traffic guards."""
    result = promtool_test(tmp_path, DB, [
        {"name": "at the threshold", "interval": "1m",
         "input_series": [{"series": 'vecmon_pg_connections_used_ratio{target="app"}', "values": "0.9x20"},
                          {"series": 'vecmon_pg_oldest_transaction_age_seconds{target="app", datname="app"}',
                           "values": "300x20"}],
         "alert_rule_test": [firing("PgConnectionsHigh", "15m", []), firing("PgLongRunningTransaction", "15m", [])]},
        {"name": "cache hit ratio 50% on 0.5 block accesses/s (guard: 1/s)", "interval": "1m",
         "input_series": [{"series": 'vecmon_pg_database_blks_hit_total{target="app", datname="app"}',
                           "values": "0+15x40"},
                          {"series": 'vecmon_pg_database_blks_read_total{target="app", datname="app"}',
                           "values": "0+15x40"}],
         "alert_rule_test": [firing("PgCacheHitRatioLow", "35m", [])]}])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_model_api_error_guard_needs_ten_requests(tmp_path):
    config = """
endpoints:
  - {name: openai-embed, kind: embedding, provider: openai, model: text-embedding-3-small, api_key: x}
"""
    labels = 'target="openai-embed", provider="openai", model="m", kind="embedding"'
    result = promtool_test(tmp_path, config, [{
        "interval": "10m",  # 6 probes per 30m, 3 of them failed (50%): under the guard of 10 requests
        "input_series": [{"series": f'vecmon_model_api_requests_total{{{labels}, outcome="success"}}',
                          "values": "0+1x7"},
                         {"series": f'vecmon_model_api_requests_total{{{labels}, outcome="timeout"}}',
                          "values": "0+1x7"}],
        "alert_rule_test": [firing("ModelApiErrorRatioHigh", "60m", [])],
        "promql_expr_test": [{"expr": 'sum(increase(vecmon_model_api_requests_total[30m])) < 10',
                              "eval_time": "60m", "exp_samples": [{"labels": "{}", "value": 6}]}]}])
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- 8. Alertmanager


def _post(url: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.mark.integration
def test_alertmanager_mutes_what_an_outage_explains(tmp_path):
    """Real Alertmanager 0.25 with the generated config: VecmonDown mutes SLOSLIDataMissing and the
    collector alerts of its job; VecmonTargetDown mutes the SLO page of its target. Before:
    VecmonDown inhibited nothing and SLO alerts had no target (one outage paged twice)."""
    config = parse_config(DB + """
slos:
  - {name: recall, service: search, objective: 0.99,
     sli: {events: {good: 'vecmon_recall_good_cycles_total{target="app"}',
                    total: 'vecmon_recall_cycles_total{target="app"}'}}}
alertmanager:
  receiver: hook
  receivers: [{name: hook, webhook: [{url: "http://127.0.0.1:9/hook"}]}]
""")
    rules = all_slo_rules(config, __version__)[0]
    burn, no_data = rules.burn_alerts[0].rule, rules.no_data
    assert burn["labels"]["target"] == "app" and no_data["labels"]["job"] == "vecmon"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yamlout.dump(alertmanager_config(config.alertmanager), ""))
    amtool = require_tool("amtool", "prometheus-alertmanager")
    checked = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    server = start_alertmanager(tmp_path, path)
    try:
        server.wait_ready()
        common = {"team": "search"}
        _post(server.url, [
            {"labels": {"alertname": "VecmonDown", "job": "vecmon", "instance": "v:9765", "severity": "critical",
                        **common}},
            {"labels": {"alertname": "VecmonTargetDown", "target": "app", "job": "vecmon", "severity": "critical"}},
            {"labels": {"alertname": "SLOSLIDataMissing", **{k: v for k, v in no_data["labels"].items()}}},
            {"labels": {"alertname": "VecmonCollectorFailing", "target": "other", "collector": "tables",
                        "job": "vecmon", "severity": "warning"}},
            {"labels": {"alertname": "SLOErrorBudgetBurn", **rules.labels, **burn["labels"]}},
            {"labels": {"alertname": "PgConnectionsHigh", "target": "elsewhere", "severity": "warning"}},
        ])
        deadline = time.monotonic() + 15
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {a["labels"]["alertname"]: a["status"]["state"] for a in server.get_json("/api/v2/alerts")}
            if len(states) == 6 and states.get("SLOErrorBudgetBurn") == "suppressed" \
                    and states.get("SLOSLIDataMissing") == "suppressed":
                break
            time.sleep(0.2)
    finally:
        server.stop()
    assert states == {"VecmonDown": "active", "VecmonTargetDown": "suppressed", "SLOSLIDataMissing": "suppressed",
                      "VecmonCollectorFailing": "suppressed", "SLOErrorBudgetBurn": "suppressed",
                      "PgConnectionsHigh": "active"}, states


@pytest.mark.integration
def test_titles_do_not_depend_on_a_common_summary(tmp_path):
    """Before: title '[FIRING] PgVectorTableDeadTuplesHigh: ' (empty) when a group holds two tables."""
    amtool = require_tool("amtool", "prometheus-alertmanager")
    from alerts.alertmanager import SLACK_TITLE

    # amtool's example data: a group of two alerts without a common summary
    empty = tmp_path / "empty.tmpl"
    empty.write_text("")
    result = subprocess.run([amtool, "template", "render", f"--template.glob={empty}",
                             f"--template.text={SLACK_TITLE}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("(+2 alerts)"), result.stdout


def test_threshold_rules_have_the_ann_error_alert():
    """Before: no rule read vecmon_ann_query_errors_total."""
    rules = {r.name: r for r in threshold_rules(parse_config(DB))}
    assert "vecmon_ann_query_errors_total" in rules["AnnQueryErrorsHigh"].expr
    assert "vecmon_ann_queries_total" in rules["AnnQueryErrorsHigh"].expr


def test_daily_spend_summary_states_the_threshold():
    """Before: 'Budget embeddings is over its daily limit.' at a threshold of 80%."""
    config = parse_config("""
endpoints:
  - {name: e, kind: embedding, provider: openai, model: text-embedding-3-small, api_key: x}
budgets:
  - {name: embeddings, sources: [e], daily_usd: 20}
alerting: {alerts: {DailySpendOverBudget: {threshold: 0.8}}}
""")
    rule = next(r for r in threshold_rules(config) if r.name == "DailySpendOverBudget")
    assert rule.annotations["summary"] == "Budget {{ $labels.target }} has spent 80% of its daily limit."
