"""Simulations of the generated SLO rules over simulated days, with real ``promtool test rules``
(Prometheus 2.42) at the recall probe's real cadence: one probe cycle every 10 minutes, scraped
every 5 minutes (promtool evaluates every 5 minutes too, so a simulated day costs 288 evaluations).

For every period class the config accepts (3d and 7d scale the windows, 28d and 30d are Sloth's,
90d scales up), two recall SLOs are simulated:

- ``cycles``: the per-cycle SLI (vecmon_recall_good_cycles_total / vecmon_recall_cycles_total:
  one judgement per cycle, the example config's definition);
- ``queries``: the per-query SLI (30 probe queries per cycle).

Scenarios: errors at half the budget (spread evenly) for 3 days must never fire any SLO alert;
errors at 20x the budget, after 3 healthy hours, must page within the hour and, once paging, never
resolve while they last; an index below target in every cycle pages within 30 minutes. The alert
state is read back from promtool itself: ``ALERTS`` is queried with PromQL (first firing time,
``resets`` of the firing indicator = resolves), by asking for an impossible value and parsing the
``got:`` promtool prints. The figures are printed (``-s``) for the closing note.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from alerts import yamlout
from alerts.promql import duration
from alerts.slo import slo_rules
from monitor.loader import parse_config
from tests.helpers import require_tool

pytestmark = pytest.mark.integration  # servers, sockets or processes without a server fixture

STEP = 5  # minutes between scrapes (and rule evaluations)
CYCLE = 10  # minutes between recall probe cycles
QUERIES = 30  # per cycle
PERIODS = ("3d", "7d", "28d", "30d", "90d")
PAGE = 'ALERTS{alertname="SLOErrorBudgetBurn", alertstate="firing", sloth_severity="page"}'
ANY = 'ALERTS{alertname=~"SLO.*", alertstate="firing"}'
GOT = re.compile(r'expr: "(?P<expr>(?:[^"\\]|\\.)*)", time: (?P<time>\S+),\s+exp: .*?\n\s+got: (?P<got>[^\n]*)',
                 re.S)


def slo_config(period: str, definition: str) -> str:
    if definition == "cycles":
        sli = ('{events: {good: \'vecmon_recall_good_cycles_total{target="app"}\', '
               'total: \'vecmon_recall_cycles_total{target="app"}\'}}')
    else:
        sli = ('{events: {good: \'vecmon_recall_good_queries_total{target="app"}\', '
               'total: \'vecmon_recall_queries_total{target="app"}\'}}')
    return f"""
databases:
  - name: app
    dsn: postgresql://vecmon@db/app
    collectors: {{recall: {{interval: {CYCLE}m}}}}
slos:
  - {{name: recall, service: search, objective: 0.99, period: {period}, sli: {sli}}}
"""


def counters(definition: str, bad_at, minutes: int) -> tuple[str, str]:
    """(good, total) values every STEP minutes: a cycle every CYCLE minutes, ``bad_at(cycle)`` bad events."""
    good, total, g, t = [], [], 0, 0
    for m in range(0, minutes + 1, STEP):
        if m and m % CYCLE == 0:
            cycle = m // CYCLE
            events = 1 if definition == "cycles" else QUERIES
            t += events
            g += events - min(events, bad_at(cycle))
        good.append(g)
        total.append(t)
    return " ".join(map(str, good)), " ".join(map(str, total))


def run_queries(promtool: str, tmp: Path, name: str, config_text: str, definition: str, bad_at,
                minutes: int) -> dict[str, float | None]:
    config = parse_config(config_text)
    from alerts.slo import sli_interval
    from monitor import __version__

    slo = config.slos[0]
    rules = slo_rules(slo, config.alerting, __version__, sli_interval(slo, config))
    rule_file = tmp / f"{name}.rules.yml"
    rule_file.write_text(yamlout.dump({"groups": rules.groups()}, ""))
    good, total = counters(definition, bad_at, minutes)
    metric = "cycles" if definition == "cycles" else "queries"
    end = duration(minutes * 60)
    queries = {
        "first_page": f"min_over_time(timestamp(count({PAGE}))[{end}:{STEP}m])",
        "page_resolves": f"resets((count({PAGE}) or vector(0))[{end}:{STEP}m])",
        "page_evals": f"count_over_time(count({PAGE})[{end}:{STEP}m])",
        "any_slo_alert_evals": f"count_over_time(count({ANY})[{end}:{STEP}m])",
    }
    test = {"rule_files": [rule_file.name], "evaluation_interval": f"{STEP}m",
            "group_eval_order": [g["name"] for g in rules.groups()],
            "tests": [{"interval": f"{STEP}m", "input_series": [
                {"series": f'vecmon_recall_good_{metric}_total{{target="app"}}', "values": good},
                {"series": f'vecmon_recall_{metric}_total{{target="app"}}', "values": total}],
                "promql_expr_test": [{"expr": q, "eval_time": end, "exp_samples": [{"labels": "{}", "value": -1}]}
                                     for q in queries.values()]}]}
    path = tmp / f"{name}_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", path.name], cwd=tmp, capture_output=True, text=True,
                            timeout=120)
    output = result.stdout + result.stderr
    got = {m.group("expr").replace('\\"', '"'): m.group("got") for m in GOT.finditer(output)}
    values: dict[str, float | None] = {}
    for key, query in queries.items():
        text = got.get(query)
        assert text is not None, f"{name}: no answer for {key}:\n{output}"
        number = re.search(r"\} (\S+)$", text.strip())
        values[key] = float(number.group(1)) if number else None
    values["long_windows"] = [duration(b.window.long) for b in rules.burn_alerts]  # type: ignore[assignment]
    return values


def half_budget(definition: str):
    """0.5% bad: one bad cycle in 200 (cycles), 3 bad queries in 600 (queries), evenly spread."""
    if definition == "cycles":  # the running period ratio of a fresh series stays at or under 0.5%
        return lambda cycle: 1 if cycle % 200 == 199 else 0
    return lambda cycle: 1 if cycle % 20 in (6, 12, 19) else 0


HEALTHY = 18  # cycles (3h) of a healthy index before the errors start: the page windows are full
FIRST_BAD = (HEALTHY + 1) * CYCLE * 60  # seconds: the first cycle with errors


def twenty_x(definition: str):
    """20% bad from cycle 19 on: every fifth cycle (cycles), 6 of 30 queries every cycle (queries)."""
    if definition == "cycles":
        return lambda cycle: 1 if cycle > HEALTHY and cycle % 5 == 4 else 0
    return lambda cycle: 6 if cycle > HEALTHY else 0


SCENARIOS = [(p, d) for p in PERIODS for d in ("cycles", "queries")]


@pytest.fixture(scope="module")
def simulations(tmp_path_factory):
    promtool = require_tool("promtool", "prometheus")
    tmp = tmp_path_factory.mktemp("simulation")
    jobs = []
    for period, definition in SCENARIOS:
        config = slo_config(period, definition)
        jobs.append((f"{period}-{definition}-half", config, definition, half_budget(definition), 3 * 1440))
        jobs.append((f"{period}-{definition}-20x", config, definition, twenty_x(definition), 12 * 60))
        if definition == "cycles":  # the index below target in every cycle
            jobs.append((f"{period}-{definition}-all", config, definition,
                         lambda cycle: 1 if cycle > HEALTHY else 0, 6 * 60))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: run_queries(promtool, tmp, *job), jobs))
    out = {job[0]: result for job, result in zip(jobs, results, strict=True)}
    for name, values in out.items():
        if values["first_page"] is not None and not name.endswith("-half"):
            values["page_after_first_bad_cycle"] = values["first_page"] - FIRST_BAD
        print(name, values)
    return out


@pytest.mark.parametrize("period, definition", SCENARIOS)
def test_half_the_budget_never_fires_any_slo_alert_over_three_days(simulations, period, definition):
    values = simulations[f"{period}-{definition}-half"]
    assert values["any_slo_alert_evals"] is None, values  # no evaluation had an SLO alert firing


@pytest.mark.parametrize("period, definition", SCENARIOS)
def test_twenty_times_the_budget_pages_and_never_resolves(simulations, period, definition):
    values = simulations[f"{period}-{definition}-20x"]
    assert values["first_page"] is not None, values
    assert values["page_resolves"] == 0, values
    assert values["page_after_first_bad_cycle"] <= 3600, values


@pytest.mark.parametrize("period", PERIODS)
def test_an_index_below_target_in_every_cycle_pages_within_half_an_hour(simulations, period):
    values = simulations[f"{period}-cycles-all"]
    assert values["first_page"] is not None and values["page_after_first_bad_cycle"] <= 1800, values
    assert values["page_resolves"] == 0, values


def test_the_example_recall_slo_never_tickets_a_stable_healthy_index(tmp_path):
    """A stable index whose probe set holds one persistently hard query (1 of 30 under the target,
    mean recall above it) for 3 days at the probe's cadence. Before (per-query SLI in the example):
    3.3% bad > the 3% ticket threshold, ticket from the first day on."""
    promtool = require_tool("promtool", "prometheus")
    from monitor.loader import load_config

    example = load_config(Path(__file__).resolve().parent.parent / "config" / "alerting-example.yaml")
    recall = next(s for s in example.slos if s.name == "recall-at-10")
    per_cycle = "cycles" in recall.sli.events.total
    text = slo_config("30d", "cycles" if per_cycle else "queries")
    values = run_queries(promtool, tmp_path, "example", text, "cycles" if per_cycle else "queries",
                         (lambda cycle: 0) if per_cycle else (lambda cycle: 1), 3 * 1440)
    print("example recall SLO, one hard query:", values)
    assert values["any_slo_alert_evals"] is None, values
