"""Test helpers: run one collector against a real database and read its samples, wait for a condition,
list the metric names a PromQL expression reads."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from collectors.base import CollectContext
from collectors.registry import database_collector
from dashboards.lint import parse, selectors
from monitor.config import DatabaseTarget
from monitor.pg import DatabaseConnector
from monitor.shared import SharedState


class Families:
    """A private registry holding one collection's families (client_python style assertions)."""

    def __init__(self, families):
        self.families = list(families)
        self.registry = CollectorRegistry(auto_describe=False)
        outer = self

        class _Static:
            def collect(self):
                return outer.families

        self.registry.register(_Static())

    def value(self, name: str, labels: dict | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})

    def samples(self, name: str) -> list:
        return [s for f in self.families for s in f.samples if s.name == name]

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def make_target(dsn: str, name: str = "t", **overrides) -> DatabaseTarget:
    return DatabaseTarget.model_validate({"name": name, "dsn": dsn, **overrides})


def run_collector(dsn: str, collector: str, *, state: dict | None = None, timeout: float = 10.0,
                  shared: SharedState | None = None, **target_overrides) -> Families:
    """Run ``collector`` once against ``dsn`` exactly as the daemon does (read-only, timeouts)."""
    target = make_target(dsn, **target_overrides)
    connector = DatabaseConnector(target)
    connector.open()
    own_shared = shared is None
    shared = shared if shared is not None else SharedState()
    try:
        ctx = CollectContext(target=target.name, settings=target, state=state if state is not None else {},
                             shared=shared)
        families = connector.run(database_collector(collector)().collect, ctx, timeout)
    finally:
        connector.close()
        if own_shared:
            shared.close()
    return Families(families)


def require_tool(tool: str | Path, package: str) -> str:
    """The path of an external tool (a name on PATH or a path); when it is missing, the test
    fails, in CI and everywhere else (.ci/run installs every tool; a skip could hide a missing one)."""
    path = str(tool) if Path(tool).is_absolute() and Path(tool).exists() else shutil.which(str(tool))
    if path is None:
        pytest.fail(f"{tool} not found (apt-get install {package})")
    return path


T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, what: str = "the condition", *,
               interval: float = 0.1) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value, and return that value;
    after ``timeout`` seconds (the predicate is tried once more at the deadline) fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not within {timeout:g}s")
        time.sleep(interval)


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression reads (a rule's, or a panel's with Grafana variables), by its
    selectors' names and ``__name__`` matchers."""
    names = set()
    for selector in selectors(parse(expr)):
        if selector.name:
            names.add(selector.name)
        for matcher in selector.matchers.matchers:
            if matcher.name == "__name__" and str(matcher.op).endswith("Equal"):
                names.add(matcher.value)
    return names
