"""``vecmon generate``: everything derived from the config, written in one go.

Each generator is a function ``(config, out_dir) -> list[Path]``; output is deterministic
(the same config gives byte-identical files) so it can be committed and diffed.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from monitor.config import Config

# "module:function" of each generator; a generator whose module is not installed yet is skipped.
GENERATORS = (
    "alerts.render:write_alerting",
    "dashboards.render:write_dashboards",
)


def available_generators() -> list:
    found = []
    for path in GENERATORS:
        module_name, _, func = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        found.append(getattr(module, func))
    return found


def generate_all(config: Config, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for generator in available_generators():
        written.extend(generator(config, out_dir))
    return written
