"""The Go templates of the generated annotations, expanded in Python for the promtool tests' expected
alerts (promtool compares the rendered text).

Only the subset the generators write: ``$labels.x``, ``$value`` (optionally piped into one of
Prometheus' humanize functions or printf, :data:`alerts.promql.FORMATS`) and
``with $labels.x`` ... ``.`` ... ``end``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from alerts.promql import FORMATS

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

    def substitute(match: re.Match[str]) -> str:
        if match.group(2):
            return labels.get(match.group(2), "")
        func = match.group(3)
        return _FUNCS[func](value) if func else go_value(value)
    rendered = _TEMPLATE.sub(substitute, template)
    if "{{" in rendered:
        raise ValueError(f"template not supported by the test generator: {template!r}")
    return rendered


def expected_alert(labels: dict[str, str], template_labels: dict[str, str], annotations: dict[str, str],
              value: float) -> dict[str, Any]:
    """An expected alert: all its labels, and its annotations rendered with the expression's labels."""
    return {"exp_labels": dict(sorted(labels.items())),
            "exp_annotations": {k: render(v, template_labels, value) for k, v in annotations.items()}}
