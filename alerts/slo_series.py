"""The scraped input series of an SLO rule test: what Prometheus would store for an SLI
:class:`~alerts.slo_history.History`, written in promtool's expanding notation.

The series are concrete series the SLI's selectors match: equality matchers as they are, a regex
alternation by its first plain branch, a negative matcher by a value it does not exclude.
"""

from __future__ import annotations

import re

from alerts.fixtures import sel
from alerts.promql import go_float, number, range_selector, split_selector, with_matchers
from alerts.slo import SLORules
from alerts.slo_history import History


def _compress(values: list[float | None]) -> str:
    """promtool's expanding notation: runs of equal steps as ``a+bxn``, gaps as ``_xn``."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        current = values[i]
        if current is None:
            j = i
            while j + 1 < len(values) and values[j + 1] is None:
                j += 1
            parts.append("_" if j == i else f"_x{j - i}")
            i = j + 1
            continue
        j, step = i, 0.0
        following = values[i + 1] if i + 1 < len(values) else None
        if following is not None:
            j, step = i + 1, following - current
            while j + 1 < len(values):
                after, last = values[j + 1], values[j]
                if after is None or last is None or after - last != step:
                    break
                j += 1
        n = j - i
        a = number(current)
        if n == 0:
            parts.append(a)
        elif step == 0:
            parts.append(f"{a}x{n}")
        else:
            parts.append(f"{a}{'+' if step > 0 else '-'}{number(abs(step))}x{n}")
        i = j + 1
    return " ".join(parts)


_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _regex_example(label: str, value: str) -> str:
    """A value the regex matches: its first plain branch (``5..`` as ``500``, ``(a|b)`` as ``a``)."""
    for branch in value.strip("()").split("|"):
        candidate = branch.strip("()").replace(".", "0")
        if re.fullmatch(r"[A-Za-z0-9_:\- ]*", candidate) and re.fullmatch(f"(?:{value})", candidate):
            return candidate
    raise ValueError(f"cannot build test data for matcher {label}=~{value!r}")


def _labels(selector: str) -> dict[str, str]:
    """Labels of a series that ``selector`` matches: equality matchers as they are, a plain regex
    alternation by its first branch, a negative matcher by a value it does not exclude."""
    _, matchers = split_selector(selector)
    labels: dict[str, str] = {}
    for label, op, value in _MATCHER.findall(matchers):
        if op == "=":
            labels[label] = value
        elif op == "=~":
            labels[label] = _regex_example(label, value)
        else:
            labels[label] = "vecmon_other" if value != "vecmon_other" else "vecmon_other2"
    return {k: v for k, v in labels.items() if v != ""}


def _concrete(selector: str, **extra: str) -> str:
    name, _ = split_selector(selector)
    labels = {**_labels(selector), **extra}
    return sel(name, labels) if labels else name


def _rejected(total: str, part: str) -> str:
    """A series ``total`` matches and ``part`` does not (the other events when both are one metric)."""
    total_labels = _labels(total)
    _, part_matchers = split_selector(part)
    rest = dict(total_labels)
    for label, op, value in _MATCHER.findall(part_matchers):
        if label in total_labels and op in ("=", "=~"):
            continue
        rest[label] = {"=": value + "_other", "!=": value, "=~": "vecmon_other", "!~": value.split("|")[0]}[op]
        break
    else:
        raise ValueError(f"cannot build test data: every series of {total} is also matched by {part}")
    return sel(split_selector(total)[0], rest)


def input_series(rules: SLORules, history: History, without_good: bool = False) -> list[dict[str, str]]:
    """The scraped series giving ``history``; ``without_good``: the good series (or bucket) is missing."""
    sli = rules.slo.sli
    mask = history.mask

    def out(series: str, values: list[float]) -> dict[str, str]:
        present = [v if ok else None for v, ok in zip(values, mask, strict=True)]
        return {"series": series, "values": _compress(present)}

    if sli.probe is not None:
        return [out(_concrete(sli.probe.ratio), history.gauge)]
    total, bad = history.counters
    good = [t - b for t, b in zip(total, bad, strict=True)]
    if sli.latency is not None:
        h = sli.latency.histogram
        series = [out(_concrete(with_matchers(h, suffix="_count")), total),
                  out(_concrete(with_matchers(h, suffix="_bucket"), le="+Inf"), total)]
        if not without_good:
            series.append(out(_concrete(with_matchers(h, suffix="_bucket"), le=go_float(sli.latency.threshold)), good))
        return series
    events = sli.events
    assert events is not None
    all_selector = range_selector(events.all_events)
    if events.bad_events:
        part, part_values, other_values = range_selector(events.bad_events), bad, good
    else:
        assert events.good is not None
        part, part_values, other_values = events.good, good, bad
    same_metric = split_selector(part)[0] == split_selector(all_selector)[0]
    part_series = (sel(split_selector(part)[0], {**_labels(all_selector), **_labels(part)}) if same_metric
                   else _concrete(part))
    series = [] if without_good and events.good else [out(part_series, part_values)]
    if same_metric:
        series.append(out(_rejected(all_selector, part), other_values))
    else:
        series.append(out(_concrete(all_selector), total))
    return series
