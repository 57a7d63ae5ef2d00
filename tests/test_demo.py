"""`vecmon demo` end to end: embedded PostgreSQL 18 + pgvector, metrics served, clean stop, data reused."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from monitor.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def run_demo_once(data_dir: Path, port: int) -> tuple[float, dict, str]:
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo", "--data-dir", str(data_dir), "--rows", "3000",
                             "--dim", "64", "--listen", f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.PIPE,
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


def test_demo_serves_metrics_stops_cleanly_and_reuses_its_data(tmp_path):
    data_dir = tmp_path / "demo"
    port = free_port()
    elapsed, families, output = run_demo_once(data_dir, port)
    assert elapsed < 60, f"no PostgreSQL metrics within 60 s:\n{output}"
    rows = {s.labels["table"]: s.value for s in families["vecmon_pg_table_live_tuples"]}
    assert rows["documents"] >= 3000
    assert any(s.labels["index"] == "documents_embedding_hnsw" for s in families["vecmon_vector_index_size_bytes"])
    assert f"http://127.0.0.1:{port}/metrics" in output and "scrape_configs" in output
    assert "loaded 3000 rows" in output
    assert sorted(p.name for p in (data_dir / "generated" / "grafana").glob("*.json"))
    assert list((data_dir / "generated" / "prometheus").glob("*.rules.yml"))
    assert postgres_processes(data_dir) == [], "Ctrl-C left PostgreSQL running"
    loaded = (data_dir / "loaded").read_text()

    elapsed_again, families, output = run_demo_once(data_dir, port)
    assert (data_dir / "loaded").read_text() == loaded
    assert "loaded 3000 rows" not in output  # the corpus was not loaded again
    assert families["vecmon_pg_table_live_tuples"]
    assert postgres_processes(data_dir) == []
