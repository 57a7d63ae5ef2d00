"""The operator-signal alerts (alerts/catalog/pg_signals.py) and dashboard panels (dashboards/pg_signals.py),
checked directly: rules built as ``vecmon generate`` builds them, ``promtool check rules --lint=all
--lint-fatal`` and their generated ``promtool test rules`` cases (fires just past the threshold, silent
on the other side), every metric they read declared by a collector, and the panels' queries too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import yamlout
from alerts.catalog import CATALOG
from alerts.catalog.pg_signals import PG_SIGNALS
from alerts.promtool_tests import threshold_tests, unit_test_file
from alerts.rules import build_rule, rule_groups
from collectors.registry import all_collector_classes
from dashboards.facade import dashboard
from dashboards.lint import lint
from dashboards.pg_signals import pg_signal_panels
from dashboards.postgres import variables
from monitor.loader import parse_config
from tests.helpers import metric_names, require_tool

CONFIG = """
databases:
  - name: app
    dsn: postgresql://vecmon@db/app
"""
DECLARED = {spec.name for cls in all_collector_classes() for spec in cls.METRICS}


def declared(name: str) -> bool:
    return name in DECLARED or name.removesuffix("_bucket") in DECLARED


def build(config_text: str = CONFIG):
    config = parse_config(config_text)
    return [build_rule(d, config, config.alerting) for d in PG_SIGNALS if d.applies(config)]


def write(rules, out: Path) -> tuple[Path, Path]:
    groups = rule_groups(rules)
    rule_file = out / "vecmon-pg-signals.rules.yml"
    rule_file.write_text(yamlout.dump({"groups": groups}, "# test\n"))
    test_file = out / "vecmon-pg-signals_test.yml"
    test_file.write_text(yamlout.dump(unit_test_file(rule_file.name, [g["name"] for g in groups],
                                                     threshold_tests(rules)), "# test\n"))
    return rule_file, test_file


def test_definitions_are_complete_and_new():
    expected = {"PgWalArchivingFailing", "PgWalArchivingStalled", "PgWraparoundAgeHigh", "PgWraparoundAgeCritical",
                "PgAutovacuumFreezeBehind", "PgLongRunningQueries"}
    assert {d.name for d in PG_SIGNALS} == expected
    names = [a.name for a in CATALOG]  # 0 times before they join the catalog, once after
    assert all(names.count(name) <= 1 for name in expected), "name collides with the existing catalog"
    for d in PG_SIGNALS:
        assert d.severity in ("warning", "critical") and d.for_ >= 60 and d.group == "postgres"
        assert d.doc.source and len(d.doc.steps) >= 2 and d.metrics


def test_rules_read_only_declared_metrics():
    rules = build()
    assert len(rules) == len(PG_SIGNALS)
    for rule in rules:
        names = metric_names(rule.expr)
        assert names and all(declared(n) for n in names), (rule.name, names)
        assert set(rule.definition.metrics) == set(names), rule.name


def test_rules_follow_the_collectors_being_enabled():
    off = CONFIG + "    collectors: {archiver: {enabled: false}, wraparound: {enabled: false}}\n"
    assert {r.name for r in build(off)} == {"PgLongRunningQueries"}


def test_rules_render_severity_annotations_and_defaults():
    rules = {r.name: r.as_yaml() for r in build()}
    assert rules["PgWraparoundAgeHigh"]["expr"] == "vecmon_pg_database_wraparound_ratio > 0.5"
    assert rules["PgWraparoundAgeCritical"]["labels"]["severity"] == "critical"
    assert "(threshold 75%)" in rules["PgWraparoundAgeCritical"]["annotations"]["description"]
    assert rules["PgWalArchivingStalled"]["expr"].startswith("vecmon_pg_archiver_oldest_pending_age_seconds > 900")
    assert "(threshold 15m)" in rules["PgWalArchivingStalled"]["annotations"]["description"]
    assert rules["PgLongRunningQueries"]["expr"] == "vecmon_pg_long_running_queries > 0"
    assert rules["PgAutovacuumFreezeBehind"]["expr"].endswith("vecmon_pg_autovacuum_freeze_max_age\n> 1.1")
    for rule in rules.values():
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())
        assert rule["for"] == ("30m" if rule["alert"] == "PgAutovacuumFreezeBehind" else "5m")
        assert "<" not in rule["annotations"]["description"].replace("{{", "").replace("}}", "")


@pytest.mark.integration
def test_rules_pass_promtool_check_and_their_unit_tests(tmp_path):
    promtool = require_tool("promtool", "prometheus")
    rule_file, test_file = write(build(), tmp_path)
    check = subprocess.run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rule_file)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{len(PG_SIGNALS)} rules found" in check.stdout
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    names = [t["name"] for t in yaml.safe_load(test_file.read_text())["tests"]]
    for definition in PG_SIGNALS:
        assert any(n.startswith(f"{definition.name} fires") for n in names)
        assert any(n.startswith(f"{definition.name} stays silent") for n in names)


@pytest.mark.integration
def test_unit_tests_catch_a_wrong_threshold(tmp_path):
    """A rule whose threshold is off makes its generated test fail: the tests are not vacuous."""
    promtool = require_tool("promtool", "prometheus")
    rule_file, test_file = write(build(), tmp_path)
    text = rule_file.read_text()
    assert "vecmon_pg_database_wraparound_ratio > 0.5\n" in text
    rule_file.write_text(text.replace("vecmon_pg_database_wraparound_ratio > 0.5\n",
                                      "vecmon_pg_database_wraparound_ratio > 0.6\n"))
    result = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode != 0 and "PgWraparoundAgeHigh" in result.stdout + result.stderr


def test_panels_query_declared_metrics_and_pass_the_dashboard_linter():
    panels = [p for p in pg_signal_panels() if not p.is_row]
    assert len(panels) >= 12
    queried = set()
    for panel in panels:
        assert panel.obj.title and panel.obj.description and panel.obj.targets
        for target in panel.obj.targets:
            names = metric_names(target.expr)
            assert names and all(declared(n) for n in names), (panel.obj.title, target.expr)
            queried |= names
    # every alerted metric has a panel
    assert {n for d in PG_SIGNALS for n in d.metrics} <= queried
    board = dashboard("vecmon-pg-signals-test", "vecmon / PostgreSQL signals (test)", "The operator-signal panels.",
                      variables(), pg_signal_panels(), tags=["postgresql"])
    assert lint(board) == []
