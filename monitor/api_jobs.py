"""Scheduled jobs of the model-API side: endpoint probes, provider cost APIs, budgets, Redis.

:func:`build_api_jobs` is called by :func:`monitor.scheduler.build_jobs`. Each target gets its
own job (so a slow endpoint never delays another collector) and its own runner; HTTP targets
get their own ``requests.Session`` (keep-alive), closed with the runner. Every runner knows
the target's secrets, so a failure message is redacted before it is logged or stored.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests

from collectors.model_probe import DimensionSource, ModelProbeCollector
from collectors.provider_costs import LEDGER, BudgetCollector, PriceTable, ProviderCostsCollector, SpendLedger
from collectors.redis_cache import RedisCacheCollector
from monitor.config_apis import DimensionsFrom
from monitor.scheduler import CollectionJob, DirectRunner, Runner
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
    return session


DIMENSIONS_SQL = """
SELECT a.atttypmod FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""


def pgvector_dimension_source(config: Any, ttl: float = 600.0, retry_after: float = 60.0) -> DimensionSource:
    """Read the declared dimension of a vector/halfvec/sparsevec column (``atttypmod``) on a
    ``databases[]`` target, over a short read-only connection; cached for ``ttl`` seconds
    (failures for ``retry_after``). Unconstrained ``vector`` columns give None."""
    import psycopg

    from monitor.pg import build_conninfo

    targets = {db.name: db for db in getattr(config, "databases", [])}
    cache: dict[DimensionsFrom, tuple[float, int | None, bool]] = {}
    lock = threading.Lock()

    def resolve(ref: DimensionsFrom) -> int | None:
        now = time.monotonic()
        with lock:
            hit = cache.get(ref)
        if hit is not None and now - hit[0] < (ttl if hit[2] else retry_after):
            return hit[1]
        target = targets.get(ref.database)
        if target is None:
            return None
        dims, ok = None, False
        try:
            with psycopg.connect(build_conninfo(target), autocommit=True) as conn:
                row = conn.execute(DIMENSIONS_SQL, (ref.table, ref.column)).fetchone()
            dims, ok = (row[0] if row and row[0] > 0 else None), True
        finally:
            with lock:
                cache[ref] = (now, dims, ok)
        return dims

    return resolve


def build_api_jobs(config: Any, store: SnapshotStore, *, ledger: SpendLedger | None = None,
                   prices: PriceTable | None = None, dimension_source: DimensionSource | None = None,
                   trust_env: bool = True, clock: Callable[[], float] = time.time,
                   ) -> tuple[list[CollectionJob], list[Runner]]:
    """One job and one runner per enabled endpoint, cost API, budget and Redis target."""
    jobs: list[CollectionJob] = []
    runners: list[Runner] = []
    ledger = ledger if ledger is not None else LEDGER
    endpoints = [e for e in getattr(config, "endpoints", []) if e.enabled]
    if endpoints and prices is None:
        prices = PriceTable.load(getattr(config, "pricing", None))
    if dimension_source is None and any(e.dimensions_from is not None for e in endpoints):
        dimension_source = pgvector_dimension_source(config)

    for endpoint in endpoints:
        session = new_session(trust_env)
        runner = HttpRunner(secrets=endpoint.secrets(), session=session)
        collector = ModelProbeCollector(session=session, prices=prices, ledger=ledger,
                                        default_dimension_source=dimension_source, clock=clock)
        jobs.append(CollectionJob(endpoint, collector, runner, store))
        runners.append(runner)
    for target in getattr(config, "cost_apis", []):
        if target.enabled:
            session = new_session(trust_env)
            runner = HttpRunner(secrets=target.secrets(), session=session)
            jobs.append(CollectionJob(target, ProviderCostsCollector(session=session, ledger=ledger, clock=clock),
                                      runner, store))
            runners.append(runner)
    for budget in getattr(config, "budgets", []):
        if budget.enabled:
            runner = DirectRunner()
            jobs.append(CollectionJob(budget, BudgetCollector(ledger=ledger, clock=clock), runner, store))
            runners.append(runner)
    for target in getattr(config, "redis", []):
        if target.enabled:
            runner = DirectRunner(secrets=target.secrets())
            jobs.append(CollectionJob(target, RedisCacheCollector(), runner, store))
            runners.append(runner)
    return jobs, runners


def api_collector_classes() -> list[type]:
    """Every collector class of the model-API side (for the metric reference)."""
    return [ModelProbeCollector, ProviderCostsCollector, BudgetCollector, RedisCacheCollector]
