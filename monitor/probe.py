"""Multi-target ``/probe``, as postgres_exporter users expect it.

- ``/probe?target=NAME``: the series of one configured target, cut from the snapshot the
  scheduler keeps (:meth:`monitor.exposition.ExpositionCache.target_body`); no database work on
  the request, rendered once per change like ``/metrics``.
- ``/probe?target=host:port/db[?sslmode=...]&auth_module=NAME``: a database that is not in the
  config, collected on demand with the credentials of ``auth_modules.NAME``. The collection uses
  the same :class:`~monitor.pg.DatabaseConnector` as scheduled targets (every transaction read-only,
  statement_timeout, lock_timeout, application_name=vecmon) and the module's collectors, and is
  bounded by a whole-request deadline: ``probe.timeout``, or Prometheus'
  ``X-Prometheus-Scrape-Timeout-Seconds`` when smaller. Results are kept ``probe.ttl``; concurrent
  requests for one target share one collection; at most ``probe.max_targets`` targets are kept, the
  least recently used is evicted and its connection closed.

The URL never carries credentials: a user or password in it is refused (400) and the refused text
is never logged. The ``target`` label of a DSN probe is ``host:port/db``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import parse_qs

import psycopg
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from pydantic import SecretStr, ValidationError

from collectors.base import CollectContext, CollectionTimeout, CollectorDisabled, Emitter
from collectors.registry import database_collector
from collectors.self_metrics import (
    COLLECTOR_DISABLED,
    COLLECTOR_DURATION_SECONDS,
    COLLECTOR_SERIES,
    COLLECTOR_UP,
    SELF_METRICS,
    TARGET_UNREACHABLE_REASON,
    UP,
)
from collectors.settings.base import NAME_PATTERN
from monitor.config import Config, DatabaseTarget
from monitor.config_probe import URL_PARAMETERS, AuthModule, ProbeSettings
from monitor.exposition import GZIP_LEVEL, MAX_VARIANTS, ExpositionCache, _Families
from monitor.http import Headers, Response
from monitor.pg import DatabaseConnector
from monitor.shared import SharedState
from monitor.target_health import TargetUnreachable

log = logging.getLogger(__name__)

MAX_TARGET_LENGTH = 1000
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
HEADER_MARGIN = 0.25  # answer this long before Prometheus gives up, so it sees our error, not its timeout
MIN_DEADLINE = 0.5
_ALLOWED_KEYS = ("host", "port", "dbname") + URL_PARAMETERS
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
NAME = re.compile(NAME_PATTERN)


class ProbeError(Exception):
    """A request /probe answers with ``status`` and this message (never echoing a credential)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DsnTarget:
    """A parsed ``target=`` of a DSN probe: its label and the libpq parameters (no credentials)."""

    label: str  # host:port/db
    params: tuple[tuple[str, str], ...]


DsnKey: TypeAlias = tuple[tuple[tuple[str, str], ...], str]  # (a DsnTarget's params, the auth module's name)


def parse_dsn_target(text: str, module: AuthModule) -> DsnTarget:
    """``host:port/db[?sslmode=...]`` (or a ``postgresql://`` URI) without credentials; the
    module's ``options`` override the URL's parameters."""
    if len(text) > MAX_TARGET_LENGTH:
        raise ProbeError(400, f"target is longer than {MAX_TARGET_LENGTH} characters")
    uri = text if text.startswith(("postgresql://", "postgres://")) else f"postgresql://{text}"
    try:
        parts = psycopg.conninfo.conninfo_to_dict(uri)
    except psycopg.ProgrammingError:
        raise ProbeError(400, "invalid target (expected host:port/dbname[?sslmode=...])") from None
    if "password" in parts or "user" in parts:
        raise ProbeError(400, "the target must not carry credentials (user or password): they come from the "
                              "auth module's userpass")
    unknown = sorted(k for k in parts if k not in _ALLOWED_KEYS)
    if unknown:
        raise ProbeError(400, f"parameter {unknown[0][:40]!r} is not allowed in a probe target "
                              f"(allowed: {', '.join(URL_PARAMETERS)})")
    if not parts.get("host"):
        raise ProbeError(400, "the target needs a host (host:port/dbname)")
    parts.update(module.options)
    dbname = parts.get("dbname") or module.userpass.username
    given_host = str(parts["host"])  # libpq's parsed parameters are strings
    host = f"[{given_host}]" if ":" in given_host else given_host  # an IPv6 address
    label = f"{host}:{parts.get('port') or 5432}/{dbname}"
    return DsnTarget(label, tuple(sorted((k, str(v)) for k, v in parts.items())))


def allowed(module: AuthModule, label: str) -> bool:
    return module.allowed_targets is None or any(fnmatch.fnmatchcase(label, p) for p in module.allowed_targets)


def target_settings(dsn: DsnTarget, module: AuthModule, settings: ProbeSettings) -> DatabaseTarget:
    """The DatabaseTarget a probe's connector and collectors see: one session, the probe's timeouts."""
    password = module.userpass.password_value()
    try:
        return DatabaseTarget.model_validate({
            "name": "probe_" + _UNSAFE_NAME.sub("_", dsn.label)[:200],
            "dsn": SecretStr(psycopg.conninfo.make_conninfo("", **dict(dsn.params))),
            "user": module.userpass.username,
            "password": SecretStr(password) if password else None,
            "timeout": settings.timeout,
            "lock_timeout": min(settings.lock_timeout, settings.timeout),
            "connect_timeout": min(5.0, settings.timeout),
            "max_connections": 1,
            "interval": max(60.0, settings.timeout),
        })
    except ValidationError as exc:  # hide_input_in_errors: the messages name parts, never values
        first = exc.errors()[0]
        raise ProbeError(400, f"invalid target: {first['msg'].removeprefix('Value error, ')}") from None


@dataclass
class _Result:
    families: list[Metric]
    finished: float  # monotonic
    bodies: dict[tuple[str, bool], bytes] = field(default_factory=dict)


class _DsnEntry:
    """One DSN target: its connector (one session), the last result, the collection in flight."""

    def __init__(self, dsn: DsnTarget, module_name: str, module: AuthModule, settings: ProbeSettings):
        self.dsn = dsn
        self.module_name = module_name
        self.collectors = list(module.collectors)
        self.target = target_settings(dsn, module, settings)
        self.connector = DatabaseConnector(self.target)
        self.connector.open()
        self.states: dict[str, dict[str, Any]] = {}  # collector name -> its CollectContext.state
        self.result: _Result | None = None
        self.inflight: threading.Event | None = None


class DsnProbes:
    """On-demand collection of DSN targets: deadline, TTL cache, bounded LRU, shared in-flight runs."""

    def __init__(self, settings: ProbeSettings, modules: dict[str, AuthModule], shared: SharedState,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.modules = modules
        self.shared = shared
        self.clock = clock
        self._entries: OrderedDict[DsnKey, _DsnEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.collections = 0  # started, for tests and the bench
        self.evicted = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def reconfigure(self, settings: ProbeSettings, modules: dict[str, AuthModule]) -> None:
        """A reload: a change of the probe settings or auth modules drops every kept target."""
        with self._lock:
            if settings == self.settings and modules == self.modules:
                return
            self.settings, self.modules = settings, modules
            dropped, self._entries = list(self._entries.values()), OrderedDict()
        for entry in dropped:
            entry.connector.close(timeout=1.0)

    def close(self) -> None:
        with self._lock:
            dropped, self._entries = list(self._entries.values()), OrderedDict()
        for entry in dropped:
            entry.connector.close(timeout=1.0)

    def probe(self, target: str, module_name: str, budget: float) -> tuple[str, _Result]:
        """(label, result) for one request allowed ``budget`` seconds; raises ProbeError."""
        module = self.modules.get(module_name)
        if module is None:
            known = ", ".join(sorted(self.modules)[:20]) or "none configured"
            raise ProbeError(400, f"unknown auth_module {module_name[:60]!r} (known: {known})")
        dsn = parse_dsn_target(target, module)
        if not allowed(module, dsn.label):
            raise ProbeError(403, f"auth_module {module_name!r} is not allowed for {dsn.label}")
        key = (dsn.params, module_name)
        evicted: list[_DsnEntry] = []
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = _DsnEntry(dsn, module_name, module, self.settings)
                self._entries[key] = entry
                while len(self._entries) > self.settings.max_targets:
                    evicted.append(self._entries.popitem(last=False)[1])
                    self.evicted += 1
            else:
                self._entries.move_to_end(key)
            result = entry.result
            if result is not None and self.clock() - result.finished < self.settings.ttl:
                done = None
            else:
                if entry.inflight is None:
                    entry.inflight = threading.Event()
                    self.collections += 1
                    threading.Thread(target=self._collect, args=(entry, self.clock() + budget), daemon=True,
                                     name="vecmon-probe").start()
                done = entry.inflight
        for old in evicted:
            log.info("probe: evicted %s (auth module %s): more than %d DSN targets", old.dsn.label,
                     old.module_name, self.settings.max_targets)
            threading.Thread(target=old.connector.close, kwargs={"timeout": 1.0}, daemon=True,
                             name="vecmon-probe-close").start()  # off the request: a close may wait
        if done is not None:
            if not done.wait(budget):
                raise ProbeError(504, f"probe of {dsn.label} did not finish within {budget:.3g}s "
                                      "(probe.timeout or the scrape timeout)")
            result = entry.result
        assert result is not None
        return dsn.label, result

    def _collect(self, entry: _DsnEntry, deadline: float) -> None:
        try:
            families = self._run_collectors(entry, deadline)
        except Exception as exc:  # noqa: BLE001 - a bug in one probe answers vecmon_up 0, the server goes on
            log.warning("probe %s: collection failed: %s", entry.dsn.label, entry.connector.redact(
                f"{type(exc).__name__}: {exc}"))
            emitter = Emitter(entry.dsn.label, SELF_METRICS)
            emitter.add(UP.name, 0)
            families = emitter.families()
        with self._lock:
            entry.result = _Result(families, self.clock())
            done, entry.inflight = entry.inflight, None
        if done is not None:
            done.set()

    def _run_collectors(self, entry: _DsnEntry, deadline: float) -> list[Metric]:
        label = entry.dsn.label
        own = Emitter(label, SELF_METRICS)
        families: list[Metric] = []
        up, reason = True, None
        late: list[str] = []
        for name in entry.collectors:
            remaining = deadline - self.clock()
            if remaining < 0.05:
                own.add(COLLECTOR_UP.name, 0, name)
                late.append(name)
                continue
            collector = database_collector(name)()
            ctx = CollectContext(target=label, settings=entry.target, state=entry.states.setdefault(name, {}),
                                 shared=self.shared)
            started = self.clock()
            try:
                out = entry.connector.run(collector.collect, ctx, min(remaining, entry.target.timeout_for(name)))
            except CollectorDisabled:
                own.add(COLLECTOR_DISABLED.name, 1, name)
                continue
            except TargetUnreachable as exc:
                up, reason = False, exc.reason  # the connector logs the target going down and back
                log.debug("probe %s (auth module %s): %s", label, entry.module_name, exc)
                break
            except Exception as exc:  # noqa: BLE001 - one collector's failure leaves the others
                own.add(COLLECTOR_UP.name, 0, name)
                kind = "timed out" if isinstance(exc, CollectionTimeout) else "failed"
                log.warning("probe %s: collector %s %s: %s", label, name, kind, entry.connector.redact(str(exc)))
                continue
            finally:
                own.add(COLLECTOR_DURATION_SECONDS.name, self.clock() - started, name)
            families.extend(out)
            own.add(COLLECTOR_UP.name, 1, name)
            own.add(COLLECTOR_DISABLED.name, 0, name)
            own.add(COLLECTOR_SERIES.name, sum(len(f.samples) for f in out), name)
        if late:
            log.warning("probe %s: the deadline passed before collectors %s", label, ", ".join(late))
        own.add(UP.name, 1 if up else 0)
        if reason is not None:
            own.add(TARGET_UNREACHABLE_REASON.name, 1, reason)
        return families + own.families()


def render(result: _Result, accept: str | None, accept_encoding: str | None) -> tuple[bytes, str, bool]:
    encoder, content_type = choose_encoder(accept or "")
    gzipped = gzip_accepted(accept_encoding or "")
    key = (content_type, gzipped)
    body = result.bodies.get(key)
    if body is None:
        body = encoder(_Families(result.families))
        if gzipped:
            body = gzip.compress(body, GZIP_LEVEL, mtime=0)
        if len(result.bodies) < MAX_VARIANTS:
            result.bodies[key] = body
    return body, content_type, gzipped


def request_budget(settings: ProbeSettings, headers: Headers | None) -> float:
    """probe.timeout, or Prometheus' scrape timeout less a margin when that is smaller."""
    budget = settings.timeout
    header = headers.get(SCRAPE_TIMEOUT_HEADER) if headers is not None else None
    if header:
        with contextlib.suppress(ValueError):
            budget = min(budget, max(MIN_DEADLINE, float(header) - HEADER_MARGIN))
    return budget


class Probe:
    """The ``/probe`` endpoint (both kinds); :class:`monitor.http.App` routes to :meth:`respond`."""

    def __init__(self, exposition: ExpositionCache, config: Config, shared: SharedState):
        self.exposition = exposition
        self.dsn = DsnProbes(config.probe, dict(config.auth_modules), shared)

    def reconfigure(self, config: Config) -> None:
        self.dsn.reconfigure(config.probe, dict(config.auth_modules))

    def close(self) -> None:
        self.dsn.close()

    def respond(self, query: str, headers: Headers) -> Response:
        params = parse_qs(query)
        targets = params.get("target", [])
        modules = params.get("auth_module", [])
        try:
            if len(targets) != 1 or not targets[0] or len(modules) > 1:
                raise ProbeError(400, "give one target= (a configured target's name, or host:port/dbname with "
                                      "auth_module=NAME)")
            if modules:
                label, result = self.dsn.probe(targets[0], modules[0], request_budget(self.dsn.settings, headers))
                body, content_type, gzipped = render(result, headers.get("Accept"), headers.get("Accept-Encoding"))
            else:
                out = self.exposition.target_body(targets[0], headers.get("Accept"), headers.get("Accept-Encoding"))
                if out is None:
                    if not NAME.match(targets[0]):  # a DSN, maybe with a password: never echoed
                        raise ProbeError(400, "target is not a configured target's name; a database that is not "
                                              "configured needs auth_module=NAME")
                    raise ProbeError(404, f"unknown target {targets[0][:100]!r}")
                body, content_type, gzipped = out
        except ProbeError as exc:
            log.debug("probe refused (%d): %s", exc.status, exc)
            return Response(exc.status, f"{exc}\n".encode())
        return Response(200, body, content_type, (("Content-Encoding", "gzip"),) if gzipped else ())
