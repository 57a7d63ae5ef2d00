"""Where a value is in a YAML document: paths such as ``databases[0].interval`` and their lines,
for error messages (the config loader and the queries.yaml importer share them)."""

from __future__ import annotations

from typing import Any, TypeAlias

import yaml

YamlPath: TypeAlias = tuple[object, ...]  # mapping keys (any YAML scalar) and list indexes from the root


def format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def line_map(node: yaml.Node, path: YamlPath = (), lines: dict[YamlPath, int] | None = None) -> dict[YamlPath, int]:
    """Map YAML path tuples to 1-based line numbers of the node that defines them."""
    lines = {} if lines is None else lines
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = path + (key.value,)
            lines[child] = key.start_mark.line + 1
            line_map(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            line_map(value, path + (index,), lines)
    return lines


def nearest_line(lines: dict[YamlPath, int], loc: YamlPath) -> int | None:
    """The line of ``loc``, or of the nearest enclosing node the map has."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None
