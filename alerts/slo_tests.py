"""``promtool test rules`` cases for one SLO, at the real cadence of its SLI.

Each case is an error-ratio history per SLI update (:class:`alerts.slo_history.History`, scraped
as :mod:`alerts.slo_series` writes it); :func:`alerts.slo_history.expected_burns` replays the
rules' logic on it minute by minute, so every expected alert list is computed, never hard-coded.
The cases:

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
from collections.abc import Callable
from typing import Any

from alerts.conventions import BURN_ALERT, EXHAUSTED_ALERT, NO_DATA_ALERT, SEVERITY_LABEL, WINDOW_LABEL, error_ratio
from alerts.model import nice
from alerts.promql import duration, number
from alerts.slo import SLORules, data_window, min_events, no_data_for
from alerts.slo_history import EVENTS_PER_UPDATE, MINUTE, History, Ratio, expected_burns
from alerts.slo_series import input_series
from alerts.templates import expected_alert

DISCRIMINATION_MAX_LONG = 6 * 3600  # the page windows (Sloth's 30d/28d; scaled ones below a day)
HEALTHY_MINUTES = 8 * 60  # the generated "half the budget" case; multi-day runs are in tests/test_alerts_simulation.py


def _burn_alert(rules: SLORules, burn: Any, value: float) -> dict[str, Any]:
    return expected_alert({**rules.labels, **burn.rule["labels"]}, rules.labels, burn.rule["annotations"], value)


def _burn_checks(rules: SLORules, history: History, times: list[int]) -> list[dict[str, Any]]:
    expected = expected_burns(rules, history, times)
    return [{"eval_time": duration(t * MINUTE), "alertname": BURN_ALERT,
             "exp_alerts": [_burn_alert(rules, burn, value) for burn, value in expected[t]]} for t in times]


def _no_data_alert(rules: SLORules) -> dict[str, Any]:
    assert rules.no_data is not None
    return expected_alert({**rules.labels, **rules.no_data["labels"]}, rules.labels, rules.no_data["annotations"], 1)


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
        first = next((t for t, c in zip(times, checks, strict=True) if any(
            a["exp_labels"][SEVERITY_LABEL] == "page" for a in c["exp_alerts"])), None)
        assert first is not None and first <= 60, (rules.slo.id, "20x budget does not page within 1h", first)
        for t, c in zip(times, checks, strict=True):  # once paging, it never resolves
            if t >= first:
                assert any(a["exp_labels"][SEVERITY_LABEL] == "page" for a in c["exp_alerts"]), (rules.slo.id, t)
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


def _switch(t: int, before: float, after: float) -> Ratio:
    """Error ratio ``before`` for the updates up to minute ``t``, ``after`` from then on."""
    return lambda u: before if u <= t else after


def _only_at(t: int) -> Ratio:
    """One update, at minute ``t``, all errors."""
    return lambda u: 1.0 if u == t else None


def _after(t: int) -> Callable[[int], bool]:
    return lambda m: m > t


def _always(n: int) -> Callable[[int], int]:
    return lambda u: n


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
        window_over = "count(" + error_ratio("{w}") + "{{{m}}} > {th!r})"
        # 1. long window still over, short window recovered (and keep_firing_for passed): not firing
        t1 = (long // step + 1) * step
        at = t1 + short + keep + 2
        high = min(1.0, nice(th * 3, th, True))
        history = History(step, at + 1, _switch(t1, high, 0.0), probe=probe)
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
        history = History(step, at + 1, _switch(t0, 0.0, burst), probe=probe)
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
            history = History(1, at, lambda u: 1.0, present=_after(at - events), probe=True)
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
        history = History(1, at, _only_at(t0), events=_always(events))
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
            series = {**rules.labels, WINDOW_LABEL: duration(rules.slo.period)}
            expected = [expected_alert({**series, **rules.exhausted["labels"]}, series,
                                       rules.exhausted["annotations"], 1 - ratio / budget)]
        tests.append(_case(rules, f"budget exhausted {verb} at an error ratio of {ratio:g}", history,
                           [{"eval_time": duration(at * MINUTE), "alertname": EXHAUSTED_ALERT,
                             "exp_alerts": expected}]))
    return tests


def slo_cases(rules: SLORules) -> list[dict[str, Any]]:
    return [*_threshold_cases(rules), *_sustained_cases(rules), *_discrimination_cases(rules),
            *_guard_cases(rules), *_no_data_cases(rules), *_exhausted_cases(rules)]
