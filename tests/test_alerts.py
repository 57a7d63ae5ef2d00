"""Alerting generator: rule files, promtool unit tests, Alertmanager config, config validation, docs.

The generated files are checked with the real tools of Debian bookworm: ``promtool check rules
--lint=all --lint-fatal`` and ``promtool test rules`` (Prometheus 2.42), ``amtool check-config``
and ``amtool config routes test`` (Alertmanager 0.25). In CI (``CI`` set) a missing tool fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from alerts.catalog import ALERTS, CATALOG
from alerts.docs import alert_reference
from alerts.promql import duration, humanize, humanize_1024, humanize_duration, humanize_percentage
from alerts.render import write_alerting
from alerts.rules import threshold_rules
from alerts.slo import TIERS, all_slo_rules
from monitor import __version__
from monitor.loader import ConfigError, load_config, parse_config
from tests.helpers import metric_names
from tests.webhook import require_binary

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "alerting-example.yaml"

# Metrics the rules read that no collector declares yet: metric -> the collector expected to export it.
# test_pending_metrics_are_still_pending fails as soon as one is declared, so this list stays honest.

MINIMAL = """
databases:
  - name: app
    dsn: postgresql://vecmon@db/app
"""


def generate(config, out: Path) -> dict[str, Path]:
    return {str(p.relative_to(out)): p for p in write_alerting(config, out, __version__)}


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[object, Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("generated")
    config = load_config(EXAMPLE)
    return config, out, generate(config, out)


def rules_of(path: Path) -> list[dict]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


# --------------------------------------------------------------------------- files and determinism


def test_example_config_writes_every_file_deterministically(example, tmp_path):
    config, out, files = example
    expected = {"prometheus/vecmon-alerts.rules.yml", "prometheus/vecmon-alerts_test.yml",
                "alertmanager/alertmanager.yml"}
    expected |= {f"prometheus/vecmon-slo-{slo.id}{suffix}" for slo in config.slos
                 for suffix in (".rules.yml", "_test.yml")}
    assert set(files) == expected
    again = generate(load_config(EXAMPLE), tmp_path)
    for name, path in files.items():
        assert again[name].read_bytes() == path.read_bytes(), f"{name} differs between two runs"
    alerts = [r["alert"] for r in rules_of(files["prometheus/vecmon-alerts.rules.yml"])]
    # every catalog alert applies to the example, except the one it disables
    assert sorted(alerts) == sorted(set(ALERTS) - {"PgReplicationLagHigh"})


def test_minimal_database_config_gets_database_and_self_alerts_only(tmp_path):
    files = generate(parse_config(MINIMAL), tmp_path)
    assert set(files) == {"prometheus/vecmon-alerts.rules.yml", "prometheus/vecmon-alerts_test.yml"}
    alerts = {r["alert"] for r in rules_of(files["prometheus/vecmon-alerts.rules.yml"])}
    assert {"VecmonDown", "VecmonTargetDown", "VecmonCollectorFailing", "VecmonCollectorStale", "PgConnectionsHigh",
            "PgCacheHitRatioLow", "PgWalSizeHigh", "PgLongRunningTransaction"} <= alerts
    assert not alerts & {"EmbeddingLatencyHigh", "RerankLatencyHigh", "ModelApiErrorRatioHigh",
                         "EmbeddingDimensionMismatch", "DailySpendOverBudget"}
    # no config at all: vecmon itself can still be down
    empty = generate(parse_config(""), tmp_path / "empty")
    assert [r["alert"] for r in rules_of(empty["prometheus/vecmon-alerts.rules.yml"])] == ["VecmonDown"]


def test_files_for_removed_slos_are_deleted(tmp_path):
    generate(load_config(EXAMPLE), tmp_path)
    assert list((tmp_path / "prometheus").glob("vecmon-slo-*"))
    generate(parse_config(MINIMAL), tmp_path)
    assert not list((tmp_path / "prometheus").glob("vecmon-slo-*"))
    assert not (tmp_path / "alertmanager" / "alertmanager.yml").exists()


def test_every_alert_has_severity_summary_description_runbook_and_for(example):
    config, out, files = example
    for path in [p for n, p in files.items() if n.endswith(".rules.yml")]:
        for rule in rules_of(path):
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["labels"]["service"], rule["alert"]
            assert rule["labels"]["team"] == "search"  # alerting.labels
            assert "for" in rule
            annotations = rule["annotations"]
            assert set(annotations) == {"summary", "description", "runbook_url"}
            assert annotations["runbook_url"] == (
                "https://git.example.org/search/vecmon/blob/main/docs/alerts.md#" + rule["alert"].lower())
            assert "<" not in annotations["description"].replace("{{", "").replace("}}", "")  # placeholders filled


def test_overrides_change_threshold_for_severity_and_labels(tmp_path):
    config = parse_config(MINIMAL + """
alerting:
  labels: {team: db}
  alerts:
    PgConnectionsHigh: {threshold: 0.75, for: 0s, severity: critical, labels: {service: dba}}
    PgLongRunningTransaction: {threshold: 90s}
    PgWalSizeHigh: {enabled: false}
""")
    rules = {r["alert"]: r for r in rules_of(generate(config, tmp_path)["prometheus/vecmon-alerts.rules.yml"])}
    connections = rules["PgConnectionsHigh"]
    assert connections["expr"] == "vecmon_pg_connections_used_ratio > 0.75"
    assert connections["for"] == "0s"
    assert connections["labels"] == {"severity": "critical", "service": "dba", "team": "db"}
    assert "(threshold 75%)" in connections["annotations"]["description"]
    assert rules["PgLongRunningTransaction"]["expr"].endswith("> 90")
    assert "(threshold 90s)" in rules["PgLongRunningTransaction"]["annotations"]["description"]
    assert "PgWalSizeHigh" not in rules


def test_stale_threshold_follows_each_targets_interval():
    config = parse_config("""
daemon: {stale_after: 2m}
databases:
  - {name: fast, dsn: postgresql://x@db/a, interval: 10s,
     collectors: {vector_indexes: {enabled: false}, recall: {enabled: false}, ann_latency: {enabled: false},
                  vector_freshness: {enabled: false}, vector_bloat: {enabled: false},
                  wraparound_tables: {enabled: false}}}
  - {name: slow, dsn: postgresql://x@db/b, interval: 5m,
     collectors: {vector_indexes: {enabled: false}, recall: {enabled: false}, ann_latency: {enabled: false},
                  vector_freshness: {enabled: false}, vector_bloat: {enabled: false}}}
""")
    rule = next(r for r in threshold_rules(config) if r.name == "VecmonCollectorStale")
    # per collector: 3 x its own interval (vecmon_collector_interval_seconds); series of a vecmon
    # without that gauge fall back to fast: max(stale_after 2m, 3 x 10s); slow: 3 x 5m
    assert rule.expr.startswith("(time() - vecmon_collector_last_success_timestamp_seconds)\n"
                                "> 3 * vecmon_collector_interval_seconds\nor\n")
    assert 'target=~"fast"} unless on (target, collector) vecmon_collector_interval_seconds)) > 120' in rule.expr
    assert 'target=~"slow"} unless on (target, collector) vecmon_collector_interval_seconds)) > 900' in rule.expr


# --------------------------------------------------------------------------- the real tools


@pytest.mark.integration
def test_rules_pass_promtool_check_with_all_lints(example, tmp_path):
    promtool = require_binary("promtool")
    minimal = generate(parse_config(MINIMAL), tmp_path)
    paths = [p for n, p in {**example[2], **minimal}.items() if n.endswith(".rules.yml")]
    result = subprocess.run([promtool, "check", "rules", "--lint=all", "--lint-fatal", *map(str, paths)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    output = [line for line in (result.stdout + result.stderr).splitlines()
              if line.strip() and not line.startswith("Checking ") and "SUCCESS" not in line]
    assert output == [], "promtool printed warnings:\n" + "\n".join(output)


@pytest.mark.integration
def test_generated_unit_tests_pass_promtool(example, tmp_path):
    promtool = require_binary("promtool")
    minimal = generate(parse_config(MINIMAL), tmp_path)
    tests = [p for n, p in {**example[2], **minimal}.items() if n.endswith("_test.yml")]

    def run(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, tests))
    failures = [f"{path.name}:\n{r.stdout}{r.stderr}" for path, r in zip(tests, results, strict=True)
                if r.returncode != 0]
    assert not failures, "\n".join(failures)
    # the tests really test something: each alert has a "fires" and a "stays silent" case
    document = yaml.safe_load(example[2]["prometheus/vecmon-alerts_test.yml"].read_text())
    names = [t["name"] for t in document["tests"]]
    for rule in rules_of(example[2]["prometheus/vecmon-alerts.rules.yml"]):
        assert any(n.startswith(f"{rule['alert']} fires") for n in names), rule["alert"]
        assert any(n.startswith(f"{rule['alert']} stays silent") for n in names), rule["alert"]


@pytest.mark.integration
def test_generated_unit_tests_catch_a_wrong_rule(example, tmp_path):
    """A rule whose threshold is off makes its generated test fail: the tests are not vacuous."""
    promtool = require_binary("promtool")
    out = example[1] / "prometheus"
    broken = tmp_path / "vecmon-alerts.rules.yml"
    text = (out / "vecmon-alerts.rules.yml").read_text()
    assert "vecmon_pg_connections_used_ratio > 0.9" in text
    broken.write_text(text.replace("vecmon_pg_connections_used_ratio > 0.9", "vecmon_pg_connections_used_ratio > 0.99"))
    tests = yaml.safe_load((out / "vecmon-alerts_test.yml").read_text())
    tests["tests"] = [t for t in tests["tests"] if t["name"].startswith("PgConnectionsHigh ")]
    assert len(tests["tests"]) == 4  # fires, silent below, silent exactly at 0.9, silent without series
    (tmp_path / "vecmon-alerts_test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "vecmon-alerts_test.yml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "PgConnectionsHigh" in result.stdout + result.stderr


@pytest.mark.integration
def test_alertmanager_config_passes_amtool_and_routes_by_severity_and_service(example):
    amtool = require_binary("amtool")
    path = example[2]["alertmanager/alertmanager.yml"]
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr

    def receivers(*labels: str) -> str:
        routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}", *labels],
                                capture_output=True, text=True, timeout=30)
        assert routed.returncode == 0, routed.stdout + routed.stderr
        return routed.stdout.strip()

    assert receivers("service=search", "severity=critical") == "oncall-pager"
    assert receivers("service=search", "severity=warning") == "search-slack"
    assert receivers("service=finops", "severity=warning") == "finops-email"
    assert receivers("service=postgres", "target=app", "severity=warning") == "dba-webhook,team-slack"
    assert receivers("service=postgres", "target=other", "severity=critical") == "oncall-pager"
    assert receivers("service=model-api", "severity=info") == "null"
    assert receivers("service=vecmon") == "team-email"


def test_alertmanager_inhibition_and_receivers(example):
    config = yaml.safe_load(example[2]["alertmanager/alertmanager.yml"].read_text())
    assert {"source_matchers": ['alertname="VecmonTargetDown"'], "target_matchers": ['alertname!="VecmonTargetDown"'],
            "equal": ["target"]} in config["inhibit_rules"]
    assert {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "target", "sloth_id"]} in config["inhibit_rules"]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["oncall-pager"]["pagerduty_configs"][0]["routing_key_file"] == "/run/secrets/pagerduty-routing-key"
    assert receivers["search-slack"]["slack_configs"][0]["api_url_file"] == "/run/secrets/slack-search-url"
    assert config["global"]["slack_api_url_file"] == "/run/secrets/slack-webhook-url"
    assert config["global"]["smtp_auth_password_file"] == "/run/secrets/smtp-password"
    hook = receivers["dba-webhook"]["webhook_configs"][0]
    assert hook["http_config"]["authorization"]["credentials_file"] == "/run/secrets/hook-token"
    assert "url_file" not in hook  # Alertmanager 0.26+ only


def test_no_secret_value_reaches_generated_files(tmp_path):
    secret = "xoxb-very-secret-token-4242"
    for name in ("slack", "pd", "smtp", "hook"):
        (tmp_path / name).write_text(secret + "\n")
    config = parse_config(MINIMAL + f"""
alertmanager:
  receiver: all
  smtp: {{smarthost: "mail:25", from: a@b.c, auth_username: u, auth_password_file: {tmp_path / 'smtp'}}}
  receivers:
    - name: all
      slack: [{{channel: "#x", api_url_file: {tmp_path / 'slack'}}}]
      pagerduty: [{{routing_key_file: {tmp_path / 'pd'}}}]
      email: [{{to: x@y.z}}]
      webhook: [{{url: "http://127.0.0.1:1/hook", credentials_file: {tmp_path / 'hook'}}}]
""")
    files = generate(config, tmp_path / "out")
    for path in files.values():
        assert secret not in path.read_text()


# --------------------------------------------------------------------------- metric names


def _declared() -> set[str]:
    """Every declared family name and every sample name it exposes (``_bucket``, ``_info``...)."""
    from alerts.metric_specs import declared_specs
    from dashboards.catalog import declared_series

    return set(declared_specs()) | declared_series()


def _referenced(files: dict[str, Path]) -> set[str]:
    names: set[str] = set()
    for name, path in files.items():
        if name.endswith(".rules.yml"):
            for rule in rules_of(path):
                names |= {n for n in metric_names(rule["expr"]) if n.startswith("vecmon_")}
    return names


# Read by the rules, declared by another part of vecmon being changed in parallel: the per-collector
# interval gauge comes with the exposition change that keeps series for 2 intervals (monitor/exposition.py).
PENDING: set[str] = set()  # metrics rules may read before a collector declares them


def test_every_metric_the_rules_read_is_declared_by_a_collector(example):
    referenced = _referenced(example[2]) | {m for a in CATALOG for m in a.metrics if m.startswith("vecmon_")}
    missing = sorted(referenced - _declared() - PENDING)
    assert missing == [], f"rules read metrics no collector declares: {missing}"



# --------------------------------------------------------------------------- SLOs


def test_slo_rules_use_sloth_names_and_labels(example):
    config, out, files = example
    rules = rules_of(files["prometheus/vecmon-slo-embeddings-embedding-availability.rules.yml"])
    records = {r["record"] for r in rules if "record" in r}
    assert {"slo:sli_error:ratio_rate5m", "slo:sli_error:ratio_rate30m", "slo:sli_error:ratio_rate1h",
            "slo:sli_error:ratio_rate2h", "slo:sli_error:ratio_rate6h", "slo:sli_error:ratio_rate1d",
            "slo:sli_error:ratio_rate3d", "slo:sli_error:ratio_rate30d", "slo:objective:ratio",
            "slo:error_budget:ratio", "slo:time_period:days", "slo:current_burn_rate:ratio",
            "slo:period_burn_rate:ratio", "slo:period_error_budget_remaining:ratio", "sloth_slo_info"} <= records
    for rule in rules:
        labels = rule.get("labels", {})
        assert labels.get("sloth_id") == "embeddings-embedding-availability"
        assert labels["sloth_slo"] == "embedding-availability" and labels["sloth_service"] == "embeddings"
        if rule.get("record", "").startswith("slo:sli_error:ratio_rate"):
            assert labels["sloth_window"] == rule["record"].removeprefix("slo:sli_error:ratio_rate")
            assert "> 0)" in rule["expr"]  # every SLI division guarded
    budget = next(r for r in rules if r.get("record") == "slo:error_budget:ratio")
    assert budget["expr"] == "vector(0.005)"  # exact, not 0.0050000000000000044
    burns = [r for r in rules if r.get("alert") == "SLOErrorBudgetBurn"]
    assert [(r["labels"]["long_window"], r["labels"]["short_window"], r["labels"]["severity"], r["for"])
            for r in burns] == [("1h", "5m", "critical", "2m"), ("6h", "30m", "critical", "15m"),
                                ("1d", "2h", "warning", "1h"), ("3d", "6h", "warning", "3h")]
    assert "(14.4 * 0.005)" in burns[0]["expr"] and "(1 * 0.005)" in burns[3]["expr"]
    assert [r["keep_firing_for"] for r in burns] == ["10m", "1h", "2h", "6h"]  # 2 short windows (page), 1 (ticket)
    assert all(r["labels"]["target"] == "openai-embed" for r in burns)  # muted by VecmonTargetDown
    assert {r["alert"] for r in rules if "alert" in r} == {"SLOErrorBudgetBurn", "SLOSLIDataMissing",
                                                            "SLOErrorBudgetExhausted"}


def test_burn_rate_factors_scale_with_the_period_and_impossible_windows_are_dropped():
    def slo(objective: float, period: str) -> str:
        return MINIMAL + f"""
slos:
  - name: s
    service: svc
    objective: {objective}
    period: {period}
    sli: {{events: {{bad: 'errors_total', total: 'requests_total'}}}}
"""
    rules = all_slo_rules(parse_config(slo(0.999, "28d")), __version__)[0]
    assert [str(b.factor) for b in rules.burn_alerts] == ["13.44", "5.6", "2.8", "0.933333"]
    assert [b.threshold for b in rules.burn_alerts][0] == pytest.approx(0.01344)
    rules = all_slo_rules(parse_config(slo(0.9, "30d")), __version__)[0]
    # 14.4 x 10% budget > 100% errors: the 1h/5m window can never fire and is left out
    assert [duration(b.window.long) for b in rules.burn_alerts] == ["6h", "1d", "3d"]
    rules = all_slo_rules(parse_config(slo(0.99, "7d")), __version__)[0]
    # 7d: the 30d windows scaled by 7/30 (3 minutes at least for a 60s SLI), the workbook's factors
    assert [str(b.factor) for b in rules.burn_alerts] == ["14.4", "6", "3", "1"]
    assert [(duration(b.window.long), duration(b.window.short)) for b in rules.burn_alerts] == [
        ("14m", "3m"), ("84m", "7m"), ("336m", "28m"), ("1008m", "84m")]
    assert [str(t.budget_share) for t in TIERS] == ["0.02", "0.05", "0.10", "0.10"]


def test_latency_sli_matches_the_bucket_however_it_is_formatted(example):
    config, out, files = example
    expr = rules_of(files["prometheus/vecmon-slo-search-ann-latency-100ms.rules.yml"])[2]["expr"]
    assert 'vecmon_ann_query_duration_seconds_bucket{target="app", le="0.1"}' in expr
    config = parse_config(MINIMAL + """
slos:
  - {name: l, service: s, objective: 0.99, sli: {latency: {histogram: 'h_seconds', threshold: 1s}}}
""")
    expr = all_slo_rules(config, __version__)[0].sli_group["rules"][2]["expr"]
    assert 'h_seconds_bucket{le=~"1(\\\\.0)?"}' in expr  # Python client: 1.0, Go clients: 1


# --------------------------------------------------------------------------- config validation


@pytest.mark.parametrize("text, message", [
    ("alerting: {alerts: {NoSuchAlert: {threshold: 1}}}", "unknown alert(s) NoSuchAlert"),
    ("alerting: {alerts: {VecmonTargetDown: {threshold: 1}}}", "VecmonTargetDown has no threshold to change"),
    ("alerting: {alerts: {PgConnectionsHigh: {window: 5m}}}", "PgConnectionsHigh has no window to change"),
    ("alerting: {alerts: {PgConnectionsHigh: {severity: page}}}", "alerting.alerts.PgConnectionsHigh.severity"),
    ("alerting: {alerts: {PgConnectionsHigh: {for: soon}}}", "invalid duration 'soon'"),
    ("alerting: {labels: {severity: x}}", "label 'severity' is set by vecmon"),
    ("slos: [{name: a, service: b, objective: 99.9, sli: {events: {bad: x_total, total: y_total}}}]",
     "objective is a fraction: write 0.999 for 99.9%"),
    ("slos: [{name: a, service: b, objective: 0.99, sli: {events: {bad: x_total, good: z, total: y_total}}}]",
     "give exactly one of good and bad"),
    ("slos: [{name: a, service: b, objective: 0.99, sli: {events: {bad: 'rate(x[5m])', total: y}}}]",
     "expected a vector selector"),
    ("slos: [{name: a, service: b, objective: 0.99, period: 1d, sli: {probe: {ratio: x}}}]", "at least 3d"),
    ("slos: [{name: a, service: b, objective: 0.99, sli: {latency: {histogram: h_bucket, threshold: 1s}}}]",
     "without its _bucket"),
    ("slos: [{name: a, service: b, objective: 0.9, sli: {probe: {ratio: x}}},"
     " {name: a, service: b, objective: 0.99, sli: {probe: {ratio: y}}}]", "duplicate SLO(s) b-a"),
    ("alertmanager: {receiver: nobody, receivers: [{name: r}]}", "unknown receiver(s) nobody"),
    ("alertmanager: {receiver: r, receivers: [{name: r, slack: [{channel: '#x', api_url: 'https://x'}]}]}",
     "api_url: unknown key"),
    ("alertmanager: {receiver: r, receivers: [{name: r, pagerduty: [{routing_key: abc}]}]}",
     "routing_key: unknown key"),
    ("alertmanager: {receiver: r, receivers: [{name: r, email: [{to: a@b.c}]}]}", "email receivers need"),
    ("alertmanager: {receiver: r, receivers: [{name: r, slack: [{channel: '#x'}]}]}",
     "slack receivers need api_url_file"),
    ("alertmanager: {receiver: r, receivers: [{name: r, webhook: [{url: 'ftp://x'}]}]}", "must start with http"),
])
def test_invalid_alerting_config_is_reported(text, message):
    with pytest.raises(ConfigError) as excinfo:
        parse_config(text)
    assert message in str(excinfo.value)


# --------------------------------------------------------------------------- helpers and docs


@pytest.mark.parametrize("function, value, text", [
    (humanize_percentage, 0.95, "95%"), (humanize_percentage, 0.0158, "1.58%"), (humanize_duration, 0.625, "625ms"),
    (humanize_duration, 90, "1m 30s"), (humanize_duration, 4000, "1h 6m 40s"), (humanize_duration, 2.5, "2.5s"),
    (humanize_1024, 1073741824, "1Gi"), (humanize, 1536, "1.536k"), (humanize, 0.83, "830m"),
])
def test_humanize_functions_match_prometheus(function, value, text):
    assert function(value) == text


def test_alert_reference_documents_every_alert_and_every_runbook_anchor(example):
    reference = alert_reference()
    headings = set(re.findall(r"^#### (\w+)$", reference, re.M))
    for alert in CATALOG:
        assert alert.name in headings
        section = reference.split(f"#### {alert.name}\n", 1)[1].split("\n#### ", 1)[0]
        assert "Source:" in section and "First steps:" in section and "\n1. " in section
    for path in [p for n, p in example[2].items() if n.endswith(".rules.yml")]:
        for rule in rules_of(path):
            if "alert" in rule:
                anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
                assert anchor in {h.lower() for h in headings}, anchor
    assert "above 500ms" in reference and "seeds: query latency p99 target < 100ms, alert > 500ms." in reference


@pytest.mark.integration
def test_vecmon_generate_cli_writes_the_alerting_files(tmp_path):
    result = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(EXAMPLE), "-o", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    printed = set(result.stdout.split())
    assert str(tmp_path / "prometheus" / "vecmon-alerts.rules.yml") in printed
    assert str(tmp_path / "alertmanager" / "alertmanager.yml") in printed


@pytest.mark.integration
def test_generated_slo_tests_catch_a_missing_short_window_or_guard(example, tmp_path):
    """Before, every SLO test fed one ratio into both windows: deleting the short-window clause (or
    a guard) still passed. The two-window and guard cases now fail on such a rule."""
    promtool = require_binary("promtool")
    out = example[1] / "prometheus"
    name = "vecmon-slo-embeddings-embedding-availability"
    text = (out / f"{name}.rules.yml").read_text()
    document = yaml.safe_load(text)
    alerts = next(g for g in document["groups"] if g["name"].startswith("vecmon-slo-alerts-"))
    results = {}
    for what in ("short window", "guard"):
        broken = yaml.safe_load(text)
        rules = next(g for g in broken["groups"] if g["name"] == alerts["name"])["rules"]
        page = rules[0]
        parts = page["expr"].split("\nand\n")
        assert len(parts) == 3, page["expr"]  # long, short, guard
        page["expr"] = "\nand\n".join([parts[0], parts[2]] if what == "short window" else parts[:2])
        (tmp_path / f"{name}.rules.yml").write_text(yaml.safe_dump(broken, sort_keys=False))
        (tmp_path / f"{name}_test.yml").write_text((out / f"{name}_test.yml").read_text())
        result = subprocess.run([promtool, "test", "rules", str(tmp_path / f"{name}_test.yml")],
                                capture_output=True, text=True, timeout=120)
        results[what] = (result.returncode, result.stdout + result.stderr)
    assert results["short window"][0] != 0 and "short recovered: not firing" in results["short window"][1], results
    assert results["guard"][0] != 0 and "min_events guard" in results["guard"][1]
