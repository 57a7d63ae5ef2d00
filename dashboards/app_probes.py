"""Application checks (collectors.app_probe): panels for the RAG application's own endpoints.

:func:`build` is the dashboard ``vecmon generate`` writes when the config has ``applications:``
(dashboards.render); :func:`panels` returns its section. Thresholds are the alerts'
(:mod:`alerts.catalog.applications`), so a panel turns red where an alert fires. The checks' targets
are selected with ``$application``.
"""

from __future__ import annotations

from typing import Any

from alerts.catalog.applications import APP_ALERTS
from collectors.app_metrics import (
    APP_PROBE_ASSERTION_FAILURES_TOTAL,
    APP_PROBE_DURATION_SECONDS,
    APP_PROBE_HTTP_STATUS_CODE,
    APP_PROBE_REQUESTS_TOTAL,
    APP_PROBE_SUCCESS,
    APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS,
)
from collectors.self_metrics import BUILD_INFO
from dashboards.facade import (
    dashboard,
    higher_is_better,
    lower_is_better,
    m,
    q,
    query_var,
    rate,
    row,
    standard_vars,
    stat,
    steps,
    timeseries,
)

UID = "vecmon-applications"
REQUESTS = APP_PROBE_REQUESTS_TOTAL.name
HIST = f"{APP_PROBE_DURATION_SECONDS.name}_bucket"
OK_MAPPINGS = [{"type": "value", "options": {"0": {"text": "FAILING", "color": "red", "index": 0},
                                             "1": {"text": "OK", "color": "green", "index": 1}}}]
APP = 'target=~"$application"'
SUCCESS, NOT_SUCCESS = 'outcome="success"', 'outcome!="success"'


def _threshold(name: str) -> float:
    definition = next(d for d in APP_ALERTS if d.name == name)
    assert definition.threshold is not None
    return definition.threshold


def a(name: str, *extra: str) -> str:
    """An application-check selector: job, instance and the application variable."""
    return m(name, APP, *extra, target=False)


def _applications(config: Any) -> list[Any]:
    return [x for x in getattr(config, "applications", []) or [] if getattr(x, "enabled", True)]


def variables() -> list[Any]:
    return [*standard_vars(BUILD_INFO.name),
            query_var("application", "Application check",
                      f'label_values({APP_PROBE_SUCCESS.name}{{job=~"$job", instance=~"$instance"}}, target)')]


def panels(config: Any) -> list[Any]:
    """The application-check section for ``config`` (empty without applications)."""
    apps = _applications(config)
    if not apps:
        return []
    errors, latency = _threshold("AppProbeErrorRatioHigh"), _threshold("AppProbeLatencyHigh")
    expiry = _threshold("AppTlsCertExpiringSoon")
    tls = any(x.url.lower().startswith("https://") for x in apps)
    w = 6 if tls else 8
    success = f"sum by (target) ({rate(a(REQUESTS, SUCCESS))})"
    failed = f"sum by (target) ({rate(a(REQUESTS, NOT_SUCCESS))})"
    total = f"sum by (target) ({rate(a(REQUESTS))})"
    out = [
        row("Application checks"),
        stat("Last check", "Whether each application check (health, readiness, search) passed last time: status, "
             "body and JSON assertions, within its timeout.", "none",
             [q(f"min by (target) ({a(APP_PROBE_SUCCESS.name)})", "{{target}}")], mappings=OK_MAPPINGS,
             thresholds=steps(("red", None), ("green", 1)), color_mode="background", w=w),
        stat("Check success ratio", f"Share of checks that passed over the rate interval (the error-ratio alert "
             f"fires below {1 - errors:.0%}).", "percentunit", [q(f"{success} / {total}", "{{target}}")],
             thresholds=higher_is_better(1 - errors, 1 - errors / 5), decimals=2, w=w),
        stat("Last HTTP status", "HTTP status of each check's last answer (0: no answer).", "none",
             [q(f"max by (target) ({a(APP_PROBE_HTTP_STATUS_CODE.name)})", "{{target}}")],
             thresholds=steps(("red", None), ("green", 200), ("red", 300)), w=w),
    ]
    if tls:
        out.append(stat("Certificate expires in", "Time until the notAfter of the certificate each HTTPS check's "
                        f"server presented (the alert fires under {expiry / 86400:.0f} days).", "s",
                        [q(f"min by (target) ({a(APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS.name)}) - time()",
                           "{{target}}")],
                        thresholds=higher_is_better(expiry, 2 * expiry), w=w))
    out += [
        timeseries("Check latency", "p50, p95 and p99 round trip of the passing checks (request start to last body "
                   f"byte); the latency alert fires when the mean exceeds {latency:g} s.", "s",
                   [q(f"histogram_quantile({p}, sum by (le, target) ({rate(a(HIST, SUCCESS))}))",
                      f"{{{{target}}}} p{pct}") for p, pct in ((0.5, 50), (0.95, 95), (0.99, 99))],
                   thresholds=lower_is_better(latency / 5, latency), threshold_style="line", w=12),
        timeseries("Checks by outcome", "Checks per second by outcome: success, http_4xx, http_5xx, "
                   "unexpected_status, timeout, connection_error, tls_error, bad_response, body_mismatch, "
                   "json_mismatch.", "reqps",
                   [q(f"sum by (target, outcome) ({rate(a(REQUESTS))}) > 0", "{{target}} {{outcome}}")],
                   stack=True, w=12),
        timeseries("Error ratio", "Share of checks that did not pass (0 while all pass).", "percentunit",
                   [q(f"({failed} or {total} * 0) / {total}", "{{target}}")],
                   thresholds=lower_is_better(errors / 5, errors), threshold_style="line", min=0, w=12),
        timeseries("Assertion failures", "Checks per second that failed a configured body regex or JSON "
                   "assertion, by assertion (body_matches[i], body_not_matches[i], json[i]).", "ops",
                   [q(f"sum by (target, assertion) ({rate(a(APP_PROBE_ASSERTION_FAILURES_TOTAL.name))}) > 0",
                      "{{target}} {{assertion}}")], w=12),
    ]
    return out


def build(config: Any, t: Any = None) -> dict[str, Any]:
    """The application-check dashboard, generated when the config has ``applications:``."""
    return dashboard(UID, "vecmon / Applications", "HTTP(S) checks of the RAG application's own endpoints "
                     "(health, readiness, a search with a known answer) run by vecmon.", variables(), panels(config),
                     tags=["applications"])
