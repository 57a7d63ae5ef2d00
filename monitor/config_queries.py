"""How the custom queries of a config (:mod:`collectors.settings.custom_queries` says what one
looks like) are checked against each other and vecmon's own metrics, and become scheduled jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collectors.base import MetricSpec
from collectors.custom_queries import QUERY_METRICS, QueryPlan
from collectors.pg_session import describe_target
from collectors.registry import registrations
from collectors.self_metrics import SELF_METRICS
from collectors.settings.custom_queries import CUSTOM_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import Config, DatabaseTarget

# -- every custom query of a config, checked and scheduled --------------------------------------------

def vecmon_metric_names() -> set[str]:
    """Every metric name vecmon itself declares (collectors and self-metrics)."""
    specs = [*SELF_METRICS, *QUERY_METRICS, *(spec for r in registrations() if r.kind != "custom_query"
                                              for spec in r.metrics)]
    return {spec.name for spec in specs}


def exported_names(spec: MetricSpec) -> set[str]:
    """Sample names a family produces, as Prometheus sees them."""
    if spec.kind == "histogram":
        return {spec.name + s for s in ("_bucket", "_sum", "_count")} | {spec.name}
    if spec.kind == "counter":
        return {spec.name, spec.name.removesuffix("_total")}
    if spec.kind == "info":
        return {spec.name, spec.name + "_info"}
    return {spec.name}


def query_plans(config: Config) -> list[QueryPlan]:
    """vecmon's own queries, then those of the queries.yaml file (``extend_query_path``)."""
    plans = [query.plan(f"queries[{i}] ({query.name})") for i, query in enumerate(config.queries)]
    if config.extend_query_path is not None:
        plans.extend(config.extend_query_path.plans)
    return plans


def check_query_plans(config: Config) -> None:
    """Unique query names, known targets, no metric name used twice or declared by vecmon itself."""
    plans = query_plans(config)
    if not plans:
        return  # nothing to check: and no need to load every collector (SQLAlchemy, the provider clients)
    ours = vecmon_metric_names()
    ours |= {name.removesuffix("_total") for name in ours}
    targets = {db.name for db in config.databases}
    queries: dict[str, str] = {}
    names: dict[str, str] = {}
    errors = []
    for plan in plans:
        if plan.name in queries:
            errors.append(f"{plan.source}: query name {plan.name!r} is already used by {queries[plan.name]}")
        queries.setdefault(plan.name, plan.source)
        unknown = sorted(set(plan.targets) - targets)
        if unknown:
            errors.append(f"{plan.source}: unknown database target(s) {', '.join(unknown)}")
        for column in plan.metrics:
            for exported in sorted(exported_names(column.spec)):
                if exported in ours or exported.startswith("vecmon_") and not exported.startswith(CUSTOM_PREFIX):
                    errors.append(f"{plan.source}: metric {column.spec.name} collides with vecmon's own metrics")
                    break
                if exported in names and names[exported] != plan.source:
                    errors.append(f"{plan.source}: metric {column.spec.name} is also exported by {names[exported]}")
                    break
                names[exported] = plan.source
    if errors:
        raise ValueError("; ".join(errors))


def _server_of(target: DatabaseTarget) -> str:
    return describe_target(target).rpartition("/")[0]


def plans_for_target(config: Config, target: DatabaseTarget) -> list[QueryPlan]:
    """The custom queries that run on ``target``: database-scoped ones on each target they name,
    server-scoped ones only on the first enabled target (config order) of each server."""
    selected = []
    for plan in query_plans(config):
        if not plan.applies_to(target.name):
            continue
        if plan.scope == "server":
            first = next(t for t in config.enabled_databases()
                         if plan.applies_to(t.name) and _server_of(t) == _server_of(target))
            if first.name != target.name:
                continue
        selected.append(plan)
    return selected


def query_target(target: DatabaseTarget, plan: QueryPlan) -> DatabaseTarget:
    """The target as the query's job sees it: its interval and timeout are the query's.

    The scheduler asks ``target.interval_for/timeout_for/jitter_for(collector)``; on this copy they
    return the query's values (``timeout`` is capped at the interval, as for every collector). The
    connection is still the target's own connector (pool, session settings, lock_timeout)."""
    interval = plan.interval or max(target.interval, plan.min_interval)
    return target.model_copy(update={"interval": interval, "timeout": plan.timeout or target.timeout})
