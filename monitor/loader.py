"""Read a vecmon YAML file into a :class:`monitor.config.Config`.

- ``${VAR}`` and ``${VAR:-default}`` are replaced from the environment in every string value;
  ``$${`` is a literal ``${``.
- ``password_file``, ``api_key_file`` ... are read relative to the config file's directory;
- every problem (YAML syntax, unset variable, unreadable secret file, wrong type, unknown key)
  is collected and reported at once, each with its YAML path and line:
  ``config.yaml:12: databases[0].interval: invalid duration 'fast'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import yaml
from pydantic import SecretStr, ValidationError

from collectors.settings.base import SecretFile
from monitor.config import Config
from monitor.yaml_locations import YamlPath, format_path, line_map, nearest_line

_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

LocatedError: TypeAlias = tuple[YamlPath, str]  # (where, message)
Overrides: TypeAlias = Callable[[dict[str, Any]], dict[str, Any]]  # edits the parsed data before validation


# What the keys of a mapping with a fixed set of names are called, for "unknown ..." messages.
_KEY_KINDS = {"collectors": "collector"}


class ConfigError(Exception):
    """One or more located config errors."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} config error(s):\n" + "\n".join(f"  {e}" for e in errors))


def _interpolate(value: Any, path: YamlPath, env: Mapping[str, str], errors: list[LocatedError]) -> Any:
    """Replace ``${VAR}``; an unset variable without default appends (path, message) to ``errors``."""
    if isinstance(value, dict):
        return {k: _interpolate(v, path + (k,), env, errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, path + (i,), env, errors) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        default: str | None = match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append((path, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)"))
        return ""

    return _VAR.sub(substitute, value)


def _value_at(config: Any, path: YamlPath) -> Any:
    """The validated value at a YAML path (aliases such as ``for`` resolved through the field names)."""
    value = config
    for part in path:
        if isinstance(part, int) or isinstance(value, dict):
            try:
                value = value[part]
            except (IndexError, KeyError, TypeError):
                return None
            continue
        fields = getattr(type(value), "model_fields", {})
        name = next((n for n, f in fields.items() if part in (n, f.alias)), None)
        if name is None:
            return None
        value = getattr(value, name)
    return value


def parse_config(text: str, source: str = "<config>", env: Mapping[str, str] | None = None,
                 base_dir: Path | None = None, secrets: bool = True, require_mapping: bool = False,
                 overrides: Overrides | None = None) -> Config:
    """Parse and validate a config.

    ``secrets=False`` (``vecmon generate``) needs no secrets: secret files are not read, and a variable
    that is unset is only an error where the value it feeds is not a secret (a password, an API key,
    a DSN). ``require_mapping``: an empty or comment-only file is an error (the daemon's files: such a
    file is one caught half-written, never a wish to monitor nothing). ``overrides`` (command-line settings,
    :mod:`monitor.cli_overrides`) edit the data before validation."""
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(source, [f"{where}invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if data is None and require_mapping:
        raise ConfigError(source, ["(top level): the file is empty or holds only comments "
                                   "(expected a mapping such as `databases: [...]`)"])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): expected a mapping, not a {type(data).__name__}"])
    lines = line_map(root) if root is not None else {}
    errors: list[LocatedError] = []
    unset: list[LocatedError] = []
    data = _interpolate(data, (), env, errors if secrets else unset)
    if overrides is not None:
        data = overrides(data)
    config = None
    try:
        # secret files (``*_file``) are read during validation, relative to the config file
        config = Config.model_validate(data, context={"base_dir": base_dir or Path("."), "secrets": secrets})
    except ValidationError as exc:
        for err in exc.errors():
            loc: YamlPath = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key"
            elif err["type"] == "literal_error" and "[key]" in err["loc"]:
                message = f"unknown {_KEY_KINDS.get(str(loc[-2]), 'name') if len(loc) > 1 else 'name'}; " \
                          f"known: {err['ctx']['expected']}"
            errors.append((loc, message))
    if config is None:  # validation failed: say which of the values it failed on came from unset variables
        failed = {loc for loc, _ in errors}
        errors.extend(item for item in unset if item[0] in failed)
    else:
        errors.extend(item for item in unset if not isinstance(_value_at(config, item[0]), (SecretStr, SecretFile)))
    if errors:
        rendered = []
        for loc, message in errors:
            line = nearest_line(lines, loc)
            prefix = f"line {line}: " if line else ""
            rendered.append(f"{prefix}{format_path(loc)}: {message}")
        raise ConfigError(source, rendered)
    assert config is not None
    return config


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None, secrets: bool = True,
                require_mapping: bool = False, overrides: Overrides | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read config file: {exc.strerror}"]) from None
    return parse_config(text, source=str(path), env=env, base_dir=path.parent, secrets=secrets,
                        require_mapping=require_mapping, overrides=overrides)
