"""``promtool test rules`` cases for one SLO, at the real cadence of its SLI.

The input series are what Prometheus really scrapes: one sample a minute, the SLI's counters (or
probe gauge) changing only once per SLI interval (10m for the recall probe), so a window shorter
than the interval has no events half the time, as in production. Each case is an error-ratio
history per SLI update; :func:`expected_burns` replays the rules' logic on it (the windows'
ratios, the minimum-events guard, ``for`` and ``keep_firing_for``) minute by minute, so every
expected alert list is computed, never hard-coded. The cases:

- per burn window: fires just above its threshold, silent just below it;
- 20x the budget, sustained: pages within the hour and stays firing at every check (no resolve);
- half the budget for 8h (or the longest window + 1h): no alert of any kind;
- two-window discrimination (windows of up to 6h): the long window over its threshold while the short one recovered,
  and a short burst over it while the long window is not: the rule's expression is empty both
  times (the windows' own ratios are checked to be over the threshold, so the case bites);
- the minimum-events guard exactly at ``min_events`` (fires) and one event below it (silent);
- no data: no series, the good series missing (a typo, a non-bucket threshold), the series dropped;
- error budget exhausted and not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alerts.promql import duration, go_float, number, range_selector, split_selector, with_matchers
from alerts.rules import nice, sel
from alerts.slo import BURN_ALERT, EXHAUSTED_ALERT, NO_DATA_ALERT, SLORules, data_window, min_events, no_data_for

MINUTE = 60
EVENTS_PER_UPDATE = 10000  # events per SLI update: exact ratios of up to 4 decimals
DISCRIMINATION_MAX_LONG = 6 * 3600  # the page windows (Sloth's 30d/28d; scaled ones below a day)
HEALTHY_MINUTES = 8 * 60  # the generated "half the budget" case; multi-day runs are in tests/test_alerts_simulation.py

Ratio = Callable[[int], "float | None"]  # update minute -> error ratio of that update (None: no update)


@dataclass
class History:
    """An SLI history sampled every minute for ``minutes`` minutes.

    ``step``: minutes between SLI updates; update k (k >= 1) happens at minute k*step with error ratio
    ``ratio(k*step)`` and ``events(k*step)`` events. ``present(m)``: the series exist at minute m.
    """

    step: int
    minutes: int
    ratio: Ratio
    events: Callable[[int], int] = lambda m: EVENTS_PER_UPDATE
    present: Callable[[int], bool] = lambda m: True
    probe: bool = False
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def updates(self) -> list[int]:
        if "updates" not in self._cache:
            self._cache["updates"] = [m for m in range(self.step, self.minutes + 1, self.step)
                                      if self.ratio(m) is not None]
        return self._cache["updates"]

    def counters(self) -> tuple[list[float], list[float]]:
        if "counters" not in self._cache:
            self._cache["counters"] = self._counters()
        return self._cache["counters"]

    def gauge(self) -> list[float]:
        if "gauge" not in self._cache:
            self._cache["gauge"] = self._gauge()
        return self._cache["gauge"]

    def _mask(self) -> list[bool]:
        if "mask" not in self._cache:
            mask = [self.present(m) for m in range(self.minutes + 1)]
            prefix = [0]
            for ok in mask:
                prefix.append(prefix[-1] + ok)
            self._cache["mask"] = (mask, prefix)
        return self._cache["mask"]

    # cumulative counters (counter SLIs)
    def _counters(self) -> tuple[list[float], list[float]]:
        total, bad = [0.0] * (self.minutes + 1), [0.0] * (self.minutes + 1)
        updates = set(self.updates())
        t = b = 0.0
        for m in range(self.minutes + 1):
            if m in updates:
                n = self.events(m)
                t += n
                b += round(self.ratio(m) * n)
            total[m], bad[m] = t, b
        return total, bad

    # probe gauge: good fraction of the latest update (the first one's before it)
    def _gauge(self) -> list[float]:
        updates = set(self.updates())
        values, current = [], (1 - self.ratio(min(updates))) if updates else 1.0
        for m in range(self.minutes + 1):
            if m in updates:
                current = 1 - self.ratio(m)
            values.append(current)
        return values

    def window(self, t: int, w: int) -> tuple[float | None, float]:
        """(error ratio, events) over ``[t-w, t]`` as the rules compute them (None: no ratio)."""
        start = max(0, t - w)
        mask, prefix = self._mask()
        count = prefix[t + 1] - prefix[start]
        if self.probe:
            if not count:
                return None, 0.0
            if "gauge_prefix" not in self._cache:
                acc = [0.0]
                for value, ok in zip(self.gauge(), mask):
                    acc.append(acc[-1] + (value if ok else 0.0))
                self._cache["gauge_prefix"] = acc
            acc = self._cache["gauge_prefix"]
            return 1 - (acc[t + 1] - acc[start]) / count, float(count)
        if count < 2:
            return None, 0.0
        total, bad = self.counters()
        first = next(m for m in range(start, t + 1) if mask[m])
        last = next(m for m in range(t, start - 1, -1) if mask[m])
        dt, db = total[last] - total[first], bad[last] - bad[first]
        if dt <= 0:
            return None, 0.0
        return db / dt, dt


def expected_burns(rules: SLORules, history: History, times: list[int]) -> dict[int, list[tuple[Any, float]]]:
    """Minute -> [(burn alert, $value)] firing at that minute: each window's condition replayed every
    minute with ``for`` (pending first) and ``keep_firing_for`` (firing holds after the condition ends)."""
    out: dict[int, list[tuple[Any, float]]] = {t: [] for t in times}
    end = max(times)
    for burn in rules.burn_alerts:
        minimum = min_events(rules.slo, burn.factor * rules.slo.error_budget)
        long, short = int(burn.window.long // MINUTE), int(burn.window.short // MINUTE)
        for_, keep = burn.for_ / MINUTE, burn.keep_firing_for / MINUTE
        active_at = firing_false_since = None
        firing, value = False, 0.0
        for t in range(end + 1):
            ratio_long, events = history.window(t, long)
            ratio_short, _ = history.window(t, short)
            holds = (ratio_long is not None and ratio_short is not None and ratio_long > burn.threshold
                     and ratio_short > burn.threshold and (not minimum or events >= minimum))
            if holds:
                value = ratio_long
                firing_false_since = None
                if active_at is None:
                    active_at = t
                if t - active_at >= for_:
                    firing = True
            elif firing and keep:
                if firing_false_since is None:
                    firing_false_since = t
                if t - firing_false_since >= keep:
                    firing, active_at, firing_false_since = False, None, None
            else:
                firing, active_at, firing_false_since = False, None, None
            if t in out and firing:
                out[t].append((burn, value))
    return out


# --------------------------------------------------------------------------- input series


def _compress(values: list[float | None]) -> str:
    """promtool's expanding notation: runs of equal steps as ``a+bxn``, gaps as ``_xn``."""
    parts, i = [], 0
    while i < len(values):
        if values[i] is None:
            j = i
            while j + 1 < len(values) and values[j + 1] is None:
                j += 1
            parts.append("_" if j == i else f"_x{j - i}")
            i = j + 1
            continue
        j = i + 1
        step = None if j >= len(values) or values[j] is None else values[j] - values[i]
        if step is not None:
            while j + 1 < len(values) and values[j + 1] is not None and values[j + 1] - values[j] == step:
                j += 1
        else:
            j = i
        n = j - i
        a = number(values[i])
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
    mask = [history.present(m) for m in range(history.minutes + 1)]

    def out(series: str, values: list[float]) -> dict[str, str]:
        return {"series": series, "values": _compress([v if ok else None for v, ok in zip(values, mask)])}

    if sli.probe is not None:
        return [out(_concrete(sli.probe.ratio), history.gauge())]
    total, bad = history.counters()
    good = [t - b for t, b in zip(total, bad)]
    if sli.latency is not None:
        h = sli.latency.histogram
        series = [out(_concrete(with_matchers(h, suffix="_count")), total),
                  out(_concrete(with_matchers(h, suffix="_bucket"), le="+Inf"), total)]
        if not without_good:
            series.append(out(_concrete(with_matchers(h, suffix="_bucket"), le=go_float(sli.latency.threshold)), good))
        return series
    events = sli.events
    bad_selector, all_selector = range_selector(events.bad_events or ""), range_selector(events.all_events)
    part, part_values, other_values = (bad_selector, bad, good) if events.bad_events else (events.good, good, bad)
    same_metric = split_selector(part)[0] == split_selector(all_selector)[0]
    part_series = (sel(split_selector(part)[0], {**_labels(all_selector), **_labels(part)}) if same_metric
                   else _concrete(part))
    series = [] if without_good and events.good else [out(part_series, part_values)]
    if same_metric:
        series.append(out(_rejected(all_selector, part), other_values))
    else:
        series.append(out(_concrete(all_selector), total))
    return series


# --------------------------------------------------------------------------- expectations


def _render(template_labels: dict[str, str], annotations: dict[str, str], value: float) -> dict[str, str]:
    from alerts.promtool_tests import render

    return {k: render(v, template_labels, value) for k, v in annotations.items()}


def _burn_alert(rules: SLORules, burn: Any, value: float) -> dict[str, Any]:
    labels = {**rules.labels, **burn.rule["labels"]}
    return {"exp_labels": dict(sorted(labels.items())),
            "exp_annotations": _render(rules.labels, burn.rule["annotations"], value)}


def _burn_checks(rules: SLORules, history: History, times: list[int]) -> list[dict[str, Any]]:
    expected = expected_burns(rules, history, times)
    return [{"eval_time": duration(t * MINUTE), "alertname": BURN_ALERT,
             "exp_alerts": [_burn_alert(rules, burn, value) for burn, value in expected[t]]} for t in times]


def _no_data_alert(rules: SLORules) -> dict[str, Any]:
    labels = {**rules.labels, **rules.no_data["labels"]}
    return {"exp_labels": dict(sorted(labels.items())),
            "exp_annotations": _render(rules.labels, rules.no_data["annotations"], 1)}


def _case(rules: SLORules, name: str, history: History, alert_checks: list[dict[str, Any]],
          expr_checks: list[dict[str, Any]] | None = None, without_good: bool = False) -> dict[str, Any]:
    case: dict[str, Any] = {"name": f"{rules.slo.id}: {name}", "interval": "1m",
                            "input_series": input_series(rules, history, without_good)}
    if alert_checks:
        case["alert_rule_test"] = alert_checks
    if expr_checks:
        case["promql_expr_test"] = expr_checks
    return case


def _minutes(seconds: float) -> int:
    return int(math.ceil(seconds / MINUTE))


def _constant(rules: SLORules, ratio: float, minutes: int, **kw: Any) -> History:
    step = max(1, _minutes(rules.interval))
    return History(step, minutes, lambda m: ratio, probe=rules.slo.sli.probe is not None, **kw)


def _start(rules: SLORules) -> int:
    """First minute the SLI has a value (the first update; a probe gauge from its first sample)."""
    return 0 if rules.slo.sli.probe is not None else max(1, _minutes(rules.interval))


# --------------------------------------------------------------------------- the cases


def _threshold_cases(rules: SLORules) -> list[dict[str, Any]]:
    tests = []
    # minutes before the guard passes: counter SLIs carry EVENTS_PER_UPDATE events from their first
    # update on; a probe SLI's guard counts samples, one a minute
    guard = int(rules.slo.alerting.min_events) if rules.slo.sli.probe is not None else 0
    for burn in rules.burn_alerts:
        label = f"{duration(burn.window.long)}/{duration(burn.window.short)} burn"
        at = _start(rules) + guard + _minutes(burn.for_) + 1
        for factor, verb in ((1.1, "fires just above"), (0.9, "stays silent just below")):
            ratio = nice(min(burn.threshold * factor, (burn.threshold + 1) / 2), burn.threshold, factor > 1)
            history = _constant(rules, ratio, at + 1)
            checks = _burn_checks(rules, history, [at])
            fired = [a["exp_labels"]["long_window"] for a in checks[0]["exp_alerts"]]
            assert (duration(burn.window.long) in fired) == (factor > 1), (rules.slo.id, label, verb, fired)
            tests.append(_case(rules, f"{label} {verb} {burn.threshold:g}", history, checks))
    return tests


def _sustained_cases(rules: SLORules) -> list[dict[str, Any]]:
    tests = []
    budget = float(rules.slo.error_budget)
    pages = [b for b in rules.burn_alerts if b.window.tier == "page"]
    if pages:
        ratio = min(20 * budget, 1.0)
        end = 240
        history = _constant(rules, ratio, end + 1)
        times = list(range(10, end + 1, 10))
        checks = _burn_checks(rules, history, times)
        first = next((t for t, c in zip(times, checks) if any(
            a["exp_labels"]["sloth_severity"] == "page" for a in c["exp_alerts"])), None)
        assert first is not None and first <= 60, (rules.slo.id, "20x budget does not page within 1h", first)
        for t, c in zip(times, checks):  # once paging, it never resolves
            if t >= first:
                assert any(a["exp_labels"]["sloth_severity"] == "page" for a in c["exp_alerts"]), (rules.slo.id, t)
        tests.append(_case(rules, f"20x the budget ({ratio:g}) pages within 1h and keeps paging", history, checks))
    longest = max([b.window.long for b in rules.burn_alerts], default=3600)
    end = min(_minutes(longest) + 60, HEALTHY_MINUTES)
    history = _constant(rules, budget / 2, end + 1)
    times = sorted({*range(60, end + 1, 120), end})
    checks = _burn_checks(rules, history, times)
    assert all(not c["exp_alerts"] for c in checks), rules.slo.id
    if rules.no_data is not None:
        checks += [{"eval_time": duration(t * MINUTE), "alertname": NO_DATA_ALERT, "exp_alerts": []} for t in times]
    tests.append(_case(rules, f"half the budget ({budget / 2:g}) for {duration(end * MINUTE)}: no alert", history,
                       checks))
    return tests


def _count_expr(expr: str) -> str:
    return f"count(\n{expr}\n)"


def _discrimination_cases(rules: SLORules) -> list[dict[str, Any]]:
    """The alert state (replayed by :func:`expected_burns`) when only one window of a pair is over its
    threshold; the windows' own ratios are checked too, so a case that does not discriminate fails."""
    tests = []
    step = max(1, _minutes(rules.interval))
    probe = rules.slo.sli.probe is not None
    m = rules.matcher
    for burn in rules.burn_alerts:
        if burn.window.long > DISCRIMINATION_MAX_LONG:
            continue  # the same rule shape; a day of history per case would make the test file slow
        long, short, th = _minutes(burn.window.long), _minutes(burn.window.short), burn.threshold
        keep = _minutes(burn.keep_firing_for)
        label = f"{duration(burn.window.long)}/{duration(burn.window.short)}"
        window_over = "count(slo:sli_error:ratio_rate{w}{{{m}}} > {th!r})"
        # 1. long window still over, short window recovered (and keep_firing_for passed): not firing
        t1 = (long // step + 1) * step
        at = t1 + short + keep + 2
        high = min(1.0, nice(th * 3, th, True))
        history = History(step, at + 1, lambda u, t1=t1, high=high: high if u <= t1 else 0.0, probe=probe)
        ratio_long, _ = history.window(at, long)
        ratio_short, _ = history.window(at, short)
        if ratio_long is not None and ratio_long > th * 1.05 and ratio_short is not None and ratio_short < th:
            checks = _burn_checks(rules, history, [at])
            assert not any(a["exp_labels"]["long_window"] == label.split("/")[0] for a in checks[0]["exp_alerts"])
            tests.append(_case(rules, f"{label}: long window over {th:g}, short recovered: not firing", history,
                               checks, [{"expr": window_over.format(w=duration(burn.window.long), m=m, th=th),
                                         "eval_time": duration(at * MINUTE),
                                         "exp_samples": [{"labels": "{}", "value": 1}]}]))
        # 2. a short burst: good updates for a long window, then bad ones for one short window
        t0 = (long // step + 1) * step
        at = t0 + short
        burst = nice(min(th * 1.5, (th + 1) / 2), th, True)
        history = History(step, at + 1, lambda u, t0=t0, burst=burst: burst if u > t0 else 0.0, probe=probe)
        ratio_long, _ = history.window(at, long)
        ratio_short, _ = history.window(at, short)
        if (ratio_short is not None and ratio_short > th * 1.05 and ratio_long is not None
                and ratio_long < th * 0.95 and _minutes(burn.for_) + step + 1 < short):
            checks = _burn_checks(rules, history, [at])
            tests.append(_case(rules, f"{label}: short burst over {th:g}, long window under: not firing", history,
                               checks, [{"expr": window_over.format(w=duration(burn.window.short), m=m, th=th),
                                         "eval_time": duration(at * MINUTE),
                                         "exp_samples": [{"labels": "{}", "value": 1}]}]))
    return tests


def _guard_cases(rules: SLORules) -> list[dict[str, Any]]:
    """A burst of only errors, with exactly the long window's minimum events (fires) and one fewer
    (stays under the guard). Counter SLIs: the alert state after ``for``; probe SLIs (the guard counts
    samples, which grow every minute): the rule's expression at that instant."""
    if not rules.burn_alerts:
        return []
    burn = rules.burn_alerts[0]
    minimum = min_events(rules.slo, burn.factor * rules.slo.error_budget)
    if not minimum or minimum != int(minimum):
        return []
    long, short = _minutes(burn.window.long), _minutes(burn.window.short)
    for_ = _minutes(burn.for_)
    probe = rules.slo.sli.probe is not None
    tests = []
    for events, verb, fires in ((int(minimum), "exactly at", True), (int(minimum) - 1, "one below", False)):
        if probe:  # `events` samples of a gauge at 0 (every probe bad), none before
            at = long + events
            history = History(1, at, lambda u: 1.0, present=lambda m, at=at, n=events: m > at - n, probe=True)
            ratio, counted = history.window(at, long)
            assert counted == events and ratio == 1.0, (rules.slo.id, counted, ratio)
            tests.append(_case(rules, f"min_events guard: {verb} {number(minimum)} samples in "
                                      f"{duration(burn.window.long)}, all bad", history, [],
                               [{"expr": _count_expr(burn.rule["expr"]), "eval_time": duration(at * MINUTE),
                                 "exp_samples": [{"labels": "{}", "value": 1}] if fires else []}]))
            continue
        if for_ + 2 >= short:
            return []
        # one update carrying `events` events, all bad, after a long window of none
        t0 = long + 1
        at = t0 + for_ + 1
        history = History(1, at, lambda u, t0=t0: 1.0 if u == t0 else None, events=lambda u, n=events: n)
        checks = _burn_checks(rules, history, [at])
        labels = [a["exp_labels"]["long_window"] for a in checks[0]["exp_alerts"]]
        assert (duration(burn.window.long) in labels) == fires, (rules.slo.id, verb, labels)
        tests.append(_case(rules, f"min_events guard: {verb} {number(minimum)} events in "
                                  f"{duration(burn.window.long)}, all bad", history, checks))
    return tests


def _no_data_cases(rules: SLORules) -> list[dict[str, Any]]:
    if rules.no_data is None:
        return []
    tests = []
    wait = _minutes(no_data_for(rules.slo, rules.interval))
    window = _minutes(data_window(rules.interval))
    sli = rules.slo.sli
    # 1. no series at all
    at = wait + 2
    unrelated = [{"series": "vecmon_test_unrelated", "values": f"1x{at}"}]
    tests.append({"name": f"{rules.slo.id}: no series: no-data alert, no burn alert", "interval": "1m",
                  "input_series": unrelated,
                  "alert_rule_test": [{"eval_time": duration(at * MINUTE), "alertname": NO_DATA_ALERT,
                                       "exp_alerts": [_no_data_alert(rules)]},
                                      {"eval_time": duration(at * MINUTE), "alertname": BURN_ALERT,
                                       "exp_alerts": []}]})
    # 2. the good series (or latency bucket) missing while total counts events: no data, not 100% errors
    if sli.latency is not None or (sli.events is not None and sli.events.good):
        at = _start(rules) + wait + 2
        history = _constant(rules, 0.0, at + 1)
        tests.append(_case(rules, "good series missing: no-data alert, no burn alert", history, [
            {"eval_time": duration(at * MINUTE), "alertname": NO_DATA_ALERT, "exp_alerts": [_no_data_alert(rules)]},
            {"eval_time": duration(at * MINUTE), "alertname": BURN_ALERT, "exp_alerts": []}], without_good=True))
    # 3. healthy, then the series are dropped (collector failing, series gone stale)
    drop = _start(rules) + window + 30
    at = drop + window + wait + 2
    history = _constant(rules, 0.0, at + 1, present=lambda m, drop=drop: m <= drop)
    tests.append(_case(rules, "series dropped: no-data alert after its window and for", history, [
        {"eval_time": duration(drop * MINUTE), "alertname": NO_DATA_ALERT, "exp_alerts": []},
        {"eval_time": duration(at * MINUTE), "alertname": NO_DATA_ALERT, "exp_alerts": [_no_data_alert(rules)]},
        {"eval_time": duration(at * MINUTE), "alertname": BURN_ALERT, "exp_alerts": []}]))
    return tests


def _exhausted_cases(rules: SLORules) -> list[dict[str, Any]]:
    if rules.exhausted is None:
        return []
    tests = []
    budget = float(rules.slo.error_budget)
    for_ = rules.slo.alerting.budget_exhausted_for
    at = _start(rules) + _minutes(for_) + 6
    for factor, verb in ((1.5, "fires"), (0.5, "stays silent")):
        ratio = nice(min(budget * factor, (budget + 1) / 2), budget, factor > 1)
        history = _constant(rules, ratio, at + 1)
        if rules.slo.sli.probe is None:
            ratio = round(ratio * EVENTS_PER_UPDATE) / EVENTS_PER_UPDATE
        expected = []
        if factor > 1:
            series = {**rules.labels, "sloth_window": duration(rules.slo.period)}
            labels = {**series, **rules.exhausted["labels"]}
            expected = [{"exp_labels": dict(sorted(labels.items())),
                         "exp_annotations": _render(series, rules.exhausted["annotations"], 1 - ratio / budget)}]
        tests.append(_case(rules, f"budget exhausted {verb} at an error ratio of {ratio:g}", history,
                           [{"eval_time": duration(at * MINUTE), "alertname": EXHAUSTED_ALERT,
                             "exp_alerts": expected}]))
    return tests


def slo_cases(rules: SLORules) -> list[dict[str, Any]]:
    return [*_threshold_cases(rules), *_sustained_cases(rules), *_discrimination_cases(rules),
            *_guard_cases(rules), *_no_data_cases(rules), *_exhausted_cases(rules)]
