"""Generated Grafana dashboards: lint (grafana/dashboard-linter rules), declared metrics,
determinism, the config deciding what is generated, and the grafanalib quirks being fixed."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alerts import conventions as names
from collectors.model_metrics import MODEL_API_REQUEST_DURATION_SECONDS, MODEL_API_REQUESTS_TOTAL
from collectors.pg_tables import PG_TABLE_SEQ_SCAN_TOTAL
from collectors.self_metrics import BUILD_INFO, UP
from dashboards import check, facade, lint
from dashboards.catalog import declared_series, recording_rules
from dashboards.render import build_dashboards, lint_exclusions, write_dashboards
from monitor.config import Config
from monitor.loader import parse_config
from tests.helpers import metric_names

ROOT = Path(__file__).resolve().parent.parent
HAS_SLOS = "slos" in Config.model_fields

DATABASE = """
alerting: {runbook_base_url: "https://docs.example.org/vecmon/README.md"}
databases:
  - name: main
    dsn: postgresql://vecmon@db.internal/app
    vector:
      recall: {target: 0.95}
      filters: [{name: tenant_3, table: public.items, where: "tenant_id = 3"}]
      freshness: [{table: public.items, timestamp_column: updated_at, embedding_column: embedding}]
  - {name: analytics, dsn: postgresql://vecmon@db.internal/analytics}
"""
APIS = """
endpoints:
  - {name: embed, provider: openai, model: text-embedding-3-small, api_key: k, dimensions: 1536}
  - {name: tei, provider: tei, url: "http://tei:8080", model: bge-small}
  - {name: rerank, kind: rerank, provider: cohere, model: rerank-v3.5, api_key: k}
cost_apis:
  - {name: openai-org, api_key: admin}
budgets:
  - {name: monthly, sources: [embed, rerank, openai-org], monthly_usd: 50}
redis:
  - {name: cache, key_prefixes: ["emb:"]}
"""
SLOS = """
slos:
  - name: embedding-availability
    service: rag
    objective: 0.995
    sli:
      events:
        good: vecmon_model_api_requests_total{target="embed", outcome="success"}
        total: vecmon_model_api_requests_total{target="embed"}
  - name: embedding-latency
    service: rag
    objective: 0.95
    sli:
      latency: {histogram: 'vecmon_model_api_request_duration_seconds{target="embed"}', threshold: 500ms}
"""


def full_config_text() -> str:
    return DATABASE + APIS + (SLOS if HAS_SLOS else "")


@pytest.fixture(scope="module")
def full_config():
    return parse_config(full_config_text())


@pytest.fixture(scope="module")
def boards(full_config) -> dict[str, dict]:
    return build_dashboards(full_config)


def all_boards(boards):
    return pytest.mark.parametrize("uid", sorted(boards))


# --------------------------------------------------------------------------- lint


def test_every_generated_dashboard_passes_the_linter(boards):
    findings = {uid: [str(f) for f in lint.lint(board, lint_exclusions())] for uid, board in boards.items()}
    assert findings == {uid: [] for uid in boards}


NO_VECTOR = "{vector_indexes: {enabled: false}, recall: {enabled: false}, ann_latency: {enabled: false}, " \
            "vector_freshness: {enabled: false}}"


def test_minimal_config_dashboards_pass_the_linter():
    config = parse_config("databases:\n  - {name: only, dsn: 'postgresql://x@h/db'}\n")
    boards = build_dashboards(config)
    assert set(boards) == {"vecmon-overview", "vecmon-postgres", "vecmon-vector", "vecmon-self"}
    assert {uid: lint.lint(b) for uid, b in boards.items()} == {uid: [] for uid in boards}
    no_vector = build_dashboards(parse_config(f"databases:\n  - {{name: only, dsn: 'postgresql://x@h/db', "
                                              f"collectors: {NO_VECTOR}}}\n"))
    assert set(no_vector) == {"vecmon-overview", "vecmon-postgres", "vecmon-self"}
    assert {uid: lint.lint(b) for uid, b in no_vector.items()} == {uid: [] for uid in no_vector}


def _good() -> dict:
    """A small dashboard that passes every rule; the tests below break one thing at a time."""
    panel = facade.timeseries("Scans", "Scans per second.", "ops",
                              [facade.q(f"sum({facade.rate(facade.m(PG_TABLE_SEQ_SCAN_TOTAL.name))})")])
    return facade.dashboard("t", "T", "d", [*facade.standard_vars(BUILD_INFO.name),
                                            facade.query_var("target", "Target", f"label_values({UP.name}, target)")],
                            [panel])


def rules_of(board: dict) -> set[str]:
    return {f.rule for f in lint.lint(board)}


def test_the_linter_accepts_the_reference_dashboard():
    assert lint.lint(_good()) == []


@pytest.mark.parametrize("rule, breakage", [
    ("template-datasource-rule", lambda b: b["templating"]["list"][0].update(name="ds")),
    ("template-datasource-rule", lambda b: b["templating"]["list"].pop(0)),
    ("template-job-rule", lambda b: b["templating"]["list"].pop(1)),
    ("template-job-rule", lambda b: b["templating"]["list"][1].update(allValue=None)),
    ("template-job-rule", lambda b: b["templating"]["list"][1].update(multi=False)),
    ("template-instance-rule", lambda b: b["templating"]["list"].pop(2)),
    ("template-instance-rule", lambda b: b["templating"]["list"][2].update(datasource={"uid": "prom"})),
    ("template-on-time-change-reload-rule", lambda b: b["templating"]["list"][3].update(refresh=1)),
    ("template-label-promql-rule", lambda b: b["templating"]["list"][3].update(query="label_values(up{, x)")),
    ("uneditable-dashboard", lambda b: b.update(editable=True)),
    ("panel-datasource-rule", lambda b: b["panels"][0].update(datasource={"type": "prometheus", "uid": "prom"})),
    ("panel-datasource-rule", lambda b: b["panels"][0]["targets"][0].update(datasource="Prometheus")),
    ("panel-title-description-rule", lambda b: b["panels"][0].update(description="")),
    ("panel-title-description-rule", lambda b: b["panels"][0].update(title=" ")),
    ("panel-units-rule", lambda b: b["panels"][0]["fieldConfig"]["defaults"].update(unit="")),
    ("panel-units-rule", lambda b: b["panels"][0]["fieldConfig"]["defaults"].update(unit="requests")),
    ("panel-no-targets-rule", lambda b: b["panels"][0].update(targets=[])),
    ("panel-type-rule", lambda b: b["panels"][0].update(type="graph")),
    ("panel-type-rule", lambda b: b["panels"][0].update(type="singlestat")),
    ("target-promql-rule", lambda b: b["panels"][0]["targets"][0].update(expr="sum(rate(x[5m])")),
    ("target-rate-interval-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'sum(rate({PG_TABLE_SEQ_SCAN_TOTAL.name}{{job=~"$job", instance=~"$instance"}}[5m]))')),
    ("target-rate-interval-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'sum(irate({PG_TABLE_SEQ_SCAN_TOTAL.name}{{job=~"$job", instance=~"$instance"}}[$__interval]))')),
    ("target-job-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'sum(rate({PG_TABLE_SEQ_SCAN_TOTAL.name}{{instance=~"$instance"}}[$__rate_interval]))')),
    ("target-job-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'sum(rate({PG_TABLE_SEQ_SCAN_TOTAL.name}{{job="$job", instance=~"$instance"}}[$__rate_interval]))')),
    ("target-instance-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'{UP.name}{{job=~"$job"}} / {UP.name}{{job=~"$job", instance=~"$instance"}}')),
    ("target-counter-agg-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'{PG_TABLE_SEQ_SCAN_TOTAL.name}{{job=~"$job", instance=~"$instance"}}')),
    ("target-variables-rule", lambda b: b["panels"][0]["targets"][0].update(
        expr=f'{UP.name}{{job=~"$job", instance=~"$instance", target=~"$index"}}')),
])
def test_the_linter_catches(rule, breakage):
    board = _good()
    breakage(board)
    assert rule in rules_of(board)


def test_linter_expands_variables_like_the_go_linter():
    assert lint.expand('rate(x{job=~"$job"}[$__rate_interval]) > ${threshold}') == \
        'rate(x{job=~"$job"}[98765s]) > var_threshold'
    assert metric_names('histogram_quantile(0.9, sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval])))'
                        ' / on() group_left b + {__name__="c"}') == {"a_bucket", "b", "c"}


def test_exclusions_silence_one_rule_for_one_dashboard():
    board = _good()
    board["panels"][0]["description"] = ""
    exclusion = lint.Exclusion("panel-title-description-rule", "t", "Scans", reason="test")
    assert lint.lint(board, [exclusion]) == []
    assert lint.lint(board, [lint.Exclusion("panel-title-description-rule", "other")]) != []


def test_lint_command_line(tmp_path, boards):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(boards["vecmon-postgres"]))
    broken = copy.deepcopy(boards["vecmon-postgres"])
    broken["panels"][1]["description"] = None
    bad.write_text(json.dumps(broken))
    assert check.main([str(good)]) == 0
    assert check.main([str(good), str(bad)]) == 1


# --------------------------------------------------------------------------- conventions


def test_every_referenced_metric_is_declared_or_recorded(full_config, boards):
    recorded = recording_rules(full_config)
    if HAS_SLOS:
        assert names.PERIOD_ERROR_BUDGET_REMAINING in recorded
    known = declared_series() | recorded
    missing = {}
    for uid, board in boards.items():
        for panel, target in lint.targets(board):
            unknown = metric_names(target["expr"]) - known
            unknown |= {f"{{__name__=~{p!r}}}" for p in lint.metric_name_patterns(target["expr"])
                        if not any(re.fullmatch(p, name) for name in known)}
            if unknown:
                missing.setdefault(uid, []).append((panel["title"], sorted(unknown)))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                unknown = {n for n in metric_names(var["query"].split("(", 1)[1].rsplit(",", 1)[0])
                           if n not in known}
                if unknown:
                    missing.setdefault(uid, []).append((f"${var['name']}", sorted(unknown)))
    assert missing == {}


def test_standard_variables_on_every_dashboard(boards):
    for uid, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        for name in ("job", "instance"):
            assert variables[name]["multi"] and variables[name]["includeAll"] and variables[name]["allValue"] == ".+"
        for var in variables.values():
            if var["type"] == "query":
                assert var["refresh"] == 2 and var["datasource"] == facade.DATASOURCE, (uid, var["name"])


def test_panels_use_current_types_units_descriptions_and_fit_the_grid(boards):
    for uid, board in boards.items():
        occupied: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            assert panel["type"] in {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "row"}
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, (uid, panel["title"])
            cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & occupied, f"{uid}: {panel['title']} overlaps another panel"
            occupied |= cells
            if panel["type"] == "row":
                continue
            assert panel["description"] and panel["fieldConfig"]["defaults"]["unit"] in lint.VALID_UNITS
            for target in panel["targets"]:
                assert target["datasource"] == facade.DATASOURCE


# Counters of probes that move once a minute or once per 10-minute cycle: $__rate_interval (a few
# scrapes) holds one probe or none, so their panels use increase() over a window of many probes.
PROBE_COUNTERS = {"vecmon_recall_probe_runs_total": 3600, "vecmon_recall_exact_queries_total": 3600,
                  "vecmon_recall_exact_reused_total": 3600, MODEL_API_REQUESTS_TOTAL.name: 1800}


def test_every_rate_uses_rate_interval_except_probe_counters(boards):
    exprs = [t["expr"] for board in boards.values() for _, t in lint.targets(board)]
    assert sum("rate(" in e for e in exprs) > 30
    probe_panels = 0
    for expr in exprs:
        ast = lint.parse(expr)
        for node, parents in lint.walk(ast):
            if parents and type(node).__name__ == "MatrixSelector" and type(parents[-1]).__name__ == "Call":
                name = node.vector_selector.name if hasattr(node, "vector_selector") else str(node).split("{")[0]
                func = parents[-1].func.name
                if any(counter in str(node) for counter in PROBE_COUNTERS):
                    window = next(w for c, w in PROBE_COUNTERS.items() if c in str(node))
                    assert func == "increase" and node.range.total_seconds() == window, expr
                    probe_panels += 1
                elif func in ("rate", "irate", "increase"):
                    assert node.range.total_seconds() == lint.RATE_INTERVAL_SECONDS, (name, expr)
    assert probe_panels >= 6


def test_probe_latency_panels_count_successful_probes_only(boards):
    board = boards["vecmon-model-apis"]
    latency = [t["expr"] for panel, t in lint.targets(board)
               if f"{MODEL_API_REQUEST_DURATION_SECONDS.name}_bucket" in t["expr"]]
    assert len(latency) >= 4
    assert all('outcome="success"' in expr for expr in latency), latency


def test_slo_dashboard_shows_a_one_hour_sli(boards):
    board = boards["vecmon-slos"]
    exprs = [(panel.get("title"), t["expr"]) for panel, t in lint.targets(board)]
    sli = [expr for title, expr in exprs if title == "SLI (1h) against objective"]
    assert any(f"sum_over_time({names.ERROR_EVENTS_RATE5M}" in expr and "[1h]" in expr for expr in sli), sli
    assert not any(names.error_ratio("5m") in expr for _, expr in exprs)


def test_stable_uids_and_titles(boards):
    expected = {"vecmon-overview", "vecmon-postgres", "vecmon-self", "vecmon-model-apis"}
    assert expected <= set(boards)
    for uid, board in boards.items():
        assert board["uid"] == uid and len(uid) <= 40 and board["title"].startswith("vecmon / ")
        assert board["id"] is None and board["version"] == 0 and board["editable"] is False
        ids = [p["id"] for p in lint.panels(board)]
        assert ids == list(range(1, len(ids) + 1))


# --------------------------------------------------------------------------- grafanalib quirks


def test_grafanalib_quirks_are_fixed(boards):
    text = "\n".join(facade.to_json(b) for b in boards.values())
    assert '"null"' not in text and '"steps": ""' not in text and "fieldOptions" not in text
    for board in boards.values():
        for panel in lint.panels(board):
            for target in panel.get("targets", []):
                assert target["intervalFactor"] == 1 and "step" not in target
            steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
            if panel["type"] not in ("row", "heatmap"):  # a heatmap colours by count, not thresholds
                assert steps and steps[0]["value"] is None and all(isinstance(s, dict) for s in steps)
            if panel["type"] in ("gauge", "bargauge", "stat"):
                assert panel["options"]["reduceOptions"]["calcs"] == ["lastNotNull"]
            if panel["type"] == "heatmap":
                assert panel["options"]["calculate"] is False and "cards" not in panel
                assert panel["targets"][0]["format"] == "heatmap"
            if panel["type"] == "table":
                assert all(t["instant"] and t["format"] == "table" for t in panel["targets"])
    kinds = {p["type"] for b in boards.values() for p in lint.panels(b)}
    assert kinds == {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "row"}


def test_facade_rejects_panels_without_description_or_bad_thresholds():
    with pytest.raises(ValueError, match="description"):
        facade.stat("x", "", "none", [facade.q(UP.name)])
    with pytest.raises(ValueError, match="base step"):
        facade.steps(("red", 1))
    with pytest.raises(ValueError, match="query"):
        facade.stat("x", "d", "none", [])


# --------------------------------------------------------------------------- config decides


def test_only_what_the_config_enables_is_generated():
    db_only = build_dashboards(parse_config("databases:\n  - {name: a, dsn: 'postgresql://x@h/db'}\n"))
    assert "vecmon-model-apis" not in db_only and "vecmon-slos" not in db_only
    recall_only = build_dashboards(parse_config(
        "databases:\n  - {name: a, dsn: 'postgresql://x@h/db', collectors: {ann_latency: {enabled: false}}}\n"))
    titles = {p["title"] for p in lint.panels(recall_only["vecmon-vector"])}
    assert "Recall over time" in titles and "ANN latency p50 / p95 / p99" not in titles
    assert "Shortfall under filters" not in titles and "Newest row age" not in titles
    apis_only = build_dashboards(parse_config(APIS))
    assert "vecmon-model-apis" in apis_only and "vecmon-postgres" not in apis_only
    rerank_only = build_dashboards(parse_config(
        "endpoints:\n  - {name: r, kind: rerank, provider: tei, url: 'http://tei', model: m}\n"))
    titles = {p["title"] for p in lint.panels(rerank_only["vecmon-model-apis"])}
    assert "Re-ranker latency" in titles and "Embedding latency" not in titles
    assert "Budget used" not in titles and "Cache hit ratio" not in titles
    variables = [v["name"] for v in rerank_only["vecmon-model-apis"]["templating"]["list"]]
    assert variables == ["datasource", "job", "instance", "reranker"]


def test_thresholds_come_from_the_config():
    def self_steps(stale_after: str) -> list:
        board = build_dashboards(parse_config(f"daemon: {{stale_after: {stale_after}}}\n"
                                              "databases:\n  - {name: a, dsn: 'postgresql://x@h/db'}\n"))
        panel = next(p for p in lint.panels(board["vecmon-self"]) if p["title"] == "Time since last success")
        return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]

    assert self_steps("10m") == [None, 300.0, 600.0]
    assert self_steps("2m") == [None, 60.0, 120.0]


def panel_steps(board: dict, title: str) -> list:
    panel = next(p for p in lint.panels(board) if p["title"] == title)
    return [(s["color"], s["value"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_alert_thresholds_recall_targets_and_objectives_become_panel_thresholds():
    default = build_dashboards(parse_config(DATABASE + APIS))
    assert panel_steps(default["vecmon-postgres"], "Connections used") == [
        ("green", None), ("orange", 0.8), ("red", 0.9)]  # PgConnectionsHigh's default 0.9
    assert panel_steps(default["vecmon-vector"], "Recall over time") == [("red", None), ("green", 0.95)]
    overridden = build_dashboards(parse_config(DATABASE + APIS + """
alerting:
  alerts:
    PgConnectionsHigh: {threshold: 0.7}
    PgCacheHitRatioLow: {threshold: 0.995}
    EmbeddingLatencyHigh: {threshold: 2s}
"""))
    connections = panel_steps(overridden["vecmon-postgres"], "Connections used")
    assert connections[2] == ("red", 0.7) and 0.6 < connections[1][1] < 0.7
    cache = panel_steps(overridden["vecmon-postgres"], "Buffer cache hit ratio")
    assert cache[1] == ("orange", 0.995) and 0.995 < cache[2][1] < 1
    assert panel_steps(overridden["vecmon-model-apis"], "Embedding latency") == [
        ("green", None), ("orange", 0.1), ("red", 2.0)]
    if HAS_SLOS:
        slos = build_dashboards(parse_config(full_config_text()))["vecmon-slos"]
        panel = next(p for p in lint.panels(slos) if p["title"] == "SLI over the period")
        objectives = {o["matcher"]["options"]: o["properties"][0]["value"]["steps"][1]["value"]
                      for o in panel["fieldConfig"]["overrides"]}
        assert objectives == {"rag / embedding-availability": 0.995, "rag / embedding-latency": 0.95}


# --------------------------------------------------------------------------- output


def test_output_is_deterministic(full_config, tmp_path):
    first = write_dashboards(full_config, tmp_path / "a")
    second = write_dashboards(parse_config(full_config_text()), tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_text() == json.dumps(json.loads(a.read_text()), sort_keys=True, indent=2,
                                           ensure_ascii=False) + "\n"


def test_regenerating_removes_dashboards_the_config_no_longer_enables(full_config, tmp_path):
    write_dashboards(full_config, tmp_path)
    assert (tmp_path / "grafana" / "vecmon-model-apis.json").exists()
    written = write_dashboards(parse_config("databases:\n  - {name: a, dsn: 'postgresql://x@h/db'}\n"), tmp_path)
    assert sorted(p.name for p in (tmp_path / "grafana").iterdir()) == sorted(p.name for p in written)


@pytest.mark.integration
def test_vecmon_generate_writes_the_dashboards(tmp_path):
    config = tmp_path / "vecmon.yaml"
    config.write_text(full_config_text())
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(config), "-o", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = {Path(line).name for line in result.stdout.split()}
    files = {p.name for p in (out / "grafana").glob("*.json")}
    assert files and files <= printed
    for path in (out / "grafana").glob("*.json"):
        assert lint.lint(json.loads(path.read_text()), lint_exclusions()) == []


def test_the_demo_config_gets_lint_clean_dashboards(tmp_path):
    from types import SimpleNamespace

    from monitor.demo import demo_config

    config = parse_config(demo_config(SimpleNamespace(port=5432), "127.0.0.1:9765", Path("/tmp/state.sqlite")))
    written = write_dashboards(config, tmp_path)
    assert {p.stem for p in written} >= {"vecmon-overview", "vecmon-postgres", "vecmon-self"}
    for path in written:
        assert lint.lint(json.loads(path.read_text()), lint_exclusions()) == [], path.name


def test_grafana_provisioning_example_points_at_the_generated_directory():
    document = yaml.safe_load((ROOT / "config" / "grafana-provisioning.yaml").read_text())
    provider = document["providers"][0]
    assert document["apiVersion"] == 1 and provider["type"] == "file"
    assert provider["options"]["path"].endswith("/grafana")


def test_layout_preview_shows_every_panel_and_escapes_titles():
    import xml.etree.ElementTree as ET

    from dashboards.preview import layout_svg

    board = {"title": "t <b>", "uid": "u", "panels": [
        {"type": "row", "title": "Recall", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
        {"type": "stat", "title": "<script>alert(1)</script>", "gridPos": {"x": 0, "y": 1, "w": 6, "h": 4}},
        {"type": "row", "title": "Folded", "collapsed": True, "gridPos": {"x": 0, "y": 5, "w": 24, "h": 1},
         "panels": [{"type": "timeseries", "title": "Inside", "gridPos": {"x": 6, "y": 6, "w": 12, "h": 8}}]}]}
    svg = layout_svg(board)
    root = ET.fromstring(svg)  # well-formed: every title was escaped
    texts = [el.text for el in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "<script>alert(1)</script>" in texts and "Inside" in texts and "Recall" in texts
    assert "timeseries" in texts and "stat" in texts
    assert "<script>" not in svg
    assert int(root.get("height")) >= (6 + 8) * 26  # the collapsed row's panel is drawn where Grafana puts it
