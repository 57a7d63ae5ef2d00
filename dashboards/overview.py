"""Overview: SLO status and error budgets, then the golden signals of search, embedding,
re-ranking and the database, and whether vecmon itself is healthy. Links lead to the detail
dashboards (dashboard links by the ``vecmon`` tag)."""

from __future__ import annotations

from typing import Any

from collectors.model_metrics import MODEL_API_COST_USD_TOTAL
from collectors.pg_connections import PG_CONNECTIONS_USED_RATIO
from collectors.pg_databases import (
    PG_DATABASE_BLKS_HIT_TOTAL,
    PG_DATABASE_BLKS_READ_TOTAL,
    PG_DATABASE_XACT_COMMIT_TOTAL,
    PG_DATABASE_XACT_ROLLBACK_TOTAL,
)
from collectors.pg_statements import PG_STATEMENT_CALLS_TOTAL, PG_STATEMENT_EXEC_SECONDS_TOTAL
from collectors.self_metrics import BUILD_INFO, COLLECTOR_RUNS_TOTAL, COLLECTOR_STALE, COLLECTOR_UP, UP
from dashboards import model_apis, slos, vector
from dashboards.facade import (
    Panel,
    dashboard,
    higher_is_better,
    lower_is_better,
    m,
    q,
    rate,
    row,
    standard_vars,
    stat,
    steps,
    timeseries,
)
from dashboards.targets import Targets

UID = "vecmon-overview"
VECTOR_OP = 'vector_op="true"'
FAILED = 'result=~"error|timeout"'
CONNECTIONS = 'collector="connections"'


def s(name: str, *extra: str) -> str:
    """Overview selectors: job and instance only (every target is summarised)."""
    return m(name, *extra, target=False)


def _slo_section(config: Any, t: Targets) -> list[Panel]:
    if not getattr(config, "slos", None):
        return []
    return [row("Service levels"), *slos.overview_panels(config, t)]


def _search(config: Any, t: Targets) -> list[Panel]:
    calls = f"sum({rate(s(PG_STATEMENT_CALLS_TOTAL.name, VECTOR_OP))})"
    seconds = f"sum({rate(s(PG_STATEMENT_EXEC_SECONDS_TOTAL.name, VECTOR_OP))})"
    panels = [
        row("Search"),
        stat("Vector queries", "Statements using a pgvector distance operator, per second (pg_stat_statements).",
             "reqps", [q(calls, "vector queries/s")], graph=True, thresholds=steps(("text", None)), w=6),
        stat("Vector query mean time", "Mean execution time of vector statements over the rate interval "
             f"(target {t.ann_latency_p50.good * 1000:.0f} ms).", "s", [q(f"{seconds} / ({calls} > 0)", "mean")],
             graph=True, thresholds=lower_is_better(t.ann_latency_p50.good, t.ann_latency_p50.bad), w=6),
    ]
    panels += vector.overview_panels(config, t)
    for panel in panels[1:]:  # one line of equal panels
        panel.w = 24 // (len(panels) - 1)
    return panels


def _models(config: Any, t: Targets) -> list[Panel]:
    panels = []
    for kind, title, limits in (("embedding", "Embedding", t.embedding_latency),
                                ("rerank", "Re-ranking", t.rerank_latency)):
        if not any(e.kind == kind for e in model_apis._endpoints(config)):
            continue
        k = f'kind="{kind}"'
        w = model_apis.PROBE_WINDOW
        total = f"sum(increase({s(model_apis.REQUESTS, k)}[{w}]))"
        failed = f"sum(increase({s(model_apis.REQUESTS, k, model_apis.NOT_SUCCESS)}[{w}]))"
        hist = f"sum by (le) ({rate(s(model_apis.HIST, k, model_apis.SUCCESS))})"
        panels += [
            row(title),
            stat(f"{title} probes", f"{title} probe requests across endpoints over the last {w}.", "short",
                 [q(total, f"requests/{w}")], graph=True, thresholds=steps(("text", None)), w=6),
            stat(f"{title} errors", f"Share of {kind} probe requests that failed over the last {w}.",
                 "percentunit", [q(f"{failed} / ({total} > 0)", "errors")], graph=True, decimals=2,
                 thresholds=lower_is_better(t.model_error_ratio.good, t.model_error_ratio.bad), w=6),
            stat(f"{title} latency p95", f"p95 round-trip time of successful {kind} probes (target "
                 f"{limits.good * 1000:.0f} ms).", "s", [q(f"histogram_quantile(0.95, {hist})", "p95")], graph=True,
                 thresholds=lower_is_better(limits.good, limits.bad), w=6),
            stat(f"{title} probe spend", f"Spend per hour of {kind} probes at list prices (0 when unpriced).",
                 "currencyUSD", [q(f"sum({rate(s(MODEL_API_COST_USD_TOTAL.name, k))}) * 3600 "
                                   f"or {total} * 0", "USD/h")], decimals=4, w=6),
        ]
    return panels


def _database(config: Any, t: Targets) -> list[Panel]:
    if not [db for db in getattr(config, "databases", []) or [] if db.enabled]:
        return []
    hits = f"sum by (target) ({rate(s(PG_DATABASE_BLKS_HIT_TOTAL.name))})"
    reads = f"sum by (target) ({rate(s(PG_DATABASE_BLKS_READ_TOTAL.name))})"
    return [
        row("Database"),
        stat("Databases reachable", "Database targets vecmon reached on its last attempt, out of all.", "short",
             [q(f"sum({s(UP.name)} and on (target) {s(COLLECTOR_UP.name, CONNECTIONS)})", "reachable"),
              q(f"count({s(COLLECTOR_UP.name, CONNECTIONS)})", "targets")], thresholds=steps(("text", None)), w=6),
        stat("Transactions", "Commits and rollbacks per second across the monitored servers.", "ops",
             [q(f"sum({rate(s(PG_DATABASE_XACT_COMMIT_TOTAL.name))}) + "
                f"sum({rate(s(PG_DATABASE_XACT_ROLLBACK_TOTAL.name))})", "tx/s")], graph=True,
             thresholds=steps(("text", None)), w=6),
        stat("Buffer cache hit ratio", "Worst buffer-cache hit ratio among the targets over the rate interval "
             f"(target > {t.cache_hit_ratio.good:.0%}).", "percentunit",
             [q(f"min({hits} / ({hits} + {reads} > 0))", "worst")], decimals=2,
             thresholds=higher_is_better(t.cache_hit_ratio.bad, t.cache_hit_ratio.good), w=6),
        stat("Connections used", "Highest share of max_connections in use among the targets "
             f"(alert above {t.connections_used.bad:.0%}).", "percentunit",
             [q(f"max({s(PG_CONNECTIONS_USED_RATIO.name)})", "worst")], decimals=1,
             thresholds=lower_is_better(t.connections_used.good, t.connections_used.bad), w=6),
    ]


def _vecmon(config: Any, t: Targets) -> list[Panel]:
    return [
        row("vecmon"),
        timeseries("Failed collector runs", "Failed or timed-out collector runs per second across all targets "
                   "(0 while everything succeeds).", "ops",
                   [q(f"sum by (target) ({rate(s(COLLECTOR_RUNS_TOTAL.name, FAILED))})", "{{target}}")],
                   thresholds=steps(("green", None), ("red", 0.001)), threshold_style="area", w=12, h=6),
        timeseries("Stale collectors", "Collectors serving an earlier run's series because their last run failed.",
                   "short", [q(f"sum by (target) ({s(COLLECTOR_STALE.name)})", "{{target}}")],
                   thresholds=steps(("green", None), ("orange", 1)), threshold_style="area", w=12, h=6),
    ]


def build(config: Any, t: Targets) -> dict[str, Any]:
    panels = [*_slo_section(config, t), *(_search(config, t) if _has_db(config) else []), *_models(config, t),
              *_database(config, t), *_vecmon(config, t)]
    return dashboard(UID, "vecmon / Overview", "RAG stack at a glance: SLOs and error budgets, and the golden "
                     "signals of search, embedding, re-ranking and the database.",
                     standard_vars(BUILD_INFO.name), panels, tags=["overview"])


def _has_db(config: Any) -> bool:
    return any(db.enabled for db in getattr(config, "databases", []) or [])
