"""Typed configuration of the alerting side: ``alerting:``, ``slos:`` and ``alertmanager:``.

:mod:`monitor.config` imports this module for :class:`~monitor.config.Config`; nothing here
imports :mod:`monitor.config` at import time (durations are parsed with a local copy of the
rules, so ``for: 0s`` can be allowed where a duration otherwise must be positive).

Example (``config/alerting-example.yaml`` has every key)::

    alerting:
      runbook_base_url: https://git.example.org/search/vecmon/blob/main/README.md
      labels: {team: search}
      alerts:
        PgConnectionsHigh: {threshold: 0.85, for: 10m}
        AnnQueryLatencyP99High: {severity: critical}
        VecmonCollectorStale: {enabled: false}
    slos:
      - name: recall-at-10
        service: search
        objective: 0.99
        period: 30d
        sli:
          events:
            good: vecmon_recall_good_queries_total{target="app"}
            total: vecmon_recall_queries_total{target="app"}
    alertmanager:
      receiver: team-email
      receivers:
        - {name: team-email, email: [{to: search-team@example.org}]}
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from alerts.promql import LABEL_NAME, split_selector

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
SEVERITIES = ("critical", "warning", "info")
Severity = Literal["critical", "warning", "info"]
# Labels the generators set themselves; user labels must not override them.
RESERVED_LABELS = frozenset({"alertname", "severity", "sloth_id", "sloth_service", "sloth_slo", "sloth_window",
                             "sloth_severity", "long_window", "short_window", "target", "le", "__name__"})

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def _seconds(value: Any, allow_zero: bool) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r} (use e.g. 500ms, 15s, 5m, 1h, 30d)")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"duration must be positive, got {value!r}")
    if round(seconds * 1000) != seconds * 1000:
        raise ValueError(f"duration {value!r} is finer than a millisecond")
    return seconds


def parse_duration(value: Any) -> float:
    """``"5m"`` -> 300.0 (also ``d`` and ``w``); must be positive."""
    return _seconds(value, allow_zero=False)


def parse_duration_or_zero(value: Any) -> float:
    """Like :func:`parse_duration`, but ``0s`` is allowed (``for: 0s`` fires at the first match)."""
    return _seconds(value, allow_zero=True)


Duration = Annotated[float, BeforeValidator(parse_duration)]
ForDuration = Annotated[float, BeforeValidator(parse_duration_or_zero)]


def _threshold(value: Any) -> Any:
    """A threshold is a number; one in seconds may be written as a duration (``500ms``)."""
    if isinstance(value, str) and _DURATION.match(value) and not value.strip().replace(".", "", 1).isdigit():
        return parse_duration_or_zero(value)
    return value


Threshold = Annotated[float, BeforeValidator(_threshold)]


class Model(BaseModel):
    """Same behaviour as monitor.config.Model: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not LABEL_NAME.match(key) or key.startswith("__"):
            raise ValueError(f"invalid label name {key!r}")
        if key in RESERVED_LABELS:
            raise ValueError(f"label {key!r} is set by vecmon and cannot be overridden here")
    return dict(sorted(value.items()))


# --------------------------------------------------------------------------- threshold alerts


class AlertOverride(Model):
    """Changes to one generated alert; unset keys keep the alert's default (see the README)."""

    enabled: bool | None = Field(None, description="false: do not generate this alert")
    threshold: Threshold | None = Field(
        None, description="the value compared against (unit as documented per alert; seconds may be written "
                          "as a duration such as 500ms)")
    for_: ForDuration | None = Field(None, alias="for", description="how long the condition must hold (0s: at once)")
    severity: Severity | None = Field(None, description="critical, warning or info")
    window: Duration | None = Field(None, description="range of rate()/increase() for alerts computed over a window")
    minimum: float | None = Field(None, ge=0, description="volume guard of alerts that have one (e.g. requests "
                                                           "per window); see the alert's documentation")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on this alert (e.g. service)")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)


class AlertingSettings(Model):
    """Prometheus alert rules generated by ``vecmon generate`` (see the README's alert reference)."""

    enabled: bool = Field(True, description="false: no threshold alert rules (SLO rules still follow slos:)")
    runbook_base_url: str = Field(
        "README.md", description="runbook_url of every alert is this URL + '#' + the alert name in lower case "
                                 "(the README's alert reference has one section per alert)")
    scrape_job: str = Field("vecmon", pattern=r'^[^"\\]+$',
                            description="job label of the Prometheus scrape config of vecmon (VecmonDown)")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on every alert (e.g. team)")
    vector_index_methods: list[str] = Field(
        default_factory=lambda: ["hnsw", "ivfflat"],
        description="index access methods that make a table a vector table")
    stale_intervals: float = Field(
        3.0, ge=1, description="VecmonCollectorStale fires after this many of the target's intervals without a "
                               "successful run (at least daemon.stale_after)")
    alerts: dict[str, AlertOverride] = Field(default_factory=dict, description="per-alert overrides, by alert name")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)

    @field_validator("vector_index_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if not value or any(not re.match(r"^[a-z_][a-z0-9_]*$", m) for m in value):
            raise ValueError("give one or more access method names such as hnsw, ivfflat")
        return sorted(set(value))

    @field_validator("alerts")
    @classmethod
    def _known_alerts(cls, value: dict[str, AlertOverride]) -> dict[str, AlertOverride]:
        from alerts.rules import ALERTS  # the catalog imports this module

        unknown = sorted(set(value) - set(ALERTS))
        if unknown:
            raise ValueError(f"unknown alert(s) {', '.join(unknown)}; known: {', '.join(sorted(ALERTS))}")
        for name, override in value.items():
            alert = ALERTS[name]
            for key, allowed in (("threshold", alert.tunable_threshold), ("window", alert.window is not None),
                                 ("minimum", alert.minimum is not None)):
                if getattr(override, key) is not None and not allowed:
                    raise ValueError(f"{name} has no {key} to change")
        return dict(sorted(value.items()))

    def override(self, name: str) -> AlertOverride:
        return self.alerts.get(name) or AlertOverride()


# --------------------------------------------------------------------------- SLOs


def _selector(value: str) -> str:
    split_selector(value)
    return value.strip()


class EventsSLI(Model):
    """Event ratio: counters of good (or bad) events and of all events."""

    good: str | None = Field(None, description="selector of a counter of good events (give good or bad)")
    bad: str | None = Field(None, description="selector of a counter of bad events (give good or bad)")
    total: str = Field(description="selector of a counter of all events")

    @field_validator("good", "bad", "total")
    @classmethod
    def _selectors(cls, value: str | None) -> str | None:
        return None if value is None else _selector(value)

    @model_validator(mode="after")
    def _one(self) -> "EventsSLI":
        if (self.good is None) == (self.bad is None):
            raise ValueError("give exactly one of good and bad")
        if (self.good or self.bad) == self.total:
            raise ValueError("the good/bad and total selectors must differ")
        return self


class LatencySLI(Model):
    """Latency threshold on a classic histogram: an event is good when it is at most ``threshold``."""

    histogram: str = Field(description="histogram selector without the _bucket/_count suffix, "
                                       "e.g. vecmon_model_api_request_duration_seconds{target=\"openai\"}")
    threshold: Duration = Field(description="an existing bucket boundary, e.g. 500ms")

    @field_validator("histogram")
    @classmethod
    def _histogram(cls, value: str) -> str:
        name, _ = split_selector(value)
        if name.endswith(("_bucket", "_count", "_sum")):
            raise ValueError("name the histogram without its _bucket/_count/_sum suffix")
        return _selector(value)


class ProbeSLI(Model):
    """Probe ratio: a gauge holding the fraction (0..1) of a probe's checks that passed, or 1/0 per probe.

    Every sample counts as one probe result (time slices): ``good`` is its value.
    """

    ratio: str = Field(description="selector of a 0..1 gauge of good probe results")

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, value: str) -> str:
        return _selector(value)


class SLI(Model):
    """Exactly one of events, latency, probe."""

    events: EventsSLI | None = None
    latency: LatencySLI | None = None
    probe: ProbeSLI | None = None

    @model_validator(mode="after")
    def _one(self) -> "SLI":
        if sum(x is not None for x in (self.events, self.latency, self.probe)) != 1:
            raise ValueError("give exactly one of events, latency, probe")
        return self

    @property
    def kind(self) -> str:
        return "events" if self.events else "latency" if self.latency else "probe"


class SLOAlerting(Model):
    """Multi-window, multi-burn-rate alerts of one SLO."""

    enabled: bool = Field(True, description="false: recording rules only")
    page: bool = Field(True, description="page on fast burn (1h/5m and 6h/30m windows)")
    ticket: bool = Field(True, description="ticket on slow burn (1d/2h and 3d/6h windows)")
    page_severity: Severity = "critical"
    ticket_severity: Severity = "warning"
    page_fast_for: ForDuration = Field(120.0, description="for: of the 1h/5m alert")
    page_slow_for: ForDuration = Field(900.0, description="for: of the 6h/30m alert")
    ticket_fast_for: ForDuration = Field(3600.0, description="for: of the 1d/2h alert")
    ticket_slow_for: ForDuration = Field(10800.0, description="for: of the 3d/6h alert")
    no_data: bool = Field(True, description="alert when the SLI has no events")
    no_data_for: ForDuration = Field(900.0, description="for: of the no-data alert")
    no_data_severity: Severity = "warning"
    budget_exhausted: bool = Field(True, description="alert when the period's error budget is used up")
    budget_exhausted_for: ForDuration = Field(300.0, description="for: of the budget-exhausted alert")
    budget_exhausted_severity: Severity = "warning"
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on this SLO's alerts")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)


class SLO(Model):
    """One service-level objective (OpenSLO vocabulary; Sloth-compatible output)."""

    name: str = Field(pattern=NAME_PATTERN, description="the SLO's name (sloth_slo label)")
    service: str = Field(pattern=NAME_PATTERN, description="the service it belongs to (sloth_service and service)")
    description: str = Field("", description="what the SLO promises, in one sentence")
    objective: float = Field(gt=0, lt=1, description="target ratio of good events, e.g. 0.999 for 99.9%")
    period: Duration = Field(30 * 86400.0, description="rolling window of the error budget (whole hours, >= 3d)")
    sli: SLI
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on every rule of this SLO")
    alerting: SLOAlerting = Field(default_factory=SLOAlerting)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_labels(value)

    @field_validator("objective", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 1 < value < 100:
            raise ValueError(f"objective is a fraction: write {value / 100:g} for {value:g}%")
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: float) -> float:
        if value % 3600 or value < 3 * 86400:
            raise ValueError("period must be whole hours and at least 3d (the longest alert window)")
        return value

    @property
    def id(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def error_budget(self) -> Decimal:
        """1 - objective, exact (0.999 -> 0.001, not 0.0009999999999999432)."""
        return Decimal(1) - Decimal(repr(self.objective))


# --------------------------------------------------------------------------- Alertmanager


class WebhookReceiver(Model):
    url: str = Field(description="where Alertmanager POSTs its JSON (not a secret; use credentials_file for auth)")
    credentials_file: str | None = Field(None, description="file holding a bearer token (Authorization header)")
    send_resolved: bool = True
    max_alerts: int = Field(0, ge=0, description="most alerts per message (0: all)")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value


class SlackReceiver(Model):
    api_url_file: str | None = Field(None, description="file holding the incoming-webhook URL "
                                                       "(default: alertmanager.slack_api_url_file)")
    channel: str = Field(description="#channel or @user")
    send_resolved: bool = True


class EmailReceiver(Model):
    to: str = Field(description="recipient address(es), comma separated")
    send_resolved: bool = True


class PagerDutyReceiver(Model):
    routing_key_file: str = Field(description="file holding the Events API v2 integration (routing) key")
    send_resolved: bool = True


class Receiver(Model):
    """A named notification target; secrets only ever come from files."""

    name: str = Field(pattern=NAME_PATTERN)
    webhook: list[WebhookReceiver] = Field(default_factory=list)
    slack: list[SlackReceiver] = Field(default_factory=list)
    email: list[EmailReceiver] = Field(default_factory=list)
    pagerduty: list[PagerDutyReceiver] = Field(default_factory=list)


class Smtp(Model):
    smarthost: str = Field(description="host:port of the SMTP server")
    sender: str = Field(alias="from", description="From: address")
    auth_username: str | None = None
    auth_password_file: str | None = Field(None, description="file holding the SMTP password")
    require_tls: bool = True


class ServiceRoute(Model):
    """A branch of the route tree: alerts of one service (or matching ``matchers``)."""

    service: str | None = Field(None, description="matches the service label")
    matchers: list[str] = Field(default_factory=list, description='extra Alertmanager matchers, e.g. target="app"')
    receiver: str = Field(description="receiver of this branch")
    severity_receivers: dict[Severity, str] = Field(
        default_factory=dict, description="receiver per severity inside this branch (falls back to receiver)")
    group_by: list[str] | None = Field(None, description="default: alertmanager.group_by")
    continue_: bool = Field(False, alias="continue", description="also try the following branches")

    @model_validator(mode="after")
    def _matches_something(self) -> "ServiceRoute":
        if self.service is None and not self.matchers:
            raise ValueError("give service and/or matchers")
        for matcher in self.matchers:
            if not re.match(r'^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=~|!~|!=|=)\s*"[^"]*"\s*$', matcher):
                raise ValueError(f'invalid matcher {matcher!r} (use label="value", =~, != or !~)')
        return self


class InhibitSettings(Model):
    critical_inhibits_warning: bool = Field(
        True, description="a critical alert mutes warnings with the same equal labels")
    equal: list[str] = Field(default_factory=lambda: ["alertname", "target", "sloth_id"],
                             description="labels that must match for critical to mute warning")
    target_down_inhibits_target: bool = Field(
        True, description="VecmonTargetDown mutes every other alert of the same target")


class AlertmanagerSettings(Model):
    """Alertmanager configuration generated by ``vecmon generate`` (checked with amtool 0.25).

    ``*_file`` settings are written as they are and read by Alertmanager, not by vecmon: give
    absolute paths on the Alertmanager host (relative ones resolve against alertmanager.yml).
    """

    receiver: str = Field(description="default receiver (root of the route tree)")
    receivers: list[Receiver] = Field(min_length=1)
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "service", "target", "sloth_id"])
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 14400.0
    resolve_timeout: Duration = 300.0
    severity_receivers: dict[Severity, str] = Field(
        default_factory=dict, description="receiver per severity for alerts no service route takes")
    routes: list[ServiceRoute] = Field(default_factory=list, description="branches by service, tried in order")
    inhibit: InhibitSettings = Field(default_factory=InhibitSettings)
    smtp: Smtp | None = Field(None, description="needed by email receivers")
    slack_api_url_file: str | None = Field(None, description="default Slack incoming-webhook URL file")

    @model_validator(mode="after")
    def _references(self) -> "AlertmanagerSettings":
        names = [r.name for r in self.receivers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate receiver name(s) {', '.join(duplicates)}")
        known = set(names) | {"null"}
        used = [self.receiver, *self.severity_receivers.values()]
        for route in self.routes:
            used += [route.receiver, *route.severity_receivers.values()]
        unknown = sorted(set(used) - known)
        if unknown:
            raise ValueError(f"unknown receiver(s) {', '.join(unknown)}; defined: {', '.join(sorted(names))}")
        if any(r.email for r in self.receivers) and self.smtp is None:
            raise ValueError("email receivers need alertmanager.smtp")
        if any(s.api_url_file is None for r in self.receivers for s in r.slack) and not self.slack_api_url_file:
            raise ValueError("slack receivers need api_url_file (or alertmanager.slack_api_url_file)")
        for label in self.group_by + self.inhibit.equal:
            if not LABEL_NAME.match(label):
                raise ValueError(f"invalid label name {label!r}")
        return self


def _unique_slos(value: list[SLO]) -> list[SLO]:
    ids = [slo.id for slo in value]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"duplicate SLO(s) {', '.join(duplicates)} (service-name must be unique)")
    return value


SLOList = Annotated[list[SLO], AfterValidator(_unique_slos)]
