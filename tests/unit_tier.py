"""The fast unit tier (``make test-fast`` = ``pytest -m unit``), chosen so that it cannot rot.

A test is marked ``unit`` at collection unless it uses a server fixture (``SERVER_FIXTURES``, directly
or through other fixtures) or carries ``@pytest.mark.integration``. While a unit test sets up and
runs, in every run (the full suite included), it may not start a process (on any thread), and its own
thread may not open a TCP/UDP socket or connect to PostgreSQL: a test that does fails and names what it
did, so a test that needs a server either takes a server fixture or is marked ``integration``; it never
slips into the fast tier.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import urllib3.util.connection  # noqa: F401 - binds a socket once at import (its IPv6 probe): not a test's doing

# Fixtures that start or reach a real server (PostgreSQL, Redis, Chromium, vecmon daemons) or build
# the wheel; ``any_pg`` picks pg18 or pg15 at run time, so it is named too.
SERVER_FIXTURES = frozenset({
    "pg_root", "pg18", "pg15", "any_pg", "redis_server", "browser", "daemons", "dists", "collected",
})

UNIT = "unit"
INTEGRATION = "integration"


def classify(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker(INTEGRATION) is None and not fixtures & SERVER_FIXTURES:
            item.add_marker(UNIT)


class UnitTierViolation(pytest.fail.Exception):  # a BaseException: `except Exception` in the code cannot hide it
    def __init__(self, what: str):
        super().__init__(f"a unit test (no server fixture) {what}: give it a server fixture "
                         f"or mark it @pytest.mark.integration (tests/unit_tier.py)", pytrace=False)


@contextmanager
def no_servers() -> Iterator[None]:
    """Refuse, on the calling thread only, what a unit test must not do (other threads, e.g. a module's
    running daemon, are left alone)."""
    main = threading.get_ident()
    originals = {
        (socket.socket, "connect"): socket.socket.connect,
        (socket.socket, "connect_ex"): socket.socket.connect_ex,
        (socket.socket, "bind"): socket.socket.bind,
        (subprocess.Popen, "__init__"): subprocess.Popen.__init__,
        (psycopg.Connection, "connect"): psycopg.Connection.__dict__["connect"],
    }
    messages = {"connect": "opened a network connection", "connect_ex": "opened a network connection",
                "bind": "bound a socket", "__init__": "started a process"}

    def guarded(original, what):
        if isinstance(original, classmethod):
            func = original.__func__

            def check_cls(cls, *args, **kwargs):
                if threading.get_ident() == main:
                    raise UnitTierViolation("connected to PostgreSQL")
                return func(cls, *args, **kwargs)

            return classmethod(check_cls)

        def check(self, *args, **kwargs):
            # processes on every thread (promtool runs in thread pools); sockets on the test's own thread
            on_guarded_thread = isinstance(self, subprocess.Popen) or threading.get_ident() == main
            if on_guarded_thread and not _local_pair(self):
                raise UnitTierViolation(what)
            return original(self, *args, **kwargs)

        return check

    for (owner, name), original in originals.items():
        setattr(owner, name, guarded(original, messages.get(name, name)))
    try:
        yield
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)


def _local_pair(sock: object) -> bool:
    """AF_UNIX sockets (asyncio's self-pipe, socketpair) are not servers."""
    return isinstance(sock, socket.socket) and sock.family == socket.AF_UNIX


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    if item.get_closest_marker(UNIT) is None:
        yield
        return
    with no_servers():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if item.get_closest_marker(UNIT) is None:
        yield
        return
    with no_servers():
        yield
