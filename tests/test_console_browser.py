"""The console in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

One daemon monitors a real PostgreSQL 18 + pgvector database whose vector table is called
``<script>alert(1)</script>`` and a second target whose port refuses connections; the browser checks
what an operator would: no console errors, the recall chart's points are the ones /api/status serves,
the failing target shows its cause, the hostile name is shown as text and never runs, and the
auto-refresh can be paused.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from monitor.daemon import Daemon
from monitor.embedded import free_port
from monitor.loader import parse_config
from tests.conftest import MONITOR_ROLE, new_database
from tests.helpers import require_tool

HOSTILE = "<script>alert(1)</script>"


def fetch_status(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/status", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def console(pg18, tmp_path_factory):
    db = new_database(pg18, ("vector",))
    table = HOSTILE.replace('"', '""')
    with db.admin() as conn:
        conn.execute(f'CREATE TABLE "{table}" (id bigint PRIMARY KEY, embedding vector(8))')
        conn.execute(f'INSERT INTO "{table}" SELECT g, (SELECT array_agg(random())::vector(8) FROM '
                     f'generate_series(1, 8) WHERE g > 0) FROM generate_series(1, 3000) g')
        conn.execute(f'CREATE INDEX hnsw_idx ON "{table}" USING hnsw (embedding vector_l2_ops) WITH (m = 4, '
                     f'ef_construction = 8)')
        conn.execute(f'GRANT SELECT ON "{table}" TO {MONITOR_ROLE}')
        conn.execute(f'ANALYZE "{table}"')
    state = tmp_path_factory.mktemp("console") / "state.sqlite"
    config = parse_config(f"""
daemon: {{listen: "127.0.0.1:{free_port()}"}}
databases:
  - name: vectors
    dsn: "{db.monitor_dsn}"
    interval: 30s
    vector:
      recall: {{sample_size: 8, ef_search_values: [4, 10, 40], state_url: "sqlite:///{state}"}}
  - name: broken
    host: 127.0.0.1
    port: {free_port()}
    dbname: nothing
    user: nobody
    connect_timeout: 2s
""")
    daemon = Daemon(config)
    daemon.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            status = fetch_status(daemon.url)
            broken = next(t for t in status["targets"] if t["name"] == "broken")
            indexes = [i for i in status["vector_indexes"] if i["curve"]]
            if indexes and broken["cause"]:
                break
            assert time.monotonic() < deadline, f"no recall curve and failure cause within 90 s: {status}"
            time.sleep(0.5)
        yield daemon.url
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium", "chromium")
    driver_path = require_tool("chromedriver", "chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_page_loads_without_console_errors(console, browser):
    browser.get(f"{console}/?refresh=3600")
    assert browser.find_element("css selector", "h1").text.startswith("vecmon")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_chart_points_are_the_ones_api_status_serves(console, browser):
    browser.get(f"{console}/?refresh=3600")
    status = fetch_status(console)
    index = next(i for i in status["vector_indexes"] if i["curve"])
    card = browser.find_element("css selector", f".vector-index[data-index='{index['index']}']")
    drawn = sorted((float(p.get_attribute("data-value")), float(p.get_attribute("data-recall")))
                   for p in card.find_elements("css selector", "circle.recall-point"))
    served = sorted((p["value"], p["recall"]) for p in index["curve"])
    assert drawn == served and len(drawn) == 3  # ef_search 4, 10, 40
    app = card.find_element("css selector", "line[data-mark='application']")
    assert float(app.get_attribute("data-value")) == index["app_setting"] == 40  # pgvector's default ef_search


def test_a_failing_target_shows_its_cause(console, browser):
    browser.get(f"{console}/?refresh=3600")
    status = fetch_status(console)
    broken = next(t for t in status["targets"] if t["name"] == "broken")
    row = browser.find_element("css selector", "tr[data-target='broken']")
    assert row.find_element("css selector", ".status").text == "down"
    cause = row.find_element("css selector", ".cause").text
    assert cause and cause == broken["cause"].strip()
    assert "127.0.0.1" in cause and "refused" in cause  # where and why it failed, not only that it did


def test_a_hostile_table_name_is_shown_as_text_and_never_runs(console, browser):
    from selenium.common.exceptions import NoAlertPresentException

    browser.get(f"{console}/?refresh=3600")
    titles = [h.text for h in browser.find_elements("css selector", ".vector-index h3")]
    assert any(HOSTILE in title for title in titles), titles
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no alert() ran
    scripts = browser.execute_script("return document.scripts.length")
    assert scripts == 1  # only the console's own refresh script


def test_the_refresh_reloads_and_can_be_paused(console, browser):
    browser.get(f"{console}/?refresh=1")
    browser.execute_script("localStorage.removeItem('vecmon-console-paused'); window.__marker = 1;")
    deadline = time.monotonic() + 10
    while browser.execute_script("return window.__marker === 1"):  # an unpaused page reloads by itself
        assert time.monotonic() < deadline, "the page did not refresh"
        time.sleep(0.2)
    browser.find_element("id", "pause").click()
    assert browser.find_element("id", "pause").text == "Resume refresh"
    browser.execute_script("window.__marker = 2;")
    time.sleep(3)  # three refresh periods
    assert browser.execute_script("return window.__marker") == 2, "the page refreshed while paused"
    assert browser.find_element("id", "refresh-state").text == "paused"
    browser.find_element("id", "pause").click()  # resume: the next period reloads again
    deadline = time.monotonic() + 10
    while browser.execute_script("return window.__marker === 2"):
        assert time.monotonic() < deadline, "the page did not refresh after resuming"
        time.sleep(0.2)
