"""``promtool test rules`` files for the generated rules: every alert fires just past its
threshold (with its exact labels and rendered annotations) and stays silent on the other side.

Threshold alerts (:mod:`alerts.rules`): for each rule, the catalog's fixture turns a value into
input series; the test checks "pending before ``for`` has passed" (when ``for`` is at least a
minute), "firing after it" at a value just past the threshold (5%, or for ratios 10% of the way
to 1) with every label and the rendered annotations, and "silent" just on the other side
(:meth:`alerts.rules.Rule.test_values`). SLO alerts (:mod:`alerts.slo`): for each burn window, an
error ratio 10% above and 10% below its threshold, evaluated when the window's ``for`` has passed;
every other window's expected state is computed the same way, so the test pins the whole set.
Plus budget exhausted / not exhausted, and no data (zero traffic and no series). One test file
per rule file, so an SLO's tests never see another SLO's alerts.

Prometheus 2.42's promtool compares floats exactly and renders ``$value`` from extrapolated
rates, so fixtures use integer counts per minute whose ratios have few digits, and annotations are
rendered with Python copies of Prometheus' humanize functions (``%.4g``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

from alerts.promql import FORMATS, duration, go_float, split_selector, with_matchers
from alerts.rules import MINUTE, Fixture, InputSeries, Rule, nice, sel
from alerts.slo import BURN_ALERT, EXHAUSTED_ALERT, NO_DATA_ALERT, SLORules

_FUNCS: dict[str, Callable[[float], str]] = dict(FORMATS.values())
_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)"
                       r"|\$value(?:\s*\|\s*([a-zA-Z0-9]+(?: \"[^\"]*\")?))?)\s*\}\}")
_WITH = re.compile(r"\{\{\s*with \$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}(.*?)\{\{\s*end\s*\}\}")


def go_value(value: float) -> str:
    """``{{ $value }}``: Go's %v of a float64."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def render(template: str, labels: dict[str, str], value: float) -> str:
    """Expand the subset of Go templates the generated annotations use: ``$labels.x``, ``$value``
    (optionally piped into a humanize function or printf) and ``with $labels.x`` ... ``.`` ... ``end``."""
    template = _WITH.sub(lambda m: m.group(2).replace("{{ . }}", labels[m.group(1)]) if labels.get(m.group(1))
                         else "", template)

    def substitute(match: re.Match) -> str:
        if match.group(2):
            return labels.get(match.group(2), "")
        func = match.group(3)
        return _FUNCS[func](value) if func else go_value(value)
    rendered = _TEMPLATE.sub(substitute, template)
    if "{{" in rendered:
        raise ValueError(f"template not supported by the test generator: {template!r}")
    return rendered


def _ceil_minute(seconds: float) -> float:
    return math.ceil(seconds / MINUTE) * MINUTE


def _series(fixture: Fixture, until: float) -> list[dict[str, str]]:
    points = int(until // MINUTE) + 2
    return [{"series": s.series, "values": s.values(points)} for s in fixture.series]


def _expected(labels: dict[str, str], template_labels: dict[str, str], annotations: dict[str, str],
              value: float) -> dict[str, Any]:
    """An expected alert: all its labels, and its annotations rendered with the expression's labels."""
    return {"exp_labels": dict(sorted(labels.items())),
            "exp_annotations": {k: render(v, template_labels, value) for k, v in annotations.items()}}



# --------------------------------------------------------------------------- threshold alerts


def threshold_tests(rules: list[Rule]) -> list[dict[str, Any]]:
    tests = []
    for rule in rules:
        definition, p = rule.definition, rule.params
        fire_value, quiet_value = rule.test_values()
        fire = definition.fixture(p, fire_value)
        quiet = definition.fixture(p, quiet_value)
        at = _ceil_minute(max(fire.active_from + rule.for_, fire.settle) + MINUTE)
        expr_labels = fire.labels
        labels = {**expr_labels, **rule.labels}
        checks = []
        if rule.for_ >= MINUTE:
            checks.append({"eval_time": duration(fire.active_from + rule.for_ - MINUTE), "alertname": rule.name,
                           "exp_alerts": []})
        expected = _expected(labels, expr_labels, rule.annotations, fire.value_at(at))
        checks.append({"eval_time": duration(at), "alertname": rule.name, "exp_alerts": [expected]})
        if definition.compare == "event":
            fires, silent = "when its condition holds", "when it does not"
        else:
            side = "above" if definition.compare == ">" else "below"
            threshold = p.threshold if p.threshold is not None else definition.test_threshold
            fires = f"{side} its threshold ({fire_value:g} vs {threshold:g})"
            silent = f"at {quiet_value:g}"
        tests.append({"name": f"{rule.name} fires {fires}", "interval": "1m", "input_series": _series(fire, at),
                      "alert_rule_test": checks})
        tests.append({"name": f"{rule.name} stays silent {silent}", "interval": "1m",
                      "input_series": _series(quiet, at),
                      "alert_rule_test": [{"eval_time": duration(at), "alertname": rule.name, "exp_alerts": []}]})
    return tests


# --------------------------------------------------------------------------- SLOs

EVENTS_PER_MINUTE = 1_000_000


def _sli_series(rules: SLORules, error_ratio: float | None) -> tuple[list[InputSeries], float, float]:
    """Input series giving the SLI a constant ``error_ratio`` (None: no events at all).

    Returns (series, the ratio they really give, the first evaluation with an SLI value).
    """
    sli = rules.slo.sli
    if error_ratio is None:
        if sli.probe is not None:  # a probe gauge that is absent
            return [InputSeries(sel("vecmon_test_unrelated", {}), 1)], 0.0, 0.0
        total = sli.events.total if sli.events else _suffixed(sli.latency.histogram, "_count")
        return [InputSeries(_concrete(total), 0)], 0.0, 0.0
    bad = round(error_ratio * EVENTS_PER_MINUTE)
    real = bad / EVENTS_PER_MINUTE
    if sli.events is not None:
        part = sli.events.bad or sli.events.good
        part_rate = bad if sli.events.bad else EVENTS_PER_MINUTE - bad
        return _event_series(sli.events.total, part, part_rate, EVENTS_PER_MINUTE - part_rate), real, MINUTE
    if sli.latency is not None:
        h = sli.latency.histogram
        le = go_float(sli.latency.threshold)
        return [InputSeries(_concrete(_suffixed(h, "_count")), 0, EVENTS_PER_MINUTE),
                InputSeries(_concrete(_suffixed(h, "_bucket"), le=le), 0, EVENTS_PER_MINUTE - bad),
                InputSeries(_concrete(_suffixed(h, "_bucket"), le="+Inf"), 0, EVENTS_PER_MINUTE)], real, MINUTE
    return [InputSeries(_concrete(sli.probe.ratio), 1 - real)], real, 0.0


def _event_series(total: str, part: str, part_rate: int, rest_rate: int) -> list[InputSeries]:
    """Counters for ``part`` (the good or bad selector) at ``part_rate`` and for the other events at
    ``rest_rate`` per minute, such that ``total`` counts both. When part and total are the same
    metric, the other events are a series ``total`` matches and ``part`` does not."""
    total_name, _ = split_selector(total)
    part_name, part_matchers = split_selector(part)
    total_labels = _labels(total)
    part_labels = {**total_labels, **_labels(part)} if part_name == total_name else _labels(part)
    series = [InputSeries(sel(part_name, part_labels), 0, part_rate)]
    if part_name != total_name:
        return [InputSeries(sel(total_name, total_labels), 0, part_rate + rest_rate)] + series
    rest = dict(total_labels)
    for label, op, value in _MATCHER.findall(part_matchers):
        if label in total_labels and op in ("=", "=~"):
            continue
        # a value the part's matcher rejects
        rest[label] = {"=": value + "_other", "!=": value, "=~": "vecmon_other", "!~": value.split("|")[0]}[op]
        break
    else:
        raise ValueError(f"cannot build test data: every series of {total} is also matched by {part}")
    return series + [InputSeries(sel(total_name, rest), 0, rest_rate)]


def _suffixed(selector: str, suffix: str) -> str:
    return with_matchers(selector, suffix=suffix)


_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _labels(selector: str) -> dict[str, str]:
    """Labels of a series that ``selector`` matches: equality matchers as they are, a plain regex
    alternation by its first branch, a negative matcher by a value it does not exclude."""
    _, matchers = split_selector(selector)
    labels: dict[str, str] = {}
    for label, op, value in _MATCHER.findall(matchers):
        if op == "=":
            labels[label] = value
        elif op == "=~":
            first = value.split("|")[0]
            if not re.fullmatch(r"[A-Za-z0-9_.:\- ]*", first):
                raise ValueError(f"cannot build test data for matcher {label}=~{value!r}")
            labels[label] = first
        else:
            labels[label] = "vecmon_other" if value != "vecmon_other" else "vecmon_other2"
    return {k: v for k, v in labels.items() if v != ""}


def _concrete(selector: str, **extra: str) -> str:
    name, _ = split_selector(selector)
    labels = {**_labels(selector), **extra}
    return sel(name, labels) if labels else name


def _burn_expectations(rules: SLORules, ratio: float, at: float, active_from: float) -> list[dict[str, Any]]:
    """Every burn window whose threshold ``ratio`` exceeds and whose ``for`` has passed at ``at``."""
    expected = []
    for burn in rules.burn_alerts:
        if ratio > burn.threshold and at - active_from >= burn.for_:
            expected.append(_expected({**rules.labels, **burn.rule["labels"]}, rules.labels,
                                      burn.rule["annotations"], ratio))
    return expected


def _slo_case(rules: SLORules, name: str, ratio: float | None, at: float,
              checks: list[tuple[str, Callable[[float, float], list]]]) -> dict[str, Any]:
    series, real, active_from = _sli_series(rules, ratio)
    points = int(at // MINUTE) + 2
    return {"name": f"{rules.slo.id}: {name}", "interval": "1m",
            "input_series": [{"series": s.series, "values": s.values(points)} for s in series],
            "alert_rule_test": [{"eval_time": duration(at), "alertname": alertname,
                                 "exp_alerts": expect(real, active_from)} for alertname, expect in checks]}


def slo_tests(all_rules: list[SLORules]) -> list[dict[str, Any]]:
    tests = []
    for rules in all_rules:
        budget = float(rules.slo.error_budget)
        for burn in rules.burn_alerts:
            label = f"{duration(burn.window.long)}/{duration(burn.window.short)} burn"
            at = _ceil_minute(MINUTE + burn.for_ + MINUTE)
            for factor, verb in ((1.1, "fires just above"), (0.9, "stays silent just below")):
                ratio = nice(min(burn.threshold * factor, (burn.threshold + 1) / 2), burn.threshold, factor > 1)
                tests.append(_slo_case(
                    rules, f"{label} {verb} {burn.threshold:g}", ratio, at,
                    [(BURN_ALERT, lambda real, start, at=at: _burn_expectations(rules, real, at, start))]))
        if rules.exhausted is not None:
            for_ = rules.slo.alerting.budget_exhausted_for
            at = _ceil_minute(MINUTE + for_ + MINUTE)
            for factor, verb in ((1.5, "fires"), (0.5, "stays silent")):
                ratio = nice(min(budget * factor, (budget + 1) / 2), budget, factor > 1)

                def exhausted(real: float, start: float, at: float = at) -> list:
                    remaining = 1 - real / budget
                    if remaining > 0 or at - start < for_:
                        return []
                    series = {**rules.labels, "sloth_window": duration(rules.slo.period)}
                    return [_expected({**series, **rules.exhausted["labels"]}, series, rules.exhausted["annotations"],
                                      remaining)]
                tests.append(_slo_case(rules, f"budget exhausted {verb} at an error ratio of {ratio:g}", ratio, at,
                                       [(EXHAUSTED_ALERT, exhausted)]))
        if rules.no_data is not None:
            for_ = rules.slo.alerting.no_data_for
            at = _ceil_minute(for_ + MINUTE)
            firing = [_expected({**rules.labels, **rules.no_data["labels"]}, rules.labels,
                                rules.no_data["annotations"], 0)]
            tests.append(_slo_case(rules, "no events: no-data alert, no burn alert", None, at,
                                   [(NO_DATA_ALERT, lambda real, start: firing), (BURN_ALERT, lambda r, s: [])]))
            healthy = min(budget * 0.5, 0.5)
            tests.append(_slo_case(rules, "healthy traffic: no alert", healthy, at,
                                   [(NO_DATA_ALERT, lambda r, s: []), (BURN_ALERT, lambda r, s: [])]))
    return tests


def unit_test_file(rule_file: str, groups: list[str], tests: list[dict[str, Any]]) -> dict[str, Any]:
    """A promtool test file; ``group_eval_order`` lists every group (recordings first) because
    promtool 2.42 otherwise evaluates groups in random order."""
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "group_eval_order": groups, "tests": tests}


