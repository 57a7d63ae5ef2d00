"""Hostile model-API, cost-API and Redis peers: every call finishes, or fails as ``timeout``,
within its configured timeout plus a small margin, whatever the peer does.

The peers are local: :class:`fake_providers.FakeProvider` with ``Fault(trickle=...)`` (one
byte at a time, slower than any per-read timeout would notice), ``pad_to``/``endless``
(oversized bodies, which must also stay bounded in memory) and ``raw_response`` (not HTTP);
:class:`FakeRespPeer`, a TCP peer that accepts Redis connections and trickles or never
answers RESP; and a real redis-server that is paused. Each call runs in a thread joined with
a hard limit, so a bound that is not enforced fails the test instead of hanging it.
"""

from __future__ import annotations

import gzip
import logging
import signal
import socket
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from fake_providers import FakeProvider, Fault, Probe
from helpers import Families, require_tool
from prometheus_client import generate_latest
from test_providers_cost import ADMIN, NOW, cost_fake
from test_redis_cache import PASSWORD, REDIS_SERVER_BINARY, RedisServer

from collectors.base import CollectContext, CollectionTimeout, CollectorError
from collectors.cost_metrics import COST_API_POLLS_TOTAL, COST_PROVIDER_SPEND_USD
from collectors.model_metrics import MODEL_API_LAST_STATUS_CODE, MODEL_API_PROBE_SUCCESS, MODEL_API_REQUESTS_TOTAL
from collectors.provider_costs import ProviderCostsCollector
from collectors.providers.common import MAX_BODY_BYTES
from collectors.redis_cache import (
    REDIS_KEYSPACE_HITS_TOTAL,
    REDIS_PREFIX_KEYS,
    REDIS_PREFIX_SCAN_COMPLETE,
    RedisCacheCollector,
)
from collectors.settings.cost_apis import CostApiTarget
from collectors.settings.redis import RedisTarget
from collectors.spend_ledger import SpendLedger
from monitor.config import Config
from monitor.exposition import build_registry
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore

pytestmark = pytest.mark.integration  # servers, sockets or processes without a server fixture

TIMEOUT = 2.0  # the configured timeout of every call below
MARGIN = 1.0  # the issue's bound: done within timeout + 1 s
TRICKLE = 0.5  # seconds between bytes: far below TIMEOUT, so no per-read timeout ever fires
HARD_LIMIT = 20.0  # a call still running after this is reported as held, and the test fails
BIG = 50 * 1024 * 1024  # an oversized answer: 50 MB

KEY = "sk-live-CANARY-0a1b2c3d4e5f"
RERANK_KEY = "co-CANARY-rerank-9988"


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def bounded(call: Callable[[], Any]) -> tuple[Any, float]:
    """(result or raised exception, seconds) of ``call`` run in a thread; fails if it is held."""
    outcome: list = []

    def run() -> None:
        started = time.monotonic()
        try:
            result: Any = call()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            result = exc
        outcome.extend([result, time.monotonic() - started])

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(HARD_LIMIT)
    assert not thread.is_alive(), f"held for more than {time.monotonic() - started:.0f}s (timeout {TIMEOUT:g}s)"
    return outcome[0], outcome[1]


# --------------------------------------------------------------------------- model probes

HTTP_FAULTS = {
    "trickled-headers": (Fault(trickle=TRICKLE), "timeout", 0),
    "trickled-body": (Fault(trickle=TRICKLE, trickle_body_only=True), "timeout", 200),
    "slow": (Fault(delay=HARD_LIMIT), "timeout", 0),
    "50MB-body": (Fault(pad_to=BIG), "bad_response", 200),
    "endless-chunked-body": (Fault(endless=True), "bad_response", 200),
    "not-http": (Fault(raw_response=b"SSH-2.0-OpenSSH_9.6\r\n"), "bad_response", 0),
    "garbled-chunks": (Fault(raw_response=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
                       "bad_response", 200),
    "header-flood": (Fault(raw_response=b"HTTP/1.1 200 OK\r\n" + b"X-Flood: 1\r\n" * 500 + b"\r\n"),
                     "bad_response", 0),
}


@pytest.mark.parametrize("provider,kind", [("openai", "embedding"), ("cohere", "rerank")])
@pytest.mark.parametrize("name", list(HTTP_FAULTS))
def test_a_hostile_model_api_is_bounded_by_the_probe_timeout(provider, kind, name):
    fault, outcome, status = HTTP_FAULTS[name]
    with FakeProvider(provider) as fake:
        fake.push(fault)
        probe = Probe(fake, kind, timeout=f"{TIMEOUT:g}s")
        run, elapsed = bounded(probe.run)
        assert not isinstance(run, Exception), run  # a hostile peer is data, never a collector failure
        assert elapsed <= TIMEOUT + MARGIN, f"{name}: held {elapsed:.2f}s"
        assert run.outcomes() == {outcome: 1}, name
        assert run.value(MODEL_API_PROBE_SUCCESS.name) == 0
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == status
        if outcome == "timeout":  # only the deadline ended it
            assert run.latency_sum("timeout") >= TIMEOUT - 0.05
        if name == "50MB-body":  # the Content-Length alone is enough to refuse it
            assert sum(fake.sent_bytes) < BIG / 2
        run = probe.run()  # the hostile answer was for one request only: the endpoint works again
        assert run.outcomes() == {outcome: 1, "success": 1}, "the next probe failed"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    openssl = require_tool("openssl", "openssl")
    root = tmp_path_factory.mktemp("tls")
    cert, key = str(root / "cert.pem"), str(root / "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # a self-signed test certificate
@pytest.mark.parametrize("name", ["trickled-headers", "trickled-body"])
def test_a_trickling_https_peer_is_bounded_too(certificate, name):
    fault, outcome, status = HTTP_FAULTS[name]
    with FakeProvider("voyage", tls=certificate) as fake:
        probe = Probe(fake, timeout=f"{TIMEOUT:g}s", tls_verify=False)
        assert probe.run().outcomes() == {"success": 1}  # TLS works, and the connection is kept alive
        fake.push(fault)
        run, elapsed = bounded(probe.run)
        assert not isinstance(run, Exception), run
        assert elapsed <= TIMEOUT + MARGIN, f"{name}: held {elapsed:.2f}s"
        assert run.outcomes() == {"success": 1, outcome: 1}
        assert run.value(MODEL_API_LAST_STATUS_CODE.name) == status


def test_a_trickling_peer_behind_an_http_proxy_is_bounded_too():
    with FakeProvider("tei") as proxy:  # the fake answers absolute-URI (proxy) requests as well
        probe = Probe(proxy, timeout=f"{TIMEOUT:g}s", url="http://tei.example.invalid:8080")
        probe.session.proxies = {"http": f"http://127.0.0.1:{proxy.port}"}
        proxy.push(Fault(), Fault(trickle=TRICKLE, trickle_body_only=True))
        assert probe.run().outcomes() == {"success": 1}
        assert proxy.requests[0].headers["host"] == "tei.example.invalid:8080"  # it went through the proxy
        run, elapsed = bounded(probe.run)
        assert not isinstance(run, Exception), run
        assert elapsed <= TIMEOUT + MARGIN, f"held {elapsed:.2f}s"
        assert run.outcomes() == {"success": 1, "timeout": 1}


GZIP_BOMB = gzip.compress(b" " * (200 * 1024 * 1024) + b"[]", 9)  # 200 MiB of JSON in 0.2 MB


@pytest.mark.parametrize("name", ["50MB-body", "endless-chunked-body", "gzip-bomb"])
def test_an_oversized_answer_is_refused_within_bounded_memory(name):
    fault = HTTP_FAULTS[name][0] if name in HTTP_FAULTS else Fault(raw_response=(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(GZIP_BOMB), GZIP_BOMB)))
    with FakeProvider("tei") as fake:
        fake.push(fault)
        probe = Probe(fake, timeout="10s")
        tracemalloc.start()
        try:
            run = probe.run()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert run.outcomes() == {"bad_response": 1} and run.failures("malformed") == 1
        # bounded by the cap (decoded bytes), not by what the peer sends: 50 MB, endless, 200 MiB
        assert peak < 2 * MAX_BODY_BYTES, f"peak {peak / 2**20:.0f} MiB"
        assert sum(fake.sent_bytes) < BIG  # the client stopped reading at the cap


# --------------------------------------------------------------------------- the cost-API poll


class CostPoll:
    def __init__(self, fake: FakeProvider, timeout: float = TIMEOUT):
        import requests

        self.target = CostApiTarget.model_validate({"name": "org", "url": fake.url, "api_key": ADMIN,
                                                    "timeout": f"{timeout:g}s"})
        session = requests.Session()
        session.trust_env = False
        self.sleeps: list[float] = []
        self.collector = ProviderCostsCollector(session=session, ledger=SpendLedger(), clock=lambda: NOW,
                                                sleep=self.sleeps.append)
        self.state: dict = {}

    def run(self) -> Families:
        return Families(self.collector.collect(CollectContext("org", self.target, state=self.state)))


def polls(families: Families, api: str, outcome: str) -> float | None:
    return families.value(COST_API_POLLS_TOTAL.name,
                          {"target": "org", "provider": "openai", "api": api, "outcome": outcome})


@pytest.mark.parametrize("name", list(HTTP_FAULTS))
def test_a_hostile_cost_api_is_bounded_by_the_poll_timeout(name):
    fault, outcome, _ = HTTP_FAULTS[name]
    with cost_fake() as fake:
        poll = CostPoll(fake)
        poll.run()  # good values first
        fake.push(Fault(), fault)  # the second page of the costs poll
        families, elapsed = bounded(poll.run)
        assert not isinstance(families, Exception), families
        # the whole collection (costs pages, then usage pages) shares one deadline
        assert elapsed <= TIMEOUT + MARGIN, f"{name}: held {elapsed:.2f}s"
        assert polls(families, "costs", outcome) == 1 and polls(families, "costs", "success") == 1
        spend = families.value(COST_PROVIDER_SPEND_USD.name, {"target": "org", "provider": "openai",
                                                                  "period": "month"})
        assert spend == pytest.approx(2.875)  # the last good values are still served


# --------------------------------------------------------------------------- Redis


class FakeRespPeer:
    """A TCP peer on loopback that accepts Redis connections and answers the first commands with
    ``first`` (at once), every later one with ``reply`` (one byte per ``trickle`` seconds when
    set; over and over with ``repeat``), or never (``reply=None``)."""

    def __init__(self, reply: bytes | None, trickle: float = 0.0, repeat: bool = False, first: tuple = ()):
        self.reply, self.trickle, self.repeat, self.first = reply, trickle, repeat, first
        self.stopping = threading.Event()
        self.received = bytearray()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def __enter__(self) -> FakeRespPeer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        commands = 0
        with conn:
            conn.settimeout(0.1)
            while not self.stopping.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self.received += data
                commands += 1
                if commands <= len(self.first):
                    conn.sendall(self.first[commands - 1])
                    continue
                if self.reply is None:
                    continue
                try:
                    while True:
                        for i in range(len(self.reply)) if self.trickle else [None]:
                            if self.stopping.is_set():
                                return
                            conn.sendall(self.reply if i is None else self.reply[i:i + 1])
                            if self.trickle:
                                self.stopping.wait(self.trickle)
                        if not self.repeat:
                            break
                except OSError:
                    return


INFO = (b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
        b"# Stats\r\nkeyspace_hits:1\r\nkeyspace_misses:3\r\n")
REDIS_FAULTS = {
    "silent": (None, 0.0, False, CollectionTimeout),
    "trickled-reply": (b"$%d\r\n%s\r\n" % (len(INFO), INFO), TRICKLE, False, CollectionTimeout),
    "trickled-ok": (b"+OK\r\n", TRICKLE, False, CollectionTimeout),  # AUTH alone takes 2.5 s
    "endless-line": (b"+" + b"x" * 65536, 0.0, True, CollectorError),
    "huge-bulk": (b"$99999999999\r\n" + b"x" * 65536, 0.0, True, CollectorError),
    "huge-array": (b"*99999999999\r\n" + b":1\r\n" * 10000, 0.0, True, CollectorError),
    "not-resp": (b"HTTP/1.1 400 Bad Request\r\n\r\n", 0.0, False, CollectorError),
}


@pytest.mark.parametrize("name", list(REDIS_FAULTS))
def test_a_hostile_redis_peer_is_bounded_by_the_timeout(name):
    reply, trickle, repeat, error = REDIS_FAULTS[name]
    with FakeRespPeer(reply, trickle, repeat) as peer:
        target = RedisTarget.model_validate({"name": "cache", "port": peer.port, "password": PASSWORD,
                                             "timeout": f"{TIMEOUT:g}s"})
        tracemalloc.start()
        try:
            result, elapsed = bounded(lambda: RedisCacheCollector().collect(CollectContext("cache", target,
                                                                                           state={})))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert elapsed <= TIMEOUT + MARGIN, f"{name}: held {elapsed:.2f}s"
        assert type(result) is error, f"{name}: {result!r}"
        if error is CollectionTimeout:
            assert f"within {TIMEOUT:g}s" in str(result)
            assert elapsed >= TIMEOUT - 0.05
        assert peak < 32 * 1024 * 1024, f"{name}: peak {peak / 2**20:.0f} MiB"
        assert PASSWORD in peer.received.decode(errors="replace")  # it really talked to the peer
        assert PASSWORD not in str(result)


def test_a_scan_reply_that_comes_too_late_keeps_the_info_metrics():
    info = b"$%d\r\n%s\r\n" % (len(INFO), INFO)
    with FakeRespPeer(b"*2\r\n$1\r\n0\r\n*1\r\n$5\r\nemb:1\r\n", TRICKLE, first=(b"+OK\r\n", info)) as peer:
        target = RedisTarget.model_validate({"name": "cache", "port": peer.port, "password": PASSWORD,
                                             "key_prefixes": ["emb:", "rerank:"], "timeout": f"{TIMEOUT:g}s"})
        result, elapsed = bounded(lambda: Families(RedisCacheCollector().collect(CollectContext("cache", target,
                                                                                                state={}))))
    assert not isinstance(result, Exception), result
    assert elapsed <= TIMEOUT + MARGIN
    assert result.value(REDIS_KEYSPACE_HITS_TOTAL.name, {"target": "cache"}) == 1
    for prefix in ("emb:", "rerank:"):
        assert result.value(REDIS_PREFIX_SCAN_COMPLETE.name, {"target": "cache", "prefix": prefix}) == 0
        assert result.value(REDIS_PREFIX_KEYS.name, {"target": "cache", "prefix": prefix}) == 0
    assert b"SCAN" in peer.received and peer.received.count(b"SCAN") == 1  # no second SCAN on a late connection


def test_a_paused_real_redis_server_is_a_timeout_and_then_recovers(tmp_path):
    require_tool(REDIS_SERVER_BINARY, "redis-server")
    server = RedisServer(tmp_path)
    server.start()
    try:
        target = RedisTarget.model_validate({"name": "cache", "port": server.port, "password": PASSWORD,
                                             "key_prefixes": ["emb:"], "timeout": f"{TIMEOUT:g}s"})
        # a stopped redis-server (SIGSTOP, as under a debugger or a frozen VM): the kernel still
        # accepts connections, nothing answers
        server.proc.send_signal(signal.SIGSTOP)
        try:
            result, elapsed = bounded(lambda: RedisCacheCollector().collect(CollectContext("cache", target, {})))
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert type(result) is CollectionTimeout and elapsed <= TIMEOUT + MARGIN, (result, elapsed)
        families = Families(RedisCacheCollector().collect(CollectContext("cache", target, state={})))
        assert families.value(REDIS_PREFIX_SCAN_COMPLETE.name, {"target": "cache", "prefix": "emb:"}) == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------- the daemon keeps serving


def test_hostile_peers_never_hold_the_daemon_and_never_see_a_secret_leak(caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")  # as monitor.logs.setup_logging does
    store = SnapshotStore()
    with FakeProvider("openai", api_key=KEY) as trickling, FakeProvider("cohere", api_key=RERANK_KEY) as huge, \
            FakeProvider("openai", admin_key=ADMIN) as costs, FakeProvider("tei") as healthy, \
            FakeProvider("voyage") as garbled, FakeRespPeer(b"+OK\r\n", TRICKLE) as redis_peer:
        trickling.default = Fault(trickle=TRICKLE, trickle_body_only=True)
        # a header line urllib3 cannot parse: it logs the URL at WARNING, and this gateway takes the key in it
        garbled.default = Fault(raw_response=b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nno colon\r\n"
                                             b"Content-Length: 2\r\n\r\n[]")
        huge.default = Fault(endless=True)
        costs.default = Fault(trickle=TRICKLE)
        timeout = f"{TIMEOUT:g}s"
        config = Config.model_validate({
            "endpoints": [
                {"name": "trickling", "provider": "openai", "url": trickling.url, "model": "text-embedding-3-small",
                 "api_key": KEY, "timeout": timeout, "interval": "60s"},
                {"name": "huge", "provider": "cohere", "kind": "rerank", "url": huge.url, "model": "rerank-v3.5",
                 "api_key": RERANK_KEY, "timeout": timeout, "interval": "60s"},
                {"name": "garbled", "provider": "voyage", "url": f"{garbled.url}?key={KEY}", "model": "voyage-3.5",
                 "timeout": timeout, "interval": "60s"},
                {"name": "healthy", "provider": "tei", "url": healthy.url, "model": "m", "interval": "1s",
                 "jitter": "10ms"}],
            "cost_apis": [{"name": "org", "url": costs.url, "api_key": ADMIN, "timeout": timeout, "interval": "60s",
                           "jitter": "10ms"}],
            "redis": [{"name": "cache", "port": redis_peer.port, "password": PASSWORD, "timeout": timeout,
                       "interval": "60s"}]})
        runtime = Runtime(config, store)
        registry = build_registry(store, 300)
        runtime.start()
        try:
            started = time.monotonic()
            deadline = started + HARD_LIMIT
            while time.monotonic() < deadline:
                entries = {e.target: e for e in store.entries()}
                if all(e.last_run is not None for e in entries.values()) and entries["healthy"].count("success") >= 2:
                    break
                scrape_started = time.perf_counter()
                text = generate_latest(registry).decode()
                assert time.perf_counter() - scrape_started < 1.0, "a scrape waited for a hostile peer"
                time.sleep(0.05)
            waited = time.monotonic() - started
            entries = {e.target: e for e in store.entries()}
            assert all(e.last_run is not None for e in entries.values()), \
                [e.target for e in entries.values() if e.last_run is None]
            assert waited <= TIMEOUT + MARGIN + 1.5  # every hostile job finished by its timeout (+ start jitter)
            assert entries["healthy"].count("success") >= 2
            assert entries["cache"].count("timeout") == 1  # Redis: a timeout, not a generic error
            text = generate_latest(registry).decode()
        finally:
            for fake in (trickling, huge, costs):
                fake.stopping.set()
            runtime.stop()
    labels = 'kind="{kind}",model="{model}",outcome="{outcome}",provider="{provider}",target="{target}"'
    assert f"{MODEL_API_REQUESTS_TOTAL.name}{{" + labels.format(
        kind="embedding", model="text-embedding-3-small", outcome="timeout", provider="openai",
        target="trickling") + "} 1.0" in text
    assert f"{MODEL_API_REQUESTS_TOTAL.name}{{" + labels.format(
        kind="rerank", model="rerank-v3.5", outcome="bad_response", provider="cohere", target="huge") + "} 1.0" in text
    assert f'{COST_API_POLLS_TOTAL.name}{{api="costs",outcome="timeout",provider="openai",target="org"}} 1.0' in text
    assert f"{MODEL_API_REQUESTS_TOTAL.name}{{" + labels.format(
        kind="embedding", model="voyage-3.5", outcome="bad_response", provider="voyage", target="garbled") \
        + "} 1.0" in text
    assert "Failed to parse headers" in caplog.text  # urllib3 did log the URL, redacted
    assert trickling.requests[0].headers["authorization"] == f"Bearer {KEY}"  # the canaries were sent
    assert KEY in garbled.requests[0].query["key"][0]
    assert costs.requests[0].headers["authorization"] == f"Bearer {ADMIN}"
    errors = " ".join(e.last_error or "" for e in store.entries())
    for secret in (KEY, RERANK_KEY, ADMIN, PASSWORD, KEY[:12], ADMIN[:12]):
        assert secret not in caplog.text, secret
        assert secret not in text, secret
        assert secret not in errors, secret
