"""Settings of the embedding cache's Redis (:mod:`collectors.redis_cache`): one ``redis[]`` entry."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from collectors.settings.base import Duration, SecretFilePath, one_secret
from collectors.settings.targets import ScheduledTarget


class RedisTarget(ScheduledTarget):
    """The embedding cache's Redis (a single node; RESP2 over TCP, optionally TLS)."""

    host: str = Field("127.0.0.1", description="Redis host (one node; Cluster is not supported)")
    port: int = Field(6379, ge=1, le=65535, description="Redis port")
    username: str | None = Field(None, description="ACL user (Redis 6+); default user when unset")
    password: SecretStr | None = Field(None, description="use ${ENV_VAR}; never logged")
    password_file: SecretFilePath | None = Field(None, description="file whose first line is the password")
    db: int = Field(0, ge=0, description="database the key prefixes are counted in")
    tls: bool = Field(False, description="connect with TLS")
    tls_verify: bool = Field(True, description="verify the server certificate (with tls)")
    key_prefixes: list[str] = Field(default_factory=list, max_length=20,
                                    description="count keys under each prefix (SCAN; bounded by max_scan_keys)")
    max_scan_keys: int = Field(100_000, ge=1, le=10_000_000, description="stop counting a prefix after this many")
    scan_count: int = Field(1000, ge=10, le=100_000, description="COUNT hint per SCAN call")
    interval: Duration = Field(30.0, description="time between collections")
    timeout: Duration = Field(5.0, description="per collection: connect, INFO and the prefix scans")

    @model_validator(mode="after")
    def _one_password(self) -> RedisTarget:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if any(not p for p in self.key_prefixes):
            raise ValueError("key_prefixes must not be empty strings")
        return self

    def secret(self) -> str | None:
        return one_secret(self.password, self.password_file)

    def secrets(self) -> list[str]:
        return [s for s in [self.secret()] if s]
