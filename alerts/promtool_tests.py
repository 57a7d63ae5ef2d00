"""``promtool test rules`` files for the generated rules: every alert fires just past its
threshold (with its exact labels and rendered annotations) and stays silent on the other side.

Threshold alerts (:mod:`alerts.rules`): for each rule, the catalog's fixture (:mod:`alerts.fixtures`)
turns a value into input series; the test checks "pending before ``for`` has passed" (when ``for`` is at least a
minute), "firing after it" at a value just past the threshold (5%, or for ratios 10% of the way
to 1) with every label and the rendered annotations, and "silent" just on the other side
(:meth:`alerts.model.Rule.test_values`), silent exactly at the threshold (gauges) and silent without
its series. SLO alerts (:mod:`alerts.slo`): for each burn window, an
error ratio 10% above and 10% below its threshold, evaluated when the window's ``for`` has passed;
every other window's expected state is computed the same way, so the test pins the whole set.
Plus budget exhausted / not exhausted, and no data (zero traffic and no series). One test file
per rule file, so an SLO's tests never see another SLO's alerts.

Prometheus 2.42's promtool compares floats exactly and renders ``$value`` from extrapolated
rates, so fixtures use integer counts per minute whose ratios have few digits, and annotations are
rendered with Python copies of Prometheus' humanize functions (``%.4g``, :mod:`alerts.templates`).
"""

from __future__ import annotations

import math
from typing import Any

from alerts.fixtures import MINUTE, Fixture
from alerts.model import Rule
from alerts.promql import duration
from alerts.slo import SLORules
from alerts.slo_tests import slo_cases
from alerts.templates import expected_alert


def _ceil_minute(seconds: float) -> float:
    return math.ceil(seconds / MINUTE) * MINUTE


def _series(fixture: Fixture, until: float) -> list[dict[str, str]]:
    points = int(until // MINUTE) + 2
    return [{"series": s.series, "values": s.values(points)} for s in fixture.series]


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
        checks: list[dict[str, Any]] = []
        if rule.for_ >= MINUTE:
            checks.append({"eval_time": duration(fire.active_from + rule.for_ - MINUTE), "alertname": rule.name,
                           "exp_alerts": []})
        expected = expected_alert(labels, expr_labels, rule.annotations, fire.value_at(at))
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
        # exactly at the threshold: silent (the comparison is strict). Only where the fixture gives
        # the value exactly (gauges; rates over a window are extrapolated floats)
        threshold = p.threshold if p.threshold is not None else definition.test_threshold
        if definition.compare in (">", "<") and definition.window is None and threshold is not None:
            exact = definition.fixture(p, threshold)
            if not callable(exact.value) and exact.value == threshold:
                tests.append({"name": f"{rule.name} stays silent exactly at its threshold ({threshold:g})",
                              "interval": "1m", "input_series": _series(exact, at),
                              "alert_rule_test": [{"eval_time": duration(at), "alertname": rule.name,
                                                   "exp_alerts": []}]})
        # no series at all (a collector not running, a renamed metric): silent, not an error
        tests.append({"name": f"{rule.name} stays silent without its series", "interval": "1m",
                      "input_series": [{"series": "vecmon_test_unrelated", "values": f"1x{int(at // MINUTE) + 1}"}],
                      "alert_rule_test": [{"eval_time": duration(at), "alertname": rule.name,
                                           "exp_alerts": []}]})
    return tests


# --------------------------------------------------------------------------- SLOs


def slo_tests(all_rules: list[SLORules]) -> list[dict[str, Any]]:
    """Each SLO's cases at the real cadence of its SLI (:mod:`alerts.slo_tests`)."""
    return [case for rules in all_rules for case in slo_cases(rules)]


def unit_test_file(rule_file: str, groups: list[str], tests: list[dict[str, Any]]) -> dict[str, Any]:
    """A promtool test file; ``group_eval_order`` lists every group (recordings first) because
    promtool 2.42 otherwise evaluates groups in random order."""
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "group_eval_order": groups, "tests": tests}


