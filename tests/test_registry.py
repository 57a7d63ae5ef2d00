"""The one registry of collectors (collectors.registry): every kind of target, declared once."""

from __future__ import annotations

import typing

from collectors.registry import KINDS, REGISTRY, TARGET_KINDS, all_api_targets, registrations
from monitor.config import Config


def test_every_registration_loads_a_collector_with_that_name_and_declared_metrics():
    names = [r.name for r in REGISTRY]
    assert len(names) == len(set(names))
    for r in REGISTRY:
        assert r.kind in KINDS, r.name
        cls = r.load()
        assert r.metrics and (r.kind == "custom_query" or r.metrics == cls.METRICS), r.name
        if r.kind != "custom_query":  # a query's collector is named query:<name> after its query
            assert cls.name == r.name
        assert r.scope in (("server", "database") if r.kind == "database" else ("database", "target")), r.name


def test_each_kind_with_its_own_targets_is_a_config_section_of_its_settings_type():
    for r in registrations(*TARGET_KINDS, "custom_query"):
        assert typing.get_args(Config.model_fields[r.section].annotation) == (r.settings,), r.name
    for r in registrations("database"):
        assert r.section == "databases" and r.settings is None


def test_all_api_targets_lists_every_entry_of_those_sections():
    config = Config.model_validate({
        "endpoints": [{"name": "e", "provider": "openai", "model": "m", "enabled": False}],
        "redis": [{"name": "r"}], "budgets": [{"name": "b", "sources": ["e"], "daily_usd": 1}],
        "applications": [{"name": "a", "url": "http://127.0.0.1:1/health"}]})
    assert [t.name for t in all_api_targets(config)] == ["e", "b", "r", "a"]
