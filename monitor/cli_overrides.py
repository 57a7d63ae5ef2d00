"""Command-line settings that override the config file, in postgres_exporter's style.

- ``--collector.NAME`` / ``--no-collector.NAME`` enable or disable a database collector on every
  database target (``databases[].collectors.NAME.enabled``), whatever the file says. argparse
  cannot declare one flag per collector name nicely, so these are taken out of argv first.
- ``--extend.query-path FILE`` sets ``extend_query_path`` (relative to the current directory).

The overrides are applied to the parsed YAML before validation, so an override is checked like
the file itself, and a reload (SIGHUP) applies them again to the re-read file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.registry import DATABASE_COLLECTORS

_SWITCH = re.compile(r"^--(no-)?collector\.([A-Za-z0-9_]+)$")


class UsageError(Exception):
    """A bad command-line override; the message names it."""


@dataclass(frozen=True)
class ConfigOverrides:
    extend_query_path: str | None = None
    collectors: tuple[tuple[str, bool], ...] = ()  # (collector name, enabled), in command-line order

    def __bool__(self) -> bool:
        return self.extend_query_path is not None or bool(self.collectors)

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        """The config data with the overrides applied (a new dict; the input is not changed)."""
        data = dict(data)
        if self.extend_query_path is not None:
            data["extend_query_path"] = self.extend_query_path
        if self.collectors and isinstance(data.get("databases"), list):
            databases = []
            for entry in data["databases"]:
                if isinstance(entry, dict):
                    entry = dict(entry)
                    collectors = dict(entry.get("collectors") or {})
                    for name, enabled in self.collectors:
                        settings = collectors.get(name)
                        collectors[name] = {**(settings if isinstance(settings, dict) else {}), "enabled": enabled}
                    entry["collectors"] = collectors
                databases.append(entry)
            data["databases"] = databases
        return data


def split_collector_switches(argv: list[str]) -> tuple[list[str], tuple[tuple[str, bool], ...]]:
    """Take ``--[no-]collector.NAME`` out of argv; raises UsageError for an unknown collector."""
    rest: list[str] = []
    switches: list[tuple[str, bool]] = []
    for arg in argv:
        match = _SWITCH.match(arg)
        if match is None:
            rest.append(arg)
            continue
        name = match.group(2)
        if name not in DATABASE_COLLECTORS:
            raise UsageError(f"unknown collector {name!r} in {arg}; known: {', '.join(sorted(DATABASE_COLLECTORS))}")
        switches.append((name, match.group(1) is None))
    return rest, tuple(switches)


def overrides_from(args: Any, switches: tuple[tuple[str, bool], ...]) -> ConfigOverrides:
    path = getattr(args, "extend_query_path", None)
    return ConfigOverrides(str(Path(path).expanduser().absolute()) if path else None, switches)
