"""HTTP(S) checks of the RAG application's own endpoints (collector name ``app_probe``).

One job per ``applications[]`` entry (:class:`collectors.settings.applications.ApplicationTarget`), in the
manner of blackbox_exporter's ``http`` module: one request per run, sent by
:func:`collectors.providers.common.send` (the model probes' sender: the whole request ends by the
check's ``timeout`` whatever the server does, trickled headers or body included; an answer over
``max_body_bytes`` is read no further), then judged in this order, the first failure naming the
outcome:

=====================  ==================================================================
outcome                when
=====================  ==================================================================
``timeout``            no complete answer within ``timeout``
``tls_error``          the TLS handshake failed (certificate not verified, wrong host...)
``connection_error``   refused, reset, DNS
``bad_response``       not HTTP, longer than ``max_body_bytes``, or not JSON when ``json``
                       assertions are configured
``http_4xx``/``5xx``   a status outside ``valid_status_codes`` (default: any 2xx)
``unexpected_status``  any other status outside them (1xx, 3xx: redirects are not followed)
``body_mismatch``      a ``body_matches`` regex does not match, or a ``body_not_matches`` one does
``json_mismatch``      a ``json`` assertion (JMESPath path + check) does not hold
``success``            everything held
=====================  ==================================================================

blackbox_exporter equivalents: ``vecmon_app_probe_success`` = ``probe_success``,
``vecmon_app_probe_http_status_code`` = ``probe_http_status_code``,
``vecmon_app_tls_cert_expiry_timestamp_seconds`` ~ ``probe_ssl_earliest_cert_expiry`` (here the
server's own certificate, the one presented on the connection, read also when it is not
verified with ``tls_verify: false``; the chain's intermediates are not exposed by Python 3.11's
``ssl`` module). The latency histogram and the outcome counter accumulate in ``ctx.state`` (per
job, across runs), so ``rate()`` gives the error ratio and the latency over any window.

The certificate's ``notAfter`` is read from its DER encoding (:func:`certificate_not_after`):
the standard library decodes certificates only after verifying them, and the ``cryptography``
package would be a compiled dependency for one date field.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from prometheus_client.core import Metric

from collectors.app_metrics import (
    APP_METRICS,
    APP_PROBE_ASSERTION_FAILURES_TOTAL,
    APP_PROBE_DURATION_SECONDS,
    APP_PROBE_HTTP_STATUS_CODE,
    APP_PROBE_LAST_DURATION_SECONDS,
    APP_PROBE_REQUESTS_TOTAL,
    APP_PROBE_SUCCESS,
    APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS,
)
from collectors.base import CollectContext, Emitter, MetricSpec
from collectors.model_probe import cumulative, new_histogram, observe
from collectors.providers.common import ApiRequest, Attempt, send
from collectors.redaction import redact
from collectors.settings.applications import ApplicationTarget, JsonAssertion

log = logging.getLogger(__name__)

APP_OUTCOMES = ("success", "http_4xx", "http_5xx", "unexpected_status", "timeout", "connection_error", "tls_error",
                "bad_response", "body_mismatch", "json_mismatch")



# --------------------------------------------------------------------------- certificate expiry (DER)


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``; ValueError if truncated."""
    if pos + 2 > len(data):
        raise ValueError("truncated")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 4 or pos + size > len(data):
            raise ValueError("bad length")
        length = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated")
    return tag, pos, pos + length


def _time(tag: int, text: str) -> float:
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: 50..99 are 19xx (RFC 5280 4.1.2.5.1)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError("not a time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC).timestamp()


def certificate_not_after(der: bytes) -> float | None:
    """The ``notAfter`` (Unix time) of an X.509 certificate in DER, or None if it does not parse.

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity SEQUENCE { notBefore, notAfter }, ... }, ... } (RFC 5280 4.1)."""
    try:
        _, start, _ = _element(der, 0)  # Certificate
        _, pos, _ = _element(der, start)  # tbsCertificate
        tag, _, end = _element(der, pos)
        if tag == 0xA0:  # explicit version
            pos = end
        for _ in range(3):  # serialNumber, signature, issuer
            _, _, pos = _element(der, pos)
        tag, validity, _ = _element(der, pos)
        if tag != 0x30:
            return None
        _, _, after_pos = _element(der, validity)  # skip notBefore
        tag, start, end = _element(der, after_pos)
        return _time(tag, der[start:end].decode("ascii"))
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None


# --------------------------------------------------------------------------- assertions


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, but a boolean is never a number (Python has True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def assertion_holds(assertion: JsonAssertion, document: Any) -> bool:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        value = jmespath.search(assertion.path, document)
    except (JMESPathError, TypeError, ValueError):  # e.g. length() of a number
        return False
    check = assertion.check
    if check == "equals":
        return json_equal(value, assertion.equals)
    if check == "min_length":
        return isinstance(value, (list, str, dict)) and len(value) >= (assertion.min_length or 0)
    if check == "exists":
        return (value is not None) == assertion.exists
    return isinstance(value, str) and re.search(assertion.matches or "", value) is not None


def failed_assertions(app: ApplicationTarget, body: bytes) -> tuple[str | None, list[str], str]:
    """(outcome or None when all hold, names of the failed assertions, error text)."""
    failed: list[str] = []
    if app.body_matches or app.body_not_matches:
        text = body.decode("utf-8", "replace")
        failed += [f"body_matches[{i}]" for i, p in enumerate(app.body_matches) if not re.search(p, text)]
        failed += [f"body_not_matches[{i}]" for i, p in enumerate(app.body_not_matches) if re.search(p, text)]
        if failed:
            return "body_mismatch", failed, "body assertion failed: " + ", ".join(failed)
    if app.assertions:
        try:
            document = json.loads(body)
        except ValueError:
            return "bad_response", [], "body is not JSON"
        except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on deeply nested arrays: still data
            return "bad_response", [], f"undecodable JSON ({type(exc).__name__})"
        failed = [f"json[{i}]" for i, a in enumerate(app.assertions) if not assertion_holds(a, document)]
        if failed:
            paths = ", ".join(f"{name} ({app.assertions[int(name[5:-1])].path})" for name in failed)
            return "json_mismatch", failed, "JSON assertion failed: " + paths
    return None, [], ""


# --------------------------------------------------------------------------- the collector


def judge(app: ApplicationTarget, attempt: Attempt) -> tuple[str, list[str], str]:
    """(outcome, failed assertions, error) of one raw attempt."""
    if attempt.body is None:  # no complete answer: send says why
        if attempt.outcome == "connection_error" and attempt.error == "SSLError":
            return "tls_error", [], "TLS handshake failed"
        return attempt.outcome, [], attempt.error
    status = attempt.status
    if not app.status_ok(status):
        outcome = "http_4xx" if 400 <= status < 500 else "http_5xx" if status >= 500 else "unexpected_status"
        return outcome, [], f"HTTP {status}"
    failure, failed, error = failed_assertions(app, attempt.body or b"")
    return failure or "success", failed, error


def assertion_names(app: ApplicationTarget) -> list[str]:
    return ([f"body_matches[{i}]" for i in range(len(app.body_matches))]
            + [f"body_not_matches[{i}]" for i in range(len(app.body_not_matches))]
            + [f"json[{i}]" for i in range(len(app.assertions))])


class AppProbeCollector:
    """Checks one application endpoint per run."""

    name: ClassVar[str] = "app_probe"
    METRICS: ClassVar[tuple[MetricSpec, ...]] = APP_METRICS

    def __init__(self, session: requests.Session | None = None):
        self.session = session or requests.Session()

    @staticmethod
    def request(app: ApplicationTarget) -> ApiRequest:
        headers = {name: value.get_secret_value() for name, value in app.headers.items()}
        content = app.body.encode() if app.body is not None else None
        return ApiRequest(path="", body=app.json_body, headers=headers, method=app.method, content=content)

    def collect(self, ctx: CollectContext) -> list[Metric]:
        app: ApplicationTarget = ctx.settings
        state = ctx.state
        started = time.perf_counter()
        attempt = send(self.session, app.url, self.request(app), started + app.timeout_for(self.name),
                       verify=app.verify(), max_bytes=app.max_body_bytes, raw=True)
        outcome, failed, error = judge(app, attempt)
        requests_by_outcome = state.setdefault("requests", dict.fromkeys(APP_OUTCOMES, 0))
        requests_by_outcome[outcome] += 1
        observe(state.setdefault("hist", {}).setdefault(outcome, new_histogram()), attempt.latency)
        failures = state.setdefault("assertions", {})
        for name in failed:
            failures[name] = failures.get(name, 0) + 1
        not_after = certificate_not_after(attempt.peer_certificate) if attempt.peer_certificate else None
        state["last"] = {"success": outcome == "success", "status": attempt.status, "duration": attempt.latency,
                         "not_after": not_after}
        if outcome != "success":
            log.info("application check %s: %s, %s", app.name, outcome, redact(error, app.secrets()))
        return self._emit(app, state)

    def _emit(self, app: ApplicationTarget, state: dict[str, Any]) -> list[Metric]:
        out = Emitter(app.name, self.METRICS)
        last = state["last"]
        out.add(APP_PROBE_SUCCESS.name, 1 if last["success"] else 0)
        for outcome in APP_OUTCOMES:
            hist = state.get("hist", {}).get(outcome)
            if hist is not None:
                out.histogram(APP_PROBE_DURATION_SECONDS.name, cumulative(hist), hist["sum"], outcome)
            out.add(APP_PROBE_REQUESTS_TOTAL.name, state["requests"][outcome], outcome)
        out.add(APP_PROBE_LAST_DURATION_SECONDS.name, last["duration"])
        out.add(APP_PROBE_HTTP_STATUS_CODE.name, last["status"])
        for name in assertion_names(app):
            out.add(APP_PROBE_ASSERTION_FAILURES_TOTAL.name, state["assertions"].get(name, 0), name)
        if last["not_after"] is not None and math.isfinite(last["not_after"]):
            out.add(APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS.name, last["not_after"])
        return out.families()


__all__ = ["APP_METRICS", "APP_OUTCOMES", "AppProbeCollector", "certificate_not_after"]
