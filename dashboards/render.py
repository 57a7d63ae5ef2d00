"""``write_dashboards(config, out_dir)``: the Grafana dashboards the config enables, as JSON files.

Written to ``out_dir/grafana/<uid>.json``, deterministically (the same config gives
byte-identical files). Which dashboards:

* overview, PostgreSQL and vecmon self-monitoring: whenever the config has database targets;
* vector indexes and recall: when a vector collector is enabled on some database (`vector.enabled: false`
  turns them all off); its panels, and the statement panels, say on an empty panel which extension is missing;
* model APIs: when the config has endpoints (or cost APIs, budgets);
* applications: when the config has ``applications:`` (dashboards.app_probes);
* SLOs: when the config has SLOs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from dashboards import app_probes, model_apis, overview, postgres, slos, vector
from dashboards import self as self_board
from dashboards.facade import to_json
from dashboards.lint import Exclusion
from dashboards.schema import SCHEMA_VERSION, to_current_schema
from dashboards.targets import Targets, from_config

SUBDIR = "grafana"
__all__ = ["SCHEMA_VERSION", "build_dashboards", "lint_exclusions", "write_dashboards"]


def _has_databases(config: Any) -> bool:
    return bool(_enabled_databases(config))


def _enabled_databases(config: Any) -> list[Any]:
    return [db for db in getattr(config, "databases", []) or [] if getattr(db, "enabled", True)]


def _vector_enabled(config: Any) -> bool:
    return any(name in vector.VECTOR_COLLECTORS
               for db in _enabled_databases(config) for name in db.enabled_collectors())


def _model_apis_enabled(config: Any) -> bool:
    return any(getattr(e, "enabled", True) for e in getattr(config, "endpoints", []) or [])


def _applications_enabled(config: Any) -> bool:
    return any(getattr(a, "enabled", True) for a in getattr(config, "applications", []) or [])


def _slos_enabled(config: Any) -> bool:
    return bool(getattr(config, "slos", []) or [])


# (module, predicate): each module has build(config, targets) -> dict and UID.
DASHBOARDS: tuple[tuple[ModuleType, Callable[[Any], bool]], ...] = (
    (overview, lambda config: _has_databases(config) or _model_apis_enabled(config)),
    (postgres, _has_databases),
    (vector, _vector_enabled),
    (model_apis, _model_apis_enabled),
    (app_probes, _applications_enabled),
    (slos, _slos_enabled),
    (self_board, lambda config: True),
)


def lint_exclusions() -> list[Exclusion]:
    """The linter exclusions the generated dashboards need, each with its reason (like a ``.lint`` file)."""
    return list(slos.LINT_EXCLUSIONS)


def build_dashboards(config: Any) -> dict[str, dict[str, Any]]:
    """uid -> dashboard JSON (dict) for every dashboard the config enables."""
    targets: Targets = from_config(config)
    boards: dict[str, dict[str, Any]] = {}
    for module, enabled in DASHBOARDS:
        if not enabled(config):
            continue
        boards[module.UID] = to_current_schema(module.build(config, targets))
    return boards


def write_dashboards(config: Any, out_dir: Path) -> list[Path]:
    directory = Path(out_dir) / SUBDIR
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    boards = build_dashboards(config)
    for uid, board in boards.items():
        path = directory / f"{uid}.json"
        path.write_text(to_json(board), encoding="utf-8")
        written.append(path)
    # dashboards the config no longer enables must not linger next to fresh ones
    for stale in sorted(directory.glob("vecmon-*.json")):
        if stale.stem not in boards:
            stale.unlink()
    return written
