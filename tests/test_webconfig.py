"""``--web.config.file``: TLS (and mutual TLS), basic auth with bcrypt, certificate reload, and a
real Prometheus 2.42 scraping over TLS with basic auth.

Certificates are made with the ``openssl`` CLI for every test that needs them.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import signal
import ssl
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import bcrypt
import pytest

from collectors.self_metrics import UP
from monitor.daemon import Daemon
from monitor.loader import ConfigError, parse_config
from monitor.webconfig import WebConfig
from tests.helpers import require_tool, wait_until
from tests.test_daemon import ROOT, db_config, sample

PASSWORD = "s3cret-Scrape-pw"
WRONG = "wrong-Scrape-pw"


def openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run([require_tool("openssl", "openssl"), *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def make_ca(directory: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN=vecmon test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory)


def make_cert(directory: Path, ca: str, name: str, usage: str, cn: str) -> None:
    (directory / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}.key.new", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=directory)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt.new", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)
    # replaced in one rename each, as cert-manager or certbot do
    (directory / f"{name}.key.new").replace(directory / f"{name}.key")
    (directory / f"{name}.crt.new").replace(directory / f"{name}.crt")


@pytest.fixture
def pki(tmp_path) -> Path:
    make_ca(tmp_path, "ca")
    make_ca(tmp_path, "clients-ca")
    make_cert(tmp_path, "ca", "server", "serverAuth", "vecmon one")
    make_cert(tmp_path, "clients-ca", "client", "clientAuth", "prometheus")
    return tmp_path


def hashed(password: str, rounds: int = 4) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()


def web_config(directory: Path, *, tls: bool = True, mutual: bool = False, users: dict | None = None) -> Path:
    lines = []
    if tls:
        lines += ["tls_server_config:", "  cert_file: server.crt", "  key_file: server.key", "  min_version: TLS12"]
        if mutual:
            lines += ["  client_auth_type: RequireAndVerifyClientCert", "  client_ca_file: clients-ca.crt"]
    if users:
        lines += ["basic_auth_users:"] + [f"  {user}: {value}" for user, value in users.items()]
    path = directory / "web.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def client_context(pki: Path, cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if cert:
        context.load_cert_chain(pki / "client.crt", pki / "client.key")
    return context


def request(port: int, path: str, context: ssl.SSLContext | None, user: str | None = None,
            password: str = "") -> tuple[int, dict, bytes]:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10) if context
            else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def served_cert(port: int, pki: Path) -> bytes:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(pki), timeout=10)
    try:
        conn.connect()
        return hashlib.sha256(conn.sock.getpeercert(binary_form=True)).digest()
    finally:
        conn.close()


@pytest.fixture
def daemon_factory(db18):
    started = []

    def start(web: Path) -> Daemon:
        daemon = Daemon(parse_config(db_config(db18, extra="    collectors: {recall: {enabled: false}}\n")),
                        web_config=WebConfig(web))
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def test_tls_and_basic_auth_guard_metrics_and_the_status_page(pki, daemon_factory, caplog):
    daemon = daemon_factory(web_config(pki, users={"prometheus": hashed(PASSWORD)}))
    port, context = daemon.http.port, client_context(pki)
    assert daemon.url.startswith("https://")
    caplog.set_level(logging.DEBUG)
    wait_until(lambda: request(port, "/ready", context, "prometheus", PASSWORD)[0] == 200)
    status, headers, body = request(port, "/metrics", context, "prometheus", PASSWORD)
    assert status == 200 and sample(body.decode(), UP.name, {"target": "main"}) == 1
    for path in ("/metrics", "/", "/ready"):
        for creds in [(None,), ("prometheus", WRONG), ("nobody", PASSWORD), ("prometheus", "")]:
            status, headers, body = request(port, path, context, *creds)
            assert status == 401, (path, creds)
            assert headers["WWW-Authenticate"] == 'Basic realm="vecmon"'
            assert UP.name.encode() not in body
    # /health stays open: a liveness probe learns nothing about the targets
    assert request(port, "/health", context)[0] == 200
    with pytest.raises(ssl.SSLError):  # plain HTTP on the TLS port gets no answer
        request(port, "/metrics", ssl.create_default_context())  # not trusting the test CA
    assert request(port, "/metrics", context, "prometheus", PASSWORD)[0] == 200
    logged = caplog.text
    for secret in (PASSWORD, WRONG, base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()):
        assert secret not in logged


def test_mutual_tls_requires_a_client_certificate_signed_by_the_client_ca(pki, daemon_factory):
    daemon = daemon_factory(web_config(pki, mutual=True))
    port = daemon.http.port
    assert request(port, "/health", client_context(pki, cert=True))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(port, "/metrics", client_context(pki))  # no client certificate
    # a client certificate from another CA (the server's) is refused as well
    make_cert(pki, "ca", "stranger", "clientAuth", "stranger")
    stranger = client_context(pki)
    stranger.load_cert_chain(pki / "stranger.crt", pki / "stranger.key")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(port, "/metrics", stranger)
    assert request(port, "/metrics", client_context(pki, cert=True))[0] == 200


def test_client_allowed_sans_limit_which_client_certificates_pass(pki, daemon_factory):
    path = web_config(pki, mutual=True)
    path.write_text(path.read_text() + "  client_allowed_sans: [localhost]\n")
    port = daemon_factory(path).http.port
    assert request(port, "/metrics", client_context(pki, cert=True))[0] == 200
    path.write_text(path.read_text().replace("[localhost]", "[prometheus.example]"))
    wait_until(lambda: request(port, "/metrics", client_context(pki, cert=True))[0] == 401, timeout=10)


def test_a_renewed_certificate_is_served_without_a_restart(pki, daemon_factory, caplog):
    daemon = daemon_factory(web_config(pki, users={"prometheus": hashed(PASSWORD)}))
    port = daemon.http.port
    first = served_cert(port, pki)
    make_cert(pki, "ca", "server", "serverAuth", "vecmon two")  # renewed in place
    renewed = wait_until(lambda: (fp := served_cert(port, pki)) != first and fp, timeout=10)
    assert renewed != first
    # a half-written key is not applied: the renewed certificate stays in force
    (pki / "server.key").write_text("-----BEGIN PRIVATE KEY-----\nMIGH")
    time.sleep(1.2)
    with caplog.at_level(logging.ERROR, logger="monitor.webconfig"):
        assert served_cert(port, pki) == renewed
        assert request(port, "/metrics", client_context(pki), "prometheus", PASSWORD)[0] == 200
    assert "web config change not applied, keeping the previous one" in caplog.text
    # the users are re-read too
    web_config(pki, users={"scraper": hashed(WRONG)})
    make_cert(pki, "ca", "server", "serverAuth", "vecmon three")
    wait_until(lambda: request(port, "/metrics", client_context(pki), "scraper", WRONG)[0] == 200, timeout=10)
    assert request(port, "/metrics", client_context(pki), "prometheus", PASSWORD)[0] == 401


def test_basic_auth_takes_the_same_time_for_an_unknown_user_and_a_wrong_password(tmp_path):
    web = WebConfig(web_config(tmp_path, tls=False, users={"prometheus": hashed(PASSWORD, rounds=10)}))

    def timed(user: str, password: str) -> float:
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        began = time.perf_counter()
        assert web.authorized(header) is False
        return time.perf_counter() - began

    wrong_password = min(timed("prometheus", f"{WRONG}{i}") for i in range(5))
    unknown_user = min(timed(f"user{i}", PASSWORD) for i in range(5))
    print(f"\nbcrypt cost 10: wrong password {wrong_password * 1000:.1f} ms, unknown user {unknown_user * 1000:.1f} ms")
    assert wrong_password > 0.005  # bcrypt really ran
    assert 0.5 < unknown_user / wrong_password < 2.0
    ok = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    assert web.authorized(ok) is True
    began = time.perf_counter()
    assert web.authorized(ok) is True  # cached: scrapes do not pay bcrypt each time
    assert time.perf_counter() - began < wrong_password / 5
    for bad in (None, "", "Basic", "Basic !!!", "Bearer x", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert web.authorized(bad) is False


@pytest.mark.parametrize("text, expected", [
    ("tls_server_config: {cert_file: a.crt}\n", "tls_server_config.key_file: Field required"),
    ("tls_server_config: {cert_file: a.crt, key_file: a.key, client_auth_type: RequireAnyClientCert}\n",
     "RequireAnyClientCert"),
    ("tls_server_config: {cert_file: a.crt, key_file: a.key, client_auth_type: RequireAndVerifyClientCert}\n",
     "needs client_ca_file"),
    ("tls_server_config: {cert_file: a.crt, key_file: a.key, min_version: TLS9}\n", "min_version"),
    ("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n", "cannot load cert_file/key_file"),
    ("basic_auth_users: {prometheus: plain-text-password}\n", "user 'prometheus': not a bcrypt hash"),
    ("basic_auth_user: {}\n", "basic_auth_user: unknown key"),
    ("- a\n", "expected a mapping"),
])
def test_bad_web_configs_are_refused_naming_the_problem(tmp_path, text, expected):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        WebConfig(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    assert "plain-text-password" not in str(info.value)


def test_run_refuses_a_bad_web_config_and_takes_the_exporter_flags(db18, tmp_path, pki):
    from monitor.embedded import free_port

    config = tmp_path / "vecmon.yaml"
    config.write_text(db_config(db18, extra="    collectors: {recall: {enabled: false}}\n"))
    bad = tmp_path / "bad-web.yml"
    bad.write_text("basic_auth_users: {prometheus: hunter2}\n")
    result = subprocess.run([sys.executable, "-m", "monitor", "run", "-c", str(config), "--web.config.file",
                             str(bad), "--web.listen-address", f"127.0.0.1:{free_port()}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a bcrypt hash" in result.stderr and "hunter2" not in result.stderr
    # debug logging, good and bad credentials: no secret reaches the log
    port = free_port()
    secret_hash = hashed(PASSWORD)
    web = web_config(pki, users={"prometheus": secret_hash})
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--log-level", "debug", "run", "-c", str(config),
                             "--web.config.file", str(web), "--web.listen-address", f"127.0.0.1:{port}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        context = client_context(pki)
        wait_until(lambda: proc.poll() is None and _status(port, context) == 200, timeout=30)
        assert request(port, "/metrics", context, "prometheus", WRONG)[0] == 401
        assert request(port, "/metrics", context, "prometheus", PASSWORD)[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logged = proc.stderr.read()
    assert "GET /metrics" in logged  # the debug request log was on
    for secret in (PASSWORD, WRONG, secret_hash, base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()):
        assert secret not in logged


def _status(port: int, context) -> int:
    try:
        return request(port, "/metrics", context, "prometheus", PASSWORD)[0]
    except OSError:
        return 0


def test_prometheus_scrapes_over_mutual_tls_with_basic_auth(pki, daemon_factory, tmp_path):
    from tests.webhook import start_prometheus

    require_tool("prometheus", "prometheus")
    daemon = daemon_factory(web_config(pki, mutual=True, users={"prometheus": hashed(PASSWORD)}))
    target = f"127.0.0.1:{daemon.http.port}"
    (pki / "good.pw").write_text(PASSWORD)
    (pki / "bad.pw").write_text(WRONG)

    def job(name: str, password_file: str, client_cert: bool = True) -> str:
        cert = f", cert_file: {pki / 'client.crt'}, key_file: {pki / 'client.key'}" if client_cert else ""
        return f"""  - job_name: {name}
    scheme: https
    tls_config: {{ca_file: {pki / 'ca.crt'}{cert}}}
    basic_auth: {{username: prometheus, password_file: {pki / password_file}}}
    static_configs: [{{targets: ["{target}"]}}]
"""
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n"
                      + job("good", "good.pw") + job("wrong-password", "bad.pw")
                      + job("no-client-cert", "good.pw", client_cert=False))
    prometheus = start_prometheus(tmp_path, config)
    try:
        prometheus.wait_ready()

        def up() -> dict:
            result = prometheus.get_json("/api/v1/query?" + urllib.parse.urlencode({"query": "up"}))["data"]["result"]
            return {r["metric"]["job"]: r["value"][1] for r in result}
        wait_until(lambda: len(up()) == 3 and up().get("good") == "1", timeout=30)
        values = up()
        print(f"\nPrometheus up: {values}")
        assert values == {"good": "1", "wrong-password": "0", "no-client-cert": "0"}
        targets = prometheus.get_json("/api/v1/targets")["data"]["activeTargets"]
        errors = {t["labels"]["job"]: t["lastError"] for t in targets}
        print(f"scrape errors: {errors}")
        assert "401" in errors["wrong-password"] and errors["good"] == ""
        assert "certificate" in errors["no-client-cert"] or "tls" in errors["no-client-cert"].lower()
        scraped = prometheus.get_json("/api/v1/query?" + urllib.parse.urlencode(
            {"query": f'{UP.name}{{job="good", target="main"}}'}))["data"]["result"]
        assert scraped and scraped[0]["value"][1] == "1"
    finally:
        prometheus.stop()
