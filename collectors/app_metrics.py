"""The metrics of the application probes (:mod:`collectors.app_probe`), declared apart from the
probe so that alerts and dashboards can name them without loading the HTTP client (requests)."""

from __future__ import annotations

from collectors.base import MetricSpec

APP_PROBE_SUCCESS = MetricSpec("vecmon_app_probe_success", "gauge",
                               "Whether the last check of the application endpoint passed (1) or not (0).", ())
APP_PROBE_DURATION_SECONDS = MetricSpec(
    "vecmon_app_probe_duration_seconds", "histogram",
    "Round-trip time of application checks (request start to last body byte) by outcome.",
    ("outcome",))
APP_PROBE_REQUESTS_TOTAL = MetricSpec(
    "vecmon_app_probe_requests_total", "counter",
    "Application checks by outcome: success, http_4xx, http_5xx, unexpected_status, timeout, "
    "connection_error, tls_error, bad_response, body_mismatch, json_mismatch.", ("outcome",))
APP_PROBE_LAST_DURATION_SECONDS = MetricSpec("vecmon_app_probe_last_duration_seconds", "gauge",
                                             "Round-trip time of the last application check, whatever its outcome.", ())
APP_PROBE_HTTP_STATUS_CODE = MetricSpec("vecmon_app_probe_http_status_code", "gauge",
                                        "HTTP status of the last application check (0 when no response arrived).", ())
APP_PROBE_ASSERTION_FAILURES_TOTAL = MetricSpec(
    "vecmon_app_probe_assertion_failures_total", "counter",
    "Checks that failed a configured body or JSON assertion, by assertion (body_matches[i], "
    "body_not_matches[i], json[i]).", ("assertion",))
APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS = MetricSpec(
    "vecmon_app_tls_cert_expiry_timestamp_seconds", "gauge",
    "Expiry (notAfter, Unix time) of the certificate the server presented in the last check (verified or "
    "not); absent when the last check got no answer over TLS.", ())


APP_METRICS = (
    APP_PROBE_SUCCESS,
    APP_PROBE_DURATION_SECONDS,
    APP_PROBE_REQUESTS_TOTAL,
    APP_PROBE_LAST_DURATION_SECONDS,
    APP_PROBE_HTTP_STATUS_CODE,
    APP_PROBE_ASSERTION_FAILURES_TOTAL,
    APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS,
)
