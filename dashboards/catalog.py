"""What a dashboard may reference: metrics declared by collectors (``METRICS``), vecmon's
self-metrics, and the recording rules the alerting generator writes for a config.

Used by the tests: every metric a panel reads must be in here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from alerts.metric_specs import declared_specs
from alerts.render import write_alerting
from collectors.base import MetricSpec


def series_names(spec: MetricSpec) -> set[str]:
    """The sample names a family produces in the text exposition."""
    if spec.kind == "histogram":
        return {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    if spec.kind == "info":
        return {spec.name if spec.name.endswith("_info") else f"{spec.name}_info"}
    return {spec.name}


def declared_series() -> set[str]:
    return {name for spec in declared_specs().values() for name in series_names(spec)}


def recording_rules(config: Any) -> set[str]:
    """Names recorded by the rule files :func:`alerts.render.write_alerting` writes for ``config``."""
    names: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for path in write_alerting(config, Path(tmp), ""):  # the names do not depend on the version
            if path.suffix not in (".yml", ".yaml"):
                continue
            document = yaml.safe_load(path.read_text()) or {}
            if not isinstance(document, dict):
                continue
            for group in document.get("groups") or []:
                for rule in group.get("rules") or []:
                    if "record" in rule:
                        names.add(rule["record"])
    return names
