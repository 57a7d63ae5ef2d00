"""The snapshot store: the last result of every (target, collector) job.

Jobs replace their entry atomically (entries are immutable; replacing a dict value
under a lock is the only mutation). ``/metrics`` reads a consistent copy and never
waits for a database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from prometheus_client.core import Metric

Key = tuple[str, str]  # (target, collector)

PENDING, OK, FAILED, DISABLED = "pending", "ok", "failed", "disabled"
# The target could not be reached: the entry keeps its series and the state it had (``last_state``),
# so a collector that was fine (or disabled) is not reported failing because its target is down.
TARGET_DOWN = "target-down"
RESULTS = ("success", "error", "timeout", "disabled")


@dataclass(frozen=True)
class Entry:
    target: str
    collector: str
    state: str = PENDING
    families: tuple[Metric, ...] = ()
    series: int = 0
    last_run: float | None = None  # unix time the last run finished
    last_success: float | None = None
    last_duration: float | None = None
    last_wait: float | None = None  # how long the last run waited for a worker and a connection
    last_error: str | None = None
    last_state: str | None = None  # while TARGET_DOWN: the state before the target went down
    runs: tuple[tuple[str, int], ...] = tuple((r, 0) for r in RESULTS)
    skipped: tuple[tuple[str, int], ...] = (("missed", 0), ("overlap", 0))
    interval: float | None = None  # the job's schedule, for staleness and vecmon_collector_interval_seconds

    def count(self, result: str) -> int:
        return dict(self.runs)[result]

    @property
    def effective_state(self) -> str:
        """The collector's own state: while its target is down, the one it had before."""
        return (self.last_state or PENDING) if self.state == TARGET_DOWN else self.state


def _bump(pairs: tuple[tuple[str, int], ...], key: str) -> tuple[tuple[str, int], ...]:
    return tuple((k, v + 1 if k == key else v) for k, v in pairs)


def _series(families: Iterable[Metric]) -> int:
    return sum(len(f.samples) for f in families)


@dataclass
class SnapshotStore:
    clock: Callable[[], float] = time.time
    _entries: dict[Key, Entry] = field(default_factory=dict)
    _target_up: dict[str, bool] = field(default_factory=dict)
    _target_reason: dict[str, str] = field(default_factory=dict)  # why a down target is unreachable
    _targets: frozenset[str] = frozenset()  # the targets of the expected jobs
    _lock: threading.Lock = field(default_factory=threading.Lock)
    version: int = 0  # bumped by every change: /metrics re-renders when it moves

    def expect(self, keys: Iterable[Key], intervals: dict[Key, float] | None = None) -> None:
        """Declare the jobs of the current config (with their intervals); entries of other jobs are dropped."""
        keys, intervals = list(keys), intervals or {}
        with self._lock:
            self.version += 1
            self._entries = {k: replace(self._entries.get(k, Entry(*k)), interval=intervals.get(k)) for k in keys}
            targets = self._targets = frozenset(k[0] for k in keys)
            self._target_up = {t: up for t, up in self._target_up.items() if t in targets}
            self._target_reason = {t: r for t, r in self._target_reason.items() if t in targets}

    def _update(self, key: Key, change: Callable[[Entry], Entry]) -> None:
        with self._lock:
            if key in self._entries:  # a job of a config that was just replaced is ignored
                self._entries[key] = change(self._entries[key])
                self.version += 1

    def record_success(self, key: Key, families: list[Metric], duration: float, here: bool = True) -> None:
        """A successful run. ``here`` False (for every record_*): it ran on another database of the
        target's server (a cluster-wide job that moved), which says nothing about the target itself."""
        now = self.clock()
        families_t = tuple(families)
        self._update(key, lambda e: replace(
            e, state=OK, families=families_t, series=_series(families_t), last_run=now, last_success=now,
            last_duration=duration, last_error=None, last_state=None, runs=_bump(e.runs, "success")))
        if here:
            self.set_target_up(key[0], True)

    def record_failure(self, key: Key, error: str, duration: float, *, timeout: bool = False,
                       target_down: bool = False, reason: str | None = None, here: bool = True) -> None:
        """A failed run. ``target_down``: the target could not be reached (``reason``: why, a bounded
        class); the entry then keeps its series and its own state, marked TARGET_DOWN."""
        now = self.clock()
        result = "timeout" if timeout else "error"
        if target_down:
            self._update(key, lambda e: replace(
                e, state=TARGET_DOWN, last_state=e.effective_state, last_run=now, last_duration=duration,
                last_error=error, runs=_bump(e.runs, result)))
        else:
            self._update(key, lambda e: replace(
                e, state=FAILED, last_state=None, last_run=now, last_duration=duration, last_error=error,
                runs=_bump(e.runs, result)))
        if here or target_down:
            self.set_target_up(key[0], not target_down, reason if target_down else None)

    def record_disabled(self, key: Key, reason: str, duration: float, here: bool = True) -> None:
        now = self.clock()
        self._update(key, lambda e: replace(
            e, state=DISABLED, families=(), series=0, last_run=now, last_duration=duration, last_error=reason,
            last_state=None, runs=_bump(e.runs, "disabled")))
        if here:
            self.set_target_up(key[0], True)

    def record_wait(self, key: Key, seconds: float) -> None:
        """How long a run waited for a worker and a connection before it started (not in its duration)."""
        self._update(key, lambda e: replace(e, last_wait=seconds))

    def record_skip(self, key: Key, reason: str) -> None:
        self._update(key, lambda e: replace(e, skipped=_bump(e.skipped, reason)))

    def set_target_up(self, target: str, up: bool, reason: str | None = None) -> None:
        with self._lock:
            if target in self._targets:  # not for a target a reload removed
                if self._target_up.get(target) is not up:
                    self.version += 1
                self._target_up[target] = up
                if up or reason is None:
                    self._target_reason.pop(target, None)
                else:
                    self._target_reason[target] = reason

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def target_up(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._target_up)

    def target_reasons(self) -> dict[str, str]:
        """Why each target that is down could not be reached (targets that are up are absent)."""
        with self._lock:
            return dict(self._target_reason)

    def not_ready(self) -> list[Key]:
        """Jobs that have not finished one run yet."""
        return [(e.target, e.collector) for e in self.entries() if e.last_run is None]
