"""The embedding cache's Redis: hits, misses, hit ratio, memory against maxmemory, evictions,
keys per database and keys under configured prefixes.

It speaks RESP2 over a plain socket (optionally TLS); no client library is needed. Each run
opens one connection, sends ``AUTH`` (when a password is configured), ``INFO``, and for each
key prefix ``SELECT db`` + ``SCAN 0 MATCH <prefix>* COUNT n`` until the cursor returns to 0,
``max_scan_keys`` keys were seen, or 80% of the timeout is used (then
``vecmon_redis_prefix_scan_complete`` is 0 and the count is a lower bound). SCAN is O(keyspace)
per run, so keep the interval reasonable on big caches. Redis Cluster is not supported (one node).

``vecmon_redis_keyspace_hit_ratio`` is hits / (hits + misses) since the previous run (since
the server started on the first run or after a server restart); absent when there were no
lookups in between.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any, Callable, ClassVar

from prometheus_client.core import Metric

from collectors.base import CollectContext, CollectorError, ConnectionUnavailable, Emitter, MetricSpec
from monitor.config_apis import RedisTarget

REDIS_METRICS = (
    MetricSpec("vecmon_redis_keyspace_hits_total", "counter", "Successful key lookups (INFO keyspace_hits)."),
    MetricSpec("vecmon_redis_keyspace_misses_total", "counter", "Failed key lookups (INFO keyspace_misses)."),
    MetricSpec("vecmon_redis_keyspace_hit_ratio", "gauge",
               "Hits / (hits + misses) since the previous collection (since server start on the first run)."),
    MetricSpec("vecmon_redis_memory_used_bytes", "gauge", "Memory allocated by Redis (INFO used_memory)."),
    MetricSpec("vecmon_redis_memory_max_bytes", "gauge", "The maxmemory setting (0 = no limit)."),
    MetricSpec("vecmon_redis_memory_used_ratio", "gauge",
               "Memory used divided by maxmemory; absent when maxmemory is 0 (no limit)."),
    MetricSpec("vecmon_redis_evicted_keys_total", "counter", "Keys evicted because of the maxmemory limit."),
    MetricSpec("vecmon_redis_expired_keys_total", "counter", "Keys removed because their TTL expired."),
    MetricSpec("vecmon_redis_connected_clients", "gauge", "Client connections (INFO connected_clients)."),
    MetricSpec("vecmon_redis_uptime_seconds", "gauge", "Seconds since the Redis server started."),
    MetricSpec("vecmon_redis_db_keys", "gauge", "Keys per database (INFO keyspace).", ("db",)),
    MetricSpec("vecmon_redis_db_expiring_keys", "gauge", "Keys with a TTL per database (INFO keyspace).", ("db",)),
    MetricSpec("vecmon_redis_prefix_keys", "gauge",
               "Keys under a configured prefix in the configured database (SCAN; a lower bound when the scan "
               "was cut short).", ("prefix",)),
    MetricSpec("vecmon_redis_prefix_scan_complete", "gauge",
               "Whether the last SCAN of the prefix covered the whole keyspace (1) or max_scan_keys or the "
               "time budget cut it short (0).", ("prefix",)),
    MetricSpec("vecmon_redis_server", "info", "Redis server version, mode and eviction policy.",
               ("version", "mode", "maxmemory_policy")),
)


class RedisError(Exception):
    """An error reply (``-ERR ...``) from the server."""


class RespConnection:
    """A minimal RESP2 client: enough for AUTH, SELECT, INFO, SCAN."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.file = sock.makefile("rb")

    @classmethod
    def open(cls, host: str, port: int, timeout: float, tls: bool = False, tls_verify: bool = True,
             ) -> "RespConnection":
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if tls:
                context = ssl.create_default_context()
                if not tls_verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=host)
            return cls(sock)
        except BaseException:  # a failed handshake must not leak the TCP socket
            sock.close()
            raise

    def close(self) -> None:
        try:
            self.file.close()
        finally:
            self.sock.close()

    def settimeout(self, seconds: float) -> None:
        self.sock.settimeout(max(0.001, seconds))

    def command(self, *args: Any) -> Any:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._read()

    def _line(self) -> bytes:
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by server")
        return line[:-2]

    def _read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("connection closed by server")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read() for _ in range(count)]
        raise ConnectionError(f"unexpected RESP reply type {kind!r}")


def parse_info(text: str) -> dict[str, str]:
    info = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, _, value = line.partition(":")
            info[key] = value
    return info


def parse_keyspace(info: dict[str, str]) -> dict[str, dict[str, int]]:
    """``db0:keys=3,expires=1,avg_ttl=0`` -> {"0": {"keys": 3, "expires": 1, ...}}."""
    out = {}
    for key, value in info.items():
        if key.startswith("db") and key[2:].isdigit():
            fields = {}
            for part in value.split(","):
                name, _, number = part.partition("=")
                if number.lstrip("-").isdigit():
                    fields[name] = int(number)
            out[key[2:]] = fields
    return out


def glob_escape(prefix: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix)


def _int(info: dict[str, str], key: str) -> int | None:
    try:
        return int(info[key])
    except (KeyError, ValueError):
        return None


class RedisCacheCollector:
    name: ClassVar[str] = "redis_cache"
    METRICS: ClassVar[tuple[MetricSpec, ...]] = REDIS_METRICS
    needs_connection: ClassVar[bool] = False

    def __init__(self, connect: Callable[..., RespConnection] = RespConnection.open):
        self.connect = connect

    def collect(self, ctx: CollectContext) -> list[Metric]:
        target: RedisTarget = ctx.settings
        timeout = target.timeout_for(self.name)
        started = time.monotonic()
        deadline = started + timeout
        try:
            conn = self.connect(target.host, target.port, timeout, target.tls, target.tls_verify)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionUnavailable(f"cannot connect to redis {target.host}:{target.port}: "
                                        f"{type(exc).__name__}: {exc.strerror or exc}") from None
        try:
            return self._collect(conn, target, ctx.state, started, deadline)
        except RedisError as exc:
            raise CollectorError(f"redis replied: {exc}") from None
        except socket.timeout:
            raise CollectorError(f"redis did not answer within {timeout:g}s") from None
        except (OSError, ValueError) as exc:
            raise ConnectionUnavailable(f"redis connection failed: {type(exc).__name__}") from None
        finally:
            conn.close()

    def _collect(self, conn: RespConnection, target: RedisTarget, state: dict, started: float,
                 deadline: float) -> list[Metric]:
        def budget() -> None:  # every command gets only what is left of the run's timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout()
            conn.settimeout(remaining)

        secret = target.secret()
        if secret is not None:
            budget()
            try:
                if target.username:
                    conn.command("AUTH", target.username, secret)
                else:
                    conn.command("AUTH", secret)
            except RedisError as exc:
                # the reply never contains the password; keep only its first word (WRONGPASS, NOAUTH, ERR)
                raise CollectorError(f"redis authentication failed ({str(exc).split(' ', 1)[0]})") from None
        budget()
        raw = conn.command("INFO")
        if not isinstance(raw, bytes):
            raise CollectorError("unexpected INFO reply")
        info = parse_info(raw.decode(errors="replace"))
        out = Emitter(target.name, self.METRICS)

        hits, misses = _int(info, "keyspace_hits"), _int(info, "keyspace_misses")
        if hits is not None and misses is not None:
            out.add("vecmon_redis_keyspace_hits_total", hits)
            out.add("vecmon_redis_keyspace_misses_total", misses)
            previous = state.get("lookups")
            run_id = info.get("run_id")
            if previous and previous[2] == run_id and hits >= previous[0] and misses >= previous[1]:
                d_hits, d_misses = hits - previous[0], misses - previous[1]
            else:
                d_hits, d_misses = hits, misses
            if d_hits + d_misses > 0:
                out.add("vecmon_redis_keyspace_hit_ratio", d_hits / (d_hits + d_misses))
            state["lookups"] = (hits, misses, run_id)
        used, maxmemory = _int(info, "used_memory"), _int(info, "maxmemory")
        out.add("vecmon_redis_memory_used_bytes", used)
        out.add("vecmon_redis_memory_max_bytes", maxmemory)
        if used is not None and maxmemory:
            out.add("vecmon_redis_memory_used_ratio", used / maxmemory)
        out.add("vecmon_redis_evicted_keys_total", _int(info, "evicted_keys"))
        out.add("vecmon_redis_expired_keys_total", _int(info, "expired_keys"))
        out.add("vecmon_redis_connected_clients", _int(info, "connected_clients"))
        out.add("vecmon_redis_uptime_seconds", _int(info, "uptime_in_seconds"))
        for db, fields in sorted(parse_keyspace(info).items(), key=lambda kv: int(kv[0])):
            out.add("vecmon_redis_db_keys", fields.get("keys"), db)
            out.add("vecmon_redis_db_expiring_keys", fields.get("expires"), db)
        out.info("vecmon_redis_server", {}, info.get("redis_version", ""), info.get("redis_mode", ""),
                 info.get("maxmemory_policy", ""))

        if target.key_prefixes:
            if target.db:
                budget()
                conn.command("SELECT", target.db)
            scan_deadline = started + (deadline - started) * 0.8
            for prefix in target.key_prefixes:
                count, complete = self._scan(conn, prefix, target, scan_deadline)
                out.add("vecmon_redis_prefix_keys", count, prefix)
                out.add("vecmon_redis_prefix_scan_complete", 1 if complete else 0, prefix)
        return out.families()

    @staticmethod
    def _scan(conn: RespConnection, prefix: str, target: RedisTarget, deadline: float) -> tuple[int, bool]:
        seen: set[bytes] = set()
        cursor = b"0"
        pattern = glob_escape(prefix) + "*"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return len(seen), False
            conn.settimeout(remaining + 0.5)
            reply = conn.command("SCAN", cursor, "MATCH", pattern, "COUNT", target.scan_count)
            if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[1], list):
                raise CollectorError("unexpected SCAN reply")
            cursor = reply[0]
            seen.update(reply[1])  # SCAN may return a key twice; count distinct keys
            if len(seen) >= target.max_scan_keys:
                return target.max_scan_keys, False
            if cursor == b"0":
                return len(seen), True
