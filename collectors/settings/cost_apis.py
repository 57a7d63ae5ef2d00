"""Settings of the spend side (:mod:`collectors.provider_costs`): provider cost APIs (``cost_apis[]``),
budgets (``budgets[]``) and the price table (``pricing``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from collectors.settings.base import Duration, Model
from collectors.settings.targets import ScheduledTarget, WithApiKey, check_http_url


class CostApiTarget(WithApiKey, ScheduledTarget):
    """A provider's organization cost/usage API, polled for authoritative spend."""

    provider: Literal["openai"] = Field("openai", description="only OpenAI has a cost API among the providers")
    url: str = Field("https://api.openai.com/v1", description="API base URL")
    interval: Duration = Field(3600.0, description="poll period (daily buckets; recent days are restated)")
    timeout: Duration = Field(30.0, description="per poll, all pages included")
    lookback_days: int = Field(7, ge=1, le=31, description="recent days re-read every poll (restatements)")
    project_ids: list[str] = Field(default_factory=list, description="restrict to these projects")
    line_items: bool = Field(True, description="also export month-to-date spend per line item")
    usage: bool = Field(True, description="also poll /organization/usage/embeddings (tokens, requests by model)")
    max_series: int = Field(50, ge=1, le=500, description="most line items / models exported")

    @field_validator("url")
    @classmethod
    def _url_is_valid(cls, url: str | None) -> str | None:
        return check_http_url(url)

    @model_validator(mode="after")
    def _needs_key(self) -> CostApiTarget:
        if self.key() is None:
            raise ValueError("a cost API needs an admin key (api_key or api_key_file)")
        return self

    def secrets(self) -> list[str]:
        return [k for k in [self.key()] if k]


class Budget(ScheduledTarget):
    """Spend today and this month (UTC) of some sources against limits."""

    sources: list[str] = Field(min_length=1, description="names of endpoints (probe spend) and/or cost_apis")
    daily_usd: float | None = Field(None, gt=0, description="limit for the current UTC day")
    monthly_usd: float | None = Field(None, gt=0, description="limit for the current UTC month")
    interval: Duration = Field(60.0, description="how often the budget gauges are recomputed")
    timeout: Duration = Field(5.0, description="per run (in-memory only)")

    @model_validator(mode="after")
    def _a_limit(self) -> Budget:
        if self.daily_usd is None and self.monthly_usd is None:
            raise ValueError("give daily_usd and/or monthly_usd")
        return self


class PriceEntry(Model):
    """One dated price: USD per 1M tokens or per 1K searches."""

    provider: str = Field(description="provider name as in endpoints[].provider (or pricing_provider)")
    model: str = Field(description="model name (case-insensitive), or * for every model of the provider")
    usd_per_1m_tokens: float | None = Field(None, ge=0)
    usd_per_1k_searches: float | None = Field(None, ge=0)
    effective: date = Field(description="first day the price applies (UTC)")
    source: str = Field(min_length=1, description="where the price comes from")
    note: str | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> PriceEntry:
        if (self.usd_per_1m_tokens is None) == (self.usd_per_1k_searches is None):
            raise ValueError("give exactly one of usd_per_1m_tokens and usd_per_1k_searches")
        return self


class PriceFile(Model):
    """The layout of a price table (the shipped one: collectors/data/prices.yaml)."""

    version: Literal[1] = 1
    prices: list[PriceEntry] = Field(default_factory=list)


def load_price_file(path: str | Path) -> list[PriceEntry]:
    """Read and validate a price table; ValueError names the file and the problem."""
    import yaml
    from pydantic import ValidationError

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read price table {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"price table {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return list(PriceFile.model_validate(data or {}).prices)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"price table {str(path)!r}: {problems}") from None


class Pricing(Model):
    file: str | None = Field(None, description="price table; default: the one shipped with vecmon "
                                               "(collectors/data/prices.yaml)")
    prices: list[PriceEntry] = Field(
        default_factory=list, description="overrides; they win over the table (newest effective date first)")

    @model_validator(mode="after")
    def _file_is_valid(self) -> Pricing:
        if self.file is not None:
            load_price_file(self.file)  # a broken table is a config error, not a failed reload
        return self
