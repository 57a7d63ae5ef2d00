"""Generate the README's metric and config references from the code, so they cannot drift.

``python -m monitor.docs README.md`` rewrites the sections between the markers
``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``; the tests fail
when the README is out of date.
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path

from pydantic import BaseModel, SecretStr

from alerts.docs import alert_reference
from collectors.custom_queries import QUERY_METRICS
from collectors.registry import all_collector_classes, api_collector_classes
from collectors.self_metrics import BUILD_INFO, SELF_METRICS
from monitor.config import Config


def metric_reference() -> str:
    lines = ["| metric | type | labels | collector | description |", "|---|---|---|---|---|"]
    classes = all_collector_classes() + api_collector_classes()
    sources = [("(self)", SELF_METRICS)] + [(cls.name, cls.METRICS) for cls in classes]
    sources.append(("query:&lt;name&gt;", QUERY_METRICS))  # custom queries (their own metrics come from the config)
    for source, specs in sources:
        for spec in specs:
            labels = ", ".join(["target", *spec.labels]) if spec.name != BUILD_INFO.name else ", ".join(
                spec.labels)
            lines.append(f"| `{spec.exposed_name}` | {spec.kind} | {labels} | {source} | {spec.help} |")
    return "\n".join(lines)


def _type_name(annotation: typing.Any) -> str:
    """A short readable type: ``duration``, ``int``, ``secret``, ``one of a, b``; nullable types drop None."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return "duration" if "parse_duration" in str(args[1:]) else _type_name(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, __import__("types").UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if annotation is SecretStr:
        return "secret"
    return getattr(annotation, "__name__", str(annotation))


def _walk(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        nested = [a for a in typing.get_args(annotation) or (annotation,)
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if typing.get_origin(annotation) is list:
            nested = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
            path += "[]"
        elif typing.get_origin(annotation) is dict:
            nested = [a for a in typing.get_args(annotation)[1:] if isinstance(a, type) and issubclass(a, BaseModel)]
            path += ".<name>"
        default = "required" if field.is_required() else (
            "" if field.default_factory is not None else f"`{field.default!r}`".replace("'", ""))
        kind = "duration" if "parse_duration" in str(field.metadata) else _type_name(annotation)
        if nested:
            kind = "list" if path.endswith("[]") else "mapping"
        rows.append(f"| `{path}` | {kind} | {default} | {field.description or ''} |")
        for sub in nested:
            _walk(sub, f"{path}.", rows)


def config_reference() -> str:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    _walk(Config, "", rows)
    return "\n".join(rows)


SECTIONS = {"config": config_reference, "metrics": metric_reference, "alerts": alert_reference}


def render(readme: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->)\n.*?(<!-- END GENERATED: {name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README has no generated section {name!r}")
        content = make()
        readme = pattern.sub(lambda m: f"{m.group(1)}\n{content}\n{m.group(2)}", readme)
    return readme


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "README.md")
    path.write_text(render(path.read_text()))
    print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
