"""Alerts on the application probes (:mod:`collectors.app_probe`): :data:`APP_ALERTS`, rule group
``vecmon-applications``.

Windows fit the probes' default cadence (one check every 30s): a 10-minute window holds 20 checks
of each target, so the 5% error ratio of the seeds means "2 failed checks or more" there, and
one failed check in 20 (exactly 5%) does not fire.
"""

from __future__ import annotations

from alerts.fixtures import MINUTE, Fixture, InputSeries, sel
from alerts.model import AlertDef, Custom, Doc, Params, T, V, W
from alerts.shapes import FailedOutcomes, MeanLatency
from alerts.targets import APPLICATIONS, HTTPS_APPLICATIONS
from collectors.app_metrics import (
    APP_PROBE_DURATION_SECONDS,
    APP_PROBE_REQUESTS_TOTAL,
    APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS,
)

GROUP = "applications"
SERVICE = "application"
EXAMPLE = {"target": "rag-search"}
DAY = 86400.0

REQUESTS = APP_PROBE_REQUESTS_TOTAL.name
DURATION = APP_PROBE_DURATION_SECONDS.name
EXPIRY = APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS.name


def _expiry_fixture(p: Params, value: float) -> Fixture:
    # notAfter = value + t: "expires in `value` seconds" at every evaluation time t
    return Fixture((InputSeries(sel(EXPIRY, EXAMPLE), value, MINUTE),), dict(EXAMPLE), value)


APP_ALERTS: list[AlertDef] = [
    AlertDef(
        name="AppProbeErrorRatioHigh", group=GROUP, service=SERVICE, severity="critical", for_=5 * MINUTE,
        threshold=0.05, window=10 * MINUTE, minimum=10, fmt="percent",
        minimum_doc="checks of the target in the window (20 at the default 30s interval)",
        summary="Checks of {{ $labels.target }} fail.",
        description=V + " of vecmon's checks of {{ $labels.target }} failed over the last " + W +
                    " (threshold " + T + ").",
        shape=FailedOutcomes(REQUESTS, "target", EXAMPLE, 1000), applies=APPLICATIONS,
        doc=Doc("Share of vecmon's checks of an application endpoint (health, readiness, a search with a known "
                "answer) whose outcome was not `success`: a status outside `valid_status_codes`, a timeout, a "
                "connection or TLS error, or a failed body/JSON assertion, over the window, once the target had "
                "at least `minimum` checks in it.",
                "seeds: \"High Error Rate (>5% of requests)\", respond within 10 minutes (severity critical, as "
                "the seeds' NeedleHighErrorRate).",
                ("Break it down by outcome: `sum by (outcome) (increase(vecmon_app_probe_requests_total"
                 "{target=\"...\"}[30m]))`; a failed assertion by name in "
                 "`vecmon_app_probe_assertion_failures_total`.",
                 "`http_5xx`/`timeout` on health or readiness: the application or what it depends on (database, "
                 "model API: see the pgvector and model-API alerts); `json_mismatch` on a search check: the index "
                 "or the corpus changed.",
                 "`tls_error`: an expired or replaced certificate (`vecmon_app_tls_cert_expiry_timestamp_seconds`).")),
        metrics=(REQUESTS,)),
    AlertDef(
        name="AppProbeLatencyHigh", group=GROUP, service=SERVICE, severity="warning", for_=5 * MINUTE,
        threshold=5.0, window=10 * MINUTE, fmt="duration",
        summary="{{ $labels.target }} answers slowly.",
        description="Successful checks of {{ $labels.target }} took " + V + " on average over the last " + W +
                    " (threshold " + T + ").",
        shape=MeanLatency(DURATION, "target", EXAMPLE, {"outcome": "success"}), applies=APPLICATIONS,
        doc=Doc("Mean round trip (request start to last body byte) of the successful checks of an application "
                "endpoint over the window. A check that takes longer than its `timeout` is a `timeout` and counts "
                "in AppProbeErrorRatioHigh instead.",
                "seeds: \"Slow Responses (Response time > 5s)\"; targets < 1 s for health, < 5 s for queries "
                "(override the threshold for health-only setups).",
                ("Compare with the model-API latency (`vecmon_model_api_request_duration_seconds`) and the ANN "
                 "query latency (`vecmon_ann_query_duration_seconds`): the slow part is usually one of them.",
                 "Check the application's CPU and memory, its database pool and the Redis cache hit ratio.")),
        metrics=(DURATION,)),
    AlertDef(
        name="AppTlsCertExpiringSoon", group=GROUP, service=SERVICE, severity="warning", for_=10 * MINUTE,
        threshold=14 * DAY, fmt="duration", compare="<",
        summary="The TLS certificate of {{ $labels.target }} expires soon.",
        description="The certificate {{ $labels.target }} presents expires in " + V + " (threshold " + T + ").",
        shape=Custom(lambda p: f"({EXPIRY} - time()) < {p.limit}", _expiry_fixture),
        applies=HTTPS_APPLICATIONS,
        doc=Doc("Time left until the `notAfter` of the certificate the application's server presented in the "
                "last check (read also when `tls_verify` is false). Negative: already expired.",
                "vecmon default (no seed gives one): 14 days. ACME clients (certbot, cert-manager) renew 30 days "
                "before expiry, so a certificate 14 days from it has missed two weeks of renewals.",
                ("Check the certificate manager's logs (certbot, cert-manager `Certificate` status) and the "
                 "ingress or load balancer that terminates TLS.",
                 "`openssl s_client -connect HOST:443 -servername HOST </dev/null | openssl x509 -noout -enddate` "
                 "shows what is served.")),
        metrics=(EXPIRY,)),
]
