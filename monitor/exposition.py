"""Render the snapshot store as Prometheus metrics, plus vecmon's self-metrics.

Families with the same name from several (target, collector) entries are merged
into one family. Series of a collector whose last run failed are still served
(and ``vecmon_collector_stale`` is 1) until ``stale_after`` has passed since its
last success; then they are dropped rather than served as current.
"""

from __future__ import annotations

import platform
from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from collectors.base import Emitter, MetricSpec
from monitor import __version__
from monitor.snapshot import DISABLED, FAILED, OK, TARGET_DOWN, SnapshotStore

SELF_METRICS = (
    MetricSpec("vecmon_build_info", "gauge", "Version of the running vecmon and its Python; always 1.", ("version", "python_version")),
    MetricSpec("vecmon_up", "gauge", "Whether vecmon reached the target on its last attempt (1) or not (0)."),
    MetricSpec("vecmon_target_unreachable_reason", "gauge",
               "Why vecmon could not reach the database target on its last attempt: 1 for the reason (auth_failed, "
               "refused, dns, timeout, database_missing, tls, other); absent while the target is up.", ("reason",)),
    MetricSpec("vecmon_collector_up", "gauge",
               "Whether the collector's last run succeeded (1) or failed (0); absent while disabled; while the "
               "target is down (vecmon_up 0), the value from before.", ("collector",)),
    MetricSpec("vecmon_collector_disabled", "gauge",
               "Whether the collector reported it cannot run on this target, e.g. an extension is missing.", ("collector",)),
    MetricSpec("vecmon_collector_duration_seconds", "gauge", "Duration of the collector's last run.",
               ("collector",)),
    MetricSpec("vecmon_collector_runs_total", "counter",
               "Collector runs by result (success, error, timeout, disabled).", ("collector", "result")),
    MetricSpec("vecmon_collector_skipped_runs_total", "counter",
               "Scheduled runs skipped because the previous run was still going (overlap) or late (missed).",
               ("collector", "reason")),
    MetricSpec("vecmon_collector_last_success_timestamp_seconds", "gauge",
               "Unix time of the collector's last successful run.", ("collector",)),
    MetricSpec("vecmon_collector_series", "gauge", "Series the collector currently exports.", ("collector",)),
    MetricSpec("vecmon_collector_stale", "gauge",
               "Whether the exported series come from an earlier run because the last run failed.",
               ("collector",)),
)


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

    def collect(self) -> Iterator[Metric]:
        now = self.store.clock()
        families: dict[str, Metric] = {}
        build = Emitter("", SELF_METRICS)
        build.add("vecmon_build_info", 1, __version__, platform.python_version())
        for family in build.families():
            # build info has no target; drop the implicit empty target label
            for sample in family.samples:
                sample.labels.pop("target", None)
            _merge(families, family)
        by_target: dict[str, Emitter] = {}
        for target, up in sorted(self.store.target_up().items()):
            emitter = by_target.setdefault(target, Emitter(target, SELF_METRICS))
            emitter.add("vecmon_up", 1 if up else 0)
        for target, reason in sorted(self.store.target_reasons().items()):
            by_target.setdefault(target, Emitter(target, SELF_METRICS)).add("vecmon_target_unreachable_reason", 1, reason)
        for entry in sorted(self.store.entries(), key=lambda e: (e.target, e.collector)):
            emitter = by_target.setdefault(entry.target, Emitter(entry.target, SELF_METRICS))
            name = entry.collector
            for result, count in entry.runs:
                emitter.add("vecmon_collector_runs_total", count, name, result)
            for reason, count in entry.skipped:
                emitter.add("vecmon_collector_skipped_runs_total", count, name, reason)
            state = entry.effective_state  # while the target is down, the collector's state before
            emitter.add("vecmon_collector_disabled", 1 if state == DISABLED else 0, name)
            if state in (OK, FAILED):
                emitter.add("vecmon_collector_up", 1 if state == OK else 0, name)
            if entry.last_duration is not None:
                emitter.add("vecmon_collector_duration_seconds", entry.last_duration, name)
            if entry.last_success is not None:
                emitter.add("vecmon_collector_last_success_timestamp_seconds", entry.last_success, name)
            served = entry.families
            failed = entry.state in (FAILED, TARGET_DOWN)
            if failed and entry.last_success is not None:
                if now - entry.last_success > self.stale_after:
                    served = ()
            emitter.add("vecmon_collector_stale", 1 if failed and served else 0, name)
            emitter.add("vecmon_collector_series", sum(len(f.samples) for f in served), name)
            for family in served:
                _merge(families, family)
        for emitter in by_target.values():
            for family in emitter.families():
                _merge(families, family)
        yield from families.values()


def build_registry(store: SnapshotStore, stale_after: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(store, stale_after))
    return registry
