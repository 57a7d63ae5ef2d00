"""The collector and runner of one target of the kinds with their own targets: endpoint probes,
provider cost APIs, budgets, Redis and application checks (:data:`collectors.registry.TARGET_KINDS`).

:func:`monitor.scheduler.build_api_jobs` makes one job per enabled entry of their config sections,
each with the collector and runner :func:`api_collector` returns (so a slow endpoint never delays
another collector). HTTP targets get their own ``requests.Session`` (keep-alive; adapters that
enforce whole-request deadlines, :mod:`collectors.http_session`), closed with the runner. Every
runner knows the target's secrets, so a failure message is redacted before it is logged or stored.
The collector classes and the HTTP session come from :mod:`collectors.registry`, which imports
them (and ``requests``) only when such a target is configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collectors.base import CollectContext
from collectors.redaction import redact
from collectors.registry import Registration, http_session, price_table
from collectors.settings.endpoints import DimensionsFrom
from collectors.settings.targets import ScheduledTarget
from monitor.sessions import NoSessions
from monitor.shared import SharedState

HTTP_KINDS = ("endpoint", "cost_api", "app")  # their collectors talk HTTP through the target's own session


@dataclass
class DirectRunner(NoSessions):
    """Runner for collectors that talk HTTP or compute things themselves; they bound their own time."""

    secrets: list[str] = field(default_factory=list)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def run(self, collect: Callable[[CollectContext], Any], ctx: CollectContext, timeout: float,
            reset: bool = True) -> Any:  # no session to reset
        return collect(ctx)


@dataclass
class HttpRunner(DirectRunner):
    """A :class:`DirectRunner` that owns the target's HTTP session (a ``requests.Session``)."""

    session: Any = None

    def close(self, timeout: float = 2.0) -> None:
        if self.session is not None:
            self.session.close()


@dataclass
class ApiContext:
    """What the collectors of these kinds share within one runtime: the spend ledger, the price table,
    where expected embedding dimensions come from, the proxy setting and the clock."""

    shared: SharedState
    prices: Any = None  # collectors.provider_costs.PriceTable; loaded with the first endpoint when None
    dimension_source: Callable[[DimensionsFrom], int | None] | None = None
    trust_env: bool = True
    clock: Callable[[], float] = time.time
    pricing: Any = None  # the config's pricing section, for the price table

    def price_table(self) -> Any:
        if self.prices is None:
            self.prices = price_table(self.pricing)
        return self.prices

    def dimensions(self) -> Callable[[DimensionsFrom], int | None]:
        return self.dimension_source if self.dimension_source is not None else self.shared.vector_columns.dimensions


def api_collector(registration: Registration, target: ScheduledTarget,
                  context: ApiContext) -> tuple[Any, DirectRunner]:
    """A new collector of ``registration`` for ``target``, and the runner that runs it."""
    cls, kind, ledger = registration.load(), registration.kind, context.shared.ledger
    secrets = target.secrets()
    if kind not in HTTP_KINDS:
        collector = cls(ledger=ledger, clock=context.clock) if kind == "budget" else cls()
        return collector, DirectRunner(secrets=secrets)
    session = http_session(context.trust_env)
    if kind == "endpoint":
        collector = cls(session=session, prices=context.price_table(), ledger=ledger,
                        default_dimension_source=context.dimensions(), clock=context.clock)
    elif kind == "cost_api":
        collector = cls(session=session, ledger=ledger, clock=context.clock)
    else:
        collector = cls(session=session)
    return collector, HttpRunner(secrets=secrets, session=session)
