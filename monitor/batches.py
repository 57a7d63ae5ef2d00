"""Batches: a database target's collectors that share a schedule run as one job, in one transaction.

Every run costs round trips of its own (``BEGIN READ ONLY`` with the timeouts and the server's
facts, then ``ROLLBACK``) and a dispatch by the scheduler. At 100 databases with five database-
local collectors each, that overhead was most of vecmon's statements and CPU time. So the
collectors of one target (one :class:`monitor.pg.DatabaseConnector`) with the same interval and
jitter run together, as one :class:`BatchJob`, through :meth:`DatabaseConnector.run_batch`: each
still has its own timeout, its own outcome in the snapshot and its own log lines, and one that
fails costs only itself.

A batch takes as long as its members together (each bounded by its own timeout), so a slow
database delays the later members of its batch; a batch still running when it is due again is
skipped like any job (``vecmon_collector_skipped_runs_total{reason="overlap"}`` for each member).

A server's cluster-wide collectors with one schedule are batched the same way, on its
:class:`monitor.servers.ServerRunner` (one live database of the server, failing over together).

Not batched: collectors that run SQL from the config (``runs_config_sql``: custom queries, the
recall probe and ANN latency with their filters), because their session is reset after each run,
and every job that does not run on a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.jobs import CollectionJob, JobGate
from monitor.pg import BatchItem, DatabaseConnector
from monitor.servers import ServerRunner


@dataclass
class BatchJob:
    """Collectors of one target with one schedule, run one after the other in one transaction."""

    members: list[CollectionJob]
    connector: DatabaseConnector | ServerRunner
    gate: JobGate
    waited: float = 0.0  # how long the current run waited for a worker (monitor.workers)
    results: dict[Any, str] = field(default_factory=dict)  # the last run's result per member key

    @property
    def target(self) -> Any:
        return self.members[0].target

    @property
    def schedule(self) -> tuple[float, float]:
        return self.members[0].schedule

    @property
    def member_keys(self) -> list[Any]:
        return [m.key for m in self.members]

    @property
    def job_id(self) -> str:
        return f"{self.target.name}/batch:{'+'.join(m.collector.name for m in self.members)}"

    def run(self) -> str:
        """Run every member once and record each outcome; never raises. Returns the worst result."""
        if not self.gate.enter():
            return "cancelled"
        try:
            waited, self.waited = self.waited, 0.0
            due: list[CollectionJob] = []
            for member in self.members:
                reason = member.standby() if member.standby is not None else None
                if reason:
                    member.store.record_disabled(member.key, reason, 0.0)
                    self.results[member.key] = "disabled"
                else:
                    due.append(member)
            items: list[BatchItem] = [(m.collector.collect, m.context(), m.target.timeout_for(m.collector.name))
                                      for m in due]
            outcomes = self.connector.run_batch(items) if items else []
            for member, (_, ctx, _), (outcome, duration) in zip(due, items, outcomes, strict=True):
                self.results[member.key] = member.finish(ctx, outcome, duration, waited)
        finally:
            self.gate.leave()
        return worst(self.results.values())


def worst(results: Any) -> str:
    order = ("error", "timeout", "cancelled", "disabled", "success")
    found = set(results)
    return next((r for r in order if r in found), "success")


def batchable(job: CollectionJob) -> bool:
    return (isinstance(job.connector, (DatabaseConnector, ServerRunner))
            and not getattr(job.collector, "runs_config_sql", False))


def form_batches(jobs: list[CollectionJob]) -> list[CollectionJob | BatchJob]:
    """The schedulable units: batches of a target's batchable jobs with the same interval and
    jitter (two or more), and every other job on its own; in the jobs' order."""
    groups: dict[tuple[int, float, float], list[CollectionJob]] = {}
    for job in jobs:
        if batchable(job):
            groups.setdefault((id(job.connector), *job.schedule), []).append(job)
    units: list[CollectionJob | BatchJob] = []
    placed: set[int] = set()
    for job in jobs:
        if id(job) in placed:
            continue
        members = groups.get((id(job.connector), *job.schedule)) if batchable(job) else None
        if members and len(members) > 1:
            assert isinstance(job.connector, (DatabaseConnector, ServerRunner))
            units.append(BatchJob(members, job.connector, job.gate))
            placed.update(id(m) for m in members)
        else:
            units.append(job)
    return units
