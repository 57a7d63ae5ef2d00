"""The README's generated references match the code."""

from pathlib import Path

from collectors.vector_indexes import VECTOR_INDEX
from monitor.docs import render

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_references_are_up_to_date():
    text = README.read_text()
    assert render(text) == text, "README.md is out of date: run `make docs`"


def test_every_declared_metric_follows_conventions():
    from collectors.registry import all_collector_classes, api_collector_classes
    from collectors.self_metrics import SELF_METRICS
    from collectors.vector_selection import MISCONFIGURED

    names = set()
    for specs in [SELF_METRICS] + [cls.METRICS for cls in all_collector_classes() + api_collector_classes()]:
        for spec in specs:
            assert spec.name.startswith("vecmon_"), spec.name
            if spec is MISCONFIGURED and spec.name in names:  # one declaration shared by the vector probes
                continue
            assert spec.name not in names, f"{spec.name} declared twice"
            names.add(spec.name)
            assert spec.help and spec.help[0].isupper(), f"{spec.name}: HELP should be a sentence"
            assert "target" not in spec.labels
            if spec.kind == "counter":
                assert spec.name.endswith("_total")
            else:
                assert not spec.name.endswith("_total"), spec.name


def _reference_names(text: str) -> set[str]:
    import re

    section = text.split("<!-- BEGIN GENERATED: metrics -->", 1)[1].split("<!-- END GENERATED: metrics -->", 1)[0]
    return set(re.findall(r"^\| `([a-z_:]+)` \|", section, re.M))


def _exposed_families(text: str) -> set[str]:
    """Family names as a scrape shows them (histogram samples folded into their family)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
    return names


def test_reference_names_what_a_real_exposition_shows(pg18, tmp_path):
    """Every family a real `vecmon collect` exposes (pgvector included) is listed under the name a scrape
    shows: info families with their _info suffix, counters with _total."""
    from prometheus_client import generate_latest

    from monitor.exposition import build_registry
    from monitor.loader import parse_config
    from monitor.scheduler import Runtime
    from monitor.snapshot import SnapshotStore
    from tests.conftest import new_database

    db = new_database(pg18, ("pg_stat_statements", "vector"))
    db.execute("CREATE TABLE items (id bigint PRIMARY KEY, created_at timestamptz DEFAULT now(), embedding vector(3))")
    db.execute("INSERT INTO items (id, embedding) SELECT g, ARRAY[random(), random(), random()]::vector "
               "FROM generate_series(1, 300) g")
    db.execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops)")
    db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO vecmon_monitor")
    db.execute("ANALYZE items")
    config = parse_config(f"""
databases:
  - name: docs
    dsn: "{db.monitor_dsn}"
    vector:
      recall: {{sample_size: 5, state_url: "sqlite:///{tmp_path / 'state.sqlite'}"}}
      freshness: [{{table: public.items, timestamp_column: created_at, embedding_column: embedding}}]
""")
    store = SnapshotStore()
    runtime = Runtime(config, store)
    try:
        runtime.run_once()
    finally:
        runtime.stop()
    exposed = _exposed_families(generate_latest(build_registry(store, 300)).decode())
    listed = _reference_names(README.read_text())
    assert VECTOR_INDEX.exposed_name in exposed  # the probe really ran on pgvector
    missing = sorted(name for name in exposed if name not in listed and f"{name}_total" not in listed)
    assert not missing, f"exposed but not in the README's metric reference under that name: {missing}"
