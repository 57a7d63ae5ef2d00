"""A collection job: one collector on one target, and what it needs from its runner and target.

:class:`CollectionJob` runs a collector through its runner (a database connector, a server's
runner, an HTTP target's runner) and records the outcome in the snapshot store; the scheduler
(:mod:`monitor.scheduler`) decides when, :mod:`monitor.batches` groups a target's jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from collectors.base import CollectContext, CollectionTimeout, CollectorDisabled, CollectorError, ConnectionUnavailable
from monitor.shared import SharedState
from monitor.snapshot import Key, SnapshotStore
from monitor.target_health import TargetUnreachable

log = logging.getLogger("monitor.scheduler")


class Runner(Protocol):
    """Runs a collector's ``collect`` for one target: :class:`monitor.pg.DatabaseConnector`
    for databases, :class:`monitor.api_jobs.DirectRunner` for collectors that need no connection."""

    def open(self) -> None: ...
    def close(self, timeout: float = 2.0) -> None: ...
    def cancel_all(self) -> None: ...
    def redact(self, text: str) -> str: ...
    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float,
            reset: bool = True) -> Any: ...


class TargetSettings(Protocol):
    """What the scheduler reads from a target's config object."""

    @property
    def name(self) -> str: ...  # read-only: the targets are frozen models

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

    @property
    def schedule(self) -> tuple[float, float]:
        """(interval, jitter) in seconds."""
        name = self.collector.name
        return self.target.interval_for(name), self.target.jitter_for(name)

    @property
    def member_keys(self) -> list[Key]:
        return [self.key]

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
        ran_on: str = self.state.pop("_ran_on", self.target.name)
        return ran_on == self.target.name

    def context(self) -> CollectContext:
        return CollectContext(target=self.target.name, settings=self.target, state=self.state, shared=self.shared)

    def _run(self) -> str:
        timeout = self.target.timeout_for(self.collector.name)
        ctx = self.context()
        waited, self.waited = self.waited, 0.0
        start = time.monotonic()
        try:
            families = self.connector.run(self.collector.collect, ctx, timeout,
                                          reset=getattr(self.collector, "runs_config_sql", False))
        except Exception as exc:  # noqa: BLE001 - a collector must never kill the scheduler
            return self.finish(ctx, exc, time.monotonic() - start - ctx.pool_wait, waited)
        return self.finish(ctx, families, time.monotonic() - start - ctx.pool_wait, waited)

    def finish(self, ctx: CollectContext, outcome: Any, duration: float, waited: float) -> str:
        """Record a run's outcome (its families, or the exception it ended with); returns the result."""
        name = self.collector.name
        if not self.gate.open:
            return "cancelled"  # cut off by a stop or reload: not the target's fault
        self.store.record_wait(self.key, waited + ctx.pool_wait)
        if isinstance(outcome, CollectorDisabled):
            self.store.record_disabled(self.key, str(outcome), duration, here=self._ran_here())
            if not self.state.get("_disabled_logged"):
                log.info("collector %s disabled on %s: %s", name, self.target.name, outcome)
                self.state["_disabled_logged"] = True
            return "disabled"
        if isinstance(outcome, Exception):
            exc = outcome
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
        self.store.record_success(self.key, outcome, duration, here=self._ran_here())
        return "success"
