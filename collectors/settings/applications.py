"""Typed configuration of the application probes: HTTP(S) checks of the RAG application's own
endpoints (health, readiness, a search request with a known answer), in the manner of
blackbox_exporter's ``http`` module.

One ``applications[]`` entry is one check and one target (its ``name`` is the target label):
a RAG service usually gets three (``rag-health``, ``rag-ready``, ``rag-search``).

A check succeeds when the answer arrives within ``timeout`` (the whole request, trickled bytes
included), its status is in ``valid_status_codes`` (default: any 2xx; redirects are not
followed), the body matches every ``body_matches`` regex and none of ``body_not_matches``, and
every ``json`` assertion holds. A JSON assertion is a JMESPath expression
(https://jmespath.org/specification.html; ``results[0].id``, ``status``, ``length(results)``)
and exactly one check on its value::

    json:
      - {path: status, equals: healthy}        # JSON equality; true is not 1
      - {path: results, min_length: 1}         # an array, string or object of at least 1 item
      - {path: "results[0].id", exists: true}  # not null / present
      - {path: version, matches: "^1\\\\."}     # a string matching the regex (re.search)

Defaults from the seeds: ``interval`` 30s and ``timeout`` 10s (Dockerfile ``HEALTHCHECK
--interval=30s --timeout=10s``; Kubernetes liveness ``periodSeconds: 30``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from collectors.settings.base import Duration, Model
from collectors.settings.targets import ScheduledTarget, check_http_url, url_secrets

MAX_BODY_LIMIT = 32 * 1024 * 1024  # collectors.providers.common.MAX_BODY_BYTES


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


class JsonAssertion(Model):
    """One assertion on the JSON body: a JMESPath ``path`` and exactly one check."""

    path: str = Field(min_length=1, description="JMESPath expression, e.g. results[0].id or status")
    equals: Any = Field(None, description="the value must equal this (JSON equality: types must match)")
    min_length: int | None = Field(None, ge=0, description="the value is an array, string or object this long")
    exists: bool | None = Field(None, description="true: the value is present and not null; false: it is absent")
    matches: str | None = Field(None, description="the value is a string matching this regex (re.search)")

    @field_validator("path")
    @classmethod
    def _path_compiles(cls, path: str) -> str:
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(path)
        except JMESPathError as exc:
            raise ValueError(f"invalid JMESPath expression {path!r}: {str(exc).splitlines()[0]}") from None
        return path

    @field_validator("matches")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        return None if pattern is None else _check_regex(pattern)

    @model_validator(mode="after")
    def _one_check(self) -> JsonAssertion:
        given = [name for name in ("equals", "min_length", "exists", "matches") if name in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"give exactly one of equals, min_length, exists, matches (got "
                             f"{', '.join(given) or 'none'})")
        return self

    @property
    def check(self) -> str:
        return next(n for n in ("equals", "min_length", "exists", "matches") if n in self.model_fields_set)


class ApplicationTarget(ScheduledTarget):
    """One HTTP(S) check of the application's own endpoint."""

    url: str = Field(repr=False, description="full URL of the endpoint (http or https)")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        "GET", description="HTTP method")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="request headers (e.g. Authorization); values treated as secrets")
    body: str | None = Field(None, description="raw request body")
    json_body: Any = Field(None, description="request body sent as JSON (sets Content-Type: application/json)")
    valid_status_codes: list[int] = Field(
        default_factory=list, description="accepted statuses; default: any 2xx (redirects are not followed)")
    body_matches: list[str] = Field(
        default_factory=list, description="regexes the body must all match (blackbox fail_if_body_not_matches_regexp)")
    body_not_matches: list[str] = Field(
        default_factory=list, description="regexes the body must not match (blackbox fail_if_body_matches_regexp)")
    assertions: list[JsonAssertion] = Field(default_factory=list, alias="json",
                                            description="assertions on the JSON body (JMESPath path + one check)")
    interval: Duration = Field(30.0, description="time between checks")
    timeout: Duration = Field(10.0, description="whole request: connect, TLS, headers and body")
    tls_verify: bool = Field(True, description="verify the server certificate (false = blackbox insecure_skip_verify)")
    tls_ca_file: str | None = Field(
        None, description="CA bundle (PEM) to verify the server certificate with (relative to the config file)")
    max_body_bytes: int = Field(1024 * 1024, ge=1, le=MAX_BODY_LIMIT,
                                description="a longer answer is bad_response, read no further")

    @field_validator("url")
    @classmethod
    def _url_is_valid(cls, url: str) -> str:
        checked = check_http_url(url)
        assert checked is not None
        return checked

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        path = Path((info.context or {}).get("base_dir") or ".") / Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"tls_ca_file {str(path)!r} is not a readable file")
        return str(path)

    @field_validator("valid_status_codes")
    @classmethod
    def _statuses(cls, codes: list[int]) -> list[int]:
        bad = [c for c in codes if not 100 <= c <= 599]
        if bad:
            raise ValueError(f"not an HTTP status: {', '.join(map(str, bad))}")
        return codes

    @field_validator("body_matches", "body_not_matches")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        return [_check_regex(p) for p in patterns]

    @model_validator(mode="after")
    def _consistent(self) -> ApplicationTarget:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give body or json_body, not both")
        if self.tls_ca_file is not None and not self.tls_verify:
            raise ValueError("tls_ca_file needs tls_verify: true")
        if self.method == "HEAD" and (self.body_matches or self.body_not_matches or self.assertions):
            raise ValueError("a HEAD answer has no body to assert on")
        return self

    def status_ok(self, status: int) -> bool:
        return status in self.valid_status_codes if self.valid_status_codes else 200 <= status < 300

    def verify(self) -> bool | str:
        """``verify`` for requests: a CA bundle path, True or False."""
        return self.tls_ca_file if self.tls_ca_file is not None else self.tls_verify

    def secrets(self) -> list[str]:
        """Everything to redact: header values and credentials embedded in the URL."""
        values = [v.get_secret_value() for v in self.headers.values()] + url_secrets(self.url)
        return [v for v in values if v]
