"""Engines and files of the recall state store: opening a SQLite or PostgreSQL store, checking a
SQLite file that changed under the process, moving a damaged one aside, the in-memory fallback."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from collectors.recall_store_tables import metadata

T = TypeVar("T")
STORE_CONNECT_TIMEOUT = 10  # seconds, for a store on a PostgreSQL server
SQLITE_HEADER = b"SQLite format 3\x00"

DELETED = "the file was deleted while running"
FileIdentity = tuple[int, int, int, int]


def file_identity(path: Path | None) -> FileIdentity | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def describe_error(exc: BaseException, password: str | None) -> str:
    """One line naming the error (the driver's, without SQLAlchemy's SQL and links), password redacted."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    text = f"{lines[0] if lines else ''} ({type(orig).__name__})".strip()
    return text.replace(password, "***") if password else text


def unwritable_note(directory: Path) -> str:
    """`` (the directory ... is not writable: ...)`` when no file can be created in ``directory``
    (tried, not judged by its mode: root ignores modes, not a read-only mount or attribute)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            return ""
    except OSError as exc:
        return f" (the directory {directory} is not writable: {exc.strerror or exc})"


def run_on(engine: Engine, operation: Callable[[Connection], T], write: bool) -> T:
    with (engine.begin() if write else engine.connect()) as conn:
        return operation(conn)


def sqlite_file_health(path: Path) -> tuple[str, str]:
    """``("ok" | "damaged" | "unusable", reason)`` of a SQLite file, read by a fresh read-only
    connection: its header, then ``PRAGMA quick_check`` (through the WAL, as SQLite reads it)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        return "unusable", f"{exc.strerror or exc} ({type(exc).__name__})"
    if not header:
        return "damaged", "it is empty"
    if header != SQLITE_HEADER:
        return "damaged", "not an SQLite file: bad header"
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return "unusable", f"{exc} ({type(exc).__name__})"
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.OperationalError as exc:  # cannot open, locked, I/O error: not proof of damage
        return "unusable", f"{exc} ({type(exc).__name__})"
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        return "damaged", f"{exc} ({type(exc).__name__})"
    finally:
        conn.close()
    first = str(rows[0][0]) if rows else "no answer"
    if first != "ok":
        detail = [line for line in first.splitlines() if not line.startswith("***")]
        return "damaged", f"quick_check: {(detail or [first])[0]}"
    return "ok", ""


def move_aside(path: Path, include_main: bool = True) -> list[Path]:
    """Rename ``path`` (if ``include_main``) and its ``-wal``/``-shm`` files to ``<name>.bad-<UTC time>``;
    returns the new paths, the main file's first. A WAL left beside a new file must not be replayed."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    moved = []
    for suffix in ("", "-wal", "-shm"):
        if not suffix and not include_main:
            continue
        source = path.with_name(path.name + suffix)
        if not source.exists():
            continue
        target = source.with_name(f"{source.name}.bad-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = source.with_name(f"{source.name}.bad-{stamp}-{n}")
        source.rename(target)
        moved.append(target)
    return moved


def memory_engine() -> Engine:
    """A private in-memory SQLite database shared by every thread (one connection, used under the
    store's lock)."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    return engine



def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = STORE_CONNECT_TIMEOUT  # an unreachable store must not stall a probe
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
