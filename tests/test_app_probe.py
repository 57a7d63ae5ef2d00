"""Application probes (collectors.app_probe) against real local HTTP(S) servers.

:class:`FakeApp` is a ThreadingHTTPServer on 127.0.0.1 (plain or TLS, like
tests/fake_providers.py) that answers each path with a configured :class:`Answer`: a status, a
body, a delay, or a response trickled one byte at a time (slower than any per-read timeout
notices). Certificates come from the ``openssl`` CLI: one valid for 1 day (about to expire), one
for 10000 days (notAfter past 2049: a GeneralizedTime), one for another host name. Every
hostile call runs in a thread joined with a hard limit, so an unenforced bound fails the test
instead of hanging it. The alert rules are checked with promtool (lint and unit tests).
"""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import Families, require_tool
from prometheus_client import generate_latest

from alerts.catalog.applications import APP_ALERTS
from alerts.promtool_tests import threshold_tests, unit_test_file
from alerts.rules import build_rule
from alerts.yamlout import dump
from collectors.app_metrics import (
    APP_PROBE_ASSERTION_FAILURES_TOTAL,
    APP_PROBE_DURATION_SECONDS,
    APP_PROBE_HTTP_STATUS_CODE,
    APP_PROBE_REQUESTS_TOTAL,
    APP_PROBE_SUCCESS,
    APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS,
)
from collectors.app_probe import APP_OUTCOMES, AppProbeCollector, certificate_not_after, json_equal
from collectors.base import CollectContext
from collectors.settings.applications import ApplicationTarget
from monitor.exposition import build_registry
from monitor.loader import ConfigError, parse_config
from monitor.scheduler import Runtime
from monitor.snapshot import SnapshotStore
from tests.helpers import metric_names

TIMEOUT = 2.0  # the configured timeout of the hostile cases
MARGIN = 1.0  # the bound: done within timeout + 1 s
TRICKLE = 0.5  # seconds between bytes: far below TIMEOUT, so no per-read timeout ever fires
HARD_LIMIT = 20.0
TOKEN = "Bearer app-CANARY-7f3e9a"
QUERY_KEY = "qk-CANARY-5511"
HEALTHY = {"status": "healthy", "version": "0.1.0"}  # the seeds' /health answer


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- the local application


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: dict(HEALTHY))  # JSON, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before anything is sent
    trickle: float = 0.0  # seconds between single bytes of the response, status line first
    trickle_body_only: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeApp:
    def __init__(self, tls: tuple[str, str] | None = None):
        self.tls = tls
        self.routes: dict[str, Answer] = {"/health": Answer()}
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                app._handle(self)

            do_GET = do_POST = do_HEAD = handle_one

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client gave up (timeout tests)

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path: str = "/health") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> FakeApp:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path = handler.path.split("?", 1)[0]
        self.seen.append(Seen(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()},
                              body))
        answer = self.routes.get(path, Answer(404, {"detail": "Not Found"}))
        data = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **answer.headers}
        head = (f"HTTP/1.1 {answer.status} {handler.responses.get(answer.status, ('',))[0]}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1")
        if handler.command == "HEAD":
            data = b""
        try:
            if answer.delay:
                self.stopping.wait(answer.delay)
            self._write(handler, head, answer.trickle if not answer.trickle_body_only else 0)
            self._write(handler, data, answer.trickle)
        except OSError:
            pass  # the client went away

    def _write(self, handler: BaseHTTPRequestHandler, data: bytes, trickle: float) -> None:
        if not trickle:
            handler.wfile.write(data)
            return
        for i in range(len(data)):
            if self.stopping.is_set():
                raise OSError("stopped")
            handler.wfile.write(data[i:i + 1])
            self.stopping.wait(trickle)


# --------------------------------------------------------------------------- running checks


class Check:
    """Runs AppProbeCollector the way a job does: same state every run."""

    def __init__(self, **settings: Any):
        import requests

        settings.setdefault("name", "rag-health")
        settings.setdefault("timeout", "5s")
        self.target = ApplicationTarget.model_validate(settings)
        self.session = requests.Session()
        self.session.trust_env = False
        self.collector = AppProbeCollector(session=self.session)
        self.state: dict[str, Any] = {}

    def run(self) -> Run:
        ctx = CollectContext(target=self.target.name, settings=self.target, state=self.state)
        return Run(self.target.name, Families(self.collector.collect(ctx)))


class Run:
    def __init__(self, target: str, families: Families):
        self.target, self.families = target, families

    def value(self, name: str, **labels: str) -> float | None:
        return self.families.value(name, {"target": self.target, **labels})

    def outcomes(self) -> dict[str, float]:
        counts = {o: self.value(APP_PROBE_REQUESTS_TOTAL.name, outcome=o) for o in APP_OUTCOMES}
        assert all(c is not None for c in counts.values()), "every outcome counter is exported from the start"
        return {o: c for o, c in counts.items() if c}

    @property
    def success(self) -> float | None:
        return self.value(APP_PROBE_SUCCESS.name)

    @property
    def status(self) -> float | None:
        return self.value(APP_PROBE_HTTP_STATUS_CODE.name)

    def latency_sum(self, outcome: str) -> float | None:
        return self.value(f"{APP_PROBE_DURATION_SECONDS.name}_sum", outcome=outcome)

    @property
    def expiry(self) -> float | None:
        return self.value(APP_TLS_CERT_EXPIRY_TIMESTAMP_SECONDS.name)

    def failures(self, assertion: str) -> float | None:
        return self.value(APP_PROBE_ASSERTION_FAILURES_TOTAL.name, assertion=assertion)


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
    thread.start()
    thread.join(HARD_LIMIT)
    assert not thread.is_alive(), f"held for more than {HARD_LIMIT:g}s (timeout {TIMEOUT:g}s)"
    return outcome[0], outcome[1]


# --------------------------------------------------------------------------- certificates


def make_certificate(root: Path, name: str, days: int, host: str = "127.0.0.1") -> tuple[str, str]:
    openssl = require_tool("openssl", "openssl")
    cert, key = str(root / f"{name}.pem"), str(root / f"{name}.key")
    san = f"IP:{host}" if host[0].isdigit() else f"DNS:{host}"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", str(days), "-subj", f"/CN={host}",
                    "-addext", f"subjectAltName={san}"], check=True, capture_output=True, timeout=60)
    return cert, key


def openssl_not_after(cert: str) -> float:
    out = subprocess.run([require_tool("openssl", "openssl"), "x509", "-in", cert, "-noout", "-enddate"],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    text = out.strip().split("=", 1)[1]  # e.g. "Dec  2 08:10:00 2026 GMT"
    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[str, str]]:
    root = tmp_path_factory.mktemp("tls")
    return {"expiring": make_certificate(root, "expiring", 1), "long": make_certificate(root, "long", 10000),
            "other-host": make_certificate(root, "other", 30, host="rag.example.com")}


# --------------------------------------------------------------------------- healthy and failing answers


@pytest.mark.integration
def test_a_healthy_endpoint_passes_and_is_measured():
    with FakeApp() as app:
        check = Check(url=app.url(), headers={"Authorization": TOKEN}, body_matches=['"status": ?"healthy"'],
                      json=[{"path": "status", "equals": "healthy"}, {"path": "version", "matches": r"^0\."}])
        run = check.run()
        assert run.success == 1 and run.status == 200
        assert run.outcomes() == {"success": 1}
        assert 0 < run.latency_sum("success") < 1.0  # seeds: < 1 s for health
        assert run.value(f"{APP_PROBE_DURATION_SECONDS.name}_count", outcome="success") == 1
        assert run.failures("json[0]") == 0 and run.failures("body_matches[0]") == 0
        assert run.expiry is None  # plain HTTP: no certificate
        seen = app.seen[-1]
        assert (seen.method, seen.path, seen.headers["authorization"]) == ("GET", "/health", TOKEN)
        run = check.run()  # counters and the histogram accumulate across runs
        assert run.outcomes() == {"success": 2}
        assert run.value(f"{APP_PROBE_DURATION_SECONDS.name}_count", outcome="success") == 2


@pytest.mark.integration
def test_a_search_request_must_return_the_expected_result():
    with FakeApp() as app:
        app.routes["/search"] = Answer(body={"results": [{"id": 42, "score": 0.91}], "took_ms": 12})
        check = Check(name="rag-search", url=app.url("/search"), method="POST",
                      json_body={"query": "capital of France", "k": 5},
                      json=[{"path": "results[0].id", "equals": 42}, {"path": "results", "min_length": 1}])
        assert check.run().outcomes() == {"success": 1}
        seen = app.seen[-1]
        assert seen.method == "POST" and json.loads(seen.body) == {"query": "capital of France", "k": 5}
        assert seen.headers["content-type"] == "application/json"
        app.routes["/search"] = Answer(body={"results": [], "took_ms": 3})  # the index lost the document
        run = check.run()
        assert run.success == 0 and run.status == 200
        assert run.outcomes() == {"success": 1, "json_mismatch": 1}
        assert run.failures("json[0]") == 1 and run.failures("json[1]") == 1


@pytest.mark.integration
def test_a_raw_body_is_sent_as_given():
    with FakeApp() as app:
        app.routes["/ready"] = Answer(body=b"ready")
        run = Check(url=app.url("/ready"), method="POST", body="ping=1", headers={"Content-Type": "text/plain"},
                    body_matches=["^ready$"]).run()
        assert run.outcomes() == {"success": 1}
        assert app.seen[-1].body == b"ping=1" and app.seen[-1].headers["content-type"] == "text/plain"


@pytest.mark.parametrize("status,valid,outcome", [
    (503, [], "http_5xx"),
    (500, [], "http_5xx"),
    (404, [], "http_4xx"),
    (429, [], "http_4xx"),
    (301, [], "unexpected_status"),  # redirects are not followed
    (204, [200], "unexpected_status"),
    (503, [503], "success"),  # e.g. a check that the maintenance page is up
    (204, [], "success"),
])
@pytest.mark.integration
def test_the_status_must_be_valid(status, valid, outcome):
    with FakeApp() as app:
        app.routes["/health"] = Answer(status, {"status": "unhealthy"} if status >= 400 else {},
                                       headers={"Location": "/elsewhere"} if status == 301 else {})
        run = Check(url=app.url(), valid_status_codes=valid).run()
        assert run.outcomes() == {outcome: 1}
        assert run.status == status
        assert run.success == (1 if outcome == "success" else 0)
        assert len(app.seen) == 1  # no redirect followed, no retry


@pytest.mark.integration
def test_a_wrong_body_fails_the_regex_assertions():
    with FakeApp() as app:
        app.routes["/health"] = Answer(body={"status": "degraded", "error": "database connection failed"})
        check = Check(url=app.url(), body_matches=["healthy", "status"], body_not_matches=["error", "panic"])
        run = check.run()
        assert run.outcomes() == {"body_mismatch": 1} and run.success == 0
        assert run.failures("body_matches[0]") == 1 and run.failures("body_matches[1]") == 0
        assert run.failures("body_not_matches[0]") == 1 and run.failures("body_not_matches[1]") == 0
        app.routes["/health"] = Answer(body={"status": "healthy"})
        assert check.run().outcomes() == {"body_mismatch": 1, "success": 1}


@pytest.mark.parametrize("body,assertion,holds", [
    ({"status": "healthy"}, {"path": "status", "equals": "healthy"}, True),
    ({"status": "unhealthy"}, {"path": "status", "equals": "healthy"}, False),
    ({"ok": 1}, {"path": "ok", "equals": True}, False),  # JSON equality: true is not 1
    ({"ok": True}, {"path": "ok", "equals": True}, True),
    ({"count": 42.0}, {"path": "count", "equals": 42}, True),
    ({"results": [{"id": 1}]}, {"path": "results", "min_length": 1}, True),
    ({"results": []}, {"path": "results", "min_length": 1}, False),
    ({"results": 7}, {"path": "results", "min_length": 1}, False),  # not an array
    ({"results": [{"id": 1}]}, {"path": "results[0].id", "exists": True}, True),
    ({"results": [{"title": "x"}]}, {"path": "results[0].id", "exists": True}, False),
    ({"status": "ok"}, {"path": "error", "exists": False}, True),
    ({"version": "1.4.2"}, {"path": "version", "matches": r"^1\."}, True),
    ({"version": 1.4}, {"path": "version", "matches": r"^1\."}, False),  # not a string
    ({"n": 3}, {"path": "length(n)", "equals": 1}, False),  # a JMESPath type error is a failed assertion
])
@pytest.mark.integration
def test_json_assertions(body, assertion, holds):
    with FakeApp() as app:
        app.routes["/health"] = Answer(body=body)
        run = Check(url=app.url(), json=[assertion]).run()
        assert run.outcomes() == ({"success": 1} if holds else {"json_mismatch": 1})
        assert run.failures("json[0]") == (0 if holds else 1)


@pytest.mark.integration
def test_an_html_answer_to_a_json_check_is_a_bad_response():
    with FakeApp() as app:
        app.routes["/health"] = Answer(body=b"<html><body>502 Bad Gateway</body></html>",
                                       headers={"Content-Type": "text/html"})
        run = Check(url=app.url(), json=[{"path": "status", "equals": "healthy"}]).run()
        assert run.outcomes() == {"bad_response": 1} and run.status == 200


@pytest.mark.integration
def test_an_answer_over_the_size_limit_is_read_no_further():
    with FakeApp() as app:
        app.routes["/health"] = Answer(body=b" " * 200_000 + b'{"status": "healthy"}')
        run = Check(url=app.url(), max_body_bytes=100_000).run()
        assert run.outcomes() == {"bad_response": 1}


def test_json_equality_is_strict():
    assert json_equal([1, {"a": True}], [1.0, {"a": True}])
    assert not json_equal([1, {"a": True}], [1, {"a": 1}])
    assert not json_equal(0, False) and not json_equal(None, False) and not json_equal("1", 1)


# --------------------------------------------------------------------------- hostile peers: bounded by the timeout


HOSTILE = {
    "slow": Answer(delay=HARD_LIMIT),
    "trickled-headers": Answer(trickle=TRICKLE),
    "trickled-body": Answer(trickle=TRICKLE, trickle_body_only=True),
}


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.integration
def test_a_slow_or_trickling_application_fails_as_timeout_within_the_timeout(name, tls, certs):
    with FakeApp(tls=certs["long"] if tls else None) as app:
        app.routes["/health"] = HOSTILE[name]
        check = Check(url=app.url(), timeout=f"{TIMEOUT:g}s", tls_ca_file=certs["long"][0] if tls else None)
        run, elapsed = bounded(check.run)
        assert not isinstance(run, Exception), run  # a hostile peer is data, never a collector failure
        print(f"{name} ({'https' if tls else 'http'}): held {elapsed:.2f}s with timeout {TIMEOUT:g}s")
        assert elapsed <= TIMEOUT + MARGIN, f"{name}: held {elapsed:.2f}s"
        assert run.outcomes() == {"timeout": 1} and run.success == 0
        assert run.latency_sum("timeout") >= TIMEOUT - 0.05  # only the deadline ended it
        assert run.status == (200 if name == "trickled-body" else 0)
        if tls and name == "trickled-body":  # the headers came: the certificate is known, the body never came
            assert run.expiry == pytest.approx(openssl_not_after(certs["long"][0]), abs=1)
        else:  # no answer at all (as blackbox_exporter: TLS metrics come with a response)
            assert run.expiry is None
        app.routes["/health"] = Answer()
        assert check.run().outcomes() == {"timeout": 1, "success": 1}, "the next check failed"


@pytest.mark.integration
def test_a_peer_that_never_completes_the_tls_handshake_is_bounded_too():
    """TCP accepted, then silence (or one byte now and then): the handshake is bounded by the time left."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)
            conn.sendall(b"\x16")  # the first byte of a TLS record, and nothing more

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        check = Check(url=f"https://127.0.0.1:{listener.getsockname()[1]}/health", timeout=f"{TIMEOUT:g}s")
        run, elapsed = bounded(check.run)
        assert not isinstance(run, Exception), run
        print(f"stalled TLS handshake: held {elapsed:.2f}s with timeout {TIMEOUT:g}s")
        assert elapsed <= TIMEOUT + MARGIN, f"held {elapsed:.2f}s"
        assert run.outcomes() == {"timeout": 1} and run.expiry is None
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.integration
def test_a_refused_connection_is_a_connection_error():
    with FakeApp() as app:
        url = app.url()
    run = Check(url=url).run()  # the server is closed now
    assert run.outcomes() == {"connection_error": 1} and run.status == 0


# --------------------------------------------------------------------------- TLS


@pytest.mark.integration
def test_a_certificate_about_to_expire_is_reported(certs):
    cert, _ = certs["expiring"]
    with FakeApp(tls=certs["expiring"]) as app:
        run = Check(url=app.url(), tls_ca_file=cert).run()  # verified against the test CA
        assert run.outcomes() == {"success": 1}
        assert run.expiry == pytest.approx(openssl_not_after(cert), abs=1)
        left = run.expiry - time.time()
        assert 0 < left <= 86400 + 60  # a 1-day certificate...
        rule = next(d for d in APP_ALERTS if d.name == "AppTlsCertExpiringSoon")
        assert left < rule.threshold  # ...is inside AppTlsCertExpiringSoon's threshold (14 days)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # tls_verify: false, on purpose
@pytest.mark.integration
def test_a_certificate_that_fails_verification(certs):
    cert, _ = certs["long"]
    with FakeApp(tls=certs["long"]) as app:
        run = Check(url=app.url()).run()  # self-signed: not in the system trust store
        assert run.outcomes() == {"tls_error": 1}
        assert run.success == 0 and run.status == 0 and run.expiry is None
        assert app.seen == []  # no request was sent over the unverified connection
        run = Check(url=app.url(), tls_verify=False).run()  # blackbox insecure_skip_verify
        assert run.outcomes() == {"success": 1}
        assert run.expiry == pytest.approx(openssl_not_after(cert), abs=1)  # notAfter read all the same
        assert run.expiry > datetime(2050, 1, 1, tzinfo=UTC).timestamp()  # a GeneralizedTime notAfter


@pytest.mark.integration
def test_a_certificate_for_another_host_is_a_tls_error(certs):
    cert, _ = certs["other-host"]
    with FakeApp(tls=certs["other-host"]) as app:
        run = Check(url=app.url(), tls_ca_file=cert).run()  # trusted, but issued to rag.example.com
        assert run.outcomes() == {"tls_error": 1} and run.expiry is None


@pytest.mark.integration
def test_certificate_not_after_parses_der_like_openssl(certs):
    for name in ("expiring", "long", "other-host"):
        cert = certs[name][0]
        der = ssl.PEM_cert_to_DER_cert(Path(cert).read_text())
        assert certificate_not_after(der) == openssl_not_after(cert), name
        assert certificate_not_after(der[:40]) is None  # truncated
    assert certificate_not_after(b"") is None and certificate_not_after(b"\x30\x85\xff\xff\xff\xff\xff") is None


# --------------------------------------------------------------------------- config, jobs, secrets


@pytest.mark.parametrize("entry,message", [
    ({"json": [{"path": "results[0", "equals": 1}]}, "applications[0].json[0].path: invalid JMESPath expression"),
    ({"json": [{"path": "a", "equals": 1, "exists": True}]}, "give exactly one of equals, min_length, exists"),
    ({"json": [{"path": "a"}]}, "give exactly one of equals, min_length, exists, matches (got none)"),
    ({"body_matches": ["(unclosed"]}, "applications[0].body_matches: invalid regular expression"),
    ({"valid_status_codes": [2000]}, "not an HTTP status: 2000"),
    ({"method": "HEAD", "body_matches": ["x"]}, "a HEAD answer has no body to assert on"),
    ({"body": "x", "json_body": {"a": 1}}, "give body or json_body, not both"),
    ({"url": "ftp://127.0.0.1/x"}, "applications[0].url"),
    ({"tls_ca_file": "missing-ca.pem"}, "is not a readable file"),
    ({"timeout": "soon"}, "applications[0].timeout: "),
])
def test_invalid_application_config_is_reported_where_it_is(entry, message):
    data = {"applications": [{"name": "rag", "url": "https://rag.example.com/health", **entry}]}
    with pytest.raises(ConfigError) as raised:
        parse_config(yaml.safe_dump(data))
    assert message in str(raised.value)


def test_application_names_are_unique_among_all_targets():
    text = yaml.safe_dump({"endpoints": [{"name": "rag", "provider": "openai", "model": "m", "api_key": "sk-x"}],
                           "applications": [{"name": "rag", "url": "https://rag.example.com/health"}]})
    with pytest.raises(ConfigError, match="duplicate target name 'rag'"):
        parse_config(text)


@pytest.mark.integration
def test_the_daemon_runs_application_checks_and_keeps_secrets_out(caplog):
    """A job per enabled entry (build_api_jobs), run by the scheduler's Runtime and scraped: a
    healthy check and a trickling one side by side; the header value and URL key appear nowhere."""
    caplog.set_level(logging.DEBUG)
    with FakeApp() as healthy, FakeApp() as failing:
        failing.routes["/health"] = Answer(status=503, body={"status": "unhealthy", "detail": "db down"})
        config = parse_config(yaml.safe_dump({"applications": [
            {"name": "rag-health", "url": healthy.url(), "headers": {"Authorization": TOKEN},
             "json": [{"path": "status", "equals": "healthy"}]},
            {"name": "rag-ready", "url": failing.url() + f"?key={QUERY_KEY}", "headers": {"Authorization": TOKEN}},
            {"name": "rag-off", "url": healthy.url(), "enabled": False}]}))
        store = SnapshotStore()
        runtime = Runtime(config, store)
        assert sorted(job.job_id for job in runtime.jobs) == ["rag-health/app_probe", "rag-ready/app_probe"]
        try:
            results = runtime.run_once()
        finally:
            runtime.stop()
        assert set(results.values()) == {"success"}  # a failing check is data, not a failed collection
        text = generate_latest(build_registry(store, 300)).decode()
    assert f'{APP_PROBE_SUCCESS.name}{{target="rag-health"}} 1.0' in text
    assert f'{APP_PROBE_SUCCESS.name}{{target="rag-ready"}} 0.0' in text
    assert f'{APP_PROBE_HTTP_STATUS_CODE.name}{{target="rag-ready"}} 503.0' in text
    assert f'{APP_PROBE_REQUESTS_TOTAL.name}{{outcome="http_5xx",target="rag-ready"}} 1.0' in text
    assert "rag-off" not in text
    assert healthy.seen[0].headers["authorization"] == TOKEN and failing.seen[0].path.endswith(QUERY_KEY)
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "rag-ready: http_5xx" in logs
    for secret in (TOKEN, "app-CANARY", QUERY_KEY):
        assert secret not in text and secret not in logs


# --------------------------------------------------------------------------- alert rules (promtool)


def app_rules(config_text: str) -> list:
    config = parse_config(config_text)
    return [build_rule(d, config, config.alerting) for d in APP_ALERTS if d.applies(config)]


HTTPS_CONFIG = yaml.safe_dump({"applications": [{"name": "rag-search", "url": "https://rag.example.com/search"}]})


def write_rules(rules: list, root: Path) -> tuple[Path, Path]:
    rule_file, test_file = root / "vecmon-applications.rules.yml", root / "vecmon-applications_test.yml"
    rule_file.write_text(dump({"groups": [{"name": "vecmon-applications", "rules": [r.as_yaml() for r in rules]}]}))
    test_file.write_text(dump(unit_test_file(rule_file.name, ["vecmon-applications"], threshold_tests(rules))))
    return rule_file, test_file


def test_the_alerts_apply_to_what_is_configured():
    assert [r.name for r in app_rules(HTTPS_CONFIG)] == [
        "AppProbeErrorRatioHigh", "AppProbeLatencyHigh", "AppTlsCertExpiringSoon"]
    plain = yaml.safe_dump({"applications": [{"name": "rag", "url": "http://rag:8000/health"}]})
    assert [r.name for r in app_rules(plain)] == ["AppProbeErrorRatioHigh", "AppProbeLatencyHigh"]
    assert app_rules("databases: []\n") == []
    rules = {r.name: r for r in app_rules(HTTPS_CONFIG)}
    assert "> 0.05" in rules["AppProbeErrorRatioHigh"].expr and "[10m]" in rules["AppProbeErrorRatioHigh"].expr
    assert ">= 10" in rules["AppProbeErrorRatioHigh"].expr  # at least 10 checks in the window
    assert rules["AppProbeLatencyHigh"].expr.endswith("> 5")
    assert rules["AppTlsCertExpiringSoon"].expr.endswith("< 1209600")


@pytest.mark.integration
def test_the_alert_rules_pass_promtool_lint_and_unit_tests(tmp_path):
    promtool = require_tool("promtool", "prometheus")
    rule_file, test_file = write_rules(app_rules(HTTPS_CONFIG), tmp_path)
    checked = subprocess.run([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rule_file)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout
    tested = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = [t["name"] for t in yaml.safe_load(test_file.read_text())["tests"]]
    for alert in ("AppProbeErrorRatioHigh", "AppProbeLatencyHigh", "AppTlsCertExpiringSoon"):
        assert any(n.startswith(f"{alert} fires") for n in names) and any(
            n.startswith(f"{alert} stays silent") for n in names)


@pytest.mark.parametrize("before,after", [
    ("> 0.05", "> 0.5"),  # error ratio threshold off by 10x
    ("< 1209600", "< 120960"),  # certificate threshold off by 10x
])
@pytest.mark.integration
def test_the_generated_unit_tests_catch_a_wrong_rule(tmp_path, before, after):
    promtool = require_tool("promtool", "prometheus")
    rule_file, test_file = write_rules(app_rules(HTTPS_CONFIG), tmp_path)
    text = rule_file.read_text()
    assert before in text
    rule_file.write_text(text.replace(before, after))
    tested = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120)
    assert tested.returncode != 0


# --------------------------------------------------------------------------- dashboard panels (unhooked)


def test_the_application_panels_pass_the_dashboard_linter_and_read_declared_metrics():
    from dashboards import lint
    from dashboards.app_probes import build, panels
    from dashboards.catalog import declared_series

    config = parse_config(yaml.safe_dump({"applications": [
        {"name": "rag-search", "url": "https://rag.example.com/search"},
        {"name": "rag-health", "url": "http://rag:8000/health"}]}))
    board = build(config)
    assert [str(f) for f in lint.lint(board)] == []
    titles = [p["title"] for p in lint.panels(board)]
    assert "Certificate expires in" in titles and "Check latency" in titles
    referenced = set().union(*(metric_names(t["expr"]) for _, t in lint.targets(board)))
    assert referenced and referenced <= declared_series(), referenced - declared_series()
    plain = parse_config(yaml.safe_dump({"applications": [{"name": "rag", "url": "http://rag:8000/health"}]}))
    assert "Certificate expires in" not in [p["title"] for p in lint.panels(build(plain))]  # no HTTPS check
    assert panels(parse_config("databases: []\n")) == []


def test_the_documented_example_is_a_valid_config():
    page = (Path(__file__).resolve().parent.parent / "docs" / "applications.md").read_text()
    section = page.split("# Application probes", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example, env={"RAG_TOKEN": "t0ken-from-env"})
    search = {a.name: a for a in config.applications}["rag-search"]
    assert search.method == "POST" and [x.check for x in search.assertions] == ["equals", "min_length"]
    assert search.secrets() == ["Bearer t0ken-from-env"]
