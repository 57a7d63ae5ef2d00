"""Scheduling: one APScheduler job per (target, collector), each with its own interval.

Jobs run on one shared thread pool with at most ``max_connections`` runs per database target at a
time (:mod:`monitor.workers`): a hanging target holds only its own share, and a run never waits
on a thread for a connection. First runs are staggered over a couple of seconds per target.
``max_instances=1`` and ``coalesce`` keep a slow job from piling up, and every run is bounded on
the server by ``statement_timeout`` and a watchdog cancel. The time a run waited for a worker and
a connection is recorded apart from its duration (``vecmon_collector_pool_wait_seconds``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collectors.registry import TARGET_KINDS, registration, registrations
from monitor.api_jobs import ApiContext, api_collector
from monitor.batches import BatchJob, form_batches
from monitor.config import Config
from monitor.config_queries import plans_for_target, query_target
from monitor.discovery import cluster_wide_settings
from monitor.discovery import expand as expand_discovery
from monitor.jobs import CollectionJob, JobGate, Runner
from monitor.leader import gate_leader_only, leader_elector
from monitor.pg import DatabaseConnector
from monitor.servers import ServerRunner, group_servers
from monitor.sessions import SessionBudget
from monitor.shard import effective_shard, for_shard
from monitor.shared import SharedState
from monitor.snapshot import Key, SnapshotStore
from monitor.workers import TargetExecutor, TargetWorkers, Watchdog

log = logging.getLogger(__name__)
FIRST_RUN_SPREAD = 2.0  # seconds over which one target's first runs are staggered, at least
FIRST_RUN_GAP = 0.01  # and at most 100 first runs a second in all (1,000 jobs: over 10 s, within their interval)


def has_api_targets(config: Config) -> bool:
    """Whether the config has anything for :mod:`monitor.api_jobs`: endpoints, cost APIs, budgets, Redis, checks."""
    return any(target.enabled for r in registrations(*TARGET_KINDS) for target in getattr(config, r.section))


def build_api_jobs(config: Config, store: SnapshotStore, shared: SharedState, gate: JobGate | None = None, *,
                   prices: Any = None, dimension_source: Callable[[Any], int | None] | None = None,
                   trust_env: bool = True,
                   clock: Callable[[], float] = time.time) -> tuple[list[CollectionJob], list[Runner]]:
    """One job and one runner per enabled entry of every kind with its own targets (the registry's
    TARGET_KINDS: endpoints, cost APIs, budgets, Redis, application checks)."""
    gate = gate if gate is not None else JobGate()
    context = ApiContext(shared, prices, dimension_source, trust_env, clock, pricing=config.pricing)
    jobs: list[CollectionJob] = []
    runners: list[Runner] = []
    for kind in registrations(*TARGET_KINDS):
        for target in getattr(config, kind.section):
            if target.enabled:
                collector, runner = api_collector(kind, target, context)
                jobs.append(CollectionJob(target, collector, runner, store, shared, gate))
                runners.append(runner)
    return jobs, runners


def build_jobs(config: Config, store: SnapshotStore, shared: SharedState,
               gate: JobGate) -> tuple[list[CollectionJob], list[Runner]]:
    jobs: list[CollectionJob] = []
    connectors: list[Runner] = []
    shard = effective_shard(config)
    elector = leader_elector(config, shard)  # None without daemon.ha
    # discover: entries -> one target per database
    config, discovery_jobs = expand_discovery(config, shared.rediscovery)
    config = for_shard(config, shard)  # only this instance's targets (monitor.shard)
    jobs.extend(database_jobs(config, store, shared, gate, connectors))
    for settings, collector, entry in discovery_jobs:
        runner = DatabaseConnector(entry, budget=SessionBudget(1), keep_idle=0)  # one short session per refresh
        connectors.append(runner)
        jobs.append(CollectionJob(settings, collector, runner, store, shared, gate))
    if has_api_targets(config):  # the provider clients (requests, ...) are loaded only when configured
        api_jobs, api_runners = build_api_jobs(config, store, shared, gate)
        jobs.extend(api_jobs)
        connectors.extend(api_runners)
    if elector is not None:
        gate_leader_only(jobs, elector)
        connectors.insert(0, elector)  # opened first: the first attempt precedes every job
    return jobs, connectors


def database_jobs(config: Config, store: SnapshotStore, shared: SharedState, gate: JobGate,
                  connectors: list[Runner]) -> list[CollectionJob]:
    """PostgreSQL jobs by server (monitor.servers): database-scope collectors and custom queries on
    every target, cluster-wide ones once per server, as a job of the first target enabling them."""
    jobs: list[CollectionJob] = []
    query_collector = registration("query").load()  # collectors.custom_queries.CustomQueryCollector
    for server in group_servers(config.enabled_databases()):
        runner = ServerRunner(server)
        for target, connector in zip(server.targets, server.connectors, strict=True):
            connectors.append(connector)
            for name in target.enabled_collectors():
                database = registration(name)
                collector = database.load()()
                if database.scope == "database":
                    jobs.append(CollectionJob(target, collector, connector, store, shared, gate))
                elif server.first_enabling(name) is target:
                    jobs.append(CollectionJob(cluster_wide_settings(target), collector, runner, store, shared, gate))
            for plan in plans_for_target(config, target):  # custom queries: one job each
                if plan.scope == "server":
                    jobs.append(CollectionJob(cluster_wide_settings(query_target(target, plan)),
                                              query_collector(plan), runner, store, shared, gate))
                else:
                    jobs.append(CollectionJob(query_target(target, plan), query_collector(plan), connector,
                                              store, shared, gate))
    return jobs


class Runtime:
    """Scheduler, connectors and jobs for one config; replaced as a whole on reload."""

    def __init__(self, config: Config, store: SnapshotStore, shared: SharedState | None = None):
        self.config = config
        self.store = store
        self._owns_shared = shared is None  # a daemon passes its own, which outlives reloads
        self.shared = shared if shared is not None else SharedState()
        self.gate = JobGate()
        self.jobs, self.connectors = build_jobs(config, store, self.shared, self.gate)
        self.units = form_batches(self.jobs)  # what is scheduled: batches of a target's jobs, other jobs alone
        self._by_id: dict[str, CollectionJob | BatchJob] = {unit.job_id: unit for unit in self.units}
        self._groups = self._group_jobs()
        self.workers = TargetWorkers(self._group_limits())
        self.watchdog = Watchdog()  # one thread cancels overdue runs on every target
        for connector in self.connectors:
            if isinstance(connector, DatabaseConnector):
                connector.watchdog = self.watchdog
        self.scheduler = BackgroundScheduler(
            executors={"default": TargetExecutor(self.workers, lambda job_id: self._groups[job_id],
                                                 self._on_start)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_skip, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._stopped = threading.Event()

    def _group_jobs(self) -> dict[str, str]:
        """Unit id -> its worker group: one per runner (a database target's connector, an endpoint's runner)."""
        index = {id(runner): f"runner-{n}" for n, runner in enumerate(self.connectors)}
        return {unit.job_id: index.setdefault(id(unit.connector), f"runner-{len(index)}") for unit in self.units}

    def _group_limits(self) -> dict[str, int]:
        """Runs at once per group: a database target's max_connections; an HTTP runner's job count."""
        limits: dict[str, int] = {}
        for unit in self.units:
            group = self._groups[unit.job_id]
            if isinstance(unit.connector, DatabaseConnector):
                limits[group] = unit.connector.target.max_connections
            else:
                limits[group] = limits.get(group, 0) + 1
        return limits

    def _on_start(self, job_id: str, waited: float) -> None:
        job = self._by_id.get(job_id)
        if job is not None:
            job.waited = waited

    def first_runs(self, now: datetime) -> dict[str, datetime]:
        """When each job first runs: a group's jobs spread over FIRST_RUN_SPREAD seconds (at most
        their interval), groups interleaved, so the collectors of a target do not all start at once."""
        members: dict[str, list[CollectionJob | BatchJob]] = {}
        for unit in self.units:
            members.setdefault(self._groups[unit.job_id], []).append(unit)
        firsts: dict[str, datetime] = {}
        widest = max(FIRST_RUN_SPREAD, FIRST_RUN_GAP * len(self.units))
        for rank, units in enumerate(members.values()):
            for position, unit in enumerate(units):
                spread = min(widest, unit.schedule[0])
                offset = spread * (position + rank / len(members)) / len(units)
                firsts[unit.job_id] = now + timedelta(seconds=offset)
        return firsts

    def keys(self) -> list[Key]:
        return [job.key for job in self.jobs]

    def intervals(self) -> dict[Key, float]:
        return {job.key: job.target.interval_for(job.collector.name) for job in self.jobs}

    def start(self) -> None:
        self.store.expect(self.keys(), self.intervals())
        for connector in self.connectors:
            connector.open()
        firsts = self.first_runs(datetime.now(UTC))
        for unit in self.units:
            interval, jitter = unit.schedule
            self.scheduler.add_job(
                unit.run, IntervalTrigger(seconds=interval, jitter=jitter),
                id=unit.job_id, name=unit.job_id, next_run_time=firsts[unit.job_id],
                misfire_grace_time=max(1, int(interval)))
        self.scheduler.start()
        log.info("scheduled %d collection jobs on %d targets", len(self.jobs), len(self.connectors))

    def _on_skip(self, event: JobEvent) -> None:
        unit = self._by_id.get(event.job_id)
        if unit is not None:
            reason = "overlap" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
            for key in unit.member_keys:
                self.store.record_skip(key, reason)

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop scheduling, cancel running queries on the servers, close the pools.

        Returns whether every running job finished within ``timeout``; a job still running
        after that (an HTTP probe stuck in a read, say) records nothing when it ends."""
        if self._stopped.is_set():
            return True
        self._stopped.set()
        deadline = time.monotonic() + timeout
        self.gate.close()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.workers.shutdown(wait=False)  # queued runs are dropped; running ones see the gate closed
        for connector in self.connectors:
            connector.cancel_all()
        idle = self.gate.wait_idle(deadline - time.monotonic() - 0.5)
        for connector in self.connectors:
            connector.close(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        self.watchdog.stop()
        if self._owns_shared:
            self.shared.close()
        return idle

    def run_once(self) -> dict[Key, str]:
        """Run every job once on the bounded workers, without the scheduler (``vecmon collect``)."""
        self.store.expect(self.keys(), self.intervals())
        for connector in self.connectors:
            connector.open()
        results: dict[Key, str] = {}
        done = threading.Semaphore(0)

        def work(unit: CollectionJob | BatchJob, waited: float) -> None:
            unit.waited = waited
            try:
                result = unit.run()
                if isinstance(unit, BatchJob):
                    results.update(unit.results)
                else:
                    results[unit.key] = result
            finally:
                done.release()

        for unit in self.units:
            self.workers.submit(self._groups[unit.job_id], functools.partial(work, unit))
        for _ in self.units:
            done.acquire()
        return results
