"""What every provider module shares: the request/result types, strict JSON accessors,
response-header parsing (rate limits, Retry-After) and one HTTP attempt bounded as a whole
(time and size), used by the probes and the cost-API polls alike.

A provider module builds an :class:`ApiRequest` and parses a decoded JSON body (plus the
response headers) into a :class:`ProbeResult`; anything that does not match the provider's
documented shape raises :class:`ParseError`, which the probe counts as ``bad_response``.

Nothing a server sends may raise anything else: numbers too big for a float become ``inf``
(as the JSON decoder does for ``1e400``), usage quantities that are negative or absurd are
treated as absent (they feed counters, which must never go down), and a body the decoder
cannot handle at all (deeply nested, say) is ``bad_response`` like malformed JSON.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from http.client import HTTPException, IncompleteRead, RemoteDisconnected
from types import MappingProxyType
from typing import Any

import requests
from urllib3.exceptions import InvalidChunkLength, ReadTimeoutError
from urllib3.util import Timeout

from collectors.providers.http_deadline import RequestWatch, deadline_watch

EMBEDDING, RERANK = "embedding", "rerank"

OUTCOMES = ("success", "http_4xx", "http_5xx", "rate_limited", "timeout", "connection_error", "bad_response")
MAX_BODY_BYTES = 32 * 1024 * 1024
# the largest usage quantity (tokens, search units, nanoseconds) believed: 2**53 is the last
# integer a float holds exactly, and far beyond anything one probe can be billed
MAX_COUNT = 2 ** 53


class ParseError(ValueError):
    """The response body does not have the provider's documented shape."""


@dataclass(frozen=True)
class Params:
    """Endpoint settings a provider module needs to build a request."""

    provider: str  # the configured provider name (variants share a module)
    model: str
    api_key: str | None = None
    input_type: str | None = None
    output_dimension: int | None = None
    deployment: str | None = None
    api_version: str | None = None


@dataclass(frozen=True)
class ApiRequest:
    path: str  # appended to the endpoint's base URL
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)  # query string
    method: str = "POST"
    content: bytes | None = None  # a raw request body, sent instead of ``body`` as JSON


@dataclass
class ProbeResult:
    """A parsed answer, in the provider's own terms."""

    embeddings: list[list[float]] | None = None
    ranking: list[tuple[int, float]] | None = None  # (document index, score), in the order returned
    tokens: int | None = None  # billed/used tokens as the provider reports them
    search_units: float | None = None  # Cohere rerank billing unit
    server_timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    model: str | None = None  # model named in the response


# --------------------------------------------------------------------------- JSON accessors


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(f"{where}: expected an array, got {type(value).__name__}")
    return value


def field_of(obj: Any, key: str, where: str) -> Any:
    obj = as_dict(obj, where)
    if key not in obj:
        raise ParseError(f"{where}: missing {key!r}")
    return obj[key]


def as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"{where}: expected an integer, got {value!r:.40}")
    return value


def as_number(value: Any, where: str) -> float:
    """A float; ``null`` is NaN and an integer too big for a float is +-inf (validation flags both)."""
    if value is None:  # a server that cannot serialise NaN sends null
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:  # e.g. a 400-digit integer: what the decoder makes of 1e400
        return math.inf if value > 0 else -math.inf


def finite_number(value: Any, where: str) -> float:
    """A finite float; anything else (null, NaN, inf, a 400-digit integer, a string) is a ParseError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParseError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise ParseError(f"{where}: number out of range") from None
    if not math.isfinite(number):
        raise ParseError(f"{where}: expected a finite number")
    return number


def finite_amount(value: Any, where: str) -> float:
    """A finite float from a JSON number or a numeric string: the OpenAI costs API documents
    ``amount.value`` as a number but sent strings such as ``"12.50"`` and ``"0E-6176"`` for
    months in 2026 (openai-java#771). Read as :class:`~decimal.Decimal`, so any decimal
    notation is understood; anything else (``"NaN"``, ``"1e999"``, ``"12 USD"``) is a ParseError."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 100:
            raise ParseError(f"{where}: expected a number, got a {len(text)}-character string")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ParseError(f"{where}: expected a number, got {value!r:.40}") from None
        if not number.is_finite():
            raise ParseError(f"{where}: expected a finite number")
        amount = float(number)  # a huge exponent becomes inf, refused below
        if not math.isfinite(amount):
            raise ParseError(f"{where}: number out of range")
        return amount
    return finite_number(value, where)


def vector(value: Any, where: str) -> list[float]:
    return [as_number(x, where) for x in as_list(value, where)]


def _quantity(obj: Any, path: tuple[str, ...]) -> int | float | None:
    """The leaf at ``path`` when it is a number in 0..MAX_COUNT, else None (missing or unusable)."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    if isinstance(obj, bool) or not isinstance(obj, (int, float)):
        return None
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if not 0 <= obj <= MAX_COUNT:  # exact for any int, however big; negatives would make counters go down
        return None
    return obj


def optional_int(obj: Any, *path: str) -> int | None:
    """obj[path[0]][path[1]]... when every step exists and the leaf is a usage quantity, else None.

    A usage quantity is a number from 0 to :data:`MAX_COUNT` (fractions are truncated); a
    negative, non-finite or absurdly large value counts as missing."""
    value = _quantity(obj, path)
    return None if value is None else int(value)


def optional_number(obj: Any, *path: str) -> float | None:
    """Like :func:`optional_int` but keeps fractions (e.g. Cohere ``search_units``)."""
    value = _quantity(obj, path)
    return None if value is None else float(value)


def indexed_items(items: list[Any], where: str, vector_key: str) -> list[list[float]]:
    """``[{index, <vector_key>}]`` (OpenAI-style ``data``) -> vectors ordered by index, indices 0..n-1."""
    by_index: dict[int, list[float]] = {}
    for i, item in enumerate(items):
        index = as_int(field_of(item, "index", f"{where}[{i}]"), f"{where}[{i}].index")
        if index in by_index:
            raise ParseError(f"{where}: index {index} twice")
        by_index[index] = vector(field_of(item, vector_key, f"{where}[{i}]"), f"{where}[{i}].{vector_key}")
    if sorted(by_index) != list(range(len(by_index))):
        raise ParseError(f"{where}: indices are not 0..{len(by_index) - 1}")
    return [by_index[i] for i in range(len(by_index))]


def data_embeddings(body: Any) -> ProbeResult:
    """An OpenAI-shaped answer (``data[].embedding``, ``usage.total_tokens``, ``model``), as Voyage
    and Jina send it; usage is optional."""
    obj = as_dict(body, "response")
    embeddings = indexed_items(as_list(field_of(obj, "data", "response"), "response.data"), "response.data",
                               "embedding")
    return ProbeResult(embeddings=embeddings, tokens=optional_int(obj, "usage", "total_tokens"),
                       model=obj.get("model") if isinstance(obj.get("model"), str) else None)


def ranked_items(items: list[Any], where: str, score_key: str) -> list[tuple[int, float]]:
    out = []
    for i, item in enumerate(items):
        index = as_int(field_of(item, "index", f"{where}[{i}]"), f"{where}[{i}].index")
        score = as_number(field_of(item, score_key, f"{where}[{i}]"), f"{where}[{i}].{score_key}")
        out.append((index, score))
    return out


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def header_millis(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number / 1000.0 if number is not None and math.isfinite(number) and number >= 0 else None


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """A usage count from a header (e.g. TEI ``x-compute-tokens``): plain ASCII digits up to
    :data:`MAX_COUNT`; anything else (negative, ``1_000``, huge) is None."""
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        return None
    number = int(value)
    return number if number <= MAX_COUNT else None


# --------------------------------------------------------------------------- headers

_GO_UNITS = MappingProxyType({"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9})
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def parse_duration_header(value: str | None) -> float | None:
    """``6m0s``, ``12ms``, ``1h2m3.5s`` (Go ``time.Duration`` strings, as OpenAI sends) or plain seconds."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(value):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(value) and pos > 0 else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date (RFC 9110 10.2.3); None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone accepts e.g. "\u00b2", which float() refuses
        return float(value)  # may be inf for a 400-digit value: never fits, so never waited for
    try:
        when = parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    except Exception:  # noqa: BLE001 - a header the server got wrong is ignored, never raised
        return None


RATE_LIMIT_RESOURCES = ("requests", "tokens")


def parse_rate_limits(headers: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` (OpenAI, Azure OpenAI, LiteLLM...).

    Returns resource -> {limit, remaining, reset} with whatever parsed; empty when none are sent.
    A negative limit or remaining is a placeholder, not a quota (Azure OpenAI sends
    ``limit-tokens: -1, remaining-tokens: -1, reset-tokens: 0``): that resource is left out.
    """
    out: dict[str, dict[str, float]] = {}
    for resource in RATE_LIMIT_RESOURCES:
        values: dict[str, float] = {}
        placeholder = False
        for part in ("limit", "remaining"):
            raw = headers.get(f"x-ratelimit-{part}-{resource}")
            try:
                number = float(raw) if raw is not None else None
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                if number < 0:
                    placeholder = True
                values[part] = number
        if placeholder:
            continue
        reset = parse_duration_header(headers.get(f"x-ratelimit-reset-{resource}"))
        if reset is not None:
            values["reset"] = reset
        if values:
            out[resource] = values
    return out


# --------------------------------------------------------------------------- one HTTP attempt


@dataclass
class Attempt:
    """The result of one HTTP request, classified."""

    outcome: str
    status: int = 0  # 0 when no response arrived
    latency: float = 0.0  # perf_counter seconds, request start to last body byte
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # decoded JSON for 2xx responses
    error: str = ""  # short, secret-free description (exception type or "HTTP 503")
    retry_after: float | None = None
    peer_certificate: bytes | None = None  # with raw=True over TLS: the server's certificate (DER)


def classify_status(status: int) -> str:
    if 200 <= status < 300:
        return "success"
    if status == 429:
        return "rate_limited"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return "bad_response"  # 1xx/3xx: redirects are not followed


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (requests and urllib3 pass the original in ``args``)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(c for c in (current.__cause__, current.__context__) if c is not None)
    return seen


def _garbled(exc: BaseException) -> bool:
    """Whether the peer answered with something that is not HTTP (a bad status line, a header
    flood, an invalid chunk size), as opposed to closing or resetting the connection."""
    for cause in _causes(exc):
        if isinstance(cause, InvalidChunkLength):
            return True
        if isinstance(cause, HTTPException) and not isinstance(cause, (RemoteDisconnected, IncompleteRead)):
            return True
    return False


def _failed(exc: requests.exceptions.RequestException, watch: RequestWatch) -> tuple[str, str]:
    """(outcome, error) of a request or body read that raised."""
    if watch.fired:  # the deadline shut the socket down under a blocked read
        return "timeout", "deadline passed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "timeout", "ConnectTimeout"
    # requests wraps a body-read timeout (urllib3 ReadTimeoutError) in a ConnectionError
    if isinstance(exc, requests.exceptions.Timeout) or any(isinstance(c, ReadTimeoutError) for c in _causes(exc)):
        return "timeout", "ReadTimeout"
    if _garbled(exc):
        return "bad_response", "not an HTTP response"
    return "connection_error", type(exc).__name__  # refused, reset, DNS, TLS, bad URL


def retry_delay(status: int, headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait before a retry (429/503 only): ``retry-after-ms`` first,
    as the OpenAI and Azure OpenAI clients read it, then ``Retry-After``; None when neither parses."""
    if status not in (429, 503):
        return None
    millis = header_millis(headers, "retry-after-ms")
    return millis if millis is not None else parse_retry_after(headers.get("Retry-After"))


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = (headers.get("Content-Length") or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _peer_certificate(response: requests.Response) -> bytes | None:
    """The DER certificate the server presented on this response's TLS connection (also when it
    was not verified), or None for plain HTTP."""
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        certificate: bytes | None = getpeercert(binary_form=True)
        return certificate
    except (OSError, ValueError):
        return None


def send(session: requests.Session, url: str, request: ApiRequest, deadline: float, *,
         verify: bool | str = True, max_bytes: int = MAX_BODY_BYTES, raw: bool = False) -> Attempt:
    """One request that ends by ``deadline`` (a perf_counter value), whatever the peer does:
    connect, headers and body, however slowly they trickle in (see :mod:`.http_deadline`).
    A body over ``max_bytes`` (declared or received) is ``bad_response``, read no further.
    ``verify``: as in requests (a CA bundle path, or False). With ``raw`` (the application
    probes) the body is kept as bytes whatever the status, nothing is decoded, and the TLS
    server certificate is kept in ``peer_certificate``.

    Never raises for network or HTTP problems; the outcome says what happened.
    """
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        return Attempt("timeout", error="no time left")
    # per socket operation; the watch bounds the request as a whole
    timeout = Timeout(connect=remaining, read=remaining)
    start = time.perf_counter()
    with deadline_watch(session, remaining) as watch:
        try:
            response = session.request(
                request.method, url, params=request.params or None, headers=request.headers,
                json=request.body if request.method != "GET" and request.content is None else None,
                data=request.content,
                # types-requests leaves out the urllib3 Timeout that requests' adapter takes
                timeout=timeout, stream=True, allow_redirects=False, verify=verify)  # type: ignore[arg-type]
        except requests.exceptions.RequestException as exc:
            outcome, error = _failed(exc, watch)
            return Attempt(outcome, latency=time.perf_counter() - start, error=error)
        try:
            status, headers = response.status_code, response.headers
            certificate = _peer_certificate(response) if raw else None
            declared = _content_length(headers)
            if declared is not None and declared > max_bytes:
                return Attempt("bad_response", status, time.perf_counter() - start, headers,
                               error="response too large", peer_certificate=certificate)
            chunks, size = [], 0
            try:
                for chunk in response.iter_content(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        return Attempt("bad_response", status, time.perf_counter() - start, headers,
                                       error="response too large", peer_certificate=certificate)
                    if time.perf_counter() > deadline:
                        return Attempt("timeout", status, time.perf_counter() - start, headers,
                                       error="body read timed out", peer_certificate=certificate)
            except requests.exceptions.RequestException as exc:
                outcome, error = _failed(exc, watch)
                return Attempt(outcome, status, time.perf_counter() - start, headers, error=error,
                               peer_certificate=certificate)
            latency = time.perf_counter() - start
        finally:
            response.close()
    outcome = classify_status(status)
    attempt = Attempt(outcome, status, latency, headers)
    if raw:
        attempt.body, attempt.peer_certificate = b"".join(chunks), certificate
        return attempt
    if outcome != "success":
        attempt.error = f"HTTP {status}"
        attempt.retry_after = retry_delay(status, headers)
        return attempt
    try:
        attempt.body = json.loads(b"".join(chunks))
    except ValueError:  # includes UnicodeDecodeError
        attempt.outcome, attempt.error = "bad_response", "malformed JSON"
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on deeply nested arrays: still data
        attempt.outcome, attempt.error = "bad_response", f"undecodable JSON ({type(exc).__name__})"
    return attempt


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + path
