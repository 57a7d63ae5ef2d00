"""Building blocks shared by every config model: the base class, durations, names, secret files.

The config sections live next to what they configure (the collectors' own in :mod:`collectors.settings`,
:mod:`alerts.config`, and :mod:`monitor.config`, which composes the whole file); they all build
on this module, which imports none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, ValidationInfo

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def is_duration_text(value: Any) -> bool:
    return isinstance(value, str) and _DURATION.match(value) is not None


def seconds(value: Any, allow_zero: bool = False) -> float:
    """``"15s"`` -> 15.0; numbers are seconds. Raises ValueError naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        result = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r} (use e.g. 500ms, 15s, 5m, 1h, 30d)")
    if result < 0 or (result == 0 and not allow_zero):
        raise ValueError(f"duration must be positive, got {value!r}")
    if round(result * 1000) != result * 1000:
        raise ValueError(f"duration {value!r} is finer than a millisecond")
    return result


def parse_duration(value: Any) -> float:
    """A positive duration: ``500ms``, ``15s``, ``5m``, ``1h``, ``30d``, ``1w`` or seconds."""
    return seconds(value, allow_zero=False)


def parse_duration_or_zero(value: Any) -> float:
    """Like :func:`parse_duration`, but ``0s`` is allowed (``for: 0s`` fires at the first match)."""
    return seconds(value, allow_zero=True)


Duration = Annotated[float, BeforeValidator(parse_duration)]
ForDuration = Annotated[float, BeforeValidator(parse_duration_or_zero)]


class Model(BaseModel):
    """Base of every config object: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, hide_input_in_errors=True)


@dataclass(frozen=True)
class SecretFile:
    """A secret read from a file when the config is loaded: the path (for messages) and the value."""

    path: str
    value: SecretStr

    def __str__(self) -> str:
        return self.path


def _read_secret_file(value: Any, info: ValidationInfo) -> Any:
    """Read the first line of the file; a relative path is relative to the config file."""
    if isinstance(value, SecretFile) or value is None:
        return value
    if not isinstance(value, str):
        raise ValueError("expected a file path")
    base = (info.context or {}).get("base_dir") or Path(".")
    path = (Path(base) / Path(value).expanduser())
    if (info.context or {}).get("secrets") is False:  # generating files needs no secret: leave it unread
        return SecretFile(str(path), SecretStr(""))
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read secret file {str(path)!r}: {exc.strerror}") from None
    return SecretFile(str(path), SecretStr(text.splitlines()[0].strip() if text.strip() else ""))


SecretFilePath = Annotated[SecretFile, BeforeValidator(_read_secret_file)]


def one_secret(value: SecretStr | None, from_file: SecretFile | None) -> str | None:
    """The clear text of a secret given either inline or as a file."""
    if value is not None:
        return value.get_secret_value()
    if from_file is not None:
        return from_file.value.get_secret_value()
    return None


def check_dsn(value: SecretStr | None) -> SecretStr | None:
    """A libpq connection string or URI that parses; the error never echoes it (it may hold a password)."""
    if value is None:
        return value
    from psycopg import ProgrammingError, conninfo

    try:
        conninfo.conninfo_to_dict(value.get_secret_value())
    except ProgrammingError:
        raise ValueError("invalid connection string (libpq key=value or postgresql:// URI)") from None
    return value


def check_sqlalchemy_url(value: str | None) -> str | None:
    """A SQLAlchemy URL that parses; the error never echoes it."""
    if value is None:
        return value
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)
    except (ArgumentError, ValueError):
        raise ValueError("invalid SQLAlchemy URL (e.g. sqlite:////var/lib/vecmon/state.sqlite)") from None
    return value
