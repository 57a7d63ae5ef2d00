"""What every target that is not a database has in common: its schedule, an API key, URL checks.

Every target model has ``name``, ``interval_for``, ``timeout_for`` and ``jitter_for``, like
:class:`monitor.config.DatabaseTarget`, so the scheduler treats all targets alike.

Secrets: ``api_key`` (usually ``${ENV_VAR}``) or ``api_key_file`` (first line of the file,
stripped; a relative path is resolved against the config file's directory). They are
:class:`~pydantic.SecretStr` and never rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, model_validator

from collectors.settings.base import NAME_PATTERN, ForDuration, Model, SecretFilePath, one_secret


def url_secrets(url: str | None) -> list[str]:
    """The password of ``user:password@`` and every query value of a URL (gateways put keys there)."""
    if not url:
        return []
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    values = [parts.password or ""] + [v for _, v in parse_qsl(parts.query)]
    return [v for v in values if len(v) >= 4]


def check_http_url(url: str | None) -> str | None:
    """An http(s) URL with a host name and, if given, a port in 1..65535 (what callers of
    ``urlsplit(url).port`` and ``requests`` rely on). The error never echoes the URL: its query
    string or user info may hold a key."""
    if url is None:
        return url
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in an IPv6 host
        raise ValueError("invalid URL: malformed host") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("invalid URL: must start with http:// or https://")
    try:
        port = parts.port
    except ValueError as exc:  # out of range, or not a number
        reason = "port out of range" if "out of range" in str(exc) else "port is not a number"
        raise ValueError(f"invalid URL: {reason}") from None
    if port == 0:
        raise ValueError("invalid URL: port out of range")
    if not parts.hostname:
        raise ValueError("invalid URL: no host name")
    return url


class ScheduledTarget(Model):
    """Common scheduling fields of a non-database target."""

    name: str = Field(pattern=NAME_PATTERN, description="the target label value")
    enabled: bool = Field(True, description="false keeps the entry but schedules nothing")
    jitter: ForDuration | None = Field(None, description="random delay added to each run; default 10% of interval")
    if TYPE_CHECKING:  # every kind declares them as fields, with its own defaults and descriptions
        interval: float
        timeout: float

    def interval_for(self, collector: str) -> float:
        return self.interval

    def timeout_for(self, collector: str) -> float:
        return min(self.timeout, self.interval_for(collector))

    def jitter_for(self, collector: str) -> float:
        return self.jitter if self.jitter is not None else round(self.interval_for(collector) * 0.1, 3)

    def secrets(self) -> list[str]:
        """Everything a message about this target must not show (kinds with credentials add theirs)."""
        return []


class WithApiKey(Model):
    api_key: SecretStr | None = Field(None, description="use ${ENV_VAR}; never logged or exported")
    api_key_file: SecretFilePath | None = Field(None, description="file whose first line is the API key")

    @model_validator(mode="after")
    def _one_key(self) -> WithApiKey:
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("give api_key or api_key_file, not both")
        return self

    def key(self) -> str | None:
        """The API key in clear text (for the Authorization header only)."""
        return one_secret(self.api_key, self.api_key_file)
