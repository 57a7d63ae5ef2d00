"""Links that go somewhere: runbook URLs Alertmanager and Grafana can open, runbooks naming what ships."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.loader import ConfigError, parse_config

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "alerting-example.yaml"

MINIMAL = """
databases:
  - name: app
    dsn: postgresql://vecmon@db/app
"""


@pytest.mark.integration
def test_generate_refuses_rules_without_a_runbook_base_url(tmp_path):
    config = tmp_path / "vecmon.yaml"
    config.write_text(MINIMAL)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(config), "-o", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "alerting.runbook_base_url is not set" in done.stderr
    assert not list(out.rglob("*.rules.yml"))  # nothing with dead links was written


@pytest.mark.integration
def test_with_a_base_url_every_runbook_url_is_absolute(tmp_path):
    config = tmp_path / "vecmon.yaml"
    config.write_text(MINIMAL + "alerting: {runbook_base_url: 'https://docs.example.org/vecmon/README.md'}\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(config), "-o", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    urls = re.findall(r"runbook_url: (\S+)", (out / "prometheus" / "vecmon-alerts.rules.yml").read_text())
    assert urls and all(u.startswith("https://docs.example.org/vecmon/README.md#") for u in urls), urls[:3]


def test_a_relative_runbook_base_url_is_a_config_error():
    with pytest.raises(ConfigError, match=r"alerting.runbook_base_url.*not an absolute http\(s\) URL"):
        parse_config(MINIMAL + "alerting: {runbook_base_url: README.md}\n")


def test_the_runbook_points_at_the_shipped_systemd_unit():
    text = (ROOT / "docs" / "alerts.md").read_text()
    section = text[text.index("#### VecmonDown"):text.index("#### VecmonTargetDown")]
    assert "deploy/systemd/vecmon.service" in section
    assert (ROOT / "deploy" / "systemd" / "vecmon.service").exists()


@pytest.mark.integration
def test_the_alerting_example_names_only_files_generate_writes(tmp_path):
    out = tmp_path / "generated"
    done = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(EXAMPLE), "-o", str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PGPASSWORD": "", "OPENAI_API_KEY": "x",
                               "COHERE_API_KEY": "x"})
    assert done.returncode == 0, done.stderr
    header = EXAMPLE.read_text().split("\ndatabases:")[0]
    for named in re.findall(r"generated/([\w/<>.*-]+\.ya?ml)", header):
        pattern = re.sub(r"<[^>]+>", "*", named)
        assert list(out.glob(pattern)), f"the example names {named}, which generate does not write"


@pytest.mark.integration
@pytest.mark.parametrize("example", ["alerting-example.yaml", "example.yaml"])
def test_the_examples_runbook_links_open_a_section_of_the_alert_reference(tmp_path, example):
    """The alert reference moved from the README to docs/alerts.md: an example config that still
    pointed at README.md gave every alert a runbook_url whose section does not exist."""
    out = tmp_path / "generated"
    done = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(ROOT / "config" / example),
                           "-o", str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PGPASSWORD": "", "OPENAI_API_KEY": "x",
                               "COHERE_API_KEY": "x"})
    assert done.returncode == 0, done.stderr
    sections = {line[5:].strip().lower() for line in (ROOT / "docs" / "alerts.md").read_text().splitlines()
                if line.startswith("#### ")}
    urls = [u for rules in out.rglob("*.rules.yml") for u in re.findall(r"runbook_url: (\S+)", rules.read_text())]
    assert urls
    for url in urls:
        document, _, anchor = url.partition("#")
        assert document.endswith("/docs/alerts.md"), url
        assert anchor in sections, url
