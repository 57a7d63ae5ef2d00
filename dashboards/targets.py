"""Dashboard thresholds, taken from the config.

- Alert thresholds: the effective threshold of each generated alert (:mod:`alerts.catalog`, with
  the config's ``alerting.alerts.<Name>.threshold`` overrides applied) is the panel's red line,
  so a dashboard turns red exactly where the alert fires.
- Targets: recall targets (``databases[].vector.recall.target``), SLO objectives (``slos[]``),
  ``daemon.stale_after``.
- Where the config has no number, the operators' usual targets from the operations documents
  vecmon was built from are the green line: cache hit ratio > 99 %, connections < 80 % of
  max, index-scan ratio > 95 %, ANN latency p50 < 20 ms and p99 < 100 ms (alert 50 / 500 ms),
  embedding latency < 100 ms, re-ranker latency < 200 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.catalog import ALERTS


@dataclass(frozen=True)
class Limits:
    good: float  # the target (green from / up to here)
    bad: float  # the alert threshold (red from / below here)


@dataclass(frozen=True)
class Targets:
    cache_hit_ratio: Limits = Limits(0.99, 0.95)
    connections_used: Limits = Limits(0.8, 0.9)
    index_scan_ratio: Limits = Limits(0.95, 0.80)
    dead_tuple_ratio: Limits = Limits(0.1, 0.2)
    replication_lag: Limits = Limits(30.0, 60.0)
    wal_size: Limits = Limits(512.0 * 2**20, 2.0**30)
    long_transaction: Limits = Limits(150.0, 300.0)
    ann_latency_p50: Limits = Limits(0.020, 0.050)
    ann_latency_p99: Limits = Limits(0.100, 0.500)
    embedding_latency: Limits = Limits(0.100, 0.500)
    rerank_latency: Limits = Limits(0.200, 0.500)
    model_error_ratio: Limits = Limits(0.01, 0.05)
    budget_used: Limits = Limits(0.8, 1.0)
    recall: float = 0.9  # the strictest configured recall target
    slo_objective: float = 0.999  # the strictest configured objective
    collector_stale_after: float = 300.0


def alert_threshold(config: Any, name: str) -> float | None:
    """The threshold alert ``name`` uses for this config (None when the config has no alerting section or
    no such alert)."""
    definition, settings = ALERTS.get(name), getattr(config, "alerting", None)
    if definition is None or settings is None:
        return None
    return definition.params(config, settings).threshold


def _limits(config: Any, alert: str, default: Limits) -> Limits:
    """``default`` with the alert's threshold as ``bad``. The usual target stays ``good`` unless it would
    be on the wrong side of the threshold; then it keeps its distance in proportion (for ratios where
    higher is better, the distance to 1)."""
    bad = alert_threshold(config, alert)
    if bad is None:
        return default
    if default.good > default.bad:  # higher is better (hit ratios)
        if default.good > bad:
            return Limits(default.good, bad)
        return Limits(1 - (1 - bad) * (1 - default.good) / (1 - default.bad), bad)
    if default.good < bad:
        return Limits(default.good, bad)
    return Limits(bad * default.good / default.bad, bad)


def from_config(config: Any) -> Targets:
    d = Targets()
    recalls: dict[str, float] = {}
    for db in getattr(config, "databases", []) or []:
        recall = getattr(getattr(getattr(db, "vector", None), "recall", None), "target", None)
        if isinstance(recall, (int, float)) and getattr(db, "enabled", True):
            recalls[db.name] = float(recall)
    objectives = [float(slo.objective) for slo in getattr(config, "slos", []) or []]
    stale = getattr(getattr(config, "daemon", None), "stale_after", None)
    return Targets(
        cache_hit_ratio=_limits(config, "PgCacheHitRatioLow", d.cache_hit_ratio),
        connections_used=_limits(config, "PgConnectionsHigh", d.connections_used),
        index_scan_ratio=_limits(config, "PgVectorTableIndexScanRatioLow", d.index_scan_ratio),
        dead_tuple_ratio=_limits(config, "PgVectorTableDeadTuplesHigh", d.dead_tuple_ratio),
        replication_lag=_limits(config, "PgReplicationLagHigh", d.replication_lag),
        wal_size=_limits(config, "PgWalSizeHigh", d.wal_size),
        long_transaction=_limits(config, "PgLongRunningTransaction", d.long_transaction),
        ann_latency_p50=_limits(config, "AnnQueryLatencyP50High", d.ann_latency_p50),
        ann_latency_p99=_limits(config, "AnnQueryLatencyP99High", d.ann_latency_p99),
        embedding_latency=_limits(config, "EmbeddingLatencyHigh", d.embedding_latency),
        rerank_latency=_limits(config, "RerankLatencyHigh", d.rerank_latency),
        model_error_ratio=_limits(config, "ModelApiErrorRatioHigh", d.model_error_ratio),
        budget_used=_limits(config, "DailySpendOverBudget", d.budget_used),
        recall=max(recalls.values()) if recalls else d.recall,
        slo_objective=max(objectives) if objectives else d.slo_objective,
        collector_stale_after=float(stale) if isinstance(stale, (int, float)) else d.collector_stale_after,
    )
