"""Dashboards in a current Grafana schema (schemaVersion 39, Grafana 10.4 to 12), not grafanalib's 12,
and the application-check dashboard in the generated set when the config has applications."""

from __future__ import annotations

import yaml

from dashboards import lint
from dashboards.render import SCHEMA_VERSION, build_dashboards, lint_exclusions
from monitor.loader import parse_config
from tests.test_dashboards import full_config_text

APPS = yaml.safe_dump({"applications": [{"name": "rag-search", "url": "https://rag.example.com/search"}]})


def test_every_generated_dashboard_has_the_current_schema_shapes():
    boards = build_dashboards(parse_config(full_config_text() + APPS))
    assert SCHEMA_VERSION >= 39
    for uid, board in boards.items():
        assert board["schemaVersion"] == SCHEMA_VERSION, uid
        for key, value in (("fiscalYearStartMonth", 0), ("liveNow", False), ("weekStart", "")):
            assert board[key] == value, (uid, key)
        for legacy in ("rows", "style", "sharedCrosshair", "hideControls", "gnetId"):
            assert legacy not in board, (uid, legacy)
        for panel in lint.panels(board):
            where = f"{uid} / {panel['title']}"
            assert panel["type"] not in ("graph", "singlestat", "table-old"), where
            if panel["type"] == "row":
                continue
            assert set(panel["datasource"]) == {"type", "uid"}, where
            for key in ("interval", "timeFrom", "timeShift", "maxDataPoints", "hideTimeOverride", "transparent"):
                assert key not in panel, (where, key)
            assert "fieldConfig" in panel and "defaults" in panel["fieldConfig"] and "options" in panel, where
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)) and all(refs), where
            for target in panel["targets"]:
                assert set(target["datasource"]) == {"type", "uid"}, where
                assert "query" not in target and "expr" in target, where
                assert target["range"] is (not target["instant"]), where
                assert target["editorMode"] == "code", where
            if panel["type"] == "timeseries":
                assert panel["options"]["legend"]["showLegend"] is True, where
                assert None not in panel["fieldConfig"]["defaults"]["custom"].values(), where
            if panel["type"] == "table":
                custom = panel["fieldConfig"]["defaults"]["custom"]
                assert "displayMode" not in custom and custom["cellOptions"]["type"], where
                for override in panel["fieldConfig"]["overrides"]:
                    assert "custom.displayMode" not in [p["id"] for p in override["properties"]], where
        assert lint.lint(board, lint_exclusions()) == [], uid


def test_the_application_dashboard_is_generated_when_the_config_has_applications():
    with_apps = build_dashboards(parse_config(full_config_text() + APPS))
    assert "vecmon-applications" in with_apps
    titles = [p["title"] for p in lint.panels(with_apps["vecmon-applications"])]
    assert "Check latency" in titles
    assert "vecmon-applications" not in build_dashboards(parse_config(full_config_text()))
