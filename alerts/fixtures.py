"""The promtool test-fixture language: input series that give an alert's expression a known value.

A catalog entry (:class:`alerts.model.AlertDef`) turns a value into a :class:`Fixture`: constant
gauges (:func:`gauge`) and counters growing by a fixed amount per minute (:func:`counter`), from
which :mod:`alerts.promtool_tests` writes promtool's ``input_series``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from alerts.promql import number

MINUTE = 60.0

# labels of the example series fixtures use: a PostgreSQL target "app", its database, a vector table
# and its HNSW index (shapes.vector_table)
APP = {"target": "app"}
DATABASE = {"target": "app", "datname": "app"}
TABLE = {"target": "app", "schema": "public", "table": "items"}
INDEX = {**TABLE, "index": "items_embedding_idx"}


@dataclass(frozen=True)
class InputSeries:
    """One promtool input series: ``start`` at t=0, then ``+step`` per 1m interval (0: constant)."""

    series: str
    start: float
    step: float = 0.0

    def values(self, points: int) -> str:
        if self.step == 0:
            return f"{number(self.start)}x{points}"
        sign = "+" if self.step > 0 else "-"
        return f"{number(self.start)}{sign}{number(abs(self.step))}x{points}"


@dataclass(frozen=True)
class Fixture:
    """Input series giving an alert's expression a known value.

    ``labels``: the alert's labels from the expression. ``value``: what ``$value`` is (a number, or a
    function of the evaluation time in seconds). ``active_from``: first time the expression has a
    result; ``settle``: from when ``value`` is exact (rate()/increase() windows filled).
    """

    series: tuple[InputSeries, ...]
    labels: dict[str, str]
    value: float | Callable[[float], float]
    active_from: float = 0.0
    settle: float = 0.0

    def value_at(self, t: float) -> float:
        return self.value(t) if callable(self.value) else self.value


def sel(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def gauge(name: str, labels: dict[str, str], value: float) -> InputSeries:
    return InputSeries(sel(name, labels), value)


def counter(name: str, labels: dict[str, str], per_minute: float) -> InputSeries:
    return InputSeries(sel(name, labels), 0, per_minute)


def split(value: float, total: int) -> tuple[int, int]:
    """``value`` as ``a / total`` with integer ``a`` (and ``total - a``)."""
    part = round(value * total)
    return part, total - part


def above(minimum: float | None, unit: int, per: int) -> int:
    """Events per minute for a ratio fixture: a multiple of ``unit``, above a volume guard of
    ``minimum`` (counted in steps of ``per``)."""
    return unit * max(1, int((minimum or 0) // per) + 1)
