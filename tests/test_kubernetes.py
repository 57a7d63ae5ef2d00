"""``vecmon generate --kubernetes``: valid manifests that never hold a secret.

The core objects pass ``kubernetes-validate --strict`` (the Kubernetes OpenAPI schemas, offline),
the PrometheusRule's spec passes ``promtool check rules``, the ConfigMap's config is a config
vecmon accepts once the pod's Secret keys are set, and the StatefulSet's arguments are flags
the CLI parses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.cli import build_parser, main
from monitor.kubernetes import SECRET, SECRET_DIR
from monitor.loader import load_config, parse_config
from tests.helpers import require_tool

LITERAL_PASSWORD = "hunter2-literal-pw"
DSN_PASSWORD = "dsn-inline-pw"
FILE_SECRET = "from-a-file-pw"
ENV = {"OPENAI_KEY": "sk-env-value-not-in-output"}
CORE = ("config.yaml", "workload.yaml", "service.yaml", "dashboards.yaml")


def _config(tmp_path: Path, daemon: str = "", password_file: bool = False) -> Path:
    (tmp_path / "pgpass").write_text(FILE_SECRET + "\n")
    redis = ("redis:\n  - name: cache\n    host: 127.0.0.1\n    password_file: pgpass\n"
             if password_file else "")
    path = tmp_path / "vecmon.yaml"
    path.write_text(f"""
daemon:
  listen: ${{VECMON_LISTEN:-127.0.0.1:9765}}
{daemon}
alerting: {{runbook_base_url: "https://docs.example.org/vecmon/README.md"}}
databases:
  - name: app
    dsn: "host=db.internal dbname=app user=vecmon"
    password: {LITERAL_PASSWORD}
  - name: analytics
    dsn: "postgresql://vecmon:{DSN_PASSWORD}@analytics.internal/analytics"
endpoints:
  - name: embed
    provider: openai
    kind: embedding
    url: https://api.openai.com/v1/embeddings
    model: text-embedding-3-small
    api_key: ${{OPENAI_KEY}}
{redis}""")
    return path


def _generate(tmp_path: Path, config: Path) -> Path:
    out = tmp_path / "out"
    parsed = load_config(config, env=ENV)
    from monitor.generate import generate_all

    generate_all(parsed, out, kubernetes_from=config)
    return out / "kubernetes"


def _objects(directory: Path) -> dict[str, list[dict]]:
    return {path.name: [d for d in yaml.safe_load_all(path.read_text()) if d]
            for path in sorted(directory.glob("*.yaml"))}


def _validate(files: list[Path]) -> None:
    proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", "1.30.0",
                           *map(str, files)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "passed" in proc.stdout and "failed" not in proc.stdout.lower(), proc.stdout[-3000:]


@pytest.mark.integration
def test_single_instance_deployment_is_valid_and_holds_no_secret(tmp_path):
    directory = _generate(tmp_path, _config(tmp_path))
    objects = _objects(directory)
    _validate([directory / name for name in CORE])

    every_file = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    for secret in (LITERAL_PASSWORD, DSN_PASSWORD, ENV["OPENAI_KEY"]):
        assert secret not in every_file

    (deployment,) = objects["workload.yaml"]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(env) == {"OPENAI_KEY", "VECMON_LISTEN", "VECMON_SECRET_DATABASES_APP_PASSWORD",
                        "VECMON_SECRET_DATABASES_ANALYTICS_DSN"}
    assert all(ref["name"] == SECRET for ref in env.values())
    assert env["VECMON_LISTEN"].get("optional") is True and "optional" not in env["OPENAI_KEY"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"

    # The pod's config is one vecmon accepts, with the Secret's keys in the environment.
    (config_map,) = objects["config.yaml"]
    text = config_map["data"]["vecmon.yaml"]
    pod_env = {name: f"value-of-{name}" for name in env}
    pod_env["VECMON_LISTEN"] = "0.0.0.0:9765"
    pod_env["VECMON_SECRET_DATABASES_ANALYTICS_DSN"] = "host=a dbname=b"
    parsed = parse_config(text, env=pod_env)
    assert [db.name for db in parsed.databases] == ["app", "analytics"]
    assert parsed.databases[0].password.get_secret_value() == "value-of-VECMON_SECRET_DATABASES_APP_PASSWORD"
    assert parsed.databases[0].dsn.get_secret_value() == "host=db.internal dbname=app user=vecmon"  # no password: kept
    assert parsed.endpoints[0].api_key.get_secret_value() == "value-of-OPENAI_KEY"

    # Deterministic: the same config gives the same bytes.
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    _generate(tmp_path, tmp_path / "vecmon.yaml")
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


@pytest.mark.integration
def test_file_secrets_come_from_the_mounted_secret(tmp_path):
    directory = _generate(tmp_path, _config(tmp_path, password_file=True))
    objects = _objects(directory)
    assert FILE_SECRET not in "".join(p.read_text() for p in directory.iterdir())
    raw = yaml.safe_load(objects["config.yaml"][0]["data"]["vecmon.yaml"])
    assert raw["redis"][0]["password_file"] == f"{SECRET_DIR}/VECMON_SECRET_REDIS_CACHE_PASSWORD_FILE"
    pod = objects["workload.yaml"][0]["spec"]["template"]["spec"]
    assert {"name": "secrets", "secret": {"secretName": SECRET, "defaultMode": 0o440}} in pod["volumes"]
    assert {"name": "secrets", "mountPath": SECRET_DIR, "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert "--from-file=VECMON_SECRET_REDIS_CACHE_PASSWORD_FILE=PATH" in (directory / "workload.yaml").read_text()
    _validate([directory / "workload.yaml"])


@pytest.mark.integration
def test_sharded_ha_statefulsets_servicemonitor_rules_and_dashboards(tmp_path):
    config = _config(tmp_path, daemon="  shard: 0/3\n  ha: {database: app, interval: 5s}\n")
    directory = _generate(tmp_path, config)
    objects = _objects(directory)
    _validate([directory / name for name in CORE])

    sets = objects["workload.yaml"]
    assert [(s["kind"], s["metadata"]["name"], s["spec"]["replicas"]) for s in sets] == [
        ("StatefulSet", "vecmon-a", 3), ("StatefulSet", "vecmon-b", 3)]
    for statefulset in sets:
        assert statefulset["spec"]["serviceName"] == objects["service.yaml"][0]["metadata"]["name"]
        container = statefulset["spec"]["template"]["spec"]["containers"][0]
        pod_index = next(e for e in container["env"] if e["name"] == "POD_INDEX")
        assert pod_index["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
        for ordinal in range(3):  # what Kubernetes passes after expanding $(POD_INDEX)
            args = build_parser().parse_args([a.replace("$(POD_INDEX)", str(ordinal)) for a in container["args"]])
            assert args.command == "run" and args.shard == f"{ordinal}/3"
    assert objects["service.yaml"][0]["spec"]["clusterIP"] == "None"

    (monitor,) = objects["servicemonitor.yaml"]
    assert monitor["kind"] == "ServiceMonitor"
    relabel = monitor["spec"]["endpoints"][0]["relabelings"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "replica", "action": "replace"} in relabel
    assert {"regex": "pod", "action": "labeldrop"} in relabel

    (rule,) = objects["prometheusrule.yaml"]
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"]
    spec = tmp_path / "spec.rules.yml"
    spec.write_text(yaml.safe_dump(rule["spec"]))
    promtool = require_tool("promtool", "prometheus")
    proc = subprocess.run([promtool, "check", "rules", str(spec)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written_rules = sum(len(yaml.safe_load(p.read_text())["groups"])
                        for p in (tmp_path / "out" / "prometheus").glob("*.rules.yml"))
    assert len(rule["spec"]["groups"]) == written_rules

    boards = objects["dashboards.yaml"]
    files = {p.name: p.read_text() for p in (tmp_path / "out" / "grafana").glob("*.json")}
    assert sorted(name for board in boards for name in board["data"]) == sorted(files)
    for board in boards:
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
        (name, body), = board["data"].items()
        assert body == files[name]
        assert len(yaml.safe_dump(board)) < 262144  # fits kubectl apply's last-applied annotation


def test_cli_generate_kubernetes_flag(tmp_path, monkeypatch, capsys):
    config = _config(tmp_path)
    monkeypatch.setenv("OPENAI_KEY", ENV["OPENAI_KEY"])
    assert main(["generate", "-c", str(config), "-o", str(tmp_path / "cli")]) == 0
    assert not (tmp_path / "cli" / "kubernetes").exists()
    assert main(["generate", "-c", str(config), "-o", str(tmp_path / "cli"), "--kubernetes"]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "cli" / "kubernetes" / "workload.yaml") in printed
    kustomization = yaml.safe_load((tmp_path / "cli" / "kubernetes" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in (tmp_path / "cli" / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml")
