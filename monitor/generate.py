"""``vecmon generate``: everything derived from the config, written in one go.

Each generator is a function ``(config, out_dir) -> list[Path]``; output is deterministic
(the same config gives byte-identical files) so it can be committed and diffed.
"""

from __future__ import annotations

from pathlib import Path

from alerts.render import write_alerting
from dashboards.render import write_dashboards
from monitor.config import Config

GENERATORS = (write_alerting, write_dashboards)


def generate_all(config: Config, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for generator in GENERATORS:
        written.extend(generator(config, out_dir))
    return written
