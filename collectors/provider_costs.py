"""Money: the price table, a spend ledger, the OpenAI organization cost/usage poller, and budgets.

- :class:`PriceTable`: dated prices from the shipped ``collectors/data/prices.yaml`` (or ``pricing.file``) plus the
  config's ``pricing.prices`` overrides. Lookup: overrides first, then the table; within each,
  the newest entry whose ``effective`` date is on or before the day of use; ``model: "*"``
  matches every model of that provider.
- :class:`SpendLedger`: USD per (source, UTC day). Probes add their computed spend; cost-API
  pollers replace whole days (the provider restates recent days). Budgets read it. The daemon
  owns one ledger (``monitor.shared.SharedState.ledger``) that survives config reloads; probe
  spend before a restart is not remembered, provider-API spend is re-read.
- :class:`ProviderCostsCollector`: ``GET /v1/organization/costs`` (daily buckets, USD) and
  ``GET /v1/organization/usage/embeddings`` (tokens, requests by model) with an admin key.
  Each poll re-reads from the start of the month or ``lookback_days`` ago, whichever is
  earlier, and replaces those days. Amounts sent as numeric strings (``"12.50"``, as the live
  API did in 2026) are read like numbers. One deadline (``timeout``) bounds the whole poll, all
  pages and a Retry-After/retry-after-ms wait included, whatever the server does. A failed
  poll is data (``vecmon_cost_api_polls_total``),
  and the last good values keep being served; so is an answer that cannot be parsed (anything
  raised while reading it, an out-of-range timestamp or a 400-digit amount included: outcome
  ``bad_response``).
- :class:`BudgetCollector`: spend of the current UTC day and month of the configured sources
  against ``daily_usd``/``monthly_usd``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any, ClassVar, TypeVar

import requests
from prometheus_client.core import Metric

from collectors.base import CollectContext, CollectorError, Emitter, MetricSpec
from collectors.cost_metrics import (
    BUDGET_METRICS,
    COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS,
    COST_API_POLLS_TOTAL,
    COST_BUDGET_LIMIT_USD,
    COST_BUDGET_SOURCES_MISSING,
    COST_BUDGET_SPEND_USD,
    COST_BUDGET_USED_RATIO,
    COST_METRICS,
    COST_PROVIDER_EMBEDDING_REQUESTS,
    COST_PROVIDER_EMBEDDING_TOKENS,
    COST_PROVIDER_LINE_ITEM_SPEND_USD,
    COST_PROVIDER_SPEND_USD,
)
from collectors.providers.common import (
    ApiRequest,
    ParseError,
    as_dict,
    as_list,
    field_of,
    finite_amount,
    finite_number,
    join_url,
    send,
)
from collectors.settings.cost_apis import Budget, CostApiTarget, PriceEntry, Pricing, load_price_file
from collectors.spend_ledger import SpendLedger

log = logging.getLogger(__name__)

PERIODS = ("day", "month")
CostDays = dict[str, dict[str, float]]  # ISO day -> line item ("" without line items) -> USD
UsageDays = dict[str, dict[str, list[float]]]  # ISO day -> model -> [input tokens, requests]
Day = TypeVar("Day")  # what a poll keeps per day


# --------------------------------------------------------------------------- prices


def shipped_price_entries() -> list[PriceEntry]:
    """The price table shipped inside the package, read through importlib.resources (it works
    from a wheel, an editable install or a zip alike)."""
    with resources.as_file(resources.files("collectors") / "data" / "prices.yaml") as path:
        return load_price_file(path)


class PriceTable:
    def __init__(self, entries: Iterable[PriceEntry] = (), overrides: Iterable[PriceEntry] = ()):
        self.entries = list(entries)
        self.overrides = list(overrides)

    @classmethod
    def load(cls, pricing: Pricing | None = None) -> PriceTable:
        """The table file plus overrides. Never raises: a missing or broken table is logged and
        only the overrides are used (``pricing.file`` was already validated with the config)."""
        pricing = pricing or Pricing()
        try:
            entries = load_price_file(pricing.file) if pricing.file else shipped_price_entries()
        except ValueError as exc:
            log.error("%s; only pricing.prices overrides apply", exc)
            entries = []
        return cls(entries, pricing.prices)

    @staticmethod
    def _best(entries: list[PriceEntry], provider: str, model: str, on: date) -> PriceEntry | None:
        model = model.lower()
        matching = [e for e in entries if e.provider == provider and e.effective <= on
                    and (e.model == "*" or e.model.lower() == model)]
        if not matching:
            return None
        # newest date first; an exact model name beats "*" on the same date
        return max(matching, key=lambda e: (e.effective, e.model != "*"))

    def lookup(self, provider: str, model: str, on: date | None = None) -> PriceEntry | None:
        on = on or datetime.now(UTC).date()
        return self._best(self.overrides, provider, model, on) or self._best(self.entries, provider, model, on)


def price_cost(entry: PriceEntry | None, tokens: int | None, search_units: float | None) -> float | None:
    """USD for one response's usage; None when the entry's unit is not in the response."""
    if entry is None:
        return None
    if entry.usd_per_1m_tokens is not None:
        return None if tokens is None else tokens * entry.usd_per_1m_tokens / 1_000_000
    assert entry.usd_per_1k_searches is not None  # a PriceEntry has exactly one of the two prices
    return None if search_units is None else search_units * entry.usd_per_1k_searches / 1_000


# --------------------------------------------------------------------------- ledger


def utc_today(clock: Callable[[], float] = time.time) -> date:
    return datetime.fromtimestamp(clock(), UTC).date()


# --------------------------------------------------------------------------- OpenAI cost/usage poller


POLL_OUTCOMES = ("success", "http_4xx", "http_5xx", "rate_limited", "timeout", "connection_error", "bad_response")
MAX_PAGES = 50


class PollFailed(Exception):
    def __init__(self, outcome: str, message: str):
        super().__init__(message)
        self.outcome = outcome


class ProviderCostsCollector:
    """Polls OpenAI's organization costs and embeddings-usage APIs (admin key)."""

    name: ClassVar[str] = "provider_costs"
    METRICS: ClassVar[tuple[MetricSpec, ...]] = COST_METRICS

    def __init__(self, session: requests.Session | None = None, ledger: SpendLedger | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.session = session or requests.Session()
        self.ledger = ledger if ledger is not None else SpendLedger()
        self.clock = clock
        self.sleep = sleep

    # -- HTTP

    def _get(self, target: CostApiTarget, path: str, params: dict[str, Any], deadline: float) -> dict[str, Any]:
        request = ApiRequest(path, {}, {"Authorization": f"Bearer {target.key()}"}, params, method="GET")
        for attempt_no in (1, 2):
            attempt = send(self.session, join_url(target.url, path), request, deadline)
            if (attempt_no == 1 and attempt.retry_after is not None
                    and attempt.retry_after < (deadline - time.perf_counter()) * 0.75):
                self.sleep(attempt.retry_after)
                continue
            break
        if attempt.outcome != "success":
            raise PollFailed(attempt.outcome, attempt.error)
        return as_dict(attempt.body, "response")

    def _pages(self, target: CostApiTarget, path: str, params: dict[str, Any], deadline: float) -> list[Any]:
        buckets: list[Any] = []
        page: str | None = None
        for _ in range(MAX_PAGES):
            body = self._get(target, path, {**params, **({"page": page} if page else {})}, deadline)
            if body.get("object") != "page":
                raise ParseError("response.object: expected 'page'")
            buckets.extend(as_list(field_of(body, "data", "response"), "response.data"))
            if not body.get("has_more"):
                return buckets
            page = body.get("next_page")
            if not isinstance(page, str) or not page:
                raise ParseError("has_more without next_page")
        raise ParseError(f"more than {MAX_PAGES} pages")

    @staticmethod
    def _bucket_day(bucket: Any) -> date:
        start = field_of(bucket, "start_time", "bucket")
        if isinstance(start, bool) or not isinstance(start, int):
            raise ParseError("bucket.start_time: expected an integer")
        try:
            return datetime.fromtimestamp(start, UTC).date()
        except (OverflowError, OSError, ValueError):  # beyond time_t or year 1..9999
            raise ParseError("bucket.start_time: out of range") from None

    def _poll(self, state: dict[str, Any], api: str, fetch: Callable[[], CostDays | UsageDays], now: float) -> None:
        polls = state.setdefault("polls", {}).setdefault(api, dict.fromkeys(POLL_OUTCOMES, 0))
        try:
            state[api] = fetch()
        except PollFailed as exc:
            polls[exc.outcome] += 1
            log.info("cost API %s poll failed: %s (%s)", api, exc.outcome, exc)
            return
        except ParseError as exc:
            polls["bad_response"] += 1
            log.info("cost API %s poll failed: unexpected response (%s)", api, exc)
            return
        except Exception as exc:  # noqa: BLE001 - whatever the answer holds, it is a failed poll
            polls["bad_response"] += 1
            log.info("cost API %s poll failed: unexpected response (%s)", api, type(exc).__name__)
            return
        polls["success"] += 1
        state.setdefault("last_success", {})[api] = now

    def collect(self, ctx: CollectContext) -> list[Metric]:
        target: CostApiTarget = ctx.settings
        if target.key() is None:
            raise CollectorError("no admin key configured")
        now = self.clock()
        today = utc_today(lambda: now)
        start = min(today.replace(day=1), today - timedelta(days=target.lookback_days - 1))
        ndays = (today - start).days + 1
        start_time = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
        deadline = time.perf_counter() + target.timeout_for(self.name)
        state = ctx.state

        def costs() -> CostDays:
            params: dict[str, Any] = {"start_time": start_time, "bucket_width": "1d", "limit": min(180, ndays)}
            if target.line_items:
                params["group_by"] = ["line_item"]
            if target.project_ids:
                params["project_ids"] = list(target.project_ids)
            days: CostDays = {}
            for bucket in self._pages(target, "/organization/costs", params, deadline):
                day = self._bucket_day(bucket)
                rows = days.setdefault(day.isoformat(), {})
                for i, result in enumerate(as_list(field_of(bucket, "results", "bucket"), "bucket.results")):
                    amount = as_dict(field_of(result, "amount", f"results[{i}]"), f"results[{i}].amount")
                    value = finite_amount(amount.get("value"), f"results[{i}].amount.value")
                    item = result.get("line_item") if isinstance(result.get("line_item"), str) else ""
                    rows[item] = rows.get(item, 0.0) + value
            return self._merge(state.get("costs"), days, start)

        def usage() -> UsageDays:
            params: dict[str, Any] = {"start_time": start_time, "bucket_width": "1d", "limit": min(31, ndays),
                                      "group_by": ["model"]}
            if target.project_ids:
                params["project_ids"] = list(target.project_ids)
            days: UsageDays = {}
            for bucket in self._pages(target, "/organization/usage/embeddings", params, deadline):
                rows = days.setdefault(self._bucket_day(bucket).isoformat(), {})
                for i, result in enumerate(as_list(field_of(bucket, "results", "bucket"), "bucket.results")):
                    result = as_dict(result, f"results[{i}]")
                    named = result.get("model")
                    model = named if isinstance(named, str) else ""
                    row = rows.setdefault(model, [0.0, 0.0])
                    for slot, key in ((0, "input_tokens"), (1, "num_model_requests")):
                        row[slot] += finite_number(result.get(key, 0), f"results[{i}].{key}")
            return self._merge(state.get("usage"), days, start)

        self._poll(state, "costs", costs, now)
        if target.usage:
            self._poll(state, "usage", usage, now)
        if "costs" in state:
            totals = {date.fromisoformat(d): sum(rows.values()) for d, rows in state["costs"].items()}
            self.ledger.replace(target.name, start, {d: v for d, v in totals.items() if d >= start}, today)
        return self._emit(target, state, today)

    @staticmethod
    def _merge(previous: dict[str, Day] | None, fresh: dict[str, Day], since: date) -> dict[str, Day]:
        """Days before ``since`` from the previous poll (this month only), the rest from ``fresh``."""
        kept = {d: v for d, v in (previous or {}).items() if date.fromisoformat(d) < since}
        return {**kept, **fresh}

    def _emit(self, target: CostApiTarget, state: dict[str, Any], today: date) -> list[Metric]:
        out = Emitter(target.name, self.METRICS)
        provider = target.provider
        month_start = today.replace(day=1)

        def in_period(day: str, period: str) -> bool:
            d = date.fromisoformat(day)
            return d == today if period == "day" else month_start <= d <= today

        if "costs" in state:
            for period in PERIODS:
                per_item: dict[str, float] = {}
                for day, rows in state["costs"].items():
                    if in_period(day, period):
                        for item, usd in rows.items():
                            per_item[item] = per_item.get(item, 0.0) + usd
                out.add(COST_PROVIDER_SPEND_USD.name, sum(per_item.values()), provider, period)
                if target.line_items:
                    top = sorted(per_item.items(), key=lambda kv: -kv[1])[:target.max_series]
                    for item, usd in top:
                        out.add(COST_PROVIDER_LINE_ITEM_SPEND_USD.name, usd, provider, period, item)
        if "usage" in state:
            for period in PERIODS:
                per_model: dict[str, list[float]] = {}
                for day, rows in state["usage"].items():
                    if in_period(day, period):
                        for model, (tokens, reqs) in rows.items():
                            acc = per_model.setdefault(model, [0.0, 0.0])
                            acc[0] += tokens
                            acc[1] += reqs
                for model, (tokens, reqs) in sorted(per_model.items(), key=lambda kv: -kv[1][0])[:target.max_series]:
                    out.add(COST_PROVIDER_EMBEDDING_TOKENS.name, tokens, provider, period, model)
                    out.add(COST_PROVIDER_EMBEDDING_REQUESTS.name, reqs, provider, period, model)
        for api, counts in state.get("polls", {}).items():
            for outcome, count in counts.items():
                out.add(COST_API_POLLS_TOTAL.name, count, provider, api, outcome)
        for api, when in state.get("last_success", {}).items():
            out.add(COST_API_LAST_SUCCESS_TIMESTAMP_SECONDS.name, when, provider, api)
        return out.families()


# --------------------------------------------------------------------------- budgets



class BudgetCollector:
    name: ClassVar[str] = "budget"
    METRICS: ClassVar[tuple[MetricSpec, ...]] = BUDGET_METRICS

    def __init__(self, ledger: SpendLedger | None = None, clock: Callable[[], float] = time.time):
        self.ledger = ledger if ledger is not None else SpendLedger()
        self.clock = clock

    def collect(self, ctx: CollectContext) -> list[Metric]:
        budget: Budget = ctx.settings
        out = Emitter(budget.name, self.METRICS)
        spend = self.ledger.spend(budget.sources, utc_today(self.clock))
        limits = {"day": budget.daily_usd, "month": budget.monthly_usd}
        for period in PERIODS:
            out.add(COST_BUDGET_SPEND_USD.name, spend[period], period)
            limit = limits[period]
            if limit is not None:
                out.add(COST_BUDGET_LIMIT_USD.name, limit, period)
                out.add(COST_BUDGET_USED_RATIO.name, spend[period] / limit, period)
        out.add(COST_BUDGET_SOURCES_MISSING.name, sum(not self.ledger.known(s) for s in budget.sources))
        return out.families()
