"""``vecmon import query-exporter FILE...``: turn a query-exporter config into vecmon config.

query-exporter (albertodonato/query-exporter) has three sections: ``databases`` (SQLAlchemy DSNs),
``metrics`` (name, type, description, labels) and ``queries`` (SQL, interval, timeout, the
databases and metrics it feeds). vecmon gets:

- ``databases``: one target per PostgreSQL database, named like the query-exporter database so the
  ``target`` label has the values the ``database`` label had. The DSN loses its SQLAlchemy driver
  (``postgresql+psycopg2://`` -> ``postgresql://``) and its password: a password in the file becomes
  ``${VECMON_<DB>_PASSWORD}``, because vecmon never writes secrets into files it generates.
  Other dialects (MySQL, Oracle...) are left out.
- ``queries``: one per query, its metrics named ``vecmon_custom_<metric>`` (counters ``..._total``).
- Everything that cannot be carried over (histogram, summary and enum metrics, ``parameters``,
  cron ``schedule``, ``increment``, ``connect-sql``, database labels...) is listed in the notes
  at the top of the output, each naming what it concerns.

``!env VAR`` becomes vecmon's ``${VAR}``; ``!file`` and ``!include`` are read relative to the file
that uses them, as query-exporter does.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Required, TypedDict

import yaml

from collectors.settings.custom_queries import CUSTOM_PREFIX


class ImportFailed(Exception):
    """The input cannot be imported at all (unreadable, not a query-exporter config)."""


def _loader_for(path: Path) -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    # ScalarNode: construct_scalar raises a YAMLError for any other node
    def env(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
        return "${" + loader.construct_scalar(node).strip() + "}"

    def file(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
        return (path.parent / loader.construct_scalar(node).strip()).read_text()

    def include(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        return read_yaml(path.parent / loader.construct_scalar(node).strip())

    Loader.add_constructor("!env", env)
    Loader.add_constructor("!file", file)
    Loader.add_constructor("!include", include)
    return Loader


def read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_loader_for(path))  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ImportFailed(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ImportFailed(f"{path}: invalid YAML: {exc}") from None


def identifier(name: str) -> str:
    text = re.sub(r"\W", "_", str(name))
    return text if re.match(r"^[A-Za-z_]", text) else f"q_{text}"


class TargetEntry(TypedDict, total=False):
    """One entry of the output's ``databases``."""

    name: Required[str]
    dsn: str
    password: str  # a ${VAR} reference, never a password
    max_connections: int


class MetricColumn(TypedDict, total=False):
    """One entry of a query's ``metrics``."""

    column: Required[str]
    type: Required[str]  # gauge | counter
    help: Required[str]
    name: Required[str]
    labels: list[str]


class QueryEntry(TypedDict, total=False):
    """One entry of the output's ``queries``."""

    name: Required[str]
    sql: Required[str]
    labels: list[str]
    metrics: list[MetricColumn]
    targets: list[str]
    interval: Any  # copied as the query-exporter file has it
    timeout: Any  # likewise


@dataclass
class Imported:
    databases: list[TargetEntry] = field(default_factory=list)
    queries: list[QueryEntry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)  # (query-exporter metric, vecmon metric)

    def render(self, sources: list[str]) -> str:
        lines = [f"# vecmon config imported from query-exporter: {', '.join(sources)}"]
        if self.renames:
            lines.append("# Metric names (the 'database' label is now 'target', with the same values):")
            lines += [f"#   {old} -> {new}" for old, new in self.renames]
        if self.notes:
            lines.append("# Not carried over / to check:")
            lines += [f"#   - {note}" for note in self.notes]
        body = yaml.dump({"databases": self.databases, "queries": self.queries}, Dumper=_Dumper,
                         sort_keys=False, allow_unicode=True, width=110)
        return "\n".join(lines) + "\n" + body


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value.strip() + "\n" if style else value, style=style)


_Dumper.add_representer(str, _str)


def _merge(sources: list[Path]) -> dict[str, dict[Any, Any]]:
    """The ``databases``, ``metrics`` and ``queries`` sections of every source (YAML keys and values)."""
    merged: dict[str, dict[Any, Any]] = {"databases": {}, "metrics": {}, "queries": {}}
    for source in sources:
        data = read_yaml(source)
        if not isinstance(data, dict):
            raise ImportFailed(f"{source}: expected a mapping with databases, metrics and queries")
        for section in merged:
            entries = data.get(section) or {}
            if not isinstance(entries, dict):
                raise ImportFailed(f"{source}: {section}: expected a mapping")
            duplicated = sorted(set(entries) & set(merged[section]))
            if duplicated:
                raise ImportFailed(f"{source}: {section}: duplicated entries {', '.join(map(str, duplicated))}")
            merged[section].update(entries)
    return merged


def import_query_exporter(sources: list[Path]) -> Imported:
    data = _merge(sources)
    result = Imported()
    databases = {name: _database(name, spec, result) for name, spec in data["databases"].items()}
    targets = {name: target for name, target in databases.items() if target is not None}
    result.databases = list(targets.values())
    used: set[str] = set()
    for name, spec in data["queries"].items():
        query = _query(str(name), spec if isinstance(spec, dict) else {}, data["metrics"], targets, used, result)
        if query is not None:
            result.queries.append(query)
    if data["queries"] and not result.queries:
        result.notes.append("no query could be imported")
    return result


def _database(name: Any, spec: Any, result: Imported) -> TargetEntry | None:
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    target_name = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name))
    spec = spec if isinstance(spec, dict) else {}
    dsn = spec.get("dsn")
    entry: TargetEntry = {"name": target_name}
    if isinstance(dsn, str) and dsn.startswith("${") and dsn.endswith("}"):
        entry["dsn"] = dsn
        result.notes.append(f"database {name}: dsn comes from {dsn}; it must hold a libpq URI (postgresql://...), "
                            "not an SQLAlchemy one with a +driver")
    else:
        try:
            if isinstance(dsn, dict):
                url = URL.create(str(dsn.get("dialect", "")), username=dsn.get("user"), password=dsn.get("password"),
                                 host=dsn.get("host"), port=dsn.get("port"), database=dsn.get("database"),
                                 query={k: str(v) for k, v in (dsn.get("options") or {}).items()})
            else:
                url = make_url(str(dsn))
        except (ArgumentError, ValueError, TypeError):
            result.notes.append(f"database {name}: left out, its dsn does not parse")
            return None
        if url.get_backend_name() != "postgresql":
            result.notes.append(f"database {name}: left out, {url.get_backend_name()} is not PostgreSQL")
            return None
        password = url.password
        url = URL.create("postgresql", username=url.username, host=url.host, port=url.port,
                         database=url.database, query=url.query)  # URL.set(password=None) keeps it
        entry["dsn"] = url.render_as_string(hide_password=False)
        if password:
            if str(password).startswith("${"):
                entry["password"] = str(password)
            else:
                variable = "VECMON_" + re.sub(r"\W", "_", target_name).upper() + "_PASSWORD"
                entry["password"] = "${" + variable + "}"
                result.notes.append(f"database {name}: set {variable} to its password (vecmon does not write "
                                    "passwords into generated files)")
    pool = spec.get("connection-pool") or {}
    if isinstance(pool, dict) and pool.get("size"):
        entry["max_connections"] = max(1, min(20, int(pool.get("size", 1)) + int(pool.get("max-overflow", 0))))
    if spec.get("connect-sql"):
        result.notes.append(f"database {name}: connect-sql is not imported (vecmon sessions are read-only, with "
                            "vecmon's own settings)")
    if spec.get("labels"):
        result.notes.append(f"database {name}: labels {dict(spec['labels'])} are not imported (vecmon has no "
                            "constant labels; add them with Prometheus relabelling)")
    return entry


def _query(name: str, spec: dict[Any, Any], metrics: dict[Any, Any], targets: dict[Any, TargetEntry], used: set[str],
           result: Imported) -> QueryEntry | None:
    qname = identifier(name)
    if spec.get("parameters"):
        result.notes.append(f"query {name}: left out, parameters are not supported (write one query per set)")
        return None
    databases = [d for d in spec.get("databases") or [] if d in targets]
    if not databases:
        result.notes.append(f"query {name}: left out, none of its databases was imported")
        return None
    dropped = [str(d) for d in spec.get("databases") or [] if d not in targets]
    if dropped:
        result.notes.append(f"query {name}: runs only on {', '.join(map(str, databases))} (not imported: "
                            f"{', '.join(dropped)})")
    columns: list[MetricColumn] = []
    label_sets = []
    for metric_name in spec.get("metrics") or []:
        metric = metrics.get(metric_name)
        if not isinstance(metric, dict):
            result.notes.append(f"query {name}: metric {metric_name} is not defined; left out")
            continue
        kind = metric.get("type")
        if kind not in ("gauge", "counter"):
            result.notes.append(f"query {name}: metric {metric_name} ({kind}) left out: custom queries export "
                                "gauges and counters")
            continue
        labels = [str(label) for label in metric.get("labels") or []]
        if "target" in labels:
            result.notes.append(f"query {name}: metric {metric_name} left out: its label 'target' clashes with "
                                "vecmon's target label")
            continue
        exported = identifier(metric_name)
        if exported in used:  # query-exporter lets several queries update one metric; vecmon does not
            exported = f"{exported}_{qname}"
            result.notes.append(f"query {name}: metric {metric_name} is also fed by another query; exported as "
                                f"{CUSTOM_PREFIX}{exported}")
        used.add(exported)
        new_name = CUSTOM_PREFIX + exported + ("_total" if kind == "counter" and not exported.endswith("_total")
                                               else "")
        result.renames.append((str(metric_name), new_name))
        column: MetricColumn = {"column": str(metric_name), "type": kind,
                  "help": metric.get("description") or f"{metric_name} (imported from query-exporter)",
                  "name": exported}
        if metric.get("increment"):
            result.notes.append(f"query {name}: metric {metric_name} has increment: true; vecmon exports the value "
                                "the query returns (make the query return the running total)")
        if metric.get("expiration"):
            result.notes.append(f"query {name}: metric {metric_name}: expiration is not needed; a row the query no "
                                "longer returns is not exported after the next run")
        columns.append(column)
        label_sets.append(labels)
    if not columns:
        result.notes.append(f"query {name}: left out, none of its metrics can be imported")
        return None
    sql = str(spec.get("sql", "")).strip()
    if "\\:" in sql:
        sql = sql.replace("\\:", ":")  # query-exporter's escape for a literal colon
    query: QueryEntry = {"name": qname, "sql": sql}
    if all(labels == label_sets[0] for labels in label_sets):
        if label_sets[0]:
            query["labels"] = label_sets[0]
    else:
        for column, labels in zip(columns, label_sets, strict=True):  # appended together
            column["labels"] = labels
    query["metrics"] = columns
    if sorted(databases) != sorted(targets):
        query["targets"] = databases
    if spec.get("interval") is not None:
        query["interval"] = spec["interval"]
    elif spec.get("schedule"):
        result.notes.append(f"query {name}: schedule {spec['schedule']!r} (cron) is not supported; it runs at the "
                            "target's interval; set interval")
    else:
        result.notes.append(f"query {name}: had no interval (ran at each scrape); it runs at the target's "
                            "interval (30s by default)")
    if spec.get("timeout") is not None:
        query["timeout"] = spec["timeout"]
    return query


def run_import(files: list[str], output: str | None) -> int:
    """``vecmon import query-exporter``: exit 0, or 2 when the input cannot be read."""
    try:
        result = import_query_exporter([Path(f) for f in files])
    except ImportFailed as exc:
        print(f"vecmon: {exc}", file=sys.stderr)
        return 2
    text = result.render(files)
    if output:
        Path(output).write_text(text)
        print(f"{output}: {len(result.databases)} database(s), {len(result.queries)} query(ies), "
              f"{len(result.notes)} note(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
