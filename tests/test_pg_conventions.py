"""Conventions every PostgreSQL collector must keep, checked on real PostgreSQL 15 and 18.

* the same workload yields the same metric family names on both versions (dashboards and
  alerts must not break at a major upgrade);
* everything emitted is declared, finite, and ratios stay within 0..1;
* declarations follow the naming rules (prefix, ``_total`` counters, base units).
"""

from __future__ import annotations

import math

import pytest

from collectors.base import Collector
from collectors.pg_connections import PG_CONNECTIONS
from collectors.pg_databases import PG_DATABASE_XACT_COMMIT_TOTAL
from collectors.pg_indexes import PG_INDEX_SCANS_TOTAL
from collectors.pg_server import PG_CHECKPOINTS_TOTAL, PG_REPLICATION_SLOT_RETAINED_WAL_BYTES, PG_WAL_DIRECTORY_BYTES
from collectors.pg_statements import PG_STATEMENT_CALLS_TOTAL
from collectors.pg_tables import PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS, PG_TABLE_SEQ_SCAN_TOTAL
from collectors.registry import database_collector, registration
from collectors.vector_selection import MISCONFIGURED
from tests.conftest import Database, new_database
from tests.helpers import Families, run_collector

SERVERS = ("pg15", "pg18")
# The core PostgreSQL collectors (other collectors in the registry follow their own prefixes).
COLLECTORS = ("connections", "databases", "tables", "indexes", "statements", "server",
              "archiver", "wal", "wraparound", "wraparound_tables", "activity", "progress")

WORKLOAD = (
    "CREATE TABLE work (id int PRIMARY KEY, tag int, body text)",
    "CREATE INDEX work_tag ON work (tag)",
    "INSERT INTO work SELECT g, mod(g, 7), repeat(md5(g::text), 3) FROM generate_series(1, 300) g",
    "ANALYZE work",
    "VACUUM work",
    "SELECT count(*) FROM work",
    "SELECT * FROM work WHERE id = 5",
    "UPDATE work SET body = 'x' WHERE id <= 3",
    "DELETE FROM work WHERE id = 300",
    "SELECT pg_stat_force_next_flush()",
)


def run_workload(db: Database) -> None:
    with db.admin() as conn:
        for statement in WORKLOAD:
            conn.execute(statement)


@pytest.fixture(scope="module")
def collected(request) -> dict[tuple[str, str], Families]:
    """Every collector run once on PG15 and PG18 after the same workload (with a replication slot)."""
    results: dict[tuple[str, str], Families] = {}
    for server_name in SERVERS:
        server = request.getfixturevalue(server_name)
        db = new_database(server)
        run_workload(db)
        slot = f"vecmon_conv_{db.name}"
        db.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        try:
            for collector in COLLECTORS:
                results[(server_name, collector)] = run_collector(db.monitor_dsn, collector)
        finally:
            db.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    return results


def family_names(families: Families) -> set[str]:
    return {family.name for family in families.families}


@pytest.mark.parametrize("collector", COLLECTORS)
def test_same_metric_names_on_pg15_and_pg18(collected, collector):
    names15 = family_names(collected[("pg15", collector)])
    names18 = family_names(collected[("pg18", collector)])
    assert names15, f"{collector} emitted nothing on PostgreSQL 15"
    assert names15 == names18


@pytest.mark.parametrize("collector", COLLECTORS)
def test_emitted_families_are_declared_and_values_finite(collected, collector):
    cls = database_collector(collector)
    declared = {spec.name: spec for spec in cls.METRICS}
    for server_name in SERVERS:
        for family in collected[(server_name, collector)].families:
            # prometheus_client strips _total from a counter family's name; its samples keep it.
            spec = declared.get(family.name) or declared.get(f"{family.name}_total")
            assert spec is not None, f"{family.name} is not declared by {collector}"
            assert family.type == spec.kind
            assert family.samples, f"{family.name} has no samples"
            for sample in family.samples:
                assert math.isfinite(sample.value), (server_name, sample)
                assert set(sample.labels) == {"target", *spec.labels}
                if sample.name.endswith("_ratio"):
                    assert 0 <= sample.value <= 1, (server_name, sample)
                if sample.name.endswith(("_bytes", "_seconds", "_total")):
                    assert sample.value >= 0, (server_name, sample)


def test_workload_covers_the_main_families(collected):
    """The cross-version comparison is only meaningful if the workload makes the collectors emit."""
    for server_name in SERVERS:
        emitted = set()
        for collector in COLLECTORS:
            emitted |= {s.name for f in collected[(server_name, collector)].families for s in f.samples}
        for name in (PG_CONNECTIONS.name, PG_DATABASE_XACT_COMMIT_TOTAL.name, PG_TABLE_SEQ_SCAN_TOTAL.name,
                     PG_TABLE_LAST_MAINTENANCE_AGE_SECONDS.name, PG_INDEX_SCANS_TOTAL.name,
                     PG_STATEMENT_CALLS_TOTAL.name, PG_CHECKPOINTS_TOTAL.name,
                     PG_REPLICATION_SLOT_RETAINED_WAL_BYTES.name, PG_WAL_DIRECTORY_BYTES.name):
            assert name in emitted, (server_name, name)


@pytest.mark.parametrize("collector", COLLECTORS)
def test_declarations_follow_naming_rules(collector):
    cls: Collector = database_collector(collector)
    assert cls.name == collector
    assert registration(collector).kind == "database" and registration(collector).scope in ("server", "database")
    names = [spec.name for spec in cls.METRICS]
    assert len(names) == len(set(names))
    for spec in cls.METRICS:
        assert spec.name.startswith("vecmon_pg_"), spec.name
        assert len(spec.help) > 20 and spec.help[0].isupper() and spec.help.endswith("."), spec.name
        assert "target" not in spec.labels  # added by the Emitter
        assert (spec.kind == "counter") == spec.name.endswith("_total"), spec.name
        for unit in ("_ms", "_milliseconds", "_kb", "_mb", "_percent"):
            assert unit not in spec.name, spec.name


def test_metric_names_are_unique_across_collectors():
    owner: dict[str, str] = {}
    for collector in COLLECTORS:
        for spec in database_collector(collector).METRICS:
            if spec is MISCONFIGURED:  # one shared declaration, the collector is a label
                continue
            assert spec.name not in owner, f"{spec.name} declared by {owner.get(spec.name)} and {collector}"
            owner[spec.name] = collector
