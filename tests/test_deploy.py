"""Deployment files: the systemd unit is valid, hardened and runs the vecmon it names.

The container image is built and run against PostgreSQL by deploy/container/build.sh and
deploy/ci/smoke.sh in CI (.ci/run); building it takes minutes, so it is not a unit test.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import build_parser
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "systemd" / "vecmon.service"
INSTALLED_VECMON = "/opt/vecmon/bin/vecmon"
MAX_EXPOSURE = 2.0  # systemd-analyze security: 0 (locked down) .. 10 (unprotected); "OK" is below 3


def _settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _unit_for_this_machine(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's vecmon: verify checks that it exists."""
    vecmon = shutil.which("vecmon", path=str(Path(sys.executable).parent))
    assert vecmon, "vecmon is not installed next to the test interpreter"
    copy = tmp_path / "vecmon.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_VECMON, vecmon))
    return copy


@pytest.mark.integration
def test_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = require_tool("systemd-analyze", "systemd")
    proc = subprocess.run([analyze, "verify", "--man=no", str(_unit_for_this_machine(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


@pytest.mark.integration
def test_unit_security_exposure_is_low(tmp_path):
    analyze = require_tool("systemd-analyze", "systemd")
    proc = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(_unit_for_this_machine(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"Overall exposure level for vecmon\.service: ([0-9.]+)", proc.stdout)
    assert match, proc.stdout[-2000:]
    exposure = float(match.group(1))
    print(f"systemd-analyze security: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, proc.stdout


def test_unit_reloads_with_sighup_as_an_unprivileged_user_and_runs_a_valid_command():
    settings = _settings(UNIT.read_text())
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # Daemon.request_reload
    assert settings["DynamicUser"] == ["yes"] and settings["StateDirectory"] == ["vecmon"]
    assert settings["Environment"] == ["VECMON_STATE_DIR=%S/vecmon"]  # recall state in the StateDirectory
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"):
        assert settings[key] == ["yes"], key
    assert settings["ProtectSystem"] == ["strict"] and settings["CapabilityBoundingSet"] == [""]

    argv = shlex.split(settings["ExecStart"][0])
    assert argv[0] == INSTALLED_VECMON
    args = build_parser().parse_args(argv[1:])  # the flags exist in this version of the CLI
    assert args.command == "run" and args.config == "/etc/vecmon/vecmon.yaml"
    # The only port the unit may bind is the default listen port of the daemon.
    from monitor.config import DaemonSettings

    port = DaemonSettings().listen.rsplit(":", 1)[1]
    assert settings["SocketBindAllow"] == [f"tcp:{port}"]
