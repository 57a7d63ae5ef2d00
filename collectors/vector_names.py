"""Names in the config and the catalog: ``schema.name`` parsing and matching, short hashes for labels.

Imports nothing of vecmon's (``collectors.settings.vector`` uses :func:`parse_qualified` to check names).
"""

from __future__ import annotations

import hashlib
import re

_IDENT_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([^".\s]+))\s*')


def parse_qualified(name: str, default_schema: str | None = "public") -> tuple[str | None, str]:
    """``"app.items"`` -> ``("app", "items")``; ``"items"`` -> ``(default_schema, "items")``.

    Double-quoted parts keep their case and may contain dots (``"My.Schema"."Items"``);
    unquoted parts are folded to lower case as PostgreSQL does.
    """
    parts: list[str] = []
    pos = 0
    text = name.strip()
    while True:
        match = _IDENT_PART.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"invalid name {name!r} (expected name or schema.name)")
        parts.append(match.group(1).replace('""', '"') if match.group(1) is not None else match.group(2).lower())
        pos = match.end()
        if pos == len(text):
            break
        if text[pos] != ".":
            raise ValueError(f"invalid name {name!r} (expected name or schema.name)")
        pos += 1
    if len(parts) == 1:
        return default_schema, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"invalid name {name!r} (expected name or schema.name)")


def short_hash(text: str) -> str:
    """8 hex digits of the SHA-1 of ``text``: a bounded label value standing for SQL text."""
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def name_matches(pattern: str, schema: str, name: str) -> bool:
    """``pattern`` is ``name`` (any schema) or ``schema.name``."""
    want_schema, want_name = parse_qualified(pattern, default_schema=None)
    return want_name == name and (want_schema is None or want_schema == schema)
