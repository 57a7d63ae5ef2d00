"""The one small interface every collector implements, and the metric builder they use.

A collector is a class with a ``name``, a tuple of declared ``METRICS`` and a
``collect(ctx)`` method that returns a list of prometheus_client metric families.
Collectors never register anything themselves: the scheduler stores what they
return in the snapshot store, and ``/metrics`` renders the store.

Every family a collector emits must be declared as a :class:`MetricSpec`; the
metric reference in the README is generated from those declarations, and the
:class:`Emitter` refuses undeclared names, so documentation cannot drift.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    UnknownMetricFamily,
)

if TYPE_CHECKING:  # pragma: no cover
    import psycopg

TARGET_LABEL = "target"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    """Declaration of one exported metric family (the target label is implicit)."""

    name: str
    kind: str  # gauge | counter | histogram | info | untyped
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # untyped: only for names kept from another exporter (postgres_exporter's queries.yaml
        # counters have no _total suffix, which the counter type would add)
        if self.kind not in ("gauge", "counter", "histogram", "info", "untyped"):
            raise ValueError(f"{self.name}: unknown metric kind {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counter names must end in _total")

    @property
    def exposed_name(self) -> str:
        """The name a scrape shows: info families get the ``_info`` suffix in the exposition."""
        return f"{self.name}_info" if self.kind == "info" else self.name


class CollectorError(Exception):
    """A collection failed for a reason worth reporting (bad result, missing privilege...)."""


class CollectorDisabled(Exception):
    """The collector cannot run on this target (e.g. an extension is not installed).

    It is reported as disabled with the message as reason, not as a failure.
    """


class ConnectionUnavailable(CollectorError):
    """The target could not be reached; the target is reported down."""


class CollectionTimeout(CollectorError):
    """The run was cancelled (on the server, or by the collector's own deadline) because it exceeded its timeout."""


@dataclass
class ServerFacts:
    """Facts about a PostgreSQL server gathered once per connection, used to pick SQL variants."""

    version_num: int  # server_version_num, e.g. 180001
    version: str  # e.g. "18.1"
    database: str
    in_recovery: bool
    extensions: dict[str, str] = field(default_factory=dict)  # name -> version


@dataclass
class CollectContext:
    """Everything a collector needs for one run."""

    target: str
    settings: Any  # the target's typed config object
    conn: psycopg.Connection | None = None
    facts: ServerFacts | None = None
    state: dict[str, Any] = field(default_factory=dict)  # per (target, collector), survives runs
    shared: Any = None  # monitor.shared.SharedState: what collectors share across jobs and reloads
    pool_wait: float = 0.0  # seconds the run waited for a pooled connection (set by the connector)


class Collector(Protocol):
    """What the scheduler needs from a collector."""

    name: ClassVar[str]
    METRICS: ClassVar[tuple[MetricSpec, ...]]

    def collect(self, ctx: CollectContext) -> list[Metric]: ...


def _label_value(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


def finite(value: Any) -> float | None:
    """Convert a SQL result cell to float; None for NULL. Raises CollectorError on garbage."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise CollectorError(f"expected a number, got {value!r}") from exc
    return number


class Emitter:
    """Builds metric families for one target, checked against the declared specs."""

    def __init__(self, target: str, specs: Iterable[MetricSpec]):
        self.target = target
        self._specs = {spec.name: spec for spec in specs}
        self._families: dict[str, Metric] = {}
        self._built: dict[str, tuple[MetricSpec, Metric]] = {}  # what _family found, by name

    def _family(self, spec_name: str) -> tuple[MetricSpec, Metric]:
        known = self._built.get(spec_name)
        if known is not None:
            return known
        spec = self._specs.get(spec_name)
        if spec is None:
            raise KeyError(f"metric {spec_name!r} is not declared by this collector")
        family = self._families.get(spec_name)
        if family is None:
            labels = [TARGET_LABEL, *spec.labels]
            if spec.kind == "gauge":
                family = GaugeMetricFamily(spec.name, spec.help, labels=labels)
            elif spec.kind == "counter":
                family = CounterMetricFamily(spec.name, spec.help, labels=labels)
            elif spec.kind == "histogram":
                family = HistogramMetricFamily(spec.name, spec.help, labels=labels)
            elif spec.kind == "untyped":
                family = UnknownMetricFamily(spec.name, spec.help, labels=labels)
            else:
                family = InfoMetricFamily(spec.name, spec.help, labels=labels)
            self._families[spec_name] = family
        self._built[spec_name] = (spec, family)
        return spec, family

    def _values(self, spec: MetricSpec, labels: Sequence[Any]) -> list[str]:
        if len(labels) != len(spec.labels):
            raise ValueError(f"{spec.name}: expected labels {spec.labels}, got {tuple(labels)}")
        return [self.target, *[v if type(v) is str else _label_value(v) for v in labels]]

    def add(self, name: str, value: Any, *labels: Any) -> None:
        """Add one gauge or counter sample; NULL or non-finite values are skipped.

        A value that is not a number (a bad SQL result, say) is skipped with a warning naming the
        metric and labels, so one odd row never costs the rest of the collection."""
        if type(value) is float or type(value) is int:  # most driver values: no conversion to check
            number = float(value)
        else:
            try:
                checked = finite(value)
            except CollectorError as exc:
                log.warning("target %s: skipped %s%s: %s", self.target, name, list(labels), exc)
                return
            if checked is None:
                return
            number = checked
        if not math.isfinite(number):
            return
        spec, family = self._family(name)
        if not isinstance(family, (GaugeMetricFamily, CounterMetricFamily, UnknownMetricFamily)):
            raise TypeError(f"{name} is declared as {spec.kind}: emit it with Emitter.{spec.kind}()")
        family.add_metric(self._values(spec, labels), number)

    def info(self, name: str, info: dict[str, Any], *labels: Any) -> None:
        spec, family = self._family(name)
        if not isinstance(family, InfoMetricFamily):
            raise TypeError(f"{name} is declared as {spec.kind}, not info")
        family.add_metric(self._values(spec, labels), {k: _label_value(v) for k, v in info.items()})

    def histogram(self, name: str, buckets: Sequence[tuple[str, float]], sum_value: float,
                  *labels: Any) -> None:
        """Add one cumulative histogram: buckets as (upper bound, cumulative count), ending in +Inf."""
        spec, family = self._family(name)
        if not isinstance(family, HistogramMetricFamily):
            raise TypeError(f"{name} is declared as {spec.kind}, not histogram")
        family.add_metric(self._values(spec, labels), list(buckets), sum_value)

    def families(self) -> list[Metric]:
        return list(self._families.values())
