"""``alertmanager.yml`` from ``alertmanager:`` (checked with amtool 0.25; nothing newer is used).

Route tree: the root (default receiver, ``group_by``) has one branch per ``routes[]`` entry,
matching the ``service`` label (plus optional matchers), with one child per severity when the
branch names a receiver per severity; then one branch per severity from ``severity_receivers``.
Inhibition: a critical alert mutes a warning with the same ``inhibit.equal`` labels,
``VecmonTargetDown`` mutes every other alert of the same ``target`` (SLO alerts carry ``target``
when their SLI reads one target, so one endpoint outage pages once), and ``VecmonDown`` mutes the
no-data and collector alerts of the same scrape ``job`` (the SLO no-data alert gets ``job`` when its
SLI reads vecmon's metrics). Titles use the group's common summary, or the first alert's with the
number of alerts when the group has none in common.

Secrets never appear in the file: Slack URLs, PagerDuty routing keys, SMTP passwords and webhook
bearer tokens are ``*_file`` references that Alertmanager reads itself (webhook ``url_file`` only
exists from 0.26, so webhook URLs are written as they are and are not secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.config import SEVERITIES, AlertmanagerSettings, ServiceRoute, Severity
from alerts.promql import duration

TARGET_DOWN = "VecmonTargetDown"
VECMON_DOWN = "VecmonDown"
# Alerts that only say "vecmon's data is missing": muted while vecmon itself cannot be scraped.
MUTED_BY_VECMON_DOWN = ("SLOSLIDataMissing", "VecmonCollectorFailing", "VecmonCollectorStale", "VecmonTargetDown")
# The common summary when every alert of the group shares it; otherwise the first alert's and how many
# more (a group holding several indexes or databases has no common summary).
SUMMARY = ('{{ with .CommonAnnotations.summary }}{{ . }}{{ else }}{{ with index .Alerts 0 }}'
           '{{ .Annotations.summary }}{{ end }}{{ if gt (len .Alerts) 1 }} (+{{ len .Alerts }} alerts){{ end }}'
           '{{ end }}')
SLACK_TITLE = '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}: ' + SUMMARY
SLACK_TEXT = ('{{ range .Alerts }}{{ .Annotations.summary }} {{ .Annotations.description }}\n'
              'Runbook: {{ .Annotations.runbook_url }}\n{{ end }}')


def _severity_routes(receivers: Mapping[Severity, str], fallback: str | None) -> list[dict[str, Any]]:
    routes = []
    for severity in SEVERITIES:
        receiver = receivers.get(severity)
        if receiver is not None and receiver != fallback:
            routes.append({"receiver": receiver, "matchers": [f'severity="{severity}"']})
    return routes


def _branch(route: ServiceRoute) -> dict[str, Any]:
    matchers = ([f'service="{route.service}"'] if route.service else []) + list(route.matchers)
    branch: dict[str, Any] = {"receiver": route.receiver, "matchers": matchers}
    if route.group_by is not None:
        branch["group_by"] = list(route.group_by)
    if route.continue_:
        branch["continue"] = True
    children = _severity_routes(route.severity_receivers, route.receiver)
    if children:
        branch["routes"] = children
    return branch


def _receiver(receiver: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": receiver.name}
    if receiver.email:
        out["email_configs"] = [{"to": e.to, "send_resolved": e.send_resolved} for e in receiver.email]
    if receiver.pagerduty:
        out["pagerduty_configs"] = [
            {"routing_key_file": p.routing_key_file, "send_resolved": p.send_resolved,
             "severity": '{{ if eq .CommonLabels.severity "critical" }}critical{{ else }}warning{{ end }}',
             "description": "{{ .CommonLabels.alertname }}: " + SUMMARY}
            for p in receiver.pagerduty]
    if receiver.slack:
        configs = []
        for s in receiver.slack:
            config: dict[str, Any] = {}
            if s.api_url_file:
                config["api_url_file"] = s.api_url_file
            config.update({"channel": s.channel, "send_resolved": s.send_resolved, "title": SLACK_TITLE,
                           "text": SLACK_TEXT})
            configs.append(config)
        out["slack_configs"] = configs
    if receiver.webhook:
        configs = []
        for w in receiver.webhook:
            config = {"url": w.url, "send_resolved": w.send_resolved, "max_alerts": w.max_alerts}
            if w.credentials_file:
                config["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": w.credentials_file}}
            configs.append(config)
        out["webhook_configs"] = configs
    return out


def alertmanager_config(settings: AlertmanagerSettings) -> dict[str, Any]:
    glob: dict[str, Any] = {"resolve_timeout": duration(settings.resolve_timeout)}
    if settings.smtp is not None:
        smtp = settings.smtp
        glob.update({"smtp_smarthost": smtp.smarthost, "smtp_from": smtp.sender})
        if smtp.auth_username:
            glob["smtp_auth_username"] = smtp.auth_username
        if smtp.auth_password_file:
            glob["smtp_auth_password_file"] = smtp.auth_password_file
        glob["smtp_require_tls"] = smtp.require_tls
    if settings.slack_api_url_file:
        glob["slack_api_url_file"] = settings.slack_api_url_file

    routes = [_branch(route) for route in settings.routes]
    routes += _severity_routes(settings.severity_receivers, settings.receiver)
    root: dict[str, Any] = {
        "receiver": settings.receiver,
        "group_by": list(settings.group_by),
        "group_wait": duration(settings.group_wait),
        "group_interval": duration(settings.group_interval),
        "repeat_interval": duration(settings.repeat_interval),
    }
    if routes:
        root["routes"] = routes

    inhibit = []
    if settings.inhibit.vecmon_down_inhibits_its_alerts:
        inhibit.append({"source_matchers": [f'alertname="{VECMON_DOWN}"'],
                        "target_matchers": [f'alertname=~"{"|".join(MUTED_BY_VECMON_DOWN)}"'], "equal": ["job"]})
    if settings.inhibit.target_down_inhibits_target:
        inhibit.append({"source_matchers": [f'alertname="{TARGET_DOWN}"'],
                        "target_matchers": [f'alertname!="{TARGET_DOWN}"'], "equal": ["target"]})
    if settings.inhibit.critical_inhibits_warning:
        inhibit.append({"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                        "equal": list(settings.inhibit.equal)})

    receivers = [_receiver(r) for r in settings.receivers]
    used = {settings.receiver, *settings.severity_receivers.values()}
    for route in settings.routes:
        used |= {route.receiver, *route.severity_receivers.values()}
    if "null" in used and all(r.name != "null" for r in settings.receivers):
        receivers.append({"name": "null"})

    config: dict[str, Any] = {"global": glob, "route": root}
    if inhibit:
        config["inhibit_rules"] = inhibit
    config["receivers"] = receivers
    return config
