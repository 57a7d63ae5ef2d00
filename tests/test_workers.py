"""Collection workers: a bounded pool per target, the pool wait apart from the duration, few threads."""

from __future__ import annotations

import collections
import threading
import time

import psycopg

from collectors.self_metrics import COLLECTOR_DURATION_SECONDS, COLLECTOR_POOL_WAIT_SECONDS
from monitor.exposition import build_registry
from monitor.loader import parse_config
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore
from monitor.workers import TargetWorkers, Watchdog
from tests.conftest import new_database
from tests.helpers import Families


def target_yaml(db, name: str, extra: str = "") -> str:
    return f"""
  - name: {name}
    host: 127.0.0.1
    port: {db.server.port}
    dbname: {db.name}
    user: vecmon_monitor
    interval: 5s
    timeout: 3s
{extra}"""


def test_workers_run_at_most_the_limit_per_group_and_report_the_wait():
    workers = TargetWorkers({"a": 2, "b": 1})
    lock = threading.Lock()
    running = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}
    waits: list[float] = []
    done = threading.Semaphore(0)

    def work(group: str):
        def run(waited: float) -> None:
            with lock:
                running[group] += 1
                most[group] = max(most[group], running[group])
                waits.append(waited)
            time.sleep(0.05)
            with lock:
                running[group] -= 1
            done.release()
        return run

    for _ in range(6):
        workers.submit("a", work("a"))
        workers.submit("b", work("b"))
    for _ in range(12):
        assert done.acquire(timeout=10)
    workers.shutdown(wait=True)
    assert most == {"a": 2, "b": 1}
    assert workers.max_threads == 3
    assert max(waits) >= 0.1  # the sixth run of b waited for five before it


def test_pool_wait_is_exported_apart_from_the_duration(pg18):
    db = new_database(pg18)
    db.execute("CREATE TABLE locked (id int)")
    db.execute("GRANT SELECT ON locked TO vecmon_monitor")
    extra = "    max_connections: 1\n    lock_timeout: 3s\n"
    config = parse_config("databases:" + target_yaml(db, "one", extra))
    store = SnapshotStore()
    runtime = Runtime(config, store)
    holder = psycopg.connect(db.admin_dsn)
    holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")  # the tables query hangs until cancelled
    try:
        results = runtime.run_once()
    finally:
        holder.close()
        runtime.stop()
    assert results[("one", "tables")] == "timeout"
    families = Families(list(build_registry(store, 60).collect()))
    waits = {c: families.value(COLLECTOR_POOL_WAIT_SECONDS.name, {"target": "one", "collector": c})
             for c in ("connections", "databases", "indexes", "server")}
    durations = {c: families.value(COLLECTOR_DURATION_SECONDS.name, {"target": "one", "collector": c})
                 for c in waits}
    # one connection: whatever ran after the hung tables query waited about its timeout for it
    assert max(waits.values()) > 2.0, waits
    assert max(durations.values()) < 1.0, durations  # ... and that wait is not in its duration


def test_ten_targets_in_one_daemon_use_at_most_40_threads(pg18):
    db = new_database(pg18)
    config = parse_config("databases:" + "".join(target_yaml(db, f"t{n}") for n in range(10)))
    before = threading.active_count()
    store = SnapshotStore()
    runtime = Runtime(config, store)
    peak = 0
    try:
        runtime.start()
        keys = runtime.keys()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            peak = max(peak, threading.active_count() - before)
            entries = {(e.target, e.collector): e for e in store.entries()}
            if all(entries[key].last_run is not None for key in keys):
                break
            time.sleep(0.05)
        assert all(entries[key].last_run is not None for key in keys), "not every job ran within 60 s"
        for _ in range(40):  # and a while longer, with second runs
            peak = max(peak, threading.active_count() - before)
            time.sleep(0.1)
        names = collections.Counter(t.name for t in threading.enumerate())
    finally:
        runtime.stop()
    assert len(keys) >= 100
    assert peak <= 40, f"{peak} threads for 10 targets: {names}"


# -- the watchdog -----------------------------------------------------------------------------------

def test_watchdog_fires_what_is_due_and_never_what_was_disarmed():
    watchdog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    try:
        kept = watchdog.arm(0.2, lambda: (fired.append("kept"), done.set()))
        gone = watchdog.arm(0.1, lambda: fired.append("disarmed"))
        watchdog.disarm(gone)
        # An earlier deadline armed while the thread sleeps until a later one still fires first.
        watchdog.arm(0.05, lambda: fired.append("early"))
        assert done.wait(5)
        assert fired == ["early", "kept"]
        watchdog.disarm(kept)  # already fired: a no-op
    finally:
        watchdog.stop()


def test_watchdog_is_not_woken_by_runs_that_end_in_time():
    """Every run arms and disarms it: a run that ended in time must not cost a thread wake-up
    (the daemon's 900 runs per 15 s at 10 servers x 10 databases each woke it once)."""
    watchdog = Watchdog()
    try:
        first = watchdog.arm(30, lambda: None)
        time.sleep(0.05)  # the thread is asleep until the first deadline
        watchdog.disarm(first)
        before = watchdog.wakeups
        for _ in range(2_000):
            watchdog.disarm(watchdog.arm(30, lambda: None))
        time.sleep(0.05)
        assert watchdog.wakeups - before == 0
        assert watchdog.pending() <= 256 + 1  # disarmed entries do not pile up
    finally:
        watchdog.stop()
