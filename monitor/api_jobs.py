"""Scheduled jobs of the model-API side: endpoint probes, provider cost APIs, budgets, Redis.

:func:`build_api_jobs` is called by :func:`monitor.scheduler.build_jobs`. Each target gets its
own job (so a slow endpoint never delays another collector) and its own runner; HTTP targets
get their own ``requests.Session`` (keep-alive; adapters that enforce whole-request deadlines),
closed with the runner. Every runner knows
the target's secrets, so a failure message is redacted before it is logged or stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from collectors.app_probe import AppProbeCollector
from collectors.model_probe import DimensionSource, ModelProbeCollector
from collectors.provider_costs import BudgetCollector, PriceTable, ProviderCostsCollector
from collectors.providers.http_deadline import mount_deadline_adapters, redact_urllib3_urls
from collectors.redis_cache import RedisCacheCollector
from monitor.scheduler import CollectionJob, DirectRunner, JobGate, Runner
from monitor.shared import SharedState
from monitor.snapshot import SnapshotStore

log = logging.getLogger(__name__)

USER_AGENT = "vecmon-probe"


@dataclass
class HttpRunner(DirectRunner):
    """A :class:`DirectRunner` that owns the target's HTTP session."""

    session: requests.Session | None = None

    def close(self, timeout: float = 2.0) -> None:
        if self.session is not None:
            self.session.close()


def new_session(trust_env: bool = True) -> requests.Session:
    session = requests.Session()
    session.trust_env = trust_env  # HTTP(S)_PROXY / NO_PROXY from the environment
    session.headers["User-Agent"] = USER_AGENT
    mount_deadline_adapters(session)  # whole-request deadlines (collectors.providers.http_deadline)
    return session


def build_api_jobs(config: Any, store: SnapshotStore, shared: SharedState, gate: JobGate | None = None, *,
                   prices: PriceTable | None = None,
                   dimension_source: DimensionSource | None = None, trust_env: bool = True,
                   clock: Callable[[], float] = time.time) -> tuple[list[CollectionJob], list[Runner]]:
    """One job and one runner per enabled endpoint, cost API, application check, budget and Redis target."""
    jobs: list[CollectionJob] = []
    runners: list[Runner] = []
    ledger = shared.ledger
    redact_urllib3_urls()  # a hostile peer makes urllib3 log the URL, query (API key?) included
    gate = gate if gate is not None else JobGate()

    def job(target: Any, collector: Any, runner: Runner) -> CollectionJob:
        return CollectionJob(target, collector, runner, store, shared, gate)
    endpoints = [e for e in getattr(config, "endpoints", []) if e.enabled]
    if endpoints and prices is None:
        prices = PriceTable.load(getattr(config, "pricing", None))
    if dimension_source is None:
        dimension_source = shared.vector_columns.dimensions

    for endpoint in endpoints:
        session = new_session(trust_env)
        runner = HttpRunner(secrets=endpoint.secrets(), session=session)
        collector = ModelProbeCollector(session=session, prices=prices, ledger=ledger,
                                        default_dimension_source=dimension_source, clock=clock)
        jobs.append(job(endpoint, collector, runner))
        runners.append(runner)
    for target in getattr(config, "cost_apis", []):
        if target.enabled:
            session = new_session(trust_env)
            runner = HttpRunner(secrets=target.secrets(), session=session)
            jobs.append(job(target, ProviderCostsCollector(session=session, ledger=ledger, clock=clock), runner))
            runners.append(runner)
    for app in getattr(config, "applications", []):
        if app.enabled:
            session = new_session(trust_env)
            runner = HttpRunner(secrets=app.secrets(), session=session)
            jobs.append(job(app, AppProbeCollector(session=session), runner))
            runners.append(runner)
    for budget in getattr(config, "budgets", []):
        if budget.enabled:
            runner = DirectRunner()
            jobs.append(job(budget, BudgetCollector(ledger=ledger, clock=clock), runner))
            runners.append(runner)
    for target in getattr(config, "redis", []):
        if target.enabled:
            runner = DirectRunner(secrets=target.secrets())
            jobs.append(job(target, RedisCacheCollector(), runner))
            runners.append(runner)
    return jobs, runners


def api_collector_classes() -> list[type]:
    """Every collector class of the model-API side (for the metric reference)."""
    return [ModelProbeCollector, ProviderCostsCollector, BudgetCollector, RedisCacheCollector, AppProbeCollector]
