"""Threshold alerts for one config: :func:`threshold_rules` applies the config (``alerting:``
overrides, which alerts apply) to the catalog (:mod:`alerts.catalog`) and :func:`rule_groups`
returns the rule groups for ``vecmon-alerts.rules.yml``.
"""

from __future__ import annotations

from typing import Any

from alerts.catalog import CATALOG, GROUP_ORDER
from alerts.config import AlertingSettings
from alerts.model import AlertDef, F, Params, Rule, T, V, W
from alerts.promql import duration, render_value, value_template
from alerts.targets import MonitoredConfig


def _fill(text: str, definition: AlertDef, p: Params, for_: float) -> str:
    replacements = {V: value_template(definition.fmt), F: duration(for_)}
    if p.threshold is not None:
        replacements[T] = threshold_text(definition.fmt, p.threshold)
    else:
        replacements[T] = definition.threshold_text
    if p.window is not None:
        replacements[W] = duration(p.window)
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def threshold_text(fmt: str, value: float) -> str:
    """A threshold in an annotation or the README: like the value it is compared with, but durations
    in Prometheus' own notation (``1m``, ``500ms``) and byte sizes with a ``B``."""
    if fmt == "duration":
        return duration(value)
    return render_value(fmt, value) + ("B" if fmt == "bytes" else "")


def runbook_url(settings: AlertingSettings, name: str) -> str:
    return f"{settings.runbook_base()}#{name.lower()}"


def build_rule(definition: AlertDef, config: MonitoredConfig, settings: AlertingSettings) -> Rule:
    override = settings.override(definition.name)
    p = definition.params(config, settings)
    severity = override.severity or definition.severity
    for_ = definition.for_ if override.for_ is None else override.for_
    labels = {"severity": severity, "service": definition.service, **settings.labels, **override.labels}
    annotations = {
        "summary": _fill(definition.summary, definition, p, for_),
        "description": _fill(definition.description, definition, p, for_),
        "runbook_url": runbook_url(settings, definition.name),
    }
    return Rule(definition, p, severity, for_, labels, annotations, definition.expr(p))


def threshold_rules(config: MonitoredConfig) -> list[Rule]:
    """The enabled, applicable threshold alerts of ``config``, in catalog order."""
    settings = config.alerting
    rules = []
    for definition in CATALOG:
        override = settings.override(definition.name)
        if override.enabled is False or (override.enabled is None and not definition.applies(config)):
            continue
        rules.append(build_rule(definition, config, settings))
    return rules


def rule_groups(rules: list[Rule]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        groups.setdefault(rule.definition.group, []).append(rule.as_yaml())
    return [{"name": f"vecmon-{g}", "rules": groups[g]} for g in GROUP_ORDER if g in groups]
