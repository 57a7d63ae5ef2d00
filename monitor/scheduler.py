"""Scheduling: one APScheduler job per (target, collector), each with its own interval.

Jobs run on one shared thread pool with at most ``max_connections`` runs per database target at a
time (:mod:`monitor.workers`): a hanging target holds only its own share, and a run never waits
on a thread for a connection. First runs are staggered over a couple of seconds per target.
``max_instances=1`` and ``coalesce`` keep a slow job from piling up, and every run is bounded on
the server by ``statement_timeout`` and a watchdog cancel. The time a run waited for a worker and
a connection is recorded apart from its duration (``vecmon_collector_pool_wait_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from collectors.base import CollectContext, CollectionTimeout, CollectorDisabled, CollectorError, ConnectionUnavailable
from collectors.registry import TARGET_KINDS, registration, registrations
from monitor.api_jobs import ApiContext, api_collector
from monitor.config import Config
from monitor.config_queries import plans_for_target, query_target
from monitor.discovery import cluster_wide_settings
from monitor.discovery import expand as expand_discovery
from monitor.leader import gate_leader_only, leader_elector
from monitor.pg import DatabaseConnector, TargetUnreachable
from monitor.servers import ServerRunner, group_servers
from monitor.sessions import SessionBudget
from monitor.shard import effective_shard, for_shard
from monitor.shared import SharedState
from monitor.snapshot import Key, SnapshotStore
from monitor.workers import TargetExecutor, TargetWorkers, Watchdog

log = logging.getLogger(__name__)
FIRST_RUN_SPREAD = 2.0  # seconds over which one target's first runs are staggered, at least
FIRST_RUN_GAP = 0.01  # and at most 100 first runs a second in all (1,000 jobs: over 10 s, within their interval)


class Runner(Protocol):
    """Runs a collector's ``collect`` for one target: :class:`monitor.pg.DatabaseConnector`
    for databases, :class:`monitor.api_jobs.DirectRunner` for collectors that need no connection."""

    def open(self) -> None: ...
    def close(self, timeout: float = 2.0) -> None: ...
    def cancel_all(self) -> None: ...
    def redact(self, text: str) -> str: ...
    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float) -> Any: ...


class TargetSettings(Protocol):
    """What the scheduler reads from a target's config object."""

    name: str

    def interval_for(self, collector: str) -> float: ...
    def timeout_for(self, collector: str) -> float: ...
    def jitter_for(self, collector: str) -> float: ...


class JobGate:
    """Lets a runtime's jobs record results until the runtime stops, and counts runs in flight.

    After a reload or stop, a run that was cancelled or cut off must not record a failure in
    the store under a key the new config still has."""

    def __init__(self) -> None:
        self._open = True
        self._inflight = 0
        self._cond = threading.Condition()

    def enter(self) -> bool:
        with self._cond:
            if not self._open:
                return False
            self._inflight += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._inflight -= 1
            self._cond.notify_all()

    @property
    def open(self) -> bool:
        return self._open

    def close(self) -> None:
        with self._cond:
            self._open = False

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._inflight == 0, timeout=max(0.0, timeout))


@dataclass
class CollectionJob:
    """One collector on one target."""

    target: TargetSettings
    collector: Any
    connector: Runner
    store: SnapshotStore
    shared: SharedState = field(default_factory=SharedState)
    gate: JobGate = field(default_factory=JobGate)
    state: dict[str, Any] = field(default_factory=dict)
    standby: Callable[[], str | None] | None = None  # a reason not to run here (monitor.leader)
    waited: float = 0.0  # how long the current run waited for a worker (monitor.workers)

    @property
    def key(self) -> Key:
        return (self.target.name, self.collector.name)

    @property
    def job_id(self) -> str:
        return f"{self.target.name}/{self.collector.name}"

    def run(self) -> str:
        """Run once and record the outcome; never raises. Returns the result (see snapshot.RESULTS)."""
        if not self.gate.enter():
            return "cancelled"
        try:
            reason = self.standby() if self.standby is not None else None
            if reason:
                self.store.record_disabled(self.key, reason, 0.0)
                return "disabled"
            result = self._run()
        finally:
            self.gate.leave()
        return result

    def _ran_here(self) -> bool:
        """Whether the run used the target's own database (monitor.servers.ServerRunner says where it ran)."""
        return self.state.pop("_ran_on", self.target.name) == self.target.name

    def _run(self) -> str:
        name = self.collector.name
        timeout = self.target.timeout_for(name)
        ctx = CollectContext(target=self.target.name, settings=self.target, state=self.state, shared=self.shared)
        waited, self.waited = self.waited, 0.0
        start = time.monotonic()
        try:
            if isinstance(self.connector, (DatabaseConnector, ServerRunner)):
                families = self.connector.run(self.collector.collect, ctx, timeout,
                                              reset=getattr(self.collector, "runs_config_sql", False))
            else:
                families = self.connector.run(self.collector.collect, ctx, timeout)
        except CollectorDisabled as exc:
            if not self.gate.open:
                return "cancelled"
            self.store.record_wait(self.key, waited + ctx.pool_wait)
            self.store.record_disabled(self.key, str(exc), time.monotonic() - start - ctx.pool_wait,
                                       here=self._ran_here())
            if not self.state.get("_disabled_logged"):
                log.info("collector %s disabled on %s: %s", name, self.target.name, exc)
                self.state["_disabled_logged"] = True
            return "disabled"
        except Exception as exc:  # noqa: BLE001 - a collector must never kill the scheduler
            if not self.gate.open:
                return "cancelled"  # cut off by a stop or reload: not the target's fault
            duration = time.monotonic() - start - ctx.pool_wait
            self.store.record_wait(self.key, waited + ctx.pool_wait)
            message = self.connector.redact(str(exc) if isinstance(exc, CollectorError)
                                            else f"{type(exc).__name__}: {exc}")
            self.store.record_failure(self.key, message, duration, timeout=isinstance(exc, CollectionTimeout),
                                      target_down=isinstance(exc, ConnectionUnavailable),
                                      reason=getattr(exc, "reason", None), here=self._ran_here())
            if isinstance(exc, TargetUnreachable):  # the connector logs the target going down and coming back
                log.debug("collector %s on %s: target down: %s", name, self.target.name, message)
            else:
                log.warning("collector %s on %s failed after %.2fs: %s", name, self.target.name, duration, message)
            return "timeout" if isinstance(exc, CollectionTimeout) else "error"
        self.state.pop("_disabled_logged", None)
        if not self.gate.open:
            return "cancelled"
        self.store.record_wait(self.key, waited + ctx.pool_wait)
        self.store.record_success(self.key, families, time.monotonic() - start - ctx.pool_wait,
                                  here=self._ran_here())
        return "success"


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
        self._by_id = {job.job_id: job for job in self.jobs}
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
        """Job id -> its worker group: one per runner (a database target's connector, an endpoint's runner)."""
        index = {id(runner): f"runner-{n}" for n, runner in enumerate(self.connectors)}
        return {job.job_id: index.setdefault(id(job.connector), f"runner-{len(index)}") for job in self.jobs}

    def _group_limits(self) -> dict[str, int]:
        """Runs at once per group: a database target's max_connections; an HTTP runner's job count."""
        limits: dict[str, int] = {}
        for job in self.jobs:
            group = self._groups[job.job_id]
            if isinstance(job.connector, DatabaseConnector):
                limits[group] = job.connector.target.max_connections
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
        members: dict[str, list[CollectionJob]] = {}
        for job in self.jobs:
            members.setdefault(self._groups[job.job_id], []).append(job)
        firsts: dict[str, datetime] = {}
        widest = max(FIRST_RUN_SPREAD, FIRST_RUN_GAP * len(self.jobs))
        for rank, jobs in enumerate(members.values()):
            for position, job in enumerate(jobs):
                spread = min(widest, job.target.interval_for(job.collector.name))
                offset = spread * (position + rank / len(members)) / len(jobs)
                firsts[job.job_id] = now + timedelta(seconds=offset)
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
        for job in self.jobs:
            interval = job.target.interval_for(job.collector.name)
            self.scheduler.add_job(
                job.run, IntervalTrigger(seconds=interval, jitter=job.target.jitter_for(job.collector.name)),
                id=job.job_id, name=job.job_id, next_run_time=firsts[job.job_id],
                misfire_grace_time=max(1, int(interval)))
        self.scheduler.start()
        log.info("scheduled %d collection jobs on %d targets", len(self.jobs), len(self.connectors))

    def _on_skip(self, event: JobEvent) -> None:
        job = self._by_id.get(event.job_id)
        if job is not None:
            reason = "overlap" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
            self.store.record_skip(job.key, reason)

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

        def work(job: CollectionJob, waited: float) -> None:
            job.waited = waited
            try:
                results[job.key] = job.run()
            finally:
                done.release()

        for job in self.jobs:
            self.workers.submit(self._groups[job.job_id], lambda waited, j=job: work(j, waited))
        for _ in self.jobs:
            done.acquire()
        return results
