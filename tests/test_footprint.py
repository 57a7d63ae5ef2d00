"""What a process imports: --version nothing heavy, SQLAlchemy only with recall, the provider
clients only with endpoints (start-up time and memory; the figures are in bench/footprint.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pydantic", "psycopg", "prometheus_client", "sqlalchemy", "requests", "numpy", "apscheduler")


def loaded_after(code: str) -> list[str]:
    probe = code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def runtime_with(collectors: str, extra: str = "") -> str:
    config = f"""
databases:
  - name: db
    dsn: "host=127.0.0.1 port=1 dbname=x user=y"
    collectors: {collectors}
{extra}"""
    return f"""
import monitor.daemon  # the whole daemon: its HTTP server and console too
from monitor.loader import parse_config
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore
runtime = Runtime(parse_config({config!r}), SnapshotStore())
"""


@pytest.mark.integration
def test_version_imports_none_of_the_command_machinery():
    code = "from monitor.entry import main\nassert main(['--version']) == 0"
    assert loaded_after(code) == []


@pytest.mark.integration
def test_sqlalchemy_only_with_recall_and_provider_clients_only_with_endpoints():
    without = loaded_after(runtime_with("{recall: {enabled: false}}"))
    assert "sqlalchemy" not in without and "requests" not in without and "numpy" not in without
    assert "psycopg" in without  # the database collectors themselves are there
    assert "sqlalchemy" in loaded_after(runtime_with("{}"))  # recall on (the default): its state store
    endpoint = """endpoints:
  - name: emb
    provider: openai
    url: http://127.0.0.1:1/v1
    model: text-embedding-3-small
"""
    assert "requests" in loaded_after(runtime_with("{recall: {enabled: false}}", endpoint))
