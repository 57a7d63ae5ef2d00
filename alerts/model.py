"""The shape of a threshold alert: :class:`AlertDef` (one catalog entry), the :class:`Params` it gets
for one config, and the :class:`Rule` generated from it.

Each :class:`AlertDef` knows its PromQL and promtool fixture (its :class:`Shape`: see
:mod:`alerts.shapes` for the shapes several alerts share), when it applies to a config
(``applies``: no model-API alerts without endpoints, no pgvector alerts without the pgvector
collectors), its defaults (threshold, ``for``, severity, window, volume guard), its annotations and
the README text (meaning, source of the default, first steps). From the fixture
:mod:`alerts.promtool_tests` builds a "fires just past the threshold, stays silent on the right side
of it" unit test.

Annotation templates use placeholders filled in at generation time: ``<threshold>`` (rendered like
the alert's value), ``<window>``, ``<for>``, and ``<value>``, which becomes
``{{ $value | humanize... }}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from alerts.fixtures import Fixture
from alerts.promql import duration, number
from alerts.targets import ALWAYS, MonitoredConfig, When
from collectors.pg_indexes import PG_INDEX_SIZE_BYTES

if TYPE_CHECKING:  # alerts.config imports the catalog, which imports this module
    from alerts.config import AlertingSettings

T, W, F, V = "<threshold>", "<window>", "<for>", "<value>"


@dataclass(frozen=True)
class Params:
    """An alert's effective settings for one config."""

    config: MonitoredConfig
    settings: AlertingSettings
    threshold: float | None
    window: float | None
    minimum: float | None

    @property
    def limit(self) -> str:
        """The threshold in PromQL (for alerts that have one)."""
        assert self.threshold is not None, "the alert has no threshold"
        return number(self.threshold)

    @property
    def w(self) -> str:
        return duration(self.window or 0)

    @property
    def methods(self) -> str:
        return "|".join(self.settings.vector_index_methods)

    @property
    def vector_tables(self) -> str:
        """``count by (target, schema, table)`` of tables having a vector index (an ``and on`` filter)."""
        return f'count by (target, schema, table) ({PG_INDEX_SIZE_BYTES.name}{{am=~"{self.methods}"}})'


class Shape(Protocol):
    """An alert's PromQL for its params, and the input series giving that expression a value."""

    def expr(self, p: Params) -> str: ...

    def fixture(self, p: Params, value: float) -> Fixture: ...


@dataclass(frozen=True)
class Custom:
    """A shape of one alert only: its expression and fixture as functions."""

    build_expr: Callable[[Params], str]
    build_fixture: Callable[[Params, float], Fixture]

    def expr(self, p: Params) -> str:
        return self.build_expr(p)

    def fixture(self, p: Params, value: float) -> Fixture:
        return self.build_fixture(p, value)


@dataclass(frozen=True)
class Doc:
    meaning: str
    source: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class AlertDef:
    name: str
    group: str  # rule group: vecmon-<group>
    service: str  # the service label (routing)
    severity: str
    for_: float
    summary: str
    description: str
    shape: Shape  # the expression and its input series for a value
    doc: Doc
    compare: str = ">"  # ">" or "<": value vs threshold; "event": a condition (fixture value 1 = true)
    fmt: str = "number"  # how values print: percent, duration, bytes, number, decimal (alerts.promql.FORMATS)
    threshold: float | None = None
    window: float | None = None
    minimum: float | None = None
    minimum_doc: str = ""
    threshold_text: str = ""  # what <threshold> says when the alert has no threshold (e.g. a config value)
    condition: str = ""  # what an "event" alert checks, for the README
    tunable_threshold: bool | None = None  # accepts a threshold override (default: not an "event" alert)
    test_threshold: float | None = None  # the threshold the unit test assumes when there is none
    applies: When = ALWAYS
    metrics: tuple[str, ...] = ()  # metric names it reads (documentation)

    def __post_init__(self) -> None:
        if self.tunable_threshold is None:
            object.__setattr__(self, "tunable_threshold", self.compare != "event")

    def expr(self, p: Params) -> str:
        return self.shape.expr(p)

    def fixture(self, p: Params, value: float) -> Fixture:
        return self.shape.fixture(p, value)

    def params(self, config: MonitoredConfig, settings: AlertingSettings) -> Params:
        override = settings.override(self.name)

        def pick(value: float | None, default: float | None) -> float | None:
            return default if value is None else value

        return Params(config, settings, pick(override.threshold, self.threshold), pick(override.window, self.window),
                      pick(override.minimum, self.minimum))


@dataclass(frozen=True)
class Rule:
    """One generated alert rule with what its unit test needs."""

    definition: AlertDef
    params: Params
    severity: str
    for_: float
    labels: dict[str, str]
    annotations: dict[str, str]
    expr: str

    @property
    def name(self) -> str:
        return self.definition.name

    def as_yaml(self) -> dict[str, Any]:
        return {"alert": self.name, "expr": self.expr, "for": duration(self.for_), "labels": self.labels,
                "annotations": self.annotations}

    def test_values(self) -> tuple[float, float]:
        """(a value just past the threshold, a value just on the quiet side) for the unit test: 5% of
        the threshold away, or for ratios bounded by 1, 10% of the distance to 1 on the upper side."""
        compare, threshold = self.definition.compare, self.params.threshold
        if threshold is None:
            threshold = self.definition.test_threshold
        if compare == "event":
            return 1.0, 0.0
        assert threshold is not None
        ratio = self.definition.fmt in ("percent", "decimal") and threshold <= 1
        up = threshold + (1 - threshold) * 0.1 if ratio else threshold * 1.05
        down = threshold * 0.95
        if threshold == 0:
            up, down = 0.01, -0.01
        if compare == ">":
            return nice(up, threshold, above=True), nice(down, threshold, above=False)
        return nice(down, threshold, above=False), (nice(up, threshold, above=True) if threshold < 1 else threshold)


def nice(value: float, threshold: float, above: bool) -> float:
    """``value`` with as few significant digits as keep it on its side of ``threshold`` (at least 3),
    so a rendered value (Go's %.4g) never sits on a rounding edge."""
    for digits in range(3, 16):
        rounded = float(f"{value:.{digits}g}")
        if (rounded > threshold) if above else (rounded < threshold):
            return rounded
    return value
