"""Config of the multi-target ``/probe`` endpoint: ``probe:`` limits and ``auth_modules:``.

``auth_modules`` follows postgres_exporter's format (``type: userpass``, ``userpass: {username,
password}``, ``options`` as libpq parameters), so a postgres_exporter ``auth_modules`` block can be
pasted in; vecmon adds ``password_file``, the collectors a probe runs and an optional allowlist of
targets. Secrets come from ``${ENV}`` or files like every other secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collectors.registry import DATABASE_COLLECTORS
from collectors.settings.base import Duration, Model, SecretFilePath, one_secret

# The cheap, cluster-level PostgreSQL collectors: a handful of small catalog queries per probe.
# Per-relation collectors (tables, indexes, statements) and the pgvector probes are opt-in.
DEFAULT_PROBE_COLLECTORS = ("server", "connections", "databases", "activity", "wal", "archiver", "wraparound")

# libpq parameters a probe URL may carry (?sslmode=...): none of them names a file, a host,
# credentials or session options, so a scraper cannot change what vecmon reads or how.
URL_PARAMETERS = ("sslmode", "target_session_attrs", "channel_binding", "gssencmode", "sslnegotiation")
# An auth module's ``options`` may also point at certificate files and restrict the auth method.
OPTION_PARAMETERS = URL_PARAMETERS + ("sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "sslsni",
                                      "require_auth", "krbsrvname")

if TYPE_CHECKING:  # the names are the registry's, known at run time only
    ProbeCollectorName = str
else:
    ProbeCollectorName = Literal[tuple(DATABASE_COLLECTORS)]


class ProbeSettings(Model):
    """Limits of ``/probe?target=DSN&auth_module=NAME`` (databases not in the config)."""

    timeout: Duration = Field(10.0, description="whole-request deadline of one on-demand collection (a smaller "
                                                "X-Prometheus-Scrape-Timeout-Seconds header wins)")
    ttl: Duration = Field(30.0, description="a DSN target's result is served from memory this long")
    max_targets: int = Field(20, ge=1, le=1000, description="distinct DSN targets kept (results and one "
                                                            "connection each); the least recently used is evicted")
    lock_timeout: Duration = Field(1.0, description="longest wait for a lock by a probe's query")


class UserPass(Model):
    username: str = Field(description="a role with pg_monitor is enough")
    password: SecretStr | None = Field(None, description="use ${ENV_VAR}; never logged")
    password_file: SecretFilePath | None = Field(None, description="file whose first line is the password")

    @model_validator(mode="after")
    def _one_password(self) -> UserPass:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self

    def password_value(self) -> str | None:
        return one_secret(self.password, self.password_file)


class AuthModule(Model):
    """Credentials and collection settings for DSN targets probed with ``auth_module=NAME``."""

    type: Literal["userpass"] = Field("userpass", description="postgres_exporter's only type")
    userpass: UserPass
    options: dict[str, str] = Field(default_factory=dict, description="libpq parameters added to the DSN, e.g. "
                                                                       "sslmode: verify-full")
    collectors: list[ProbeCollectorName] = Field(
        default_factory=lambda: list(DEFAULT_PROBE_COLLECTORS),
        description="collectors a probe runs, in order (default: the cheap server-level set)")
    allowed_targets: list[str] | None = Field(
        None, description="glob patterns of host:port/db this module may be used for (default: any)")

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in OPTION_PARAMETERS:
                raise ValueError(f"option {key!r} is not allowed (allowed: {', '.join(OPTION_PARAMETERS)}); "
                                 "credentials go in userpass")
        return value

    @field_validator("collectors")
    @classmethod
    def _collectors(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one collector")
        return list(dict.fromkeys(value))
