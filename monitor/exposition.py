"""Render the snapshot store as Prometheus metrics, plus vecmon's self-metrics.

Two parts, kept apart:

- :class:`SnapshotCollector` builds the metric families from the store. Families with the
  same name from several (target, collector) entries are merged into one family. Series of a
  collector whose last run failed are still served (and ``vecmon_collector_stale`` is 1) for
  ``max(stale_after, 2 x the collector's interval)`` after its last success, so one failed run
  of a slow collector (recall every 10 min) never drops its series; then they are dropped
  rather than served as current.
- :class:`ExpositionCache` renders those families once per change and serves the bytes:
  text, OpenMetrics and their gzip copies, each rendered on first demand. A change is a new
  store version (any entry recorded, a reload) or the next time-based transition (the moment
  a failing collector's series go stale).
"""

from __future__ import annotations

import gzip
import math
import platform
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted

from collectors.base import Emitter
from collectors.self_metrics import (
    BUILD_INFO,
    COLLECTOR_DISABLED,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_INTERVAL_SECONDS,
    COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COLLECTOR_POOL_WAIT_SECONDS,
    COLLECTOR_RUNS_TOTAL,
    COLLECTOR_SERIES,
    COLLECTOR_SKIPPED_RUNS_TOTAL,
    COLLECTOR_STALE,
    COLLECTOR_UP,
    SELF_METRICS,
    TARGET_UNREACHABLE_REASON,
    UP,
)
from monitor import __version__
from monitor.snapshot import DISABLED, FAILED, OK, TARGET_DOWN, SnapshotStore


def _merge(into: dict[str, Metric], family: Metric) -> None:
    merged = into.get(family.name)
    if merged is None:
        merged = Metric(family.name, family.documentation, family.type, family.unit)
        into[family.name] = merged
    merged.samples.extend(family.samples)


class SnapshotCollector:
    """A prometheus_client collector that renders a :class:`SnapshotStore`."""

    def __init__(self, store: SnapshotStore, stale_after: float):
        self.store = store
        self.stale_after = stale_after

    def describe(self) -> list[Metric]:
        return []  # dynamic; avoid a collect() at register time

    def stale_limit(self, interval: float | None) -> float:
        """How long after its last success a failing collector's series are still served."""
        return max(self.stale_after, 2 * interval) if interval else self.stale_after

    def collect(self) -> Iterator[Metric]:
        yield from self.build(self.store.clock())[0]

    def build(self, now: float) -> tuple[list[Metric], float]:
        """The families at ``now``, and the time until which they stay valid without a store change
        (the next moment a failing collector's series go stale; ``inf`` when none will)."""
        valid_until = math.inf
        families: dict[str, Metric] = {}
        build = Emitter("", SELF_METRICS)
        build.add(BUILD_INFO.name, 1, __version__, platform.python_version())
        for family in build.families():
            # build info has no target; drop the implicit empty target label
            for sample in family.samples:
                sample.labels.pop("target", None)
            _merge(families, family)
        by_target: dict[str, Emitter] = {}
        for target, up in sorted(self.store.target_up().items()):
            emitter = by_target.setdefault(target, Emitter(target, SELF_METRICS))
            emitter.add(UP.name, 1 if up else 0)
        for target, reason in sorted(self.store.target_reasons().items()):
            by_target.setdefault(target, Emitter(target, SELF_METRICS)).add(TARGET_UNREACHABLE_REASON.name, 1, reason)
        for entry in sorted(self.store.entries(), key=lambda e: (e.target, e.collector)):
            emitter = by_target.setdefault(entry.target, Emitter(entry.target, SELF_METRICS))
            name = entry.collector
            interval = entry.interval
            for result, count in entry.runs:
                emitter.add(COLLECTOR_RUNS_TOTAL.name, count, name, result)
            for reason, count in entry.skipped:
                emitter.add(COLLECTOR_SKIPPED_RUNS_TOTAL.name, count, name, reason)
            state = entry.effective_state  # while the target is down, the collector's state before
            emitter.add(COLLECTOR_DISABLED.name, 1 if state == DISABLED else 0, name)
            if state in (OK, FAILED):
                emitter.add(COLLECTOR_UP.name, 1 if state == OK else 0, name)
            if entry.last_duration is not None:
                emitter.add(COLLECTOR_DURATION_SECONDS.name, entry.last_duration, name)
            if entry.last_wait is not None:
                emitter.add(COLLECTOR_POOL_WAIT_SECONDS.name, entry.last_wait, name)
            if entry.last_success is not None:
                emitter.add(COLLECTOR_LAST_SUCCESS_TIMESTAMP_SECONDS.name, entry.last_success, name)
            if interval:
                emitter.add(COLLECTOR_INTERVAL_SECONDS.name, interval, name)
            served = entry.families
            failed = entry.state in (FAILED, TARGET_DOWN)
            if failed and entry.last_success is not None and served:
                stale_at = entry.last_success + self.stale_limit(interval)
                if now > stale_at:
                    served = ()
                else:
                    valid_until = min(valid_until, stale_at)
            emitter.add(COLLECTOR_STALE.name, 1 if failed and served else 0, name)
            emitter.add(COLLECTOR_SERIES.name, sum(len(f.samples) for f in served), name)
            for family in served:
                _merge(families, family)
        for emitter in by_target.values():
            for family in emitter.families():
                _merge(families, family)
        return list(families.values()), valid_until


def build_registry(store: SnapshotStore, stale_after: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(store, stale_after))
    return registry


@dataclass(frozen=True)
class _Families:
    """A fixed list of families with the ``collect()`` the exposition encoders call."""

    families: list[Metric]

    def collect(self) -> Iterable[Metric]:
        return self.families


def _restricted(families: list[Metric], names: Iterable[str]) -> list[Metric]:
    """``?name[]=...`` as prometheus_client's restricted registry does: a family whose name or
    any of whose sample names is asked for."""
    wanted = set(names)
    return [f for f in families if f.name in wanted or any(s.name in wanted for s in f.samples)]


@dataclass
class _Rendered:
    version: int
    stale_after: float
    valid_until: float
    families: list[Metric]
    bodies: dict[tuple[str, bool], bytes] = field(default_factory=dict)
    by_target: dict[str, list[Metric]] | None = None  # /probe?target=NAME: built on its first request
    target_bodies: dict[tuple[str, str, bool], bytes] = field(default_factory=dict)


def _by_target(families: list[Metric]) -> dict[str, list[Metric]]:
    """One pass over the samples: each target's families (samples shared, not copied)."""
    split: dict[str, dict[str, Metric]] = {}
    for family in families:
        for sample in family.samples:
            target = sample.labels.get("target")
            if target is None:
                continue
            own = split.setdefault(target, {})
            part = own.get(family.name)
            if part is None:
                part = own[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
            part.samples.append(sample)
    return {target: list(parts.values()) for target, parts in split.items()}


GZIP_LEVEL = 1  # the body is ~10x smaller already at level 1, at a fraction of level 9's CPU
MAX_VARIANTS = 8  # content types are negotiated from client input: bound what one render keeps


class ExpositionCache:
    """``/metrics`` bodies rendered once per change of the store and served as bytes.

    Negotiation is prometheus_client's own (:func:`choose_encoder`: OpenMetrics when the Accept
    header asks for it, with its version and escaping; gzip when Accept-Encoding allows it).
    Concurrent scrapes after a change wait for one render instead of rendering each."""

    def __init__(self, collector: SnapshotCollector):
        self.collector = collector
        self._lock = threading.Lock()
        self._current: _Rendered | None = None
        self.renders = 0  # families built (for tests and the bench)

    def _fresh(self) -> _Rendered:
        store = self.collector.store
        version, now = store.version, store.clock()  # read before building: a racing change re-renders
        current = self._current
        if (current is None or current.version != version or now > current.valid_until
                or current.stale_after != self.collector.stale_after):
            families, valid_until = self.collector.build(now)
            current = self._current = _Rendered(version, self.collector.stale_after, valid_until, families)
            self.renders += 1
        return current

    def body(self, accept: str | None, accept_encoding: str | None,
             names: Iterable[str] | None = None) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for one scrape."""
        encoder, content_type = choose_encoder(accept or "")
        gzipped = gzip_accepted(accept_encoding or "")
        with self._lock:
            rendered = self._fresh()
            if names:
                only = encoder(_Families(_restricted(rendered.families, names)))
                return (gzip.compress(only, GZIP_LEVEL, mtime=0) if gzipped else only), content_type, gzipped
            key = (content_type, gzipped)
            output = rendered.bodies.get(key)
            if output is None:
                plain = rendered.bodies.get((content_type, False))
                if plain is None:
                    plain = encoder(_Families(rendered.families))
                    if len(rendered.bodies) < MAX_VARIANTS:
                        rendered.bodies[(content_type, False)] = plain
                output = gzip.compress(plain, GZIP_LEVEL, mtime=0) if gzipped else plain
                if len(rendered.bodies) < MAX_VARIANTS:
                    rendered.bodies[key] = output
            return output, content_type, gzipped

    def target_body(self, target: str, accept: str | None,
                    accept_encoding: str | None) -> tuple[bytes, str, bool] | None:
        """``/probe?target=NAME``: the series whose ``target`` label is ``target`` (its collectors'
        and vecmon's self-metrics of it), rendered once per change; None for a target the store
        does not know. The split by target is one pass over the render, made on first demand."""
        encoder, content_type = choose_encoder(accept or "")
        gzipped = gzip_accepted(accept_encoding or "")
        store = self.collector.store
        with self._lock:
            rendered = self._fresh()
            if rendered.by_target is None:
                rendered.by_target = _by_target(rendered.families)
            families = rendered.by_target.get(target)
            if families is None:
                if target not in {e.target for e in store.entries()} | set(store.target_up()):
                    return None
                families = []  # configured, nothing collected yet
            key = (target, content_type, gzipped)
            output = rendered.target_bodies.get(key)
            if output is None:
                output = encoder(_Families(families))
                if gzipped:
                    output = gzip.compress(output, GZIP_LEVEL, mtime=0)
                if len(rendered.target_bodies) < MAX_VARIANTS * max(1, len(rendered.by_target)):
                    rendered.target_bodies[key] = output
            return output, content_type, gzipped
