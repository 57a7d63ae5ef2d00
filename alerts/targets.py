"""What the alerting generators read of the monitoring config, declared here as Protocols so that
alerts/ does not depend on the package that composes the config (``monitor``).

:class:`MonitoredConfig` is the shape of the composed config the generators take: the alerting
settings and SLOs, the daemon's ``stale_after``, and the targets (their names, intervals and
collectors decide which alerts apply and how stale a collector may get; every API target section is
read through :func:`collectors.registry.all_api_targets`). :class:`When` is a
condition on it, with the same in words for the README.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from collectors.registry import all_api_targets

if TYPE_CHECKING:  # the settings models; alerts.config imports the catalog, which imports this module
    from alerts.config import SLO, AlertingSettings, AlertmanagerSettings


class DatabaseTarget(Protocol):
    @property
    def name(self) -> str: ...

    def enabled_collectors(self) -> list[str]: ...

    def interval_for(self, name: str) -> float: ...


class ScheduledTarget(Protocol):
    """An API target: model endpoint, cost API, Redis, budget, application check."""

    @property
    def name(self) -> str: ...

    @property
    def enabled(self) -> bool: ...

    @property
    def interval(self) -> float: ...


class Endpoint(ScheduledTarget, Protocol):
    @property
    def kind(self) -> str: ...


class Budget(ScheduledTarget, Protocol):
    @property
    def daily_usd(self) -> float | None: ...


class Application(ScheduledTarget, Protocol):
    @property
    def url(self) -> str: ...


class Daemon(Protocol):
    @property
    def stale_after(self) -> float: ...


class MonitoredConfig(Protocol):
    @property
    def alerting(self) -> AlertingSettings: ...

    @property
    def alertmanager(self) -> AlertmanagerSettings | None: ...

    @property
    def slos(self) -> Sequence[SLO]: ...

    @property
    def daemon(self) -> Daemon: ...

    @property
    def endpoints(self) -> Sequence[Endpoint]: ...

    @property
    def budgets(self) -> Sequence[Budget]: ...

    @property
    def applications(self) -> Sequence[Application]: ...

    def enabled_databases(self) -> Sequence[DatabaseTarget]: ...


def enabled_collectors(config: MonitoredConfig) -> set[str]:
    return {name for db in config.enabled_databases() for name in db.enabled_collectors()}


@dataclass(frozen=True)
class When:
    """When an alert is generated: a check on the config, and the same in words for the README."""

    text: str
    check: Callable[[MonitoredConfig], bool]

    def __call__(self, config: MonitoredConfig) -> bool:
        return self.check(config)


def collectors(*names: str, any_of: bool = False) -> When:
    quoted = [f"`{n}`" for n in names]
    words = quoted[0] if len(quoted) == 1 else (", ".join(quoted[:-1]) + (" or " if any_of else " and ") + quoted[-1])
    test = any if any_of else all
    return When(f"a database target runs the {words} collector{'s' if len(names) > 1 else ''}",
                lambda config: test(n in enabled_collectors(config) for n in names))


def endpoints(kind: str | None = None) -> When:
    return When(f"an enabled {kind + ' ' if kind else ''}endpoint is configured",
                lambda config: any(e.enabled and kind in (None, e.kind) for e in config.endpoints))


def _any_target(config: MonitoredConfig) -> bool:
    return bool(config.enabled_databases()) or any(t.enabled for t in all_api_targets(config))


def _applications(config: MonitoredConfig) -> list[Application]:
    return [a for a in config.applications if a.enabled]


ALWAYS = When("always", lambda config: True)
ANY_TARGET = When("any target is enabled", _any_target)
DAILY_BUDGET = When("a budget has `daily_usd`", lambda config: any(
    b.enabled and b.daily_usd is not None for b in config.budgets))
APPLICATIONS = When("an enabled application check is configured", lambda config: bool(_applications(config)))
HTTPS_APPLICATIONS = When("an enabled application check has an https:// URL", lambda config: any(
    a.url.lower().startswith("https://") for a in _applications(config)))
