"""Every metric family vecmon declares, found where the collectors declare them: the SLI checks
(:mod:`alerts.sli_check`) read it, and so do the dashboards' reference checks (``dashboards.catalog``).

The collector modules are imported when :func:`declared_specs` is called (they are discovered by
walking the ``collectors`` package, so a new collector needs no registration here).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any

import collectors
from collectors.base import MetricSpec


def _specs_in(value: Any) -> Iterable[MetricSpec]:
    if isinstance(value, MetricSpec):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, MetricSpec):
                yield item


def declared_specs() -> dict[str, MetricSpec]:
    """Every MetricSpec found in the ``collectors`` package (module globals and collector classes),
    vecmon's self-metrics (:mod:`collectors.self_metrics`) among them, by name."""
    specs: dict[str, MetricSpec] = {}
    for info in sorted(pkgutil.walk_packages(collectors.__path__, "collectors."), key=lambda i: i.name):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            candidates = [value]
            if isinstance(value, type):
                candidates.append(getattr(value, "METRICS", ()))
            for candidate in candidates:
                for spec in _specs_in(candidate):
                    specs.setdefault(spec.name, spec)
    return dict(sorted(specs.items()))
