"""`vecmon demo` end to end: embedded PostgreSQL 18 + pgvector, metrics served, clean stop, data reused."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def run_demo_once(data_dir: Path, port: int, *extra: str) -> tuple[float, dict, str]:
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--data-dir", str(data_dir), "--rows", "3000",
                             "--dim", "64", "--listen", f"127.0.0.1:{port}", *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    started = time.monotonic()
    families: dict = {}
    try:
        while time.monotonic() - started < 60:
            assert proc.poll() is None, f"demo exited early: {proc.stdout.read()}"
            try:
                families = scrape(f"http://127.0.0.1:{port}/metrics")
                if families.get("vecmon_pg_table_live_tuples") and families.get("vecmon_vector_index_size_bytes"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    return elapsed, families, output


def postgres_processes(data_dir: Path) -> list:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data_dir) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.mark.integration
def test_demo_serves_metrics_stops_cleanly_and_reuses_its_data(tmp_path):
    data_dir = tmp_path / "demo"
    port = free_port()
    elapsed, families, output = run_demo_once(data_dir, port)
    assert elapsed < 60, f"no PostgreSQL metrics within 60 s:\n{output}"
    rows = {s.labels["table"]: s.value for s in families["vecmon_pg_table_live_tuples"]}
    assert rows["documents"] >= 3000
    assert any(s.labels["index"] == "documents_embedding_hnsw" for s in families["vecmon_vector_index_size_bytes"])
    assert f"http://127.0.0.1:{port}/metrics" in output and "scrape_configs" in output
    assert "loaded 3,000 rows" in output
    assert "loaded 1,000 of 3,000 rows" in output  # progress while loading
    assert "built the HNSW index" in output
    assert sorted(p.name for p in (data_dir / "generated" / "grafana").glob("*.json"))
    assert list((data_dir / "generated" / "prometheus").glob("*.rules.yml"))
    assert postgres_processes(data_dir) == [], "Ctrl-C left PostgreSQL running"
    loaded = (data_dir / "loaded").read_text()

    pg_port = free_port()
    elapsed_again, families, output = run_demo_once(data_dir, port, "--pg-port", str(pg_port))
    assert (data_dir / "loaded").read_text() == loaded
    assert "loaded 3,000 rows" not in output  # the corpus was not loaded again
    assert f"port={pg_port} " in output  # --pg-port moved the embedded server
    assert families["vecmon_pg_table_live_tuples"]
    assert postgres_processes(data_dir) == []


@pytest.mark.integration
def test_demo_port_clash_is_one_line_naming_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "monitor", "demo", "--data-dir", str(tmp_path / "demo"),
                               "--listen", f"127.0.0.1:{port}"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert time.monotonic() - started < 30 and not (tmp_path / "demo" / "pg").exists()  # PostgreSQL never started


def test_index_build_progress_reads_like_a_sentence():
    from monitor.demo import describe_build

    assert describe_build("building index: loading tuples", 0, 0, 500, 1000, 10.0) == (
        "building index: loading tuples, 50%, about 10s left in this phase")
    assert describe_build("initializing", None, None, None, None, 3.0) == "initializing (3s so far)"
