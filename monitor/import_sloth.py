"""``vecmon import sloth FILE...``: turn Sloth's ``prometheus/v1`` SLO specs into vecmon's ``slos:``.

Sloth (slok/sloth) spec: ``version: prometheus/v1``, ``service``, ``labels``, and ``slos`` with
``name``, ``objective`` (a percentage), ``description``, ``labels``, ``sli`` (``events`` with
``error_query``/``total_query``, Sloth's ``errorQuery``/``totalQuery``; ``raw``; ``plugin``) and
``alerting`` (``name``, ``labels``, ``annotations``, ``page_alert``, ``ticket_alert``). vecmon gets
one SLO per Sloth SLO:

- ``objective`` as a fraction (99.9 -> 0.999), ``service``, ``description``;
- ``labels``: the spec's and the SLO's labels; the alerts' labels (``alerting.labels`` and the
  page/ticket alert labels but ``severity``, which vecmon sets) go to ``alerting.labels``;
- ``sli.events``: the two queries as they are (vecmon fills ``{{.window}}`` like Sloth);
- ``page_alert``/``ticket_alert`` ``disable: true``: ``alerting.page``/``ticket: false``.

Left out, each listed in the notes at the top of the output (and on standard error): ``raw`` SLIs
(vecmon's period SLI is weighted by events, which an error ratio alone does not give), ``plugin``
SLIs, the alert ``name`` (vecmon's SLO alerts are SLOErrorBudgetBurn etc., told apart by
``sloth_slo``), ``annotations``, and severities other than vecmon's (critical, warning, info).
"""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from monitor.importers import ImportFailed, _Dumper

SEVERITIES = ("critical", "warning", "info")


def _get(mapping: dict[str, Any], snake: str) -> Any:
    """A key in Sloth's YAML spelling (``errorQuery``) or the snake_case one (``error_query``)."""
    camel = snake.split("_")[0] + "".join(p.title() for p in snake.split("_")[1:])
    return mapping.get(snake, mapping.get(camel))


def _fraction(percent: Any, where: str) -> float:
    try:
        value = Decimal(str(percent)) / 100
    except InvalidOperation:
        raise ImportFailed(f"{where}: objective {percent!r} is not a number") from None
    if not 0 < value < 1:
        raise ImportFailed(f"{where}: objective {percent!r} is not a percentage between 0 and 100")
    return float(value)


def _alerting(slo: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    alerting = slo.get("alerting") or {}
    out: dict[str, Any] = {}
    labels = {str(k): str(v) for k, v in (alerting.get("labels") or {}).items()}
    if alerting.get("name"):
        notes.append(f"{where}: alert name {alerting['name']!r} not kept (vecmon's SLO alerts are "
                     f"SLOErrorBudgetBurn, SLOSLIDataMissing, SLOErrorBudgetExhausted, with sloth_slo)")
    if alerting.get("annotations"):
        notes.append(f"{where}: alert annotations not kept ({', '.join(sorted(alerting['annotations']))})")
    for tier in ("page", "ticket"):
        spec = _get(alerting, f"{tier}_alert") or {}
        if spec.get("disable"):
            out[tier] = False
        tier_labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
        severity = tier_labels.pop("severity", None)
        if severity in SEVERITIES:
            out[f"{tier}_severity"] = severity
        elif severity is not None and not spec.get("disable"):
            notes.append(f"{where}: {tier} alert severity {severity!r} is not one of vecmon's "
                         f"({', '.join(SEVERITIES)}); the default is kept")
        for key, value in tier_labels.items():
            if labels.get(key, value) != value:
                notes.append(f"{where}: label {key} differs between the alerts; {labels[key]!r} kept")
            labels.setdefault(key, value)
    if labels:
        out["labels"] = labels
    return out


def convert(spec: Any, source: str, notes: list[str]) -> list[dict[str, Any]]:
    """vecmon SLO entries for one Sloth spec document."""
    if not isinstance(spec, dict) or spec.get("version") != "prometheus/v1":
        raise ImportFailed(f"{source}: not a Sloth spec (expected version: prometheus/v1)")
    service = spec.get("service")
    if not service:
        raise ImportFailed(f"{source}: the spec has no service")
    out = []
    for i, slo in enumerate(spec.get("slos") or []):
        where = f"{source}: slos[{i}] ({slo.get('name', '?')})"
        sli = slo.get("sli") or {}
        events = sli.get("events")
        if events is None:
            kind = "raw" if "raw" in sli else "plugin" if "plugin" in sli else "missing"
            notes.append(f"{where}: left out: a {kind} SLI (vecmon needs events: error_query and total_query, "
                         f"as its period SLI is weighted by events)")
            continue
        entry: dict[str, Any] = {"name": slo["name"], "service": service,
                                 "objective": _fraction(slo.get("objective"), where)}
        if slo.get("description"):
            entry["description"] = slo["description"]
        entry["sli"] = {"events": {"error_query": _get(events, "error_query"),
                                   "total_query": _get(events, "total_query")}}
        labels = {**{str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
                  **{str(k): str(v) for k, v in (slo.get("labels") or {}).items()}}
        if labels:
            entry["labels"] = labels
        alerting = _alerting(slo, where, notes)
        if alerting:
            entry["alerting"] = alerting
        out.append(entry)
    return out


def import_sloth(files: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    slos: list[dict[str, Any]] = []
    notes: list[str] = []
    for path in files:
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise ImportFailed(f"{path}: {exc}") from None
        for document in documents:
            if document is not None:
                slos.extend(convert(document, str(path), notes))
    return slos, notes


def render(slos: list[dict[str, Any]], notes: list[str], sources: list[str]) -> str:
    lines = [f"# vecmon SLOs imported from Sloth: {', '.join(sources)}",
             "# Check them with `vecmon check-config`; the period is 30d unless you set one (Sloth's default)."]
    if notes:
        lines.append("# Not carried over / to check:")
        lines += [f"#   - {note}" for note in notes]
    body = yaml.dump({"slos": slos}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(lines) + "\n" + body


def run_import_sloth(files: list[str], output: str | None) -> int:
    try:
        slos, notes = import_sloth([Path(f) for f in files])
    except ImportFailed as exc:
        print(f"vecmon: {exc}", file=sys.stderr)
        return 2
    text = render(slos, notes, files)
    for note in notes:
        print(f"vecmon import sloth: {note}", file=sys.stderr)
    if output:
        Path(output).write_text(text)
        print(f"{output}: {len(slos)} SLO(s), {len(notes)} note(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
