"""Sharding: N instances with ``--shard I/N`` (or ``daemon.shard``) monitor every target once.

Each target belongs to shard ``hash(name) mod N``, where the hash is Prometheus' ``hashmod``
(the last 8 bytes of the MD5 of the value, big-endian): a ``hashmod`` relabelling on the
``target`` label with ``modulus: N`` gives the same shard numbers. Targets that need each other
stay together: a budget and the endpoints and cost APIs it adds up, an endpoint and the
database its ``dimensions_from`` reads, and the databases of one server (host:port), whose
cluster-wide series are collected once (monitor.servers). Such a group is placed by the first of
its names in sort order.

The effective shard is ``$VECMON_SHARD`` when set (``--shard`` sets it, so it survives a
reload of the config file), else ``daemon.shard``, else none (every target).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator

from collectors.pg_session import server_address

SHARD_ENV = "VECMON_SHARD"
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with 0 <= I < N; ValueError says what is wrong."""
        match = _SHARD.match(str(text))
        if not match:
            raise ValueError(f"invalid shard {text!r} (expected I/N, e.g. 0/2)")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1:
            raise ValueError(f"invalid shard {text!r}: the shard count must be at least 1")
        if index >= count:
            raise ValueError(f"invalid shard {text!r}: the index must be below the count (0..{count - 1})")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _check_shard(text: str) -> str:
    Shard.parse(text)
    return text


ShardText = Annotated[str, AfterValidator(_check_shard)]


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' ``hashmod`` relabel action on one label value."""
    digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


def set_shard(text: str) -> Shard:
    """Validate ``--shard`` and put it in this process's environment ($VECMON_SHARD)."""
    shard = Shard.parse(text)
    os.environ[SHARD_ENV] = str(shard)
    return shard


def effective_shard(config: Any, env: Mapping[str, str] | None = None) -> Shard | None:
    env = os.environ if env is None else env
    text = env.get(SHARD_ENV) or getattr(getattr(config, "daemon", None), "shard", None)
    return Shard.parse(text) if text else None


def _groups(config: Any) -> dict[str, str]:
    """Target name -> the name that places its group (union-find over the dependencies)."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is the smallest name of the group

    for name in _all_names(config):
        find(name)
    for endpoint in getattr(config, "endpoints", []):
        ref = getattr(endpoint, "dimensions_from", None)
        if ref is not None:
            union(endpoint.name, ref.database)
    for budget in getattr(config, "budgets", []):
        for source in budget.sources:
            union(budget.name, source)
    first_on_server: dict[str, str] = {}
    for target in getattr(config, "databases", []):  # a server's cluster-wide series come from one shard
        union(first_on_server.setdefault(server_address(target), target.name), target.name)
    return {name: find(name) for name in parent}


def _all_names(config: Any) -> Iterable[str]:
    for section in SECTIONS:
        for target in getattr(config, section, []):
            yield target.name


SECTIONS = ("databases", "endpoints", "cost_apis", "redis", "budgets")


def shard_of(name: str, groups: Mapping[str, str], count: int) -> int:
    return hashmod(groups.get(name, name), count)


def assignment(config: Any, count: int) -> dict[str, int]:
    """Every target name -> its shard, for ``count`` shards."""
    groups = _groups(config)
    return {name: shard_of(name, groups, count) for name in _all_names(config)}


def for_shard(config: Any, shard: Shard | None) -> Any:
    """A copy of the config with only the targets of ``shard`` (the config itself without one)."""
    if shard is None or shard.count == 1:
        return config
    owner = assignment(config, shard.count)
    update = {section: [t for t in getattr(config, section) if owner[t.name] == shard.index]
              for section in SECTIONS if hasattr(config, section)}
    return config.model_copy(update=update)
