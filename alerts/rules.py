"""Threshold alerts: the catalog (:data:`ALERTS`) and :func:`threshold_rules`, which applies the
config to it and returns the rule groups for ``vecmon-alerts.rules.yml``.

Each :class:`AlertDef` knows its PromQL (``expr``), when it applies to a config (``applies``:
no model-API alerts without endpoints, no pgvector alerts without the pgvector collectors),
its defaults (threshold, ``for``, severity, window, volume guard), its annotations, the README
text (meaning, source of the default, first steps) and a ``fixture``: promtool input series that
give the alert's expression a chosen value, from which :mod:`alerts.promtool_tests` builds a
"fires just past the threshold, stays silent on the right side of it" unit test.

Annotation templates use placeholders filled in at generation time: ``<threshold>`` (rendered like
the alert's value), ``<window>``, ``<for>``, and ``<value>``, which becomes
``{{ $value | humanize... }}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alerts.config import AlertingSettings
from alerts.promql import duration, go_float, number, render_value, value_template

if TYPE_CHECKING:  # pragma: no cover
    from monitor.config import Config

MINUTE = 60.0


# --------------------------------------------------------------------------- fixtures (promtool input series)


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


# --------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class Params:
    """An alert's effective settings for one config."""

    config: Any
    settings: AlertingSettings
    threshold: float | None
    window: float | None
    minimum: float | None

    @property
    def w(self) -> str:
        return duration(self.window or 0)

    @property
    def methods(self) -> str:
        return "|".join(self.settings.vector_index_methods)

    @property
    def vector_tables(self) -> str:
        """``count by (target, schema, table)`` of tables having a vector index (an ``and on`` filter)."""
        return f'count by (target, schema, table) (vecmon_pg_index_size_bytes{{am=~"{self.methods}"}})'


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
    expr: Callable[[Params], str]
    fixture: Callable[[Params, float], Fixture]  # the expression's input series for a value
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
    applies: When | None = None  # None: always
    metrics: tuple[str, ...] = ()  # metric names it reads (documentation)

    def __post_init__(self) -> None:
        if self.applies is None:
            object.__setattr__(self, "applies", ALWAYS)
        if self.tunable_threshold is None:
            object.__setattr__(self, "tunable_threshold", self.compare != "event")

    def params(self, config: Any, settings: AlertingSettings) -> Params:
        override = settings.override(self.name)
        pick = lambda value, default: default if value is None else value  # noqa: E731
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


@dataclass(frozen=True)
class When:
    """When an alert is generated: a check on the config, and the same in words for the README."""

    text: str
    check: Callable[[Any], bool]

    def __call__(self, config: Any) -> bool:
        return self.check(config)


def _enabled_collectors(config: Any) -> set[str]:
    return {name for db in config.enabled_databases() for name in db.enabled_collectors()}


def collectors(*names: str, any_of: bool = False) -> When:
    quoted = [f"`{n}`" for n in names]
    words = quoted[0] if len(quoted) == 1 else (", ".join(quoted[:-1]) + (" or " if any_of else " and ") + quoted[-1])
    test = any if any_of else all
    return When(f"a database target runs the {words} collector{'s' if len(names) > 1 else ''}",
                lambda config: test(n in _enabled_collectors(config) for n in names))


def endpoints(kind: str | None = None) -> When:
    return When(f"an enabled {kind + ' ' if kind else ''}endpoint is configured",
                lambda config: any(e.enabled and kind in (None, e.kind) for e in getattr(config, "endpoints", [])))


def _any_target(config: Any) -> bool:
    from collectors.registry import all_api_targets

    return bool(config.enabled_databases()) or any(t.enabled for t in all_api_targets(config))


ALWAYS = When("always", lambda config: True)
ANY_TARGET = When("any target is enabled", _any_target)
DAILY_BUDGET = When("a budget has `daily_usd`", lambda config: any(
    b.enabled and b.daily_usd is not None for b in getattr(config, "budgets", [])))


T, W, F, V = "<threshold>", "<window>", "<for>", "<value>"
APP = {"target": "app"}
TABLE = {"target": "app", "schema": "public", "table": "items"}


# ---- vecmon itself


STALE_METRIC = "vecmon_collector_last_success_timestamp_seconds"
INTERVAL_METRIC = "vecmon_collector_interval_seconds"


def _stale_expr(p: Params) -> str:
    """``time() - last_success`` against ``stale_intervals`` x the collector's own interval
    (``vecmon_collector_interval_seconds``), so a 30 s collector is stale after 90 s and an hourly
    cost poll after 3h. Series without that gauge (an older vecmon) fall back to a threshold per
    target: max(stale_after, N x the target's longest interval). A threshold override applies to all."""
    if p.threshold is not None:
        return f"(time() - {STALE_METRIC}) > {number(p.threshold)}"
    per_collector = f"(time() - {STALE_METRIC})\n> {number(p.settings.stale_intervals)} * {INTERVAL_METRIC}"
    without = f"{STALE_METRIC} unless on (target, collector) {INTERVAL_METRIC}"
    classes = stale_classes(p.config, p.settings)
    if not classes:
        return f"{per_collector}\nor\n(time() - ({without})) > {number(p.config.daemon.stale_after)}"
    parts = [f'(time() - ({without.replace(STALE_METRIC, STALE_METRIC + "{target=~" + chr(34) + "|".join(targets) + chr(34) + "}", 1)})) > {number(limit)}'
             for limit, targets in classes.items()]
    return per_collector + "\nor\n" + "\nor\n".join(parts)


def stale_classes(config: Any, settings: AlertingSettings) -> dict[float, list[str]]:
    """Stale threshold (seconds) -> target names, from the targets' intervals."""
    from collectors.registry import all_api_targets

    longest: dict[str, float] = {}
    for db in config.enabled_databases():
        intervals = [db.interval_for(name) for name in db.enabled_collectors()]
        if intervals:
            longest[db.name] = max(intervals)
    for target in all_api_targets(config):
        if target.enabled:
            longest[target.name] = float(target.interval)
    classes: dict[float, list[str]] = {}
    for name, interval in sorted(longest.items()):
        limit = max(float(config.daemon.stale_after), settings.stale_intervals * interval)
        classes.setdefault(limit, []).append(name)
    return dict(sorted(classes.items()))


def _stale_fixture(p: Params, value: float) -> Fixture:
    labels = {"target": "app", "collector": "connections"}
    if p.threshold is not None:
        limit, series = p.threshold, ()
    else:
        interval = 30.0
        limit = p.settings.stale_intervals * interval
        series = (gauge(INTERVAL_METRIC, labels, interval),)
    if value:  # last success at t=0: time() - 0 grows past the limit
        first = (int(limit // MINUTE) + 1) * MINUTE
        return Fixture((gauge(STALE_METRIC, labels, 0), *series), labels, lambda t: t, active_from=first)
    return Fixture((InputSeries(sel(STALE_METRIC, labels), 0, MINUTE), *series), labels, 0.0)


SELF = [
    AlertDef(
        name="VecmonDown", group="self", service="vecmon", severity="critical", for_=2 * MINUTE, compare="event",
        condition="the scrape of vecmon fails (`up == 0`)",
        summary="Prometheus cannot scrape vecmon at {{ $labels.instance }}.",
        description="Scrapes of {{ $labels.instance }} (job {{ $labels.job }}) have failed for " + F + ": no vecmon "
                    "metric is current, so no other vecmon alert can fire.",
        expr=lambda p: f'up{{job="{p.settings.scrape_job}"}} == 0',
        fixture=lambda p, v: Fixture(
            (gauge("up", {"job": p.settings.scrape_job, "instance": "vecmon:9765"}, 0 if v else 1),),
            {"job": p.settings.scrape_job, "instance": "vecmon:9765"}, 0),
        doc=Doc("Prometheus' own `up` series for the vecmon scrape job is 0: the daemon is down, not listening, "
                "or unreachable from Prometheus.",
                "vecmon default (`alerting.scrape_job` names the job).",
                ("`curl http://HOST:9765/health` from the Prometheus host; check the process and its logs: "
                 "installed with the unit `deploy/systemd/vecmon.service` (README: systemd), "
                 "`systemctl status vecmon` and `journalctl -u vecmon`; in a container, `docker logs` or "
                 "`kubectl logs`.",
                 "`vecmon check-config -c FILE`: a config error stops a restart.",
                 "Check the scrape config (`job_name`, target address) and firewalls.")),
        metrics=("up",)),
    AlertDef(
        name="VecmonTargetDown", group="self", service="vecmon", severity="critical", for_=2 * MINUTE,
        compare="event",
        condition="the target is unreachable (`vecmon_up == 0`)",
        summary="vecmon cannot reach target {{ $labels.target }}.",
        description="vecmon's connection attempts to {{ $labels.target }} have failed for " + F + " (vecmon_up = "
                    "{{ $value }}); all other alerts of this target are muted while it is down.",
        applies=ANY_TARGET,
        expr=lambda p: "vecmon_up == 0",
        fixture=lambda p, v: Fixture((gauge("vecmon_up", APP, 0 if v else 1),), dict(APP), 0),
        doc=Doc("vecmon could not connect to the target (database, model endpoint, cost API, Redis) on its last "
                "attempt. Alertmanager inhibits every other alert of the same target while this one fires.",
                "vecmon default.",
                ("Open vecmon's status page (`/`): it shows the last error of each collector.",
                 "Check that the server is up and reachable from the vecmon host (`pg_isready -h HOST -p PORT`, "
                 "`curl` for HTTP targets).",
                 "Check credentials (`password_file`, `api_key_file`) and, for PostgreSQL, `max_connections` and "
                 "`pg_hba.conf`.")),
        metrics=("vecmon_up",)),
    AlertDef(
        name="VecmonCollectorFailing", group="self", service="vecmon", severity="warning", for_=5 * MINUTE,
        compare="event",
        condition="every run fails (`vecmon_collector_up == 0`)",
        summary="Collector {{ $labels.collector }} fails on {{ $labels.target }}.",
        description="Every run of collector {{ $labels.collector }} on {{ $labels.target }} has failed for " + F +
                    " (vecmon_collector_up = {{ $value }}); its last error is on vecmon's status page.",
        applies=ANY_TARGET,
        expr=lambda p: "vecmon_collector_up == 0\nunless on (target)\nvecmon_up == 0",
        fixture=lambda p, v: Fixture(
            (gauge("vecmon_collector_up", {"target": "app", "collector": "tables"}, 0 if v else 1),),
            {"target": "app", "collector": "tables"}, 0),
        doc=Doc("The collector's runs fail (an error or a timeout) although the target is reachable: a missing "
                "privilege, a query cancelled by `statement_timeout` or `lock_timeout` (e.g. a table locked by a "
                "long `ALTER TABLE`), a provider answer that does not parse. Its last good series are served, "
                "marked `vecmon_collector_stale=1`, until `daemon.stale_after`. Not while the whole target is "
                "down (`VecmonTargetDown` says so once).",
                "vecmon default.",
                ("Read the collector's last error on vecmon's status page (`/`) or in its log.",
                 "Lock waits: `SELECT pid, wait_event_type, query FROM pg_stat_activity WHERE wait_event_type = "
                 "'Lock'`; timeouts: raise `collectors.<name>.timeout` only if the query is legitimately slow.",
                 "Privileges: the monitoring role needs only `pg_monitor`.")),
        metrics=("vecmon_collector_up", "vecmon_up")),
    AlertDef(
        name="VecmonCollectorStale", group="self", service="vecmon", severity="warning", for_=MINUTE,
        compare="event", fmt="duration",
        condition="no successful run for 3 of the collector's own intervals",
        tunable_threshold=True,
        summary="Collector {{ $labels.collector }} on {{ $labels.target }} has not succeeded recently.",
        description="The last successful run of collector {{ $labels.collector }} on {{ $labels.target }} was "
                    "{{ $value | humanizeDuration }} ago; its series are stale or already dropped.",
        applies=ANY_TARGET,
        expr=_stale_expr, fixture=_stale_fixture,
        doc=Doc("No successful run for longer than `alerting.stale_intervals` (3) times the collector's own "
                "interval (`vecmon_collector_interval_seconds`): a 30 s collector is stale after 90 s, the 10m "
                "recall probe after 30m. Series of a vecmon without that gauge are judged per target "
                "(3 x the target's longest interval, at least `daemon.stale_after`). Runs that keep failing, "
                "runs that are skipped because the previous one still runs, or a scheduler that stopped all end "
                "here. A threshold override (seconds) replaces the per-collector limits.",
                "vecmon default.",
                ("Check `vecmon_collector_skipped_runs_total` (runs overlapping: the interval is shorter than the "
                 "run takes) and the collector's last error on the status page.",
                 "If every collector of the daemon is stale, restart vecmon and report the bug with its log.")),
        metrics=("vecmon_collector_last_success_timestamp_seconds", "vecmon_collector_interval_seconds")),
]


# ---- PostgreSQL


def _cache_hit_expr(p: Params) -> str:
    hit, read = "vecmon_pg_database_blks_hit_total", "vecmon_pg_database_blks_read_total"
    return (f"(\n  sum by (target, datname) (rate({hit}[{p.w}]))\n  /\n"
            f"  (sum by (target, datname) (rate({hit}[{p.w}]) + rate({read}[{p.w}])) > {number(p.minimum or 0)})\n"
            f") < {number(p.threshold)}")


def _cache_hit_fixture(p: Params, value: float) -> Fixture:
    labels = {"target": "app", "datname": "app"}
    total = 10000 * max(1, int((p.minimum or 0) // 100) + 1)  # block accesses per minute, above the guard
    hits, reads = split(value, total)
    return Fixture((counter("vecmon_pg_database_blks_hit_total", labels, hits),
                    counter("vecmon_pg_database_blks_read_total", labels, reads)),
                   labels, hits / total, active_from=MINUTE, settle=p.window or 0)


def _scan_ratio_expr(p: Params) -> str:
    idx, seq = "vecmon_pg_table_idx_scan_total", "vecmon_pg_table_seq_scan_total"
    by = "sum by (target, schema, table)"
    return (f"(\n  {by} (rate({idx}[{p.w}]))\n  /\n"
            f"  ({by} (rate({idx}[{p.w}]) + rate({seq}[{p.w}])) > {number(p.minimum or 0)})\n"
            f") < {number(p.threshold)}\nand on (target, schema, table)\n{p.vector_tables}")


def _vector_table(p: Params) -> InputSeries:
    labels = dict(TABLE, index="items_embedding_idx", am=p.settings.vector_index_methods[0])
    return gauge("vecmon_pg_index_size_bytes", labels, 1048576)


def _scan_ratio_fixture(p: Params, value: float) -> Fixture:
    total = 10000 * max(1, int((p.minimum or 0) // 100) + 1)
    idx, seq = split(value, total)
    return Fixture((counter("vecmon_pg_table_idx_scan_total", TABLE, idx),
                    counter("vecmon_pg_table_seq_scan_total", TABLE, seq), _vector_table(p)),
                   dict(TABLE), idx / total, active_from=MINUTE, settle=p.window or 0)


def _dead_tuples_expr(p: Params) -> str:
    expr = f"vecmon_pg_table_dead_tuple_ratio > {number(p.threshold)}"
    if p.minimum:
        expr += f"\nand on (target, schema, table)\nvecmon_pg_table_dead_tuples >= {number(p.minimum)}"
    return expr + f"\nand on (target, schema, table)\n{p.vector_tables}"


def _dead_tuples_fixture(p: Params, value: float) -> Fixture:
    dead = max(p.minimum or 0, 1) * 10
    return Fixture((gauge("vecmon_pg_table_dead_tuple_ratio", TABLE, value),
                    gauge("vecmon_pg_table_dead_tuples", TABLE, dead), _vector_table(p)), dict(TABLE), value)


REPLICA = {"target": "app", "application_name": "replica1", "client_addr": "10.0.0.2"}

POSTGRES = [
    AlertDef(
        name="PgConnectionsHigh", group="postgres", service="postgres", severity="warning", for_=5 * MINUTE,
        threshold=0.9, fmt="percent",
        summary="{{ $labels.target }} is running out of connections.",
        description="{{ $labels.target }} uses " + V + " of max_connections (threshold " + T + "); new "
                    "connections fail once the remaining slots are taken.",
        applies=collectors("connections"),
        expr=lambda p: f"vecmon_pg_connections_used_ratio > {number(p.threshold)}",
        fixture=lambda p, v: Fixture((gauge("vecmon_pg_connections_used_ratio", APP, v),), dict(APP), v),
        doc=Doc("Client connections (vecmon's own included) divided by `max_connections` is above the threshold. "
                "Applications start failing with `too many clients already` when it reaches 1 (minus "
                "`superuser_reserved_connections`).",
                "seeds: connection count target < 80% of max, alert > 90% of max.",
                ("See who holds the connections: `SELECT usename, application_name, state, count(*) FROM "
                 "pg_stat_activity GROUP BY 1, 2, 3 ORDER BY 4 DESC` (the vecmon dashboards show "
                 "`vecmon_pg_connections` by state).",
                 "Many `idle` sessions: put a pooler (PgBouncer, transaction mode) in front or lower the "
                 "application pools; many `idle in transaction`: fix the application or set "
                 "`idle_in_transaction_session_timeout`.",
                 "Raise `max_connections` only with the memory to back it (restart required).")),
        metrics=("vecmon_pg_connections_used_ratio",)),
    AlertDef(
        name="PgCacheHitRatioLow", group="postgres", service="postgres", severity="warning", for_=10 * MINUTE,
        threshold=0.95, window=10 * MINUTE, minimum=1.0, compare="<", fmt="percent",
        minimum_doc="block accesses (hits + reads) per second below which the ratio is not evaluated",
        summary="Buffer-cache hit ratio of {{ $labels.datname }} on {{ $labels.target }} is low.",
        description="Over the last " + W + ", " + V + " of block accesses in database {{ $labels.datname }} on "
                    "{{ $labels.target }} were served from shared buffers (threshold " + T + "); the rest were read "
                    "from the OS page cache or disk.",
        applies=collectors("databases"),
        expr=_cache_hit_expr, fixture=_cache_hit_fixture,
        doc=Doc("`blks_hit / (blks_hit + blks_read)` of `pg_stat_database` over the window. For vector search it "
                "usually means the HNSW/IVFFlat index no longer fits in `shared_buffers`, so queries read pages "
                "from the OS.",
                "seeds: cache hit ratio target > 99%, alert < 95%.",
                ("Compare index sizes (`vecmon_pg_index_size_bytes{am=\"hnsw\"}`) with `shared_buffers` "
                 "(`vecmon_pg_setting_bytes{name=\"shared_buffers\"}`).",
                 "Look for a new large sequential scan or report query "
                 "(`vecmon_pg_statement_shared_blks_read_total`).",
                 "Warm the index after a restart (`pg_prewarm`), raise `shared_buffers` (restart), or shrink the "
                 "index (`halfvec`, fewer dimensions).")),
        metrics=("vecmon_pg_database_blks_hit_total", "vecmon_pg_database_blks_read_total")),
    AlertDef(
        name="PgVectorTableIndexScanRatioLow", group="postgres", service="postgres", severity="warning",
        for_=15 * MINUTE, threshold=0.8, window=15 * MINUTE, minimum=0.01, compare="<", fmt="percent",
        minimum_doc="scans per second of the table below which the ratio is not evaluated",
        summary="Queries on vector table {{ $labels.schema }}.{{ $labels.table }} avoid its indexes.",
        description="Only " + V + " of the scans of {{ $labels.schema }}.{{ $labels.table }} on {{ $labels.target }} "
                    "used an index over the last " + W + " (threshold " + T + "); the rest were sequential scans.",
        applies=collectors("tables", "indexes"),
        expr=_scan_ratio_expr, fixture=_scan_ratio_fixture,
        doc=Doc("`idx_scan / (idx_scan + seq_scan)` of a table that has a vector index (an access method in "
                "`alerting.vector_index_methods`), over the window. Sequential scans of a vector table mean "
                "exact (brute-force) distance computations over every row.",
                "seeds: index scan ratio target > 95%, alert < 80% (sequential scans).",
                ("Find the statements: `vecmon_pg_statement_calls_total{vector_op=\"true\"}` and their plans "
                 "(`EXPLAIN (ANALYZE, BUFFERS)`).",
                 "The ORDER BY must be the bare distance operator ascending with a LIMIT; a WHERE on a "
                 "distance, an expression around it, or a very selective filter makes the planner skip the index.",
                 "After a large load run `ANALYZE` on the table.")),
        metrics=("vecmon_pg_table_idx_scan_total", "vecmon_pg_table_seq_scan_total", "vecmon_pg_index_size_bytes")),
    AlertDef(
        name="PgVectorTableDeadTuplesHigh", group="postgres", service="postgres", severity="warning",
        for_=15 * MINUTE, threshold=0.2, minimum=1000, fmt="percent",
        minimum_doc="dead rows the table must have at least",
        summary="Vector table {{ $labels.schema }}.{{ $labels.table }} has many dead rows.",
        description="" + V + " of the rows of {{ $labels.schema }}.{{ $labels.table }} on {{ $labels.target }} are "
                    "dead (threshold " + T + "); dead index entries waste HNSW search effort and lower recall.",
        applies=collectors("tables", "indexes"),
        expr=_dead_tuples_expr, fixture=_dead_tuples_fixture,
        doc=Doc("`n_dead_tup / (n_live_tup + n_dead_tup)` of a table with a vector index is above the threshold "
                "(and it has at least `minimum` dead rows). Autovacuum is not keeping up or is blocked; dead "
                "tuples in an HNSW graph consume `ef_search` slots, so queries return fewer or worse neighbours.",
                "issue 5 (20%), the default `autovacuum_vacuum_scale_factor` (0.2).",
                ("Check `vecmon_pg_table_last_maintenance_age_seconds{kind=\"autovacuum\"}` and whether a long "
                 "transaction holds back vacuum (`PgLongRunningTransaction`).",
                 "Run `VACUUM (VERBOSE) schema.table`; for update-heavy vector tables lower "
                 "`autovacuum_vacuum_scale_factor` on the table.",
                 "Re-check recall (`VectorRecallBelowTarget`) after the vacuum.")),
        metrics=("vecmon_pg_table_dead_tuple_ratio", "vecmon_pg_table_dead_tuples", "vecmon_pg_index_size_bytes")),
    AlertDef(
        name="PgReplicationLagHigh", group="postgres", service="postgres", severity="warning", for_=5 * MINUTE,
        threshold=60.0, fmt="duration",
        summary="Replication lag on {{ $labels.target }} is high.",
        description="Replay lag on {{ $labels.target }} is " + V + " (threshold " + T + "); reads from the standby "
                    "{{ $labels.application_name }} return stale neighbours.",
        applies=collectors("server"),
        expr=lambda p: (f"vecmon_pg_replication_lag_seconds > {number(p.threshold)}\nor\n"
                        f"vecmon_pg_standby_replay_lag_seconds > {number(p.threshold)}"),
        fixture=lambda p, v: Fixture((gauge("vecmon_pg_replication_lag_seconds", REPLICA, v),), dict(REPLICA), v),
        doc=Doc("On a primary, a standby's `replay_lag` (`pg_stat_replication`); on a standby, the time since the "
                "last replayed transaction while WAL is pending. Vector reads served by the standby are that far "
                "behind.",
                "vecmon default (the seeds give no figure).",
                ("Check the standby's I/O and CPU: a large index build or `VACUUM` replays slowly.",
                 "Check the network between primary and standby and `vecmon_pg_replication_lag_bytes`.",
                 "Long queries on the standby with `hot_standby_feedback`/`max_standby_streaming_delay` can "
                 "pause replay.")),
        metrics=("vecmon_pg_replication_lag_seconds", "vecmon_pg_standby_replay_lag_seconds")),
    AlertDef(
        name="PgWalSizeHigh", group="postgres", service="postgres", severity="warning", for_=10 * MINUTE,
        threshold=1073741824.0, fmt="bytes",
        summary="WAL directory of {{ $labels.target }} is large.",
        description="The WAL directory of {{ $labels.target }} holds " + V + "B (threshold " + T + ").",
        applies=collectors("server"),
        expr=lambda p: f"vecmon_pg_wal_directory_bytes > {number(p.threshold)}",
        fixture=lambda p, v: Fixture((gauge("vecmon_pg_wal_directory_bytes", APP, v),), dict(APP), v),
        doc=Doc("`pg_ls_waldir()` adds up to more than the threshold. WAL piles up behind an inactive replication "
                "slot, a failing `archive_command`, or a burst of writes (bulk embedding loads, index builds) "
                "larger than `max_wal_size`.",
                "seeds: WAL size over 1 GB (for 10m).",
                ("Inactive slots: `vecmon_pg_replication_slot_active == 0` and "
                 "`vecmon_pg_replication_slot_retained_wal_bytes`; drop slots nobody uses.",
                 "Archiving: `SELECT * FROM pg_stat_archiver` (failed_count, last_failed_wal).",
                 "Bulk loads: raise `max_wal_size` or spread the load; check free disk space now.")),
        metrics=("vecmon_pg_wal_directory_bytes",)),
    AlertDef(
        name="PgLongRunningTransaction", group="postgres", service="postgres", severity="warning", for_=MINUTE,
        threshold=300.0, fmt="duration",
        summary="A transaction in {{ $labels.datname }} on {{ $labels.target }} has been open for long.",
        description="The oldest open transaction in database {{ $labels.datname }} on {{ $labels.target }} "
                    "started " + V + " ago (threshold " + T + "); it holds back vacuum and may hold locks.",
        applies=collectors("connections"),
        expr=lambda p: f"vecmon_pg_oldest_transaction_age_seconds > {number(p.threshold)}",
        fixture=lambda p, v: Fixture(
            (gauge("vecmon_pg_oldest_transaction_age_seconds", {"target": "app", "datname": "app"}, v),),
            {"target": "app", "datname": "app"}, v),
        doc=Doc("A client session (not vecmon's) has had a transaction open for longer than the threshold. Dead "
                "rows newer than it cannot be vacuumed, so vector tables bloat and HNSW recall drops; it may also "
                "hold locks that block index builds.",
                "vecmon default (5m); the seeds' runbook starts with queries running longer than 30 s.",
                ("Find it: `SELECT pid, usename, application_name, state, now() - xact_start AS age, query FROM "
                 "pg_stat_activity WHERE xact_start IS NOT NULL ORDER BY xact_start LIMIT 5`.",
                 "`idle in transaction`: fix the client; cancel with `pg_cancel_backend(pid)`, end with "
                 "`pg_terminate_backend(pid)` if it is safe.",
                 "Set `idle_in_transaction_session_timeout` for application roles.")),
        metrics=("vecmon_pg_oldest_transaction_age_seconds",)),
]


# ---- pgvector

INDEX = {"target": "app", "schema": "public", "table": "items", "index": "items_embedding_idx"}
INDEX_BY = "target, schema, table, index, filter"
FILTER = "{{ with $labels.filter }} (filter {{ . }}){{ end }}"


def _ann_quantile(q: float) -> Callable[[Params], str]:
    def expr(p: Params) -> str:
        return (f"histogram_quantile({number(q)}, sum by ({INDEX_BY}, le) "
                f"(rate(vecmon_ann_query_duration_seconds_bucket[{p.w}])))\n> {number(p.threshold)}")
    return expr


def _ann_fixture(q: float) -> Callable[[Params, float], Fixture]:
    def fixture(p: Params, value: float) -> Fixture:
        # all observations in the bucket (0, value]: with q of them counted up to `value`, the
        # quantile q lands exactly on the bucket's upper bound
        per_minute = 100
        b = "vecmon_ann_query_duration_seconds_bucket"
        return Fixture((counter(b, dict(INDEX, le=go_float(value)), round(q * per_minute)),
                        counter(b, dict(INDEX, le="+Inf"), per_minute)),
                       dict(INDEX), value, active_from=MINUTE, settle=p.window or 0)
    return fixture


def _ann_alert(q: float, name: str, threshold: float, source: str) -> AlertDef:
    pct = f"p{number(q * 100)}"
    return AlertDef(
        name=name, group="pgvector", service="pgvector", severity="warning", for_=10 * MINUTE,
        threshold=threshold, window=10 * MINUTE, fmt="duration",
        summary=f"ANN queries on {{{{ $labels.schema }}}}.{{{{ $labels.index }}}} are slow ({pct}).",
        description=f"The {pct} latency of approximate k-NN probe queries on index {{{{ $labels.schema }}}}."
                    "{{ $labels.index }} of {{ $labels.target }}" + FILTER + " is " + V + " over the last " + W +
                    " (threshold " + T + ").",
        expr=_ann_quantile(q), fixture=_ann_fixture(q),
        applies=collectors("ann_latency"),
        doc=Doc(f"The {pct} of vecmon's latency probes (`ann_latency` collector: a few k-NN queries per index "
                "every run, with the application's `hnsw.*`/`ivfflat.*` settings, as the application writes "
                "them) over the window, per index and configured filter.",
                source,
                ("Check whether the index still fits in memory: `vecmon_vector_index_size_to_shared_buffers_ratio` above "
                 "1 and a falling cache hit ratio (`PgCacheHitRatioLow`) mean reads from disk.",
                 "Check the plan: `VectorIndexNotUsed`; a filtered query may have switched to another index.",
                 "Compare `hnsw.ef_search` (`vecmon_vector_setting`) with the recall curve: "
                 "`vecmon_recall_recommended_setting` is the smallest value meeting the recall target; CPU "
                 "saturation and concurrent index builds (`vecmon_vector_index_build_progress_ratio`) slow "
                 "every query.")),
        metrics=("vecmon_ann_query_duration_seconds",))


def _ann_errors_expr(p: Params) -> str:
    by, attempts = f"sum by ({INDEX_BY})", "vecmon_ann_queries_total"
    expr = (f"(\n  {by} (increase(vecmon_ann_query_errors_total[{p.w}]))\n  /\n"
            f"  ({by} (increase({attempts}[{p.w}])) > 0)\n) > {number(p.threshold)}")
    if p.minimum:
        expr += f"\nand on ({INDEX_BY})\n{by} (increase({attempts}[{p.w}])) >= {number(p.minimum)}"
    return expr


def _ann_errors_fixture(p: Params, value: float) -> Fixture:
    total = 100 * max(1, int((p.minimum or 0) // 1000) + 1)  # attempts per minute, above the guard
    errors, _ = split(value, total)
    return Fixture((counter("vecmon_ann_queries_total", INDEX, total),
                    counter("vecmon_ann_query_errors_total", dict(INDEX, reason="timeout"), errors),
                    counter("vecmon_ann_query_errors_total", dict(INDEX, reason="error"), 0)),
                   dict(INDEX), errors / total, active_from=MINUTE, settle=p.window or 0)


def _recall_expr(p: Params) -> str:
    h, by = "vecmon_recall_query_recall_ratio", f"sum by ({INDEX_BY})"
    mean = (f"(\n  {by} (increase({h}_sum[{p.w}]))\n  /\n"
            f"  ({by} (increase({h}_count[{p.w}])) > 0)\n)")
    if p.threshold is not None:
        return f"{mean} < {number(p.threshold)}"
    return f"{mean}\n< on (target) group_left\nmax by (target) (vecmon_recall_target)"


def _recall_fixture(p: Params, value: float) -> Fixture:
    per_minute = 100  # probe queries per minute, each with recall `value`
    h = "vecmon_recall_query_recall_ratio"
    series = [counter(f"{h}_sum", INDEX, value * per_minute), counter(f"{h}_count", INDEX, per_minute)]
    if p.threshold is None:
        series.append(gauge("vecmon_recall_target", APP, 0.9))
    return Fixture(tuple(series), dict(INDEX), value, active_from=MINUTE, settle=p.window or 0)


def _shortfall_expr(p: Params) -> str:
    by = f"max by ({INDEX_BY})"
    return (f'(\n  {by} (vecmon_recall_app_returned_rows{{filter!=""}})\n  /\n'
            f'  ({by} (vecmon_recall_expected_rows{{filter!=""}}) > 0)\n) < {number(p.threshold)}')


def _shortfall_fixture(p: Params, value: float) -> Fixture:
    labels = dict(INDEX, filter="tenant_42")
    return Fixture((gauge("vecmon_recall_app_returned_rows", labels, value * 10),
                    gauge("vecmon_recall_expected_rows", labels, 10)), labels, value)


def _not_used_fixture(p: Params, value: float) -> Fixture:
    point = dict(INDEX, param="ef_search", value="40", iterative="off")
    return Fixture((gauge("vecmon_vector_index_used", point, 0 if value else 1),
                    gauge("vecmon_vector_index_valid", INDEX, 1)), dict(INDEX), 0)


def _growth_expr(p: Params) -> str:
    return ("(\n  vecmon_vector_table_rows\n  / on (target, schema, table) group_right ()\n"
            "  (vecmon_vector_index_rows_at_build > 0)\n  - 1\n"
            f") > {number(p.threshold)}\nand on (target, schema, table, index)\n"
            'vecmon_vector_index_info{method="ivfflat"}')


def _growth_fixture(p: Params, value: float) -> Fixture:
    info = dict(INDEX, key="embedding", method="ivfflat", opclass="vector_l2_ops", operator="<->")
    return Fixture((gauge("vecmon_vector_table_rows", TABLE, round((1 + value) * 100000)),
                    gauge("vecmon_vector_index_rows_at_build", INDEX, 100000),
                    gauge("vecmon_vector_index_info", info, 1)), dict(INDEX), round((1 + value) * 100000) / 100000 - 1)


PGVECTOR = [
    _ann_alert(0.99, "AnnQueryLatencyP99High", 0.5, "seeds: query latency p99 target < 100ms, alert > 500ms."),
    _ann_alert(0.5, "AnnQueryLatencyP50High", 0.05, "seeds: query latency p50 target < 20ms, alert > 50ms."),
    AlertDef(
        name="AnnQueryErrorsHigh", group="pgvector", service="pgvector", severity="warning", for_=10 * MINUTE,
        threshold=0.05, window=10 * MINUTE, minimum=10, fmt="percent",
        minimum_doc="probe queries in the window the index must have at least",
        summary="ANN probe queries on {{ $labels.schema }}.{{ $labels.index }} time out or fail.",
        description=V + " of the approximate k-NN probe queries on index {{ $labels.schema }}.{{ $labels.index }} "
                    "of {{ $labels.target }}" + FILTER + " timed out or failed over the last " + W +
                    " (threshold " + T + ").",
        expr=_ann_errors_expr, fixture=_ann_errors_fixture,
        applies=collectors("ann_latency"),
        doc=Doc("Share of the latency probe's k-NN queries that hit `ann_latency.timeout` or failed, over the "
                "window (`vecmon_ann_query_errors_total` by reason over `vecmon_ann_queries_total`). Timed-out "
                "queries also count as slower than every bucket in `vecmon_ann_query_duration_seconds` (`+Inf`), "
                "so p99 and latency SLOs see them; this alert says how many there are, and catches errors that "
                "are not timeouts (a dropped index, a bad filter, permissions).",
                "vecmon default (5% of at least 10 probe queries).",
                ("Split by reason: `sum by (reason) (increase(vecmon_ann_query_errors_total{index=\"...\"}[30m]))`.",
                 "Timeouts: the same first steps as `AnnQueryLatencyP99High` (index in memory, plan, "
                 "`ef_search`), and whether `ann_latency.timeout` is realistic for the application.",
                 "Errors: the status page shows the collector's last error; check the configured filters and "
                 "that the monitoring role can still SELECT the table.")),
        metrics=("vecmon_ann_query_errors_total", "vecmon_ann_queries_total")),
    AlertDef(
        name="VectorRecallBelowTarget", group="pgvector", service="pgvector", severity="warning", for_=15 * MINUTE,
        window=30 * MINUTE, compare="<", fmt="decimal", test_threshold=0.9,
        threshold_text="the database's vector.recall.target",
        summary="Recall of index {{ $labels.schema }}.{{ $labels.index }} is below target.",
        description="Probe queries on index {{ $labels.schema }}.{{ $labels.index }} of {{ $labels.target }}" +
                    FILTER + " reach a mean recall@k of " + V + " with the application's settings over the last " +
                    W + " (target " + T + ").",
        expr=_recall_expr, fixture=_recall_fixture,
        applies=collectors("recall"),
        doc=Doc("Mean recall@k of the recall probe's queries at the application's `ef_search`/`probes` over the "
                "window, against `vector.recall.target` of the database (`vecmon_recall_target`), or against "
                "the alert's threshold when one is set. Recall is measured against an exact search of the same "
                "query, counting ties at the k-th distance as correct.",
                "issue 5 (\"recall under target\"); the target is the database's `vector.recall.target` "
                "(default 0.9).",
                ("Look at the recall curve (`vecmon_recall_mean_ratio` by `value`) and "
                 "`vecmon_recall_recommended_setting`: raise `hnsw.ef_search` (or `ivfflat.probes`) for the "
                 "application role to at least that value.",
                 "Dead tuples (`PgVectorTableDeadTuplesHigh`) and, for IVFFlat, growth since the build "
                 "(`IvfflatTableGrown`) lower recall: VACUUM, or REINDEX CONCURRENTLY.",
                 "Filtered queries: enable iterative scans (`hnsw.iterative_scan = relaxed_order`, pgvector >= "
                 "0.8) or use a partial index per frequent filter.")),
        metrics=("vecmon_recall_query_recall_ratio", "vecmon_recall_target")),
    AlertDef(
        name="VectorFilteredQueryShortfall", group="pgvector", service="pgvector", severity="warning",
        for_=15 * MINUTE, threshold=0.95, compare="<", fmt="percent",
        summary="Filtered queries on {{ $labels.schema }}.{{ $labels.index }} return too few rows.",
        description="Approximate queries with filter {{ $labels.filter }} on index {{ $labels.schema }}."
                    "{{ $labels.index }} of {{ $labels.target }} return " + V + " of the rows an exact search "
                    "finds (threshold " + T + ").",
        expr=_shortfall_expr,
        fixture=_shortfall_fixture,
        applies=collectors("recall"),
        doc=Doc("Mean rows the recall probe's filtered k-NN queries return at the application's settings "
                "(`vecmon_recall_app_returned_rows`) divided by the rows an exact search of the *same* queries "
                "finds (`min(k, matching rows)`, `vecmon_recall_expected_rows`): one probe's own numbers. HNSW and "
                "IVFFlat filter *after* the index scan, so a selective filter leaves fewer than k rows, or none, "
                "once `ef_search` candidates are used up.",
                "vecmon default: 95% (one query in 30 returning 8 of 10 rows is 99.3%, not a shortfall worth a "
                "ticket; a filter starving the scan drops it far lower).",
                ("Enable iterative index scans for the application role (pgvector >= 0.8: "
                 "`hnsw.iterative_scan = relaxed_order`, `ivfflat.iterative_scan`), or raise `hnsw.ef_search`.",
                 "For a few large tenants or categories, a partial index per value (or partitioning) keeps "
                 "filtered queries exact and fast.",
                 "`vecmon_recall_shortfall_ratio` by `value`/`iterative` shows which setting would fix it.")),
        metrics=("vecmon_recall_app_returned_rows", "vecmon_recall_expected_rows")),
    AlertDef(
        name="VectorIndexNotUsed", group="pgvector", service="pgvector", severity="warning", for_=15 * MINUTE,
        compare="event",
        condition="the plan does not scan the index, or it is invalid",
        summary="The planner does not use vector index {{ $labels.schema }}.{{ $labels.index }}.",
        description="For the application's query shape on {{ $labels.schema }}.{{ $labels.table }} of "
                    "{{ $labels.target }}" + FILTER + ", the planner does not scan vector index "
                    "{{ $labels.index }} at any measured setting, or the index is invalid: queries run as exact "
                    "scans.",
        expr=lambda p: (f"max by ({INDEX_BY}) (vecmon_vector_index_used) == 0\nor\n"
                        "vecmon_vector_index_valid == 0"),
        fixture=_not_used_fixture,
        applies=collectors("recall", "vector_indexes", any_of=True),
        doc=Doc("The recall probe EXPLAINs the approximate query as the application writes it (index key, "
                "distance operator, partial-index predicate, filter, `ORDER BY ... LIMIT k`, application "
                "settings) and the plan does not scan the vector index at any measured setting; or the index is "
                "invalid (a failed `CREATE INDEX CONCURRENTLY`). Every such query compares the query vector with "
                "every row.",
                "seeds: \"Is the HNSW index being used? (vs sequential scan)\" (vecmon default: any time).",
                ("`EXPLAIN` the application's query: `ORDER BY embedding <=> $1 LIMIT k` must use the index's "
                 "distance operator (the opclass decides: `vector_cosine_ops` needs `<=>`), ascending, with no "
                 "expression around it.",
                 "A selective filter can make a btree plan cheaper: see `VectorFilteredQueryShortfall` and "
                 "consider a partial index.",
                 "Invalid index (`vecmon_vector_index_valid == 0`): `DROP INDEX CONCURRENTLY` and build it again.")),
        metrics=("vecmon_vector_index_used", "vecmon_vector_index_valid")),
    AlertDef(
        name="IvfflatTableGrown", group="pgvector", service="pgvector", severity="warning", for_=30 * MINUTE,
        threshold=0.5, fmt="percent",
        summary="IVFFlat index {{ $labels.schema }}.{{ $labels.index }} needs a rebuild.",
        description="Table {{ $labels.schema }}.{{ $labels.table }} of {{ $labels.target }} has grown by " + V +
                    " since IVFFlat index {{ $labels.index }} was built (threshold " + T + "); its lists no "
                    "longer fit the data.",
        expr=_growth_expr, fixture=_growth_fixture,
        applies=collectors("vector_indexes"),
        doc=Doc("Rows of the table now, divided by the rows it had when the IVFFlat index was (re)built, minus 1. "
                "IVFFlat picks its list centroids at build time; rows added later land in lists that no longer "
                "represent them, so recall drops at the same `probes`.",
                "seeds: \"IVFFlat needs re-indexing when data grows by 50%+\".",
                ("Rebuild without blocking writes: `REINDEX INDEX CONCURRENTLY schema.index` (check "
                 "`maintenance_work_mem` first).",
                 "Re-size `lists` for the new row count (rows / 1000 up to 1M rows, sqrt(rows) above).",
                 "For a table that keeps growing, consider HNSW, which needs no rebuild for inserts.")),
        metrics=("vecmon_vector_table_rows", "vecmon_vector_index_rows_at_build", "vecmon_vector_index_info")),
]


# ---- model APIs and spend

PROBE = {"target": "openai-embed", "provider": "openai", "model": "text-embedding-3-small"}


def _latency_expr(kind: str) -> Callable[[Params], str]:
    def expr(p: Params) -> str:
        h, by = "vecmon_model_api_request_duration_seconds", "sum by (target, provider, model)"
        selector = f'{{kind="{kind}", outcome="success"}}'
        return (f"(\n  {by} (rate({h}_sum{selector}[{p.w}]))\n  /\n"
                f"  ({by} (rate({h}_count{selector}[{p.w}])) > 0)\n) > {number(p.threshold)}")
    return expr


def _latency_fixture(kind: str) -> Callable[[Params, float], Fixture]:
    def fixture(p: Params, value: float) -> Fixture:
        labels = dict(PROBE, kind=kind, outcome="success")
        per_minute = 10  # observations per minute, each taking `value` seconds
        h = "vecmon_model_api_request_duration_seconds"
        return Fixture((counter(f"{h}_sum", labels, value * per_minute), counter(f"{h}_count", labels, per_minute)),
                       dict(PROBE), value, active_from=MINUTE, settle=p.window or 0)
    return fixture


def _latency_alert(kind: str, name: str, what: str) -> AlertDef:
    return AlertDef(
        name=name, group="model-apis", service="model-api", severity="warning", for_=10 * MINUTE,
        threshold=0.5, window=10 * MINUTE, fmt="duration",
        summary=what + " {{ $labels.target }} is slow.",
        description="Successful probes of {{ $labels.target }} ({{ $labels.model }}) took " + V + " on average over "
                    "the last " + W + " (threshold " + T + ").",
        expr=_latency_expr(kind), fixture=_latency_fixture(kind),
        applies=endpoints(kind),
        doc=Doc(f"Mean round trip (request start to last body byte) of vecmon's successful {kind} probes over the "
                "window. Probes send a short fixed input, so this is the provider's floor latency as seen from the "
                "vecmon host; real requests with larger batches take longer.",
                f"seeds: {'embedding API' if kind == 'embedding' else 're-ranker'} latency target "
                f"< {'100' if kind == 'embedding' else '200'}ms, alert > 500ms.",
                ("Check the provider's status page and `vecmon_model_api_server_duration_seconds` (server-side time: "
                 "if it is low the delay is in the network or a proxy).",
                 "Rate limiting shows as `rate_limited` outcomes and `vecmon_model_api_retries_total`.",
                 "Self-hosted (TEI, Ollama): GPU/CPU saturation, a cold model load "
                 "(`vecmon_model_api_server_duration_seconds{phase=\"load\"}`), batch size.")),
        metrics=("vecmon_model_api_request_duration_seconds",))


def _errors_expr(p: Params) -> str:
    r, by = "vecmon_model_api_requests_total", "sum by (target, provider, model, kind)"
    expr = (f"(\n  {by} (rate({r}{{outcome!=\"success\"}}[{p.w}]))\n  /\n"
            f"  ({by} (rate({r}[{p.w}])) > 0)\n) > {number(p.threshold)}")
    if p.minimum:
        expr += f"\nand on (target, provider, model, kind)\n{by} (increase({r}[{p.w}])) >= {number(p.minimum)}"
    return expr


def _errors_fixture(p: Params, value: float) -> Fixture:
    labels = dict(PROBE, kind="embedding")
    total = 10000 * max(1, int((p.minimum or 0) // 10000) + 1)
    errors, ok = split(value, total)
    r = "vecmon_model_api_requests_total"
    return Fixture((counter(r, dict(labels, outcome="success"), ok),
                    counter(r, dict(labels, outcome="http_5xx"), errors)),
                   labels, errors / total, active_from=MINUTE, settle=p.window or 0)


def _dims_fixture(p: Params, value: float) -> Fixture:
    labels = {"target": "openai-embed", "provider": "openai", "model": "text-embedding-3-small"}
    got = 768 if value else 1536
    return Fixture((gauge("vecmon_embedding_dimensions", labels, got),
                    gauge("vecmon_embedding_expected_dimensions", labels, 1536)), labels, got)


MODEL_APIS = [
    _latency_alert("embedding", "EmbeddingLatencyHigh", "Embedding endpoint"),
    _latency_alert("rerank", "RerankLatencyHigh", "Re-ranker endpoint"),
    AlertDef(
        name="ModelApiErrorRatioHigh", group="model-apis", service="model-api", severity="warning",
        for_=10 * MINUTE, threshold=0.05, window=30 * MINUTE, minimum=10, fmt="percent",
        minimum_doc="probe requests in the window the endpoint must have at least",
        summary="Requests to {{ $labels.target }} fail.",
        description=V + " of the probe requests to {{ $labels.target }} ({{ $labels.kind }}, {{ $labels.model }}) "
                    "failed over the last " + W + " (threshold " + T + ").",
        expr=_errors_expr, fixture=_errors_fixture, applies=endpoints(),
        doc=Doc("Share of vecmon's probe requests to an embedding or re-ranker endpoint whose outcome was not "
                "`success` (HTTP 4xx/5xx, rate limited, timeout, connection error, or an answer that failed "
                "validation), over the window, once the endpoint had at least `minimum` requests in it.",
                "seeds: high error rate > 5% of requests.",
                ("Break it down by outcome: `sum by (outcome) (increase(vecmon_model_api_requests_total"
                 "{target=\"...\"}[30m]))`; validation failures by reason in "
                 "`vecmon_model_api_validation_failures_total`.",
                 "`http_4xx`: an expired or revoked key, a renamed model; `rate_limited`: quota "
                 "(`vecmon_model_api_rate_limit_headroom_ratio`); `http_5xx`/`timeout`: the provider's status "
                 "page.",
                 "Fail over to a second provider or a cached path if the application has one.")),
        metrics=("vecmon_model_api_requests_total",)),
    AlertDef(
        name="EmbeddingDimensionMismatch", group="model-apis", service="model-api", severity="critical", for_=0.0,
        compare="event",
        condition="dimensions differ from the expected ones",
        summary="{{ $labels.target }} returns embeddings of the wrong dimension.",
        description="{{ $labels.target }} ({{ $labels.model }}) returned {{ $value }}-dimensional embeddings, which "
                    "is not the dimension the config or the pgvector column (dimensions_from) expects.",
        expr=lambda p: ("vecmon_embedding_dimensions\n!= on (target, provider, model)\n"
                        "vecmon_embedding_expected_dimensions"),
        fixture=_dims_fixture, applies=endpoints("embedding"),
        doc=Doc("The last embedding answer's vector length differs from the expected one (`dimensions`, or the "
                "declared dimension of the `dimensions_from` column). Inserting such vectors fails, and querying "
                "with them fails or compares incompatible spaces.",
                "vecmon default (any mismatch).",
                ("Check whether the model (or its default `dimensions`) changed at the provider or in the "
                 "application's config.",
                 "Stop writers that embed with the new model until the column and index are migrated "
                 "(new column, re-embed, rebuild the index).")),
        metrics=("vecmon_embedding_dimensions", "vecmon_embedding_expected_dimensions")),
]

COST = [
    AlertDef(
        name="DailySpendOverBudget", group="cost", service="cost", severity="warning", for_=5 * MINUTE,
        threshold=1.0, fmt="percent",
        summary="Budget {{ $labels.target }} has spent <threshold> of its daily limit.",
        description="Budget {{ $labels.target }} has spent " + V + " of its daily limit today (UTC; threshold " + T +
                    ").",
        expr=lambda p: f'vecmon_cost_budget_used_ratio{{period="day"}} > {number(p.threshold)}',
        fixture=lambda p, v: Fixture(
            (gauge("vecmon_cost_budget_used_ratio", {"target": "embeddings", "period": "day"}, v),),
            {"target": "embeddings", "period": "day"}, v),
        applies=DAILY_BUDGET,
        doc=Doc("Spend of the budget's sources today (UTC), from the probes' computed cost and the providers' cost "
                "APIs, divided by `daily_usd`. A threshold below 1 warns before the limit is reached.",
                "seeds: budget alerts at 50%, 80% and 100% (vecmon default: 100%).",
                ("See which source spends: `vecmon_cost_provider_line_item_spend_usd`, "
                 "`increase(vecmon_model_api_cost_usd_total[1h])`.",
                 "Look for a re-embedding job or a retry loop in the application; a cache miss storm shows in "
                 "`vecmon_redis_keyspace_misses_total`.",
                 "Set a hard limit at the provider if the spend must stop.")),
        metrics=("vecmon_cost_budget_used_ratio",)),
]

from alerts.rules_app import APP_ALERTS  # noqa: E402 - it builds on the definitions above
from alerts.rules_pg_signals import pg_signal_alerts  # noqa: E402 - likewise

CATALOG: list[AlertDef] = [*SELF, *POSTGRES, *pg_signal_alerts(), *PGVECTOR, *MODEL_APIS, *COST, *APP_ALERTS]
ALERTS: dict[str, AlertDef] = {a.name: a for a in CATALOG}
GROUP_ORDER = ("self", "postgres", "pgvector", "model-apis", "cost", "applications")


# --------------------------------------------------------------------------- rules for a config


def _fill(text: str, definition: AlertDef, p: Params, for_: float) -> str:
    replacements = {V: value_template(definition.fmt), F: duration(for_)}
    if p.threshold is not None:
        replacements[T] = threshold_text(definition.fmt, p.threshold)
    else:
        replacements[T] = definition.threshold_text
    if p.window is not None:
        replacements[W] = duration(p.window)
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def threshold_text(fmt: str, value: float) -> str:
    """A threshold in an annotation or the README: like the value it is compared with, but durations
    in Prometheus' own notation (``1m``, ``500ms``) and byte sizes with a ``B``."""
    if fmt == "duration":
        return duration(value)
    return render_value(fmt, value) + ("B" if fmt == "bytes" else "")


def runbook_url(settings: AlertingSettings, name: str) -> str:
    return f"{settings.runbook_base()}#{name.lower()}"


def build_rule(definition: AlertDef, config: Any, settings: AlertingSettings) -> Rule:
    override = settings.override(definition.name)
    p = definition.params(config, settings)
    severity = override.severity or definition.severity
    for_ = definition.for_ if override.for_ is None else override.for_
    labels = {"severity": severity, "service": definition.service, **settings.labels, **override.labels}
    annotations = {
        "summary": _fill(definition.summary, definition, p, for_),
        "description": _fill(definition.description, definition, p, for_),
        "runbook_url": runbook_url(settings, definition.name),
    }
    return Rule(definition, p, severity, for_, labels, annotations, definition.expr(p))


def threshold_rules(config: Config) -> list[Rule]:
    """The enabled, applicable threshold alerts of ``config``, in catalog order."""
    settings: AlertingSettings = config.alerting
    rules = []
    for definition in CATALOG:
        override = settings.override(definition.name)
        if override.enabled is False or (override.enabled is None and not definition.applies(config)):
            continue
        rules.append(build_rule(definition, config, settings))
    return rules


def rule_groups(rules: list[Rule]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        groups.setdefault(rule.definition.group, []).append(rule.as_yaml())
    return [{"name": f"vecmon-{g}", "rules": groups[g]} for g in GROUP_ORDER if g in groups]
