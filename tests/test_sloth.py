"""Sloth users: PromQL SLI expressions with Sloth's {{.window}} placeholder, and `vecmon import sloth`.

The generated rules are checked with the real promtool (check rules --lint=all --lint-fatal, and the
generated unit tests run by promtool test rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerts.render import write_alerting
from monitor import __version__
from monitor.loader import ConfigError, parse_config
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parent.parent
HEAD = """
alerting: {enabled: false}
databases:
  - {name: app, dsn: postgresql://vecmon@db/app}
"""
RAW_SLO = HEAD + """
slos:
  - name: requests-availability
    service: myservice
    objective: 0.999
    period: 7d
    sli:
      events:
        error_query: sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))
        total_query: sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))
"""

SLOTH_SPEC = """
version: "prometheus/v1"
service: "myservice"
labels:
  owner: "myteam"
  repo: "myorg/myservice"
slos:
  - name: "requests-availability"
    objective: 99.9
    description: "Common SLO based on availability for HTTP request responses."
    sli:
      events:
        error_query: sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[{{.window}}]))
        total_query: sum(rate(http_request_duration_seconds_count{job="myservice"}[{{.window}}]))
    alerting:
      name: MyServiceHighErrorRate
      labels:
        category: "availability"
      annotations:
        summary: "High error rate on 'myservice' requests responses"
      page_alert:
        labels:
          severity: pageteam
          routing_key: myteam
      ticket_alert:
        disable: true
  - name: "latency"
    objective: 99
    sli:
      raw:
        error_ratio_query: sum(rate(x_bad[{{.window}}])) / sum(rate(x[{{.window}}]))
"""


def _promtool_passes(files: list[Path]) -> None:
    promtool = require_tool("promtool", "prometheus")
    rules = [str(p) for p in files if p.name.endswith(".rules.yml")]
    tests = [str(p) for p in files if p.name.endswith("_test.yml")]
    assert rules and tests
    checked = subprocess.run([promtool, "check", "rules", "--lint=all", "--lint-fatal", *rules],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for test in tests:
        ran = subprocess.run([promtool, "test", "rules", Path(test).name], capture_output=True, text=True,
                             timeout=300, cwd=Path(test).parent)
        assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]


@pytest.mark.integration
def test_a_promql_sli_with_a_window_placeholder_gives_rules_that_pass_promtool(tmp_path):
    config = parse_config(RAW_SLO)
    files = write_alerting(config, tmp_path, __version__)
    rules = next(p for p in files if p.name.endswith(".rules.yml")).read_text()
    assert 'sum(rate(http_request_duration_seconds_count{job="myservice",code=~"(5..|429)"}[5m]))' in rules
    assert "{{.window}}" not in rules
    _promtool_passes(files)


def test_a_query_without_the_window_placeholder_is_refused():
    with pytest.raises(ConfigError, match=r"\{\{\.window\}\}"):
        parse_config(RAW_SLO.replace("[{{.window}}]))\n        total_query", "[5m]))\n        total_query"))


@pytest.mark.integration
def test_import_sloth_writes_slo_config_that_generates(tmp_path):
    spec = tmp_path / "sloth.yaml"
    spec.write_text(SLOTH_SPEC)
    out = tmp_path / "slos.yaml"
    done = subprocess.run([sys.executable, "-m", "monitor", "import", "sloth", str(spec), "-o", str(out)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "latency" in done.stderr and "raw" in done.stderr  # the raw SLO is named in a note
    imported = yaml.safe_load(out.read_text())
    slo = imported["slos"][0]
    assert slo["name"] == "requests-availability" and slo["service"] == "myservice"
    assert slo["objective"] == 0.999
    assert slo["labels"] == {"owner": "myteam", "repo": "myorg/myservice"}
    assert slo["alerting"]["ticket"] is False
    assert slo["alerting"]["labels"] == {"category": "availability", "routing_key": "myteam"}
    assert "pageteam" in done.stderr  # a severity vecmon does not have is named, not silently dropped
    assert len(imported["slos"]) == 1
    config = parse_config(HEAD + out.read_text())
    files = write_alerting(config, tmp_path / "generated", __version__)
    _promtool_passes(files)
