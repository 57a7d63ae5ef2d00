"""The long-running daemon: HTTP server + scheduler runtime, signals and reload.

SIGTERM/SIGINT stop it (running queries are cancelled on the server); SIGHUP re-reads
the config file: a valid new config replaces the runtime, an invalid one is logged and
the old one keeps running. A file that is empty or holds only comments, or one that leaves
nothing to monitor, counts as invalid (it is usually a file caught half-written), at start
as well, unless ``daemon.allow_no_targets`` says that is meant.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from urllib.parse import urlsplit

from alerts.config import SLO
from collectors.pg_session import describe_target
from monitor.config import Config, DatabaseTarget
from monitor.exposition import ExpositionCache, SnapshotCollector
from monitor.http import App, HttpServer
from monitor.loader import ConfigError, Overrides, load_config
from monitor.probe import Probe
from monitor.scheduler import Runtime
from monitor.shared import SharedState
from monitor.snapshot import SnapshotStore
from monitor.webconfig import WebConfig

log = logging.getLogger(__name__)


def describe(target: object) -> str:
    """Where a target is, without credentials."""
    target = getattr(target, "entry", target)  # a discovery job's settings (monitor.discovery)
    if isinstance(target, DatabaseTarget):
        return describe_target(target)
    url = getattr(target, "url", None)
    if url:
        parts = urlsplit(str(url))
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # an out-of-range port: show the host only
            port = ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    return type(target).__name__


def check_monitors_something(config: Config, runtime: Runtime, source: str) -> None:
    """A config that schedules no job is refused unless ``daemon.allow_no_targets`` is set."""
    if not runtime.keys() and not config.daemon.allow_no_targets:
        raise ConfigError(source, ["(top level): nothing to monitor: no enabled target with an enabled collector "
                                   "(set daemon.allow_no_targets: true to serve only vecmon's own metrics)"])


class Daemon:
    def __init__(self, config: Config, config_path: Path | None = None, listen: str | None = None,
                 web_config: WebConfig | None = None, overrides: Overrides | None = None):
        self.config = config
        self.config_path = config_path
        self.overrides = overrides  # command-line settings, applied again on reload
        self.store = SnapshotStore()
        self.shared = SharedState()  # outlives reloads: spend ledger, recall state stores...
        self.runtime = Runtime(config, self.store, self.shared)
        check_monitors_something(config, self.runtime, str(config_path or "<config>"))
        self.exporter = SnapshotCollector(self.store, config.daemon.stale_after)
        self.exposition = ExpositionCache(self.exporter)
        host, port = config.daemon.host_port
        if listen:
            host, _, port_text = listen.rpartition(":")
            host, port = host.strip("[]") or "0.0.0.0", int(port_text)
        self.probe = Probe(self.exposition, config, self.shared)  # /probe?target=
        self.http = HttpServer(host, port, App(self.store, self.exposition, self._describe, web_config, self._slos,
                                               self.probe), web=web_config)
        self.http.httpd.app.readiness = lambda: self.config.daemon.readiness
        self.store.expect(self.runtime.keys(), self.runtime.intervals())  # /ready is 503 until each job ran once
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._lock = threading.Lock()

    def _slos(self) -> list[SLO]:
        with self._lock:
            return list(self.config.slos)

    def _describe(self) -> dict[str, str]:
        with self._lock:
            runtime = self.runtime
        return {job.target.name: describe(job.target) for job in runtime.jobs}

    @property
    def url(self) -> str:
        host, port = self.http.httpd.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"{self.http.scheme}://{host}:{port}"

    def start(self) -> None:
        self.http.start()
        self.runtime.start()
        log.info("vecmon listening on %s/metrics", self.url)

    def request_stop(self, *_args: object) -> None:  # a signal handler's (signum, frame)
        self._stop.set()

    def request_reload(self, *_args: object) -> None:
        self._reload.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    def reload(self, reread: bool = True) -> bool:
        """Re-read the config file (``reread``; else rebuild the jobs of the running config, after a
        database discovery found a change); returns True when the new config was applied."""
        if not reread:
            return self._rebuild()
        if self.config_path is None:
            log.warning("reload requested but the config did not come from a file")
            return False
        try:
            config = load_config(self.config_path, require_mapping=True, overrides=self.overrides)
            runtime = Runtime(config, self.store, self.shared)
            check_monitors_something(config, runtime, str(self.config_path))
        except ConfigError as exc:
            log.error("reload rejected, keeping the running config: %s", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - whatever a new config breaks, the old one keeps running
            log.error("reload rejected, keeping the running config: %s", type(exc).__name__)
            return False
        if config.daemon.listen != self.config.daemon.listen:
            log.warning("daemon.listen changed; the new address takes effect after a restart")
        with self._lock:
            old, self.runtime = self.runtime, runtime
            self.config = config
        old.stop(timeout=config.daemon.shutdown_timeout)
        self.exporter.stale_after = config.daemon.stale_after
        self.probe.reconfigure(config)
        runtime.start()
        log.info("configuration reloaded from %s", self.config_path)
        return True

    def _rebuild(self) -> bool:
        with self._lock:
            config = self.config
        try:
            runtime = Runtime(config, self.store, self.shared)
        except Exception as exc:  # noqa: BLE001 - the running jobs keep going
            log.error("rebuilding the jobs after discovery failed: %s", type(exc).__name__)
            return False
        with self._lock:
            old, self.runtime = self.runtime, runtime
        old.gate.close()  # its runs record nothing from now on
        runtime.start()  # at once: a run of the old jobs stuck on a dropped database does not hold it up
        threading.Thread(target=old.stop, kwargs={"timeout": config.daemon.shutdown_timeout},
                         name="vecmon-rebuild-stop", daemon=True).start()
        log.info("jobs rebuilt after database discovery: %d jobs", len(runtime.jobs))
        return True

    def serve_forever(self) -> bool:
        """Block until a stop is requested, handling reloads; then stop everything.

        Returns whether every running job ended within ``daemon.shutdown_timeout``."""
        try:
            while not self._stop.is_set():
                if self._reload.wait(timeout=0.2):
                    self._reload.clear()
                    self.reload()
                elif self.shared.rediscovery.take():
                    self.reload(reread=False)
        finally:
            idle = self.stop()
        return idle

    def stop(self) -> bool:
        """Stop collecting and serving; returns whether every running job ended in time."""
        log.info("stopping")
        with self._lock:
            runtime = self.runtime
        idle = runtime.stop(timeout=self.config.daemon.shutdown_timeout)
        self.http.stop()
        self.probe.close()
        if idle:
            self.shared.close()
        else:
            log.warning("some collections were still running after %gs; exiting without them",
                        self.config.daemon.shutdown_timeout)
        log.info("stopped")
        return idle
