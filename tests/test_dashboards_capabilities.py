"""Generated for what can be filled: no vector dashboard for databases without vector monitoring, no
statement panels without the statements collector, and panels that say why they are empty when a
capability is only known at run time (pgvector, pg_stat_statements)."""

from __future__ import annotations

from collectors.self_metrics import COLLECTOR_DISABLED
from dashboards.lint import lint
from dashboards.render import build_dashboards, lint_exclusions
from monitor.loader import parse_config

HEAD = 'alerting: {runbook_base_url: "https://docs.example.org/vecmon/README.md"}\n'


def _panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_no_vector_dashboard_when_every_database_turns_vector_monitoring_off():
    config = parse_config(HEAD + """
databases:
  - {name: a, dsn: postgresql://vecmon@db/a, vector: {enabled: false}}
  - {name: b, dsn: postgresql://vecmon@db/b, vector: {enabled: false}}
""")
    assert not {"vector_indexes", "recall", "ann_latency", "vector_freshness", "vector_bloat"} & set(
        config.databases[0].enabled_collectors())
    boards = build_dashboards(config)
    assert "vecmon-vector" not in boards
    assert "vecmon-postgres" in boards


def test_no_statement_panels_when_no_database_runs_the_statements_collector():
    config = parse_config(HEAD + """
databases:
  - {name: a, dsn: postgresql://vecmon@db/a, collectors: {statements: {enabled: false}}}
""")
    board = build_dashboards(config)["vecmon-postgres"]
    exprs = [t["expr"] for p in _panels(board) for t in p.get("targets", [])]
    assert not [e for e in exprs if "vecmon_pg_statement_" in e]
    assert not [p for p in board["panels"] if "pg_stat_statements" in p["title"]]


def test_panels_that_depend_on_an_extension_say_why_they_are_empty():
    config = parse_config(HEAD + "databases:\n  - {name: a, dsn: postgresql://vecmon@db/a}\n")
    boards = build_dashboards(config)
    vector = _panels(boards["vecmon-vector"])
    assert vector
    for panel in vector:
        no_value = panel["fieldConfig"]["defaults"].get("noValue", "")
        assert "pgvector is not installed" in no_value, panel["title"]
        assert f'{COLLECTOR_DISABLED.name}{{collector="vector_indexes"}} == 1' in no_value, panel["title"]
    statements = [p for p in _panels(boards["vecmon-postgres"])
                  if any("vecmon_pg_statement_" in t["expr"] for t in p.get("targets", []))]
    assert statements
    for panel in statements:
        no_value = panel["fieldConfig"]["defaults"]["noValue"]
        assert "pg_stat_statements is not installed" in no_value, panel["title"]
        assert f'{COLLECTOR_DISABLED.name}{{collector="statements"}} == 1' in no_value
    others = [p for p in _panels(boards["vecmon-postgres"]) if p not in statements]
    assert not [p["title"] for p in others if "pg_stat_statements" in p["fieldConfig"]["defaults"].get("noValue", "")]
    for board in boards.values():
        assert lint(board, lint_exclusions()) == [], board["uid"]
