"""Worker threads for collection runs: one small shared pool, at most N runs per target at a time.

Each target gets a bound (a database target: its ``max_connections``, so a run never waits for
a connection its own target's other runs hold); runs beyond it wait in the target's queue, not
on a thread. The shared pool has the largest bound plus one thread per other target (at most all
bounds together, and at most :data:`THREAD_CAP`), so a target whose runs all hang holds only its
own share; threads are started only when runs overlap. :class:`Watchdog` is the one thread
that cancels runs past their time, instead of a timer thread per run. How long a run waited for
its turn is handed to it (exported as ``vecmon_collector_pool_wait_seconds``, not counted in its duration).

:class:`TargetExecutor` plugs this into APScheduler 3 as an executor (its documented extension
point, ``_do_submit_job``), so ``max_instances``, ``coalesce`` and misfires work as before.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_job

# Worker threads at most, however many targets: a run holds a thread for at most its timeout (the
# watchdog cancels it on the server), so beyond this, more threads buy memory, not throughput.
# 100 databases used to take 100 threads here; runs past the cap wait in the pool's queue (FIFO).
THREAD_CAP = 16

Work = Callable[[float], None]  # called with the seconds the run waited for a worker


class TargetWorkers:
    """A shared thread pool where each group (target) runs at most its limit of works at a time."""

    def __init__(self, limits: dict[str, int], clock: Callable[[], float] = time.monotonic,
                 cap: int = THREAD_CAP):
        self._limits = {group: max(1, limit) for group, limit in limits.items()}
        self._cap = max(1, cap)
        self._clock = clock
        self._running = {group: 0 for group in self._limits}
        self._queues: dict[str, deque[tuple[Work, float]]] = {group: deque() for group in self._limits}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.max_threads,
                                                           thread_name_prefix="vecmon-collect")

    @property
    def max_threads(self) -> int:
        """Enough for the largest group to be busy (or hung) with every other group still running one
        at a time, never more than all groups at their limit, and at most ``cap``."""
        limits = self._limits.values()
        return max(1, min(sum(limits), max(limits, default=1) + len(self._limits) - 1, self._cap))

    def submit(self, group: str, work: Work) -> None:
        queued = self._clock()
        with self._lock:
            if self._running[group] >= self._limits[group]:
                self._queues[group].append((work, queued))
                return
            self._running[group] += 1
        self._pool.submit(self._drain, group, work, queued)

    def _drain(self, group: str, work: Work, queued: float) -> None:
        """Run ``work``, then whatever queued behind it for the same group, on this thread."""
        while True:
            with contextlib.suppress(BaseException):  # a work reports its own failures; keep draining
                work(max(0.0, self._clock() - queued))
            with self._lock:
                if not self._queues[group]:
                    self._running[group] -= 1
                    return
                work, queued = self._queues[group].popleft()

    def queued(self, group: str) -> int:
        with self._lock:
            return len(self._queues[group])

    def shutdown(self, wait: bool = False) -> None:
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
        self._pool.shutdown(wait=wait, cancel_futures=True)


class TargetExecutor(BaseExecutor):  # type: ignore[misc]  # apscheduler 3 ships no type hints
    """APScheduler executor over :class:`TargetWorkers`; ``group_of`` maps a job id to its target,
    ``on_start(job_id, waited)`` is called on the worker thread just before the job runs."""

    def __init__(self, workers: TargetWorkers, group_of: Callable[[str], str],
                 on_start: Callable[[str, float], None]):
        super().__init__()
        self.workers = workers
        self._group_of = group_of
        self._on_start = on_start

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def work(waited: float) -> None:
            self._on_start(job.id, waited)
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:  # noqa: BLE001 - reported to the scheduler like its own pools do
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        self.workers.submit(self._group_of(job.id), work)

    def shutdown(self, wait: bool = True) -> None:
        self.workers.shutdown(wait=wait)


class Watchdog:
    """One thread that calls each armed callback when its deadline passes, unless it was disarmed
    first: the per-run cancel timers of every target, without a thread per run.

    Arming is on every run's path, so it is cheap: deadlines wait in a heap, a disarmed one stays
    there until the thread next looks, and the thread is woken only when a new deadline is earlier
    than the one it sleeps until. Runs that end in time (nearly all) wake it about once per run
    timeout, not once per run."""

    IDLE_WAIT = 60.0  # how long the thread sleeps with nothing in the heap

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._heap: list[tuple[float, int]] = []  # (deadline, handle), disarmed handles included
        self._next_id = 0
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._wake_at = float("-inf")  # when the thread looks next (-inf: it is not asleep)
        self.wakeups = 0  # times the thread woke up (tests and benchmarks read it)

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        with self._cond:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._loop, name="vecmon-watchdog", daemon=True)
                self._thread.start()
            self._next_id += 1
            deadline = self._clock() + seconds
            self._armed[self._next_id] = (deadline, callback)
            heapq.heappush(self._heap, (deadline, self._next_id))
            if deadline < self._wake_at:
                self._cond.notify()
            return self._next_id

    def disarm(self, handle: int) -> None:
        with self._cond:
            self._armed.pop(handle, None)
            if len(self._heap) > 256 + 4 * len(self._armed):  # bound what disarmed entries hold
                self._heap = [(deadline, h) for h, (deadline, _) in self._armed.items()]
                heapq.heapify(self._heap)

    def pending(self) -> int:
        """Entries in the heap, disarmed ones included (bounded; tests read it)."""
        with self._cond:
            return len(self._heap)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._armed.clear()
            self._heap.clear()
            self._cond.notify()

    def _due(self, now: float) -> list[Callable[[], None]]:
        """Pop the callbacks due at ``now``, and the disarmed entries before the next armed one."""
        callbacks = []
        while self._heap:
            deadline, handle = self._heap[0]
            if handle not in self._armed:
                heapq.heappop(self._heap)
            elif deadline <= now:
                heapq.heappop(self._heap)
                callbacks.append(self._armed.pop(handle)[1])
            else:
                break
        return callbacks

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = self._clock()
                callbacks = self._due(now)
                if not callbacks:
                    self._wake_at = self._heap[0][0] if self._heap else now + self.IDLE_WAIT
                    self._cond.wait(timeout=max(0.01, self._wake_at - now))
                    self._wake_at = float("-inf")
                    self.wakeups += 1
                    continue
            for callback in callbacks:
                with contextlib.suppress(Exception):  # a cancel is best effort
                    callback()
