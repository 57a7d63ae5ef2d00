"""``--web.config.file``: TLS and basic auth, read as Prometheus' exporter-toolkit reads them.

The file format is exporter-toolkit's, so a web config written for node_exporter or
postgres_exporter works unchanged::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # mutual TLS; needs client_ca_file
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Like exporter-toolkit, the file and the certificates it names are re-read when they change
(checked at most once a second, on new connections): a renewed certificate is served without
a restart. A change that does not load (a half-written key, a bad hash) is logged and the
previous settings stay in force.

Passwords are checked with the ``bcrypt`` package; an unknown user is checked against a
dummy hash so both take the same time, and successful checks are cached (keyed by a keyed
hash of user and password) because bcrypt is slow by design. ``/health`` stays open without
credentials (a liveness probe says nothing about the targets); every other path needs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import bcrypt
import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from collectors.settings.base import Model
from monitor.loader import ConfigError
from monitor.yaml_locations import format_path

log = logging.getLogger(__name__)

TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# exporter-toolkit's names (Go's tls.ClientAuthType). Python's ssl cannot ask for a client
# certificate without verifying it, so RequireAnyClientCert is refused and RequestClientCert
# (asked for, never used) is served as NoClientCert.
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_NONE,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
CHECK_EVERY = 1.0  # seconds between checks of the files for changes
AUTH_CACHE_SIZE = 256


class TLSServerConfig(Model):
    cert_file: str = Field(description="server certificate (PEM), chain included")
    key_file: str = Field(description="its private key (PEM)")
    client_auth_type: Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                              "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"] = "NoClientCert"
    client_ca_file: str | None = Field(None, description="CA certificates that sign accepted client certificates")
    client_allowed_sans: list[str] | None = Field(None, description="accepted client certificate SANs")
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"
    cipher_suites: list[str] | None = Field(None, description="accepted but not applied: OpenSSL's defaults are used")
    curve_preferences: list[str] | None = Field(None, description="accepted but not applied")
    prefer_server_cipher_suites: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TLSServerConfig:
        if self.client_auth_type == "RequireAnyClientCert":
            raise ValueError("client_auth_type RequireAnyClientCert (a client certificate nobody verifies) is not "
                             "supported; use RequireAndVerifyClientCert with client_ca_file")
        if self.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") \
                and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if self.client_ca_file and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError("min_version is above max_version")
        return self


class HTTPServerConfig(Model):
    http2: bool = Field(True, description="accepted; vecmon serves HTTP/1.1")
    headers: dict[str, str] = Field(default_factory=dict, description="headers added to every response")

    @field_validator("headers")
    @classmethod
    def _no_reserved(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = {"authorization", "content-type", "content-length", "content-encoding", "www-authenticate",
                    "connection", "transfer-encoding", "date", "server"}
        bad = sorted(k for k in value if k.lower() in reserved or "\n" in k + value[k] or "\r" in k + value[k])
        if bad:
            raise ValueError(f"header(s) {', '.join(bad)} cannot be set")
        return value


class WebConfigFile(Model):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict, description="user name -> bcrypt hash")

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(hashed) != 60:
                raise ValueError(f"user {user!r}: not a bcrypt hash")  # the value itself is not repeated
        return value


def _parse(path: Path) -> WebConfigFile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read web config file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(str(path), [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None:
        data = {}  # exporter-toolkit: an empty file is plain HTTP without auth
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["(top level): expected a mapping"])
    try:
        return WebConfigFile.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            errors.append(f"{format_path(err['loc'])}: {message}")  # never err["input"]: it may be a hash
        raise ConfigError(str(path), errors) from None


def _ssl_context(tls: TLSServerConfig, base: Path, source: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(base / tls.cert_file, base / tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(source, [f"tls_server_config: cannot load cert_file/key_file: {_reason(exc)}"]) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=base / tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(source, [f"tls_server_config.client_ca_file: cannot load: {_reason(exc)}"]) from None
    return context


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or type(exc).__name__


@dataclass(frozen=True)
class WebSettings:
    """One loaded version of the web config."""

    ssl_context: ssl.SSLContext | None
    users: dict[str, bytes]
    headers: tuple[tuple[str, str], ...]
    allowed_sans: frozenset[str] | None


FileStamp: TypeAlias = tuple[int, int, int] | None  # (mtime_ns, size, inode), None for a missing file

# ssl.SSLSocket.getpeercert()'s dict: "subject", "subjectAltName" ((kind, value) pairs), ...
# (typeshed's alias for it is private)
PeerCert: TypeAlias = dict[str, Any]


def _stamp(paths: list[Path]) -> tuple[FileStamp, ...]:
    stamp: list[FileStamp] = []
    for path in paths:
        try:
            st = os.stat(path)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


class WebConfig:
    """The web config file, re-read when it or a file it names changes."""

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._cache_key = secrets.token_bytes(32)  # keys the cache of successful checks
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._dummy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=10))
        self.settings, self._paths = self._load()  # raises ConfigError at start: vecmon does not run half-secured
        self._stamp = _stamp(self._paths)
        self._checked = self.clock()

    @property
    def tls(self) -> bool:
        return self.current().ssl_context is not None

    def _load(self) -> tuple[WebSettings, list[Path]]:
        parsed = _parse(self.path)
        base = self.path.parent
        paths = [self.path]
        context = None
        if parsed.tls_server_config is not None:
            tls = parsed.tls_server_config
            paths += [base / tls.cert_file, base / tls.key_file] + ([base / tls.client_ca_file]
                                                                     if tls.client_ca_file else [])
            context = _ssl_context(tls, base, str(self.path))
            ignored = [k for k in ("cipher_suites", "curve_preferences", "prefer_server_cipher_suites")
                       if getattr(tls, k) is not None]
            if ignored:
                log.warning("%s: tls_server_config.%s not applied: OpenSSL's defaults are used",
                            self.path, ", ".join(ignored))
        users = {user: hashed.encode() for user, hashed in parsed.basic_auth_users.items()}
        sans = parsed.tls_server_config.client_allowed_sans if parsed.tls_server_config else None
        settings = WebSettings(context, users, tuple(parsed.http_server_config.headers.items()),
                               frozenset(sans) if sans else None)
        return settings, paths

    def current(self) -> WebSettings:
        """The settings in force, re-reading the files first when one changed."""
        now = self.clock()
        if now - self._checked < CHECK_EVERY:
            return self.settings
        with self._lock:
            if now - self._checked < CHECK_EVERY:
                return self.settings
            self._checked = now
            stamp = _stamp(self._paths)
            if stamp == self._stamp:
                return self.settings
            try:
                settings, paths = self._load()
            except ConfigError as exc:
                log.error("web config change not applied, keeping the previous one: %s", exc)
                self._stamp = stamp  # report once per change, not per connection
                return self.settings
            if settings.ssl_context is None and self.settings.ssl_context is not None:
                log.error("web config change not applied: it turns TLS off, which needs a restart")
                self._stamp = stamp
                return self.settings
            self.settings, self._paths = settings, paths
            self._stamp = _stamp(paths)
            self._verified.clear()
            log.info("web config reloaded from %s", self.path)
            return settings

    def authorized(self, authorization: str | None, peer_sans: frozenset[str] | None = None) -> bool:
        """Whether a request with this Authorization header (and client certificate SANs) may pass."""
        settings = self.current()
        if settings.allowed_sans is not None and not (peer_sans and peer_sans & settings.allowed_sans):
            return False
        if not settings.users:
            return True
        user, password = _basic_credentials(authorization)
        if user is None:
            return False
        key = hmac.new(self._cache_key, user.encode() + b"\0" + password.encode() + b"\0"
                       + settings.users.get(user, b""), hashlib.sha256).digest()
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return True
        hashed = settings.users.get(user)
        # the same bcrypt work whether or not the user exists: no timing tells which names are valid
        ok = bcrypt.checkpw(password.encode(), hashed if hashed is not None else self._dummy_hash)
        ok = ok and hashed is not None
        if ok:
            with self._lock:
                self._verified[key] = None
                while len(self._verified) > AUTH_CACHE_SIZE:
                    self._verified.popitem(last=False)
        return ok


def _basic_credentials(authorization: str | None) -> tuple[str | None, str]:
    if not authorization:
        return None, ""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, ""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None, ""
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, "")


def peer_sans(cert: PeerCert | None) -> frozenset[str]:
    """DNS names, IPs, e-mail addresses and URIs of a verified client certificate."""
    if not cert:
        return frozenset()
    return frozenset(value for _kind, value in cert.get("subjectAltName", ()))
