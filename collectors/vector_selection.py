"""Which indexes and filters the vector probes cover, and the config entries naming what a target lacks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from collectors.base import CollectContext, MetricSpec
from collectors.vector_model import VectorCatalog, VectorIndex
from collectors.vector_names import name_matches

log = logging.getLogger(__name__)


def selected_indexes(catalog: VectorCatalog, vector_settings: Any) -> list[VectorIndex]:
    """Top-level indexes the probes cover: configured ones (``vector.indexes``) or all, bounded."""
    patterns = list(getattr(vector_settings, "indexes", []) or [])
    limit = int(getattr(vector_settings, "max_indexes", 20))
    chosen = []
    for idx in catalog.top_level_indexes():
        if patterns and not any(name_matches(p, idx.schema, idx.name) for p in patterns):
            continue
        chosen.append(idx)
    chosen.sort(key=lambda i: (i.schema, i.table, i.name))
    return chosen[:limit]


MISCONFIGURED = MetricSpec(
    "vecmon_collector_misconfigured", "gauge",
    "Value 1 for each config entry naming what the target does not have (reason unknown_index, "
    "unknown_filter_index, unknown_filter_table; path: where in the config file); absent when all exist.",
    ("collector", "reason", "path"))
_WARNED_KEY = "_config_problems_warned"


@dataclass(frozen=True)
class ConfigProblem:
    """A config entry naming an index or table the target does not have."""

    path: str  # e.g. databases[0].vector.indexes[1]
    reason: str  # unknown_index | unknown_filter_index | unknown_filter_table
    message: str


def config_problems(catalog: VectorCatalog, vector_settings: Any, target: str) -> list[ConfigProblem]:
    """``vector.indexes`` patterns and filters that match no HNSW/IVFFlat index of the catalog."""
    base = getattr(vector_settings, "config_path", "vector")
    tops = catalog.top_level_indexes()
    problems = []
    for i, pattern in enumerate(getattr(vector_settings, "indexes", []) or []):
        if not any(name_matches(pattern, idx.schema, idx.name) for idx in tops):
            problems.append(ConfigProblem(f"{base}.indexes[{i}]", "unknown_index",
                                          f"no index {pattern} on target {target}"))
    for i, flt in enumerate(getattr(vector_settings, "filters", []) or []):
        if flt.index is not None and not any(name_matches(flt.index, idx.schema, idx.name) for idx in tops):
            problems.append(ConfigProblem(f"{base}.filters[{i}].index", "unknown_filter_index",
                                          f"no index {flt.index} on target {target}"))
        elif flt.table is not None and not any(name_matches(flt.table, idx.schema, idx.table) for idx in tops):
            problems.append(ConfigProblem(f"{base}.filters[{i}].table", "unknown_filter_table",
                                          f"no table {flt.table} with an HNSW or IVFFlat index on target {target}"))
    return problems


def report_config_problems(ctx: CollectContext, collector: str, catalog: VectorCatalog, emitter: Any) -> None:
    """Warn (once per change of the problems) and export ``vecmon_collector_misconfigured``."""
    problems = config_problems(catalog, ctx.settings.vector, ctx.target)
    if ctx.state.get(_WARNED_KEY) != problems:
        for problem in problems:
            log.warning("%s on %s: %s: %s", collector, ctx.target, problem.path, problem.message)
        ctx.state[_WARNED_KEY] = problems
    for problem in problems:
        emitter.add(MISCONFIGURED.name, 1, collector, problem.reason, problem.path)


def filters_for(index: VectorIndex, vector_settings: Any) -> list[Any]:
    """Configured filters that apply to ``index`` (by index name or by table)."""
    matched = []
    for flt in getattr(vector_settings, "filters", []) or []:
        if ((flt.index is not None and name_matches(flt.index, index.schema, index.name))
                or (flt.table is not None and name_matches(flt.table, index.schema, index.table))):
            matched.append(flt)
    return matched

