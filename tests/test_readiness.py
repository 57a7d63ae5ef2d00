"""/ready: "finished one run" by default (documented), stricter "all targets up" as an option
(daemon.readiness: all_targets_up, or /ready?strict=1), against a real PostgreSQL and a target that
refuses connections."""

from __future__ import annotations

import json

from monitor.daemon import Daemon
from monitor.loader import parse_config
from tests.helpers import wait_until
from tests.test_daemon import get

LISTEN = "127.0.0.1:0"


def _config(db, readiness: str = "") -> str:
    server = db.server
    line = f", readiness: {readiness}" if readiness else ""
    common = "    interval: 1s\n    timeout: 2s\n    connect_timeout: 1s\n    collectors: {recall: {enabled: false}}\n"
    return (f'daemon: {{listen: "{LISTEN}", shutdown_timeout: 3s{line}}}\ndatabases:\n'
            f"  - name: up\n    host: 127.0.0.1\n    port: {server.port}\n    dbname: {db.name}\n"
            f"    user: vecmon_monitor\n{common}"
            + "".join(f"  - name: down{i}\n    dsn: postgresql://vecmon@127.0.0.1:1/x\n{common}" for i in range(4)))


def _ran_once(daemon) -> bool:
    return not daemon.store.not_ready()


def test_default_readiness_is_one_finished_run_and_strict_needs_every_target_up(db18):
    daemon = Daemon(parse_config(_config(db18)))
    daemon.start()
    try:
        wait_until(lambda: _ran_once(daemon), timeout=60)
        status, body = get(f"{daemon.url}/ready")
        assert status == 200, body  # 4 of 5 targets down: still "finished one run"
        status, body = get(f"{daemon.url}/ready?strict=1")
        assert status == 503, body
        answer = json.loads(body)
        assert answer["ready"] is False
        assert sorted(answer["targets_down"]) == ["down0", "down1", "down2", "down3"]
    finally:
        daemon.stop()


def test_all_targets_up_readiness_from_the_config(db18):
    daemon = Daemon(parse_config(_config(db18, "all_targets_up")))
    daemon.start()
    try:
        wait_until(lambda: _ran_once(daemon), timeout=60)
        status, body = get(f"{daemon.url}/ready")
        assert status == 503 and sorted(json.loads(body)["targets_down"]) == ["down0", "down1", "down2", "down3"]
    finally:
        daemon.stop()
    healthy = Daemon(parse_config(_config(db18, "all_targets_up").split("  - name: down0")[0]))
    healthy.start()
    try:
        wait_until(lambda: get(f"{healthy.url}/ready")[0] == 200, timeout=60)
    finally:
        healthy.stop()


def test_kubernetes_readiness_probe_is_documented():
    from monitor import kubernetes

    assert "all_targets_up" in (kubernetes.__doc__ or "") and "/ready" in (kubernetes.__doc__ or "")
