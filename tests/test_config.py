"""Config loading: interpolation, secrets from files, every error located in one message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.loader import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent


def test_minimal_config_gets_defaults():
    config = parse_config("databases:\n  - name: main\n    dsn: host=db dbname=app\n")
    db = config.databases[0]
    assert db.interval == 30.0 and db.timeout == 10.0
    assert db.limits.tables == 50
    assert "connections" in db.enabled_collectors()
    assert config.daemon.host_port == ("127.0.0.1", 9765)


def test_durations_and_collector_overrides():
    config = parse_config("""
databases:
  - name: main
    host: db
    dbname: app
    interval: 15s
    timeout: 500ms
    lock_timeout: 200ms
    collectors:
      tables: {interval: 2m}
      statements: {enabled: false}
""")
    db = config.databases[0]
    assert db.interval == 15.0
    assert db.timeout == 0.5
    assert db.interval_for("tables") == 120.0
    assert db.interval_for("connections") == 15.0
    assert "statements" not in db.enabled_collectors()
    assert db.jitter_for("tables") == 12.0


def test_env_interpolation_with_defaults():
    config = parse_config(
        "databases:\n  - name: ${NAME}\n    host: ${HOST:-localhost}\n    dbname: app\n    password: ${PW}\n",
        env={"NAME": "prod", "PW": "s3cret"})
    db = config.databases[0]
    assert db.name == "prod"
    assert db.host == "localhost"
    assert db.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_every_error_is_reported_with_its_path_and_line():
    text = """daemon:
  listen: nowhere
databases:
  - name: a
    host: db
    dbname: app
    interval: fast
    bogus: 1
  - name: b
    dsn: ${MISSING}
    collectors:
      nosuch: {}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="cfg.yaml", env={})
    errors = info.value.errors
    message = str(info.value)
    assert "cfg.yaml" in message
    assert "line 7: databases[0].interval: invalid duration 'fast'" in message
    assert "line 8: databases[0].bogus: unknown key" in message
    assert any(e.startswith("line 2: daemon.listen:") for e in errors)
    assert any("databases[1].dsn: environment variable MISSING is not set" in e for e in errors)
    assert any("databases[1].collectors" in e and "nosuch" in e for e in errors)
    assert len(errors) == 5


def test_wrong_types_and_duplicates():
    with pytest.raises(ConfigError) as info:
        parse_config("databases:\n  - {name: a, host: h, dbname: d, max_connections: lots}\n"
                     "  - {name: a, host: h, dbname: d}\n")
    message = str(info.value)
    assert "databases[0].max_connections" in message
    with pytest.raises(ConfigError, match="duplicate target name 'a'"):
        parse_config("databases:\n  - {name: a, host: h, dbname: d}\n  - {name: a, host: h, dbname: d}\n")


def test_yaml_syntax_error_names_the_line():
    with pytest.raises(ConfigError, match=r"line 2: invalid YAML"):
        parse_config("databases:\n  - name: a: b\n")


def test_password_file(tmp_path):
    (tmp_path / "pw").write_text("hunter2\n")
    path = tmp_path / "c.yaml"
    path.write_text("databases:\n  - {name: a, host: h, dbname: d, password_file: pw}\n")
    assert load_config(path).databases[0].password_value() == "hunter2"
    path.write_text("databases:\n  - {name: a, host: h, dbname: d, password_file: nope}\n")
    with pytest.raises(ConfigError, match=r"databases\[0\].password_file: cannot read secret file"):
        load_config(path)


def test_example_config_is_valid():
    env = {"PGPASSWORD": "x", "OPENAI_API_KEY": "k1", "COHERE_API_KEY": "k2", "OPENAI_ADMIN_KEY": "k3"}
    config = load_config(ROOT / "config" / "example.yaml", env=env)
    assert config.databases and config.endpoints and config.slos
    for name in ("alerting-example.yaml",):
        assert load_config(ROOT / "config" / name, env=env)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)


@pytest.mark.integration
def test_check_config_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("databases:\n  - {name: a, host: h, dbname: d}\n")
    result = _cli("check-config", "-c", str(good))
    assert result.returncode == 0, result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("databases:\n  - {name: a, host: h, dbname: d, interval: fast, timeout: nope}\n")
    result = _cli("check-config", "-c", str(bad))
    assert result.returncode == 2
    assert "databases[0].interval: invalid duration 'fast'" in result.stderr
    assert "databases[0].timeout: invalid duration 'nope'" in result.stderr


@pytest.mark.integration
def test_vecmon_config_env_is_the_default(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("databases:\n  - {name: a, host: h, dbname: d}\n")
    import os
    result = _cli("check-config", env={**os.environ, "VECMON_CONFIG": str(good)})
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_secret_files_are_relative_to_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "openai").write_text("sk-from-file\n")
    path = tmp_path / "c.yaml"
    path.write_text("endpoints:\n  - {name: e, kind: embedding, provider: openai, model: m, "
                    "api_key_file: secrets/openai}\n")
    monkeypatch.chdir("/")
    config = load_config(path)
    assert config.endpoints[0].key() == "sk-from-file"
    assert "sk-from-file" not in repr(config)


def test_malformed_connection_strings_are_config_errors_that_do_not_echo_them():
    text = """databases:
  - name: a
    dsn: "postgresql://u:p%zzsecret@host/db"
    vector:
      recall: {replica_dsn: "host=x password='unterminated", state_url: "postgresql://u:pw@h:notaport/db"}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    message = str(info.value)
    assert "databases[0].dsn: invalid connection string" in message
    assert "databases[0].vector.recall.replica_dsn: invalid connection string" in message
    assert "databases[0].vector.recall.state_url: invalid SQLAlchemy URL" in message
    assert "zzsecret" not in message and "unterminated" not in message and "pw@" not in message


def test_an_unknown_collector_and_a_bad_setting_are_reported_together():
    with pytest.raises(ConfigError) as err:
        parse_config("""
databases:
  - name: main
    dsn: host=db dbname=app
    collectors:
      tabels: {interval: 30s}
      indexes: {intervl: 30s}
""")
    message = str(err.value)
    assert "line 6: databases[0].collectors.tabels: unknown collector; known: " in message, message
    assert "'tables'" in message
    assert "line 7: databases[0].collectors.indexes.intervl: unknown key" in message, message
    assert len(err.value.errors) == 2


@pytest.mark.integration
def test_generate_needs_no_secrets(tmp_path):
    """A CI job that only writes rules and dashboards has no production secrets: `vecmon generate` on the
    example config works with none of its password/API-key variables set and no secret files present."""
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("PGPASSWORD", "OPENAI_API_KEY", "COHERE_API_KEY", "OPENAI_ADMIN_KEY", "REDIS_PASSWORD")}
    config = tmp_path / "vecmon.yaml"
    config.write_text((ROOT / "config" / "example.yaml").read_text()
                      + "\n# a secret file that only the production host has\n")
    text = config.read_text().replace("password: ${PGPASSWORD}", "password_file: /run/secrets/no-such-file", 1)
    config.write_text(text)
    done = subprocess.run([sys.executable, "-m", "monitor", "generate", "-c", str(config), "-o", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "out").rglob("*.rules.yml"))
    checked = subprocess.run([sys.executable, "-m", "monitor", "check-config", "-c", str(config)],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and "no-such-file" in checked.stderr  # running it still needs them


def test_without_secrets_a_missing_non_secret_variable_is_still_an_error():
    with pytest.raises(ConfigError) as err:
        parse_config("databases:\n  - name: main\n    host: ${DB_HOST}\n    dbname: app\n"
                     "    password: ${DB_PASSWORD}\n", env={}, secrets=False)
    assert "databases[0].host: environment variable DB_HOST is not set" in str(err.value)
    assert "DB_PASSWORD" not in str(err.value)
    config = parse_config("databases:\n  - name: main\n    host: db\n    dbname: app\n"
                          "    password: ${DB_PASSWORD}\n", env={}, secrets=False)
    assert config.databases[0].name == "main"


@pytest.mark.integration
def test_global_options_after_the_subcommand_and_endpoint_jobs_counted(write_config):
    path = write_config("endpoints:\n  - name: emb\n    provider: openai\n    model: text-embedding-3-small\n"
                        "    api_key: k\n")
    done = subprocess.run([sys.executable, "-m", "monitor", "check-config", "-c", str(path), "--log-level", "debug",
                           "--log-format", "json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 database targets (0 collector jobs), 1 endpoint" in done.stdout
    helptext = subprocess.run([sys.executable, "-m", "monitor", "run", "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60).stdout
    assert "least severe log messages" in helptext and "--log-format" in helptext
