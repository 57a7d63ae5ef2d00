"""``vecmon generate``: everything derived from the config, written in one go.

Each generator is a function ``(config, out_dir) -> list[Path]``; output is deterministic
(the same config gives byte-identical files) so it can be committed and diffed. With
``--kubernetes`` the manifests (monitor.kubernetes) are written too; they embed the config
file's text, so they are generated from the file rather than from the parsed config.
"""

from __future__ import annotations

from pathlib import Path

from alerts.render import check_runbook_base, write_alerting
from dashboards.render import write_dashboards
from monitor import __version__
from monitor.config import Config
from monitor.kubernetes import write_kubernetes


def _write_alerting(config: Config, out_dir: Path) -> list[Path]:
    return write_alerting(config, out_dir, __version__)


GENERATORS = (_write_alerting, write_dashboards)


def generate_all(config: Config, out_dir: Path, kubernetes_from: Path | None = None) -> list[Path]:
    check_runbook_base(config)  # before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for generator in GENERATORS:
        written.extend(generator(config, out_dir))
    if kubernetes_from is not None:
        written.extend(write_kubernetes(config, kubernetes_from, out_dir))
    return written
