"""The embedding cache's Redis: hits, misses, hit ratio, memory against maxmemory, evictions,
keys per database and keys under configured prefixes.

It speaks RESP2 over a plain socket (optionally TLS); no client library is needed. Each run
opens one connection, sends ``AUTH`` (when a password is configured), ``INFO``, and for each
key prefix ``SELECT db`` + ``SCAN 0 MATCH <prefix>* COUNT n`` until the cursor returns to 0,
``max_scan_keys`` keys were seen, or 80% of the timeout is used (then
``vecmon_redis_prefix_scan_complete`` is 0 and the count is a lower bound). SCAN is O(keyspace)
per run, so keep the interval reasonable on big caches. Redis Cluster is not supported (one node).

The whole run ends by ``timeout``, whatever the server does: every socket operation gets only
the time left (a server that trickles its reply or never answers fails the run as a
``timeout``, :class:`collectors.base.CollectionTimeout`; a SCAN reply that comes too late only
cuts the prefix counts short). Replies are bounded in size, so a peer that is not Redis, or
sends an endless line or a 100 GB bulk length, fails the run with a clear error, in bounded
memory.

``vecmon_redis_keyspace_hit_ratio`` is hits / (hits + misses) since the previous run (since
the server started on the first run or after a server restart); absent when there were no
lookups in between.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, ClassVar

from prometheus_client.core import Metric

from collectors.base import (
    CollectContext,
    CollectionTimeout,
    CollectorError,
    ConnectionUnavailable,
    Emitter,
    MetricSpec,
)
from collectors.settings.redis import RedisTarget

REDIS_KEYSPACE_HITS_TOTAL = MetricSpec(
    "vecmon_redis_keyspace_hits_total", "counter", "Successful key lookups (INFO keyspace_hits).")
REDIS_KEYSPACE_MISSES_TOTAL = MetricSpec(
    "vecmon_redis_keyspace_misses_total", "counter", "Failed key lookups (INFO keyspace_misses).")
REDIS_KEYSPACE_HIT_RATIO = MetricSpec(
    "vecmon_redis_keyspace_hit_ratio", "gauge",
    "Hits / (hits + misses) since the previous collection (since server start on the first run).")
REDIS_MEMORY_USED_BYTES = MetricSpec(
    "vecmon_redis_memory_used_bytes", "gauge", "Memory allocated by Redis (INFO used_memory).")
REDIS_MEMORY_MAX_BYTES = MetricSpec("vecmon_redis_memory_max_bytes", "gauge", "The maxmemory setting (0 = no limit).")
REDIS_MEMORY_USED_RATIO = MetricSpec("vecmon_redis_memory_used_ratio", "gauge",
                                     "Memory used divided by maxmemory; absent when maxmemory is 0 (no limit).")
REDIS_EVICTED_KEYS_TOTAL = MetricSpec(
    "vecmon_redis_evicted_keys_total", "counter", "Keys evicted because of the maxmemory limit.")
REDIS_EXPIRED_KEYS_TOTAL = MetricSpec(
    "vecmon_redis_expired_keys_total", "counter", "Keys removed because their TTL expired.")
REDIS_CONNECTED_CLIENTS = MetricSpec(
    "vecmon_redis_connected_clients", "gauge", "Client connections (INFO connected_clients).")
REDIS_UPTIME_SECONDS = MetricSpec("vecmon_redis_uptime_seconds", "gauge", "Seconds since the Redis server started.")
REDIS_DB_KEYS = MetricSpec("vecmon_redis_db_keys", "gauge", "Keys per database (INFO keyspace).", ("db",))
REDIS_DB_EXPIRING_KEYS = MetricSpec(
    "vecmon_redis_db_expiring_keys", "gauge", "Keys with a TTL per database (INFO keyspace).", ("db",))
REDIS_PREFIX_KEYS = MetricSpec(
    "vecmon_redis_prefix_keys", "gauge",
    "Keys under a configured prefix in the configured database (SCAN; a lower bound when the scan "
    "was cut short).", ("prefix",))
REDIS_PREFIX_SCAN_COMPLETE = MetricSpec(
    "vecmon_redis_prefix_scan_complete", "gauge",
    "Whether the last SCAN of the prefix covered the whole keyspace (1) or max_scan_keys or the "
    "time budget cut it short (0).", ("prefix",))
REDIS_SERVER = MetricSpec("vecmon_redis_server", "info", "Redis server version, mode and eviction policy.",
                          ("version", "mode", "maxmemory_policy"))


REDIS_METRICS = (
    REDIS_KEYSPACE_HITS_TOTAL,
    REDIS_KEYSPACE_MISSES_TOTAL,
    REDIS_KEYSPACE_HIT_RATIO,
    REDIS_MEMORY_USED_BYTES,
    REDIS_MEMORY_MAX_BYTES,
    REDIS_MEMORY_USED_RATIO,
    REDIS_EVICTED_KEYS_TOTAL,
    REDIS_EXPIRED_KEYS_TOTAL,
    REDIS_CONNECTED_CLIENTS,
    REDIS_UPTIME_SECONDS,
    REDIS_DB_KEYS,
    REDIS_DB_EXPIRING_KEYS,
    REDIS_PREFIX_KEYS,
    REDIS_PREFIX_SCAN_COMPLETE,
    REDIS_SERVER,
)


# bounds on what a peer may send: INFO is a few KB and a SCAN page about COUNT keys
MAX_LINE_BYTES = 64 * 1024  # a status, error, integer or length line
MAX_BULK_BYTES = 16 * 1024 * 1024  # one bulk string
MAX_ARRAY_ITEMS = 1_000_000  # elements of one array
MAX_REPLY_BYTES = 32 * 1024 * 1024  # one whole reply
MAX_DEPTH = 8  # nested arrays


class RedisError(Exception):
    """An error reply (``-ERR ...``) from the server."""


class RespProtocolError(Exception):
    """The peer's answer is not RESP, or exceeds the bounds above."""


class RespConnection:
    """A minimal RESP2 client: enough for AUTH, SELECT, INFO, SCAN.

    Every command ends by ``deadline`` (a ``time.monotonic`` value; none by default): before
    each socket operation the socket timeout is set to the time left, so a peer that trickles
    its reply a byte at a time, or never answers, raises ``socket.timeout`` at the deadline.
    Replies are bounded in size (``MAX_*``); a peer that exceeds them raises RespProtocolError.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline: float | None = None
        self._buffer = bytearray()
        self._reply_bytes = 0

    @classmethod
    def open(cls, host: str, port: int, timeout: float, tls: bool = False, tls_verify: bool = True,
             ) -> RespConnection:
        """Connect within ``timeout`` seconds (TCP; then the TLS handshake, which CPython bounds by
        the socket timeout as a whole)."""
        started = time.monotonic()
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if tls:
                context = ssl.create_default_context()
                if not tls_verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    raise TimeoutError("no time left for the TLS handshake")
                sock.settimeout(left)
                sock = context.wrap_socket(sock, server_hostname=host)
            return cls(sock)
        except BaseException:  # a failed handshake must not leak the TCP socket
            sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def _arm(self) -> None:
        """Give the next socket operation only the time left until the deadline."""
        if self.deadline is None:
            return
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)

    def command(self, *args: Any) -> Any:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._arm()
        self.sock.sendall(b"".join(parts))  # one deadline for the whole send (CPython)
        self._reply_bytes = 0
        return self._read(0)

    def _fill(self) -> None:
        self._arm()
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by server")
        self._reply_bytes += len(data)
        if self._reply_bytes > MAX_REPLY_BYTES:
            raise RespProtocolError(f"reply longer than {MAX_REPLY_BYTES} bytes")
        self._buffer += data

    def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 2]
                return line
            if len(self._buffer) > MAX_LINE_BYTES:
                raise RespProtocolError(f"reply line longer than {MAX_LINE_BYTES} bytes")
            self._fill()

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    @staticmethod
    def _length(rest: bytes, limit: int, what: str) -> int:
        if not (rest.lstrip(b"-").isdigit() and len(rest) <= 20):
            raise RespProtocolError(f"invalid {what} length {rest[:20]!r}")
        size = int(rest)
        if size > limit:
            raise RespProtocolError(f"{what} of {size} exceeds {limit}")
        return size

    def _read(self, depth: int) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode(errors="replace")
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            if not (rest.lstrip(b"-").isdigit() and len(rest) <= 20):
                raise RespProtocolError(f"invalid integer {rest[:20]!r}")
            return int(rest)
        if kind == b"$":
            size = self._length(rest, MAX_BULK_BYTES, "bulk string")
            if size < 0:
                return None
            data = self._exactly(size + 2)
            if data[-2:] != b"\r\n":
                raise RespProtocolError("bulk string not terminated by CRLF")
            return data[:-2]
        if kind == b"*":
            count = self._length(rest, MAX_ARRAY_ITEMS, "array")
            if depth >= MAX_DEPTH:
                raise RespProtocolError(f"arrays nested deeper than {MAX_DEPTH}")
            return None if count < 0 else [self._read(depth + 1) for _ in range(count)]
        raise RespProtocolError(f"unexpected reply type {kind!r}")


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

    def __init__(self, connect: Callable[..., RespConnection] = RespConnection.open):
        self.connect = connect

    def collect(self, ctx: CollectContext) -> list[Metric]:
        target: RedisTarget = ctx.settings
        timeout = target.timeout_for(self.name)
        started = time.monotonic()
        deadline = started + timeout
        late = f"redis {target.host}:{target.port} did not answer within {timeout:g}s"
        try:
            conn = self.connect(target.host, target.port, timeout, target.tls, target.tls_verify)
        except TimeoutError:
            raise CollectionTimeout(late) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionUnavailable(f"cannot connect to redis {target.host}:{target.port}: "
                                        f"{type(exc).__name__}: {exc.strerror or exc}") from None
        try:
            conn.deadline = deadline
            return self._collect(conn, target, ctx.state, started, deadline)
        except RedisError as exc:
            raise CollectorError(f"redis replied: {exc}") from None
        except TimeoutError:
            raise CollectionTimeout(late) from None
        except RespProtocolError as exc:
            raise CollectorError(f"redis {target.host}:{target.port} sent an invalid reply: {exc}") from None
        except (OSError, ValueError) as exc:
            raise ConnectionUnavailable(f"redis connection failed: {type(exc).__name__}") from None
        finally:
            conn.close()

    def _collect(self, conn: RespConnection, target: RedisTarget, state: dict[str, Any], started: float,
                 deadline: float) -> list[Metric]:
        secret = target.secret()
        if secret is not None:
            try:
                if target.username:
                    conn.command("AUTH", target.username, secret)
                else:
                    conn.command("AUTH", secret)
            except RedisError as exc:
                # the reply never contains the password; keep only its first word (WRONGPASS, NOAUTH, ERR)
                raise CollectorError(f"redis authentication failed ({str(exc).split(' ', 1)[0]})") from None
        raw = conn.command("INFO")
        if not isinstance(raw, bytes):
            raise CollectorError("unexpected INFO reply")
        info = parse_info(raw.decode(errors="replace"))
        out = Emitter(target.name, self.METRICS)

        hits, misses = _int(info, "keyspace_hits"), _int(info, "keyspace_misses")
        if hits is not None and misses is not None:
            out.add(REDIS_KEYSPACE_HITS_TOTAL.name, hits)
            out.add(REDIS_KEYSPACE_MISSES_TOTAL.name, misses)
            previous = state.get("lookups")
            run_id = info.get("run_id")
            if previous and previous[2] == run_id and hits >= previous[0] and misses >= previous[1]:
                d_hits, d_misses = hits - previous[0], misses - previous[1]
            else:
                d_hits, d_misses = hits, misses
            if d_hits + d_misses > 0:
                out.add(REDIS_KEYSPACE_HIT_RATIO.name, d_hits / (d_hits + d_misses))
            state["lookups"] = (hits, misses, run_id)
        used, maxmemory = _int(info, "used_memory"), _int(info, "maxmemory")
        out.add(REDIS_MEMORY_USED_BYTES.name, used)
        out.add(REDIS_MEMORY_MAX_BYTES.name, maxmemory)
        if used is not None and maxmemory:
            out.add(REDIS_MEMORY_USED_RATIO.name, used / maxmemory)
        out.add(REDIS_EVICTED_KEYS_TOTAL.name, _int(info, "evicted_keys"))
        out.add(REDIS_EXPIRED_KEYS_TOTAL.name, _int(info, "expired_keys"))
        out.add(REDIS_CONNECTED_CLIENTS.name, _int(info, "connected_clients"))
        out.add(REDIS_UPTIME_SECONDS.name, _int(info, "uptime_in_seconds"))
        for db, fields in sorted(parse_keyspace(info).items(), key=lambda kv: int(kv[0])):
            out.add(REDIS_DB_KEYS.name, fields.get("keys"), db)
            out.add(REDIS_DB_EXPIRING_KEYS.name, fields.get("expires"), db)
        out.info(REDIS_SERVER.name, {}, info.get("redis_version", ""), info.get("redis_mode", ""),
                 info.get("maxmemory_policy", ""))

        if target.key_prefixes:
            if target.db:
                conn.command("SELECT", target.db)
            scan_deadline = started + (deadline - started) * 0.8
            late = False
            for prefix in target.key_prefixes:
                count, complete = 0, False
                if not late:  # after a late reply the connection is unusable: the rest stay uncounted
                    count, complete, late = self._scan(conn, prefix, target, scan_deadline)
                out.add(REDIS_PREFIX_KEYS.name, count, prefix)
                out.add(REDIS_PREFIX_SCAN_COMPLETE.name, 1 if complete else 0, prefix)
        return out.families()

    @staticmethod
    def _scan(conn: RespConnection, prefix: str, target: RedisTarget, deadline: float) -> tuple[int, bool, bool]:
        """(distinct keys under ``prefix``, whether the scan finished, whether a reply missed the
        connection's deadline). No new SCAN is sent after ``deadline``; a reply may take until the
        connection's own deadline, and one that misses it ends the scan with what was counted, so
        the INFO metrics of the run are kept."""
        seen: set[bytes] = set()
        cursor = b"0"
        pattern = glob_escape(prefix) + "*"
        while True:
            if time.monotonic() >= deadline:
                return len(seen), False, False
            try:
                reply = conn.command("SCAN", cursor, "MATCH", pattern, "COUNT", target.scan_count)
            except TimeoutError:
                return len(seen), False, True
            if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[1], list):
                raise CollectorError("unexpected SCAN reply")
            cursor = reply[0]
            seen.update(reply[1])  # SCAN may return a key twice; count distinct keys
            if len(seen) >= target.max_scan_keys:
                return target.max_scan_keys, False, False
            if cursor == b"0":
                return len(seen), True, False
