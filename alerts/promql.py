"""Small PromQL and Prometheus-template helpers shared by the rule generators.

- :func:`duration` renders seconds the way Prometheus 2.42 parses durations (``5m``, ``90s``, ``500ms``);
- :func:`humanize`, :func:`humanize_percentage`, :func:`humanize_duration` and
  :func:`humanize_1024` reproduce Prometheus' template functions of the same names, so the
  generated ``promtool`` tests can state the exact annotation an alert renders and the README
  can print thresholds the way the alerts print values;
- :func:`split_selector` / :func:`with_matchers` take apart and extend a vector selector from the
  config (``name{a="b"}``);
- :func:`le_matcher` matches a histogram bucket boundary however the exporter formatted it.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from prometheus_client.utils import floatToGoString

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))  # no "w": periods read 28d, not 4w
SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?\s*$", re.S)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"vecmon_[a-z0-9_]+")


def duration(seconds: float) -> str:
    """300 -> ``5m``; 90 -> ``90s``; 0.25 -> ``250ms``; 0 -> ``0s``. Exact (no rounding beyond 1 ms)."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    for unit, size in _UNITS:
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"  # pragma: no cover - "s" always divides


def number(value: float) -> str:
    """A threshold as PromQL literal: ``0.9``, ``500``, ``1073741824`` (no float noise, no exponent)."""
    if float(value).is_integer():
        return str(int(value))
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text


def _g4(value: float) -> str:
    """Go's ``%.4g``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def _prefixed(value: float, prefixes: tuple[str, ...], base: float, larger: bool) -> str:
    """``value`` scaled by ``base`` per prefix until it is below ``base`` (``larger``) or at least 1."""
    prefix = ""
    for p in prefixes:
        if (abs(value) < base) if larger else (abs(value) >= 1):
            break
        prefix = p
        value = value / base if larger else value * base
    return _g4(value) + prefix


def humanize(value: float) -> str:
    """Prometheus' ``humanize``: SI prefixes, 4 significant digits."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    if abs(value) >= 1:
        return _prefixed(value, ("k", "M", "G", "T", "P", "E", "Z", "Y"), 1000, larger=True)
    return _prefixed(value, ("m", "u", "n", "p", "f", "a", "z", "y"), 1000, larger=False)


def humanize_1024(value: float) -> str:
    """Prometheus' ``humanize1024``: binary prefixes (``1Gi``)."""
    if abs(value) <= 1 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    return _prefixed(value, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"), 1024, larger=True)


def humanize_percentage(value: float) -> str:
    """Prometheus' ``humanizePercentage``: 0.95 -> ``95%``."""
    return _g4(value * 100) + "%"


def humanize_duration(value: float) -> str:
    """Prometheus' ``humanizeDuration``: 0.5 -> ``500ms``, 90 -> ``1m 30s``."""
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return _g4(value) + "s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes, hours, days = whole % 60, (whole // 60) % 60, (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return f"{_g4(value)}{prefix}s"


FORMATS = {
    "percent": ("humanizePercentage", humanize_percentage),
    "duration": ("humanizeDuration", humanize_duration),
    "bytes": ("humanize1024", humanize_1024),
    "number": ("humanize", humanize),
    "decimal": ('printf "%.3f"', lambda v: f"{v:.3f}"),
}


def value_template(fmt: str) -> str:
    """The annotation template printing the alert's current value in ``fmt``."""
    return "{{ $value | " + FORMATS[fmt][0] + " }}"


def render_value(fmt: str, value: float) -> str:
    return FORMATS[fmt][1](value)


WINDOW = "{{.window}}"  # Sloth's placeholder for the range of an SLI query
_RANGE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:\{(?:[^}\"]|\"(?:[^\"\\]|\\.)*\")*\})?)\s*\[\{\{\.window\}\}\]")


def check_window_query(query: str) -> str:
    """A Sloth-style SLI query: PromQL counting events per second whose range is ``{{.window}}``, with one
    range selector (the series the generated promtool tests feed). Returns it stripped."""
    query = " ".join(query.split())
    if WINDOW not in query:
        raise ValueError(f"a query SLI needs the window placeholder {WINDOW} as its range, e.g. "
                         f"sum(rate(http_requests_total{{code=~\"5..\"}}[{WINDOW}]))")
    ranges = _RANGE.findall(query)
    if len(ranges) != 1 or query.count(WINDOW) != 1:
        raise ValueError(f"a query SLI reads one range selector ending in [{WINDOW}]; {query[:120]!r} has "
                         f"{query.count(WINDOW)}")
    depth = 0
    for char in query:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in {query[:120]!r}")
    return query


def range_selector(expr: str) -> str:
    """The selector a window query reads (``x{a="b"}`` of ``sum(rate(x{a="b"}[{{.window}}]))``); a plain
    selector as it is."""
    if WINDOW not in expr:
        return expr
    found = _RANGE.search(expr)
    return found.group(1).strip() if found else expr


def at_window(expr: str, window: str) -> str | None:
    """A window query with its range filled in; None for a plain selector."""
    return expr.replace(WINDOW, window) if WINDOW in expr else None


def split_selector(selector: str) -> tuple[str, str]:
    """``'m{a="b"}'`` -> ``("m", 'a="b"')``; raises ValueError for anything but a plain vector selector."""
    match = SELECTOR.match(selector)
    if not match:
        raise ValueError(f"expected a vector selector like name{{label=\"value\"}}, got {selector!r}")
    return match.group(1), (match.group(2) or "").strip().rstrip(",").strip()


def with_matchers(selector: str, *matchers: str, suffix: str = "") -> str:
    """Append ``matchers`` (and ``suffix`` to the metric name) to a selector."""
    name, existing = split_selector(selector)
    parts = [p for p in (existing, *matchers) if p]
    return f"{name}{suffix}{{{', '.join(parts)}}}" if parts else f"{name}{suffix}"


def go_float(value: float) -> str:
    """How the Python and Go clients print a bucket bound (prometheus_client's floatToGoString)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


def le_matcher(bound: float) -> str:
    """Matcher for the bucket ``le=bound``: Go clients print ``1``, the Python client ``1.0``."""
    if float(bound).is_integer():
        return f'le=~"{int(bound)}(\\\\.0)?"'
    return f'le="{go_float(bound)}"'


def metric_names(expr: str) -> set[str]:
    """Every ``vecmon_*`` metric an expression references (histogram suffixes kept)."""
    return set(METRIC_NAME.findall(expr))
