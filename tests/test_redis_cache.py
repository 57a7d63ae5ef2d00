"""The embedding-cache collector against a real redis-server (Debian package ``redis-server``).

A server is started per module on a free loopback port in a temporary directory, with a
password, no persistence and a maxmemory limit. With ``CI`` set, a missing redis-server is a
failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import Families, require_tool
from prometheus_client import generate_latest

from collectors.base import CollectContext, CollectorError, ConnectionUnavailable
from collectors.redis_cache import (
    REDIS_DB_EXPIRING_KEYS,
    REDIS_DB_KEYS,
    REDIS_EVICTED_KEYS_TOTAL,
    REDIS_KEYSPACE_HIT_RATIO,
    REDIS_KEYSPACE_HITS_TOTAL,
    REDIS_KEYSPACE_MISSES_TOTAL,
    REDIS_MEMORY_MAX_BYTES,
    REDIS_MEMORY_USED_BYTES,
    REDIS_MEMORY_USED_RATIO,
    REDIS_PREFIX_KEYS,
    REDIS_PREFIX_SCAN_COMPLETE,
    REDIS_SERVER,
    REDIS_UPTIME_SECONDS,
    RedisCacheCollector,
    RespConnection,
    glob_escape,
    parse_keyspace,
)
from collectors.self_metrics import UP
from collectors.settings.redis import RedisTarget
from monitor.config import Config
from monitor.exposition import build_registry
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore

pytestmark = pytest.mark.integration  # servers, sockets or processes without a server fixture

REDIS_SERVER_BINARY = Path(os.environ.get("VECMON_REDIS_SERVER",
                                          shutil.which("redis-server") or "/usr/bin/redis-server"))
PASSWORD = "redis-SECRET-pw-31337"
MAXMEMORY = 64 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, root: Path):
        self.root = root
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        for _ in range(3):  # the free port can be taken between bind and start: retry
            self.port = free_port()
            self.proc = subprocess.Popen(
                [str(REDIS_SERVER_BINARY), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                 "--save", "", "--appendonly", "no", "--requirepass", PASSWORD, "--maxmemory", str(MAXMEMORY),
                 "--maxmemory-policy", "allkeys-lru", "--logfile", str(self.root / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    conn = self.connect()
                except OSError:
                    time.sleep(0.02)
                    continue
                conn.close()
                return
            self.stop()
        raise RuntimeError(f"redis-server did not start; see {self.root / 'redis.log'}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def connect(self, db: int = 0) -> RespConnection:
        conn = RespConnection.open("127.0.0.1", self.port, 5.0)
        conn.command("AUTH", PASSWORD)
        if db:
            conn.command("SELECT", db)
        return conn

    def run(self, *commands: tuple, db: int = 0) -> list:
        conn = self.connect(db)
        try:
            return [conn.command(*c) for c in commands]
        finally:
            conn.close()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    require_tool(REDIS_SERVER_BINARY, "redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    redis_server.run(("FLUSHALL",), ("CONFIG", "RESETSTAT"), ("CONFIG", "SET", "maxmemory", str(MAXMEMORY)))
    return redis_server


def target(server: RedisServer, **overrides) -> RedisTarget:
    return RedisTarget.model_validate({"name": "cache", "port": server.port, "password": PASSWORD,
                                       "key_prefixes": ["emb:", "rerank:"], **overrides})


def collect(server: RedisServer, state: dict | None = None, **overrides) -> Families:
    t = target(server, **overrides)
    return Families(RedisCacheCollector().collect(CollectContext("cache", t, state=state if state is not None else {})))


def value(families: Families, name: str, **labels) -> float | None:
    return families.value(name, {"target": "cache", **labels})


def test_hits_misses_ratio_memory_and_prefix_counts(redis):
    commands = [("SET", f"emb:{i:03d}", "x" * 100) for i in range(25)]
    commands += [("SET", f"rerank:{i}", "y", "EX", "300") for i in range(3)]
    commands += [("SET", f"other:{i}", "z") for i in range(5)]
    commands += [("GET", f"emb:{i:03d}") for i in range(10)]  # 10 hits
    commands += [("GET", f"emb:missing:{i}") for i in range(4)]  # 4 misses
    redis.run(*commands)
    state: dict = {}
    families = collect(redis, state)
    assert value(families, REDIS_KEYSPACE_HITS_TOTAL.name) == 10
    assert value(families, REDIS_KEYSPACE_MISSES_TOTAL.name) == 4
    assert value(families, REDIS_KEYSPACE_HIT_RATIO.name) == pytest.approx(10 / 14)
    assert value(families, REDIS_PREFIX_KEYS.name, prefix="emb:") == 25
    assert value(families, REDIS_PREFIX_KEYS.name, prefix="rerank:") == 3
    assert value(families, REDIS_PREFIX_SCAN_COMPLETE.name, prefix="emb:") == 1
    assert value(families, REDIS_DB_KEYS.name, db="0") == 33
    assert value(families, REDIS_DB_EXPIRING_KEYS.name, db="0") == 3
    assert value(families, REDIS_MEMORY_MAX_BYTES.name) == MAXMEMORY
    used = value(families, REDIS_MEMORY_USED_BYTES.name)
    assert 0 < used < MAXMEMORY
    assert value(families, REDIS_MEMORY_USED_RATIO.name) == pytest.approx(used / MAXMEMORY)
    assert value(families, REDIS_EVICTED_KEYS_TOTAL.name) == 0
    assert value(families, REDIS_UPTIME_SECONDS.name) >= 0
    (info,) = families.samples(REDIS_SERVER.exposed_name)
    assert info.labels["version"].split(".")[0].isdigit() and info.labels["maxmemory_policy"] == "allkeys-lru"

    # the ratio covers the lookups since the previous run only
    redis.run(*[("GET", f"emb:{i:03d}") for i in range(3)], ("GET", "nope"))
    families = collect(redis, state)
    assert value(families, REDIS_KEYSPACE_HITS_TOTAL.name) == 13
    assert value(families, REDIS_KEYSPACE_HIT_RATIO.name) == pytest.approx(0.75)
    families = collect(redis, state)  # no lookups in between: no ratio rather than a made-up one
    assert value(families, REDIS_KEYSPACE_HIT_RATIO.name) is None


def test_evictions_under_maxmemory(redis):
    (info,) = redis.run(("INFO", "memory"))
    used = int(next(line for line in info.decode().splitlines() if line.startswith("used_memory:")).split(":")[1])
    redis.run(("CONFIG", "SET", "maxmemory", str(used + 256 * 1024)))
    redis.run(*[("SET", f"emb:{i}", "v" * 1024) for i in range(1500)])
    families = collect(redis)
    assert value(families, REDIS_EVICTED_KEYS_TOTAL.name) > 0
    assert value(families, REDIS_MEMORY_MAX_BYTES.name) == used + 256 * 1024
    assert 0.5 < value(families, REDIS_MEMORY_USED_RATIO.name) <= 1.05
    assert value(families, REDIS_PREFIX_KEYS.name, prefix="emb:") < 1500


def test_prefix_scan_is_bounded_escaped_and_uses_the_configured_db(redis):
    redis.run(*[("SET", f"emb:{i}", "1") for i in range(40)])
    redis.run(("SET", "a*b[1", "1"), ("SET", "axb[2", "1"), ("SET", "emb:in-db-2", "1"), db=2)
    families = collect(redis, max_scan_keys=10, scan_count=10)
    assert value(families, REDIS_PREFIX_KEYS.name, prefix="emb:") == 10
    assert value(families, REDIS_PREFIX_SCAN_COMPLETE.name, prefix="emb:") == 0
    families = collect(redis, db=2, key_prefixes=["a*b[", "emb:"])
    assert value(families, REDIS_PREFIX_KEYS.name, prefix="a*b[") == 1  # not "axb[2": * is literal
    assert value(families, REDIS_PREFIX_KEYS.name, prefix="emb:") == 1
    assert value(families, REDIS_DB_KEYS.name, db="2") == 3
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    assert parse_keyspace({"db0": "keys=3,expires=1,avg_ttl=0", "db12": "keys=1,expires=0,avg_ttl=0"}) == {
        "0": {"keys": 3, "expires": 1, "avg_ttl": 0}, "12": {"keys": 1, "expires": 0, "avg_ttl": 0}}


def test_auth_failures_and_unreachable_server_never_show_the_password(redis, tmp_path):
    with pytest.raises(CollectorError, match=r"authentication failed \(WRONGPASS\)") as info:
        collect(redis, password="wrong-password")
    assert "wrong-password" not in str(info.value)
    with pytest.raises(CollectorError, match="NOAUTH"):
        collect(redis, password=None)
    with pytest.raises(ConnectionUnavailable) as info:
        collect(redis, port=free_port())
    assert PASSWORD not in str(info.value)
    secret = tmp_path / "redis.pw"
    secret.write_text(PASSWORD + "\n")
    families = collect(redis, password=None, password_file=str(secret))
    assert value(families, REDIS_MEMORY_MAX_BYTES.name) == MAXMEMORY


def test_redis_target_through_the_scheduler(redis, caplog):
    redis.run(("SET", "emb:1", "v"), ("GET", "emb:1"), ("GET", "emb:2"))
    store = SnapshotStore()
    config = Config.model_validate({"redis": [
        {"name": "cache", "port": redis.port, "password": PASSWORD, "key_prefixes": ["emb:"]},
        {"name": "gone", "port": free_port(), "password": PASSWORD, "timeout": "1s"}]})
    runtime = Runtime(config, store)
    results = runtime.run_once()
    assert results == {("cache", "redis_cache"): "success", ("gone", "redis_cache"): "error"}
    text = generate_latest(build_registry(store, 300)).decode()
    assert f'{REDIS_KEYSPACE_HIT_RATIO.name}{{target="cache"}} 0.5' in text
    assert f'{UP.name}{{target="gone"}} 0.0' in text
    assert PASSWORD not in text and PASSWORD not in caplog.text
    assert all(PASSWORD not in (e.last_error or "") for e in store.entries())
    runtime.stop()


def test_a_silent_server_is_bounded_by_the_timeout():
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        t = RedisTarget.model_validate({"name": "cache", "port": listener.getsockname()[1], "password": PASSWORD,
                                        "timeout": "400ms"})
        outcome: list = []

        def run() -> None:
            started = time.monotonic()
            try:
                RedisCacheCollector().collect(CollectContext("cache", t, state={}))
            except Exception as exc:  # noqa: BLE001 - checked below
                outcome.extend([exc, time.monotonic() - started])

        # in a thread, so a timeout that is not enforced fails the test instead of hanging it
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "the collection ignored its 400 ms timeout"
        error, elapsed = outcome
        assert isinstance(error, CollectorError) and "did not answer within 0.4s" in str(error)
        # the server never answers, so only the timeout ends the run; the wide margin is for a loaded CI host
        assert 0.4 <= elapsed < 1.5
        assert PASSWORD not in str(error)


def test_a_failed_tls_handshake_closes_the_socket(monkeypatch):
    opened: list[socket.socket] = []
    real_create_connection = socket.create_connection

    def create_connection(*args, **kwargs):
        sock = real_create_connection(*args, **kwargs)
        opened.append(sock)
        return sock

    def wrap_socket(self, sock, **kwargs):
        raise ssl.SSLError(1, "handshake failed")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        port = listener.getsockname()[1]
        with pytest.raises(ssl.SSLError):
            RespConnection.open("127.0.0.1", port, 1.0, tls=True)
        t = RedisTarget.model_validate({"name": "cache", "port": port, "tls": True, "timeout": "1s"})
        with pytest.raises(ConnectionUnavailable, match="cannot connect to redis"):
            RedisCacheCollector().collect(CollectContext("cache", t, state={}))
    assert len(opened) == 2
    assert all(sock.fileno() == -1 for sock in opened), "the TCP socket was left open"
