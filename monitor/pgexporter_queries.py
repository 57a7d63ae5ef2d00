"""postgres_exporter's queries.yaml (``--extend.query-path``), read unchanged into custom query plans.

The format (postgres_exporter's legacy ``exporter/queries.go`` and ``namespace.go``)::

    pg_replication:                      # the namespace: metric names are <namespace>_<column>
      query: "SELECT ... AS lag"
      master: true                       # see below
      cache_seconds: 30                  # results are reused for this long
      runonserver: ">=10.0.0"            # semver range of server versions the query runs on
      metrics:
        - lag:
            usage: "GAUGE"               # DISCARD | LABEL | COUNTER | GAUGE | MAPPEDMETRIC | DURATION | HISTOGRAM
            description: "Replication lag behind master in seconds"
            metric_mapping: {a: 1}       # MAPPEDMETRIC: text value -> number
            pg_version: ">=10.0.0"       # the column is read only on these versions

How vecmon maps it:

- names are postgres_exporter's: ``<namespace>_<column>`` (DURATION: ``..._milliseconds``), plus
  vecmon's ``target`` label instead of postgres_exporter's ``server``; COUNTER columns are exported
  as *untyped* because their names have no ``_total`` (the counter type would rename them);
- ``master: true`` runs the query "only on the database of the DSN", not on auto-discovered
  databases. Every vecmon target is its own DSN, so the query runs on every target's own database,
  exactly as postgres_exporter does without ``--auto-discover-databases`` (scope ``database``);
- ``cache_seconds``: vecmon runs queries in the background, so it becomes the query's interval
  (never shorter than the target's interval);
- a NULL is not exported, without a warning (postgres_exporter exports NaN: ``idx_scan`` of a table
  without an index, say); an unparsable value is skipped with a warning (postgres_exporter drops it);
  columns the metrics list does not name are not exported (postgres_exporter guesses an untyped
  metric; vecmon declares every metric up front) and are named in a warning.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo

from collectors.base import MetricSpec
from collectors.custom_queries import ColumnPlan, QueryPlan, VersionRange
from monitor.yaml_locations import format_path, line_map, nearest_line

log = logging.getLogger(__name__)

COMPAT_ROW_LIMIT = 10_000  # postgres_exporter has no limit; this one only bounds runaway results
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_SEMVER = re.compile(r"^(!=|>=|<=|==|=|>|<|!)?\s*v?(\d+|x|X|\*)(?:\.(\d+|x|X|\*))?(?:\.(\d+|x|X|\*))?$")


class _Lenient(BaseModel):
    """postgres_exporter ignores unknown keys (yaml.v2, not strict); vecmon warns about them."""

    model_config = ConfigDict(extra="allow", frozen=True, hide_input_in_errors=True)


class PgExporterColumn(_Lenient):
    usage: Literal["DISCARD", "LABEL", "COUNTER", "GAUGE", "MAPPEDMETRIC", "DURATION", "HISTOGRAM"]
    description: str = ""
    metric_mapping: dict[str, float] = Field(default_factory=dict)
    pg_version: str | None = None


class PgExporterQuery(_Lenient):
    query: str = Field(min_length=1)
    metrics: list[dict[str, PgExporterColumn]] = Field(min_length=1)
    master: bool = False
    cache_seconds: int = Field(0, ge=0)
    runonserver: str | None = None


def semver_num(major: int, minor: int, patch: int) -> int:
    """A semantic version as server_version_num: 10.4.0 -> 100004, 9.6.3 -> 90603."""
    return major * 10000 + minor if major >= 10 else major * 10000 + minor * 100 + patch


def parse_semver_range(text: str) -> VersionRange:
    """blang/semver ranges as postgres_exporter writes them: ``>=10.0.0 <13.0.0 || >=14.0.0``."""
    alternatives = []
    for alternative in text.split("||"):
        conditions = []
        for part in re.findall(r"(?:!=|>=|<=|==|=|>|<|!)?\s*v?[\w.*]+", alternative):
            match = _SEMVER.match(part.strip())
            if match is None:
                raise ValueError(f"invalid version range {text!r}")
            op, *parts = match.groups()
            op = {"==": "=", "!": "!=", None: "="}.get(op, op)
            if any(p is not None and not p.isdigit() for p in parts):  # 10.x: a wildcard range
                numbers = [int(p) for p in parts if p is not None and p.isdigit()]
                low = semver_num(*(numbers + [0, 0, 0])[:3])
                high = semver_num(*(numbers[:-1] + [numbers[-1] + 1] + [0, 0, 0])[:3]) if numbers else 10**9
                conditions += [(">=", low), ("<", high)] if op == "=" else [(op, low)]
                continue
            conditions.append((op, semver_num(*[int(p) if p else 0 for p in parts])))
        if not conditions:
            raise ValueError(f"invalid version range {text!r}")
        alternatives.append(tuple(conditions))
    return tuple(alternatives)


def plans_from_text(text: str, source: str) -> list[QueryPlan]:
    """Parse a queries.yaml; raises ValueError listing every problem as ``file:line: path: message``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{source}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of namespace: query")
    lines = line_map(root) if root is not None else {}
    errors: list[str] = []

    def error(loc: tuple[object, ...], message: str) -> None:
        line = nearest_line(lines, loc)
        errors.append(f"{source}{':' + str(line) if line else ''}: {format_path(loc)}: {message}")

    plans = []
    for namespace, body in data.items():
        if not isinstance(namespace, str) or not METRIC_NAME.match(namespace):
            error((namespace,), "invalid namespace (it is the metric name prefix)")
            continue
        try:
            query = PgExporterQuery.model_validate(body)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
                error((namespace, *loc), err["msg"].removeprefix("Value error, "))
            continue
        try:
            plans.append(_plan(namespace, query, source))
        except ValueError as exc:
            error((namespace,), str(exc))
    if errors:
        raise ValueError(f"{len(errors)} error(s) in {source}: " + "; ".join(errors))
    return plans


def _plan(namespace: str, query: PgExporterQuery, source: str) -> QueryPlan:
    for key in query.model_extra or {}:
        log.warning("%s: %s.%s: unknown key, ignored (as postgres_exporter does)", source, namespace, key)
    columns: list[tuple[str, PgExporterColumn, int]] = []
    for index, item in enumerate(query.metrics):
        for column, mapping in item.items():
            if not METRIC_NAME.match(f"{namespace}_{column}") or not re.match(r"^[a-zA-Z_]\w*$", column):
                raise ValueError(f"metrics[{index}]: invalid column name {column!r}")
            columns.append((column, mapping, index))
    labels = tuple(column for column, mapping, _ in columns if mapping.usage == "LABEL")
    if "target" in labels:
        raise ValueError("a LABEL column named 'target' clashes with the label vecmon adds")
    plans = []
    for column, mapping, index in columns:
        if mapping.usage in ("DISCARD", "LABEL"):
            continue
        help_text = mapping.description or f"{column} from the {namespace} query"
        name, kind, convert = f"{namespace}_{column}", "gauge", "number"
        if mapping.usage == "COUNTER":
            kind = "untyped"
        elif mapping.usage == "DURATION":
            name, convert = f"{name}_milliseconds", "duration_ms"
        elif mapping.usage == "MAPPEDMETRIC":
            convert = "mapped"
        elif mapping.usage == "HISTOGRAM":
            kind, convert = "histogram", "histogram"
        try:
            versions = parse_semver_range(mapping.pg_version) if mapping.pg_version else ()
        except ValueError as exc:
            raise ValueError(f"metrics[{index}].{column}.pg_version: {exc}") from None
        plans.append(ColumnPlan(column, MetricSpec(name, kind, help_text, labels), convert,
                                tuple(mapping.metric_mapping.items()), versions))
    if not plans:
        raise ValueError("no GAUGE, COUNTER, MAPPEDMETRIC, DURATION or HISTOGRAM column")
    try:
        versions = parse_semver_range(query.runonserver) if query.runonserver else ()
    except ValueError as exc:
        raise ValueError(f"runonserver: {exc}") from None
    return QueryPlan(name=namespace, sql=query.query, source=f"{source}: {namespace}", labels=labels,
                     metrics=tuple(plans), scope="database", min_interval=float(query.cache_seconds),
                     versions=versions, row_limit=COMPAT_ROW_LIMIT, strict_columns=False,
                     warn_null=False)


@dataclass(frozen=True)
class QueriesYamlFile:
    """A queries.yaml read when the config is loaded: its path (for messages) and its query plans."""

    path: str
    plans: tuple[QueryPlan, ...]

    def __str__(self) -> str:
        return self.path


def read_queries_yaml(value: Any, info: ValidationInfo) -> Any:
    """BeforeValidator of ``extend_query_path``: a relative path is relative to the config file."""
    if isinstance(value, QueriesYamlFile) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError("expected a file path")
    base = (info.context or {}).get("base_dir") or Path(".")
    path = Path(base) / Path(value).expanduser()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read queries file {str(path)!r}: {exc.strerror}") from None
    return QueriesYamlFile(str(path), tuple(plans_from_text(text, str(path))))


QueriesYamlPath = Annotated[QueriesYamlFile, BeforeValidator(read_queries_yaml)]
