"""Configuration: every bad variable is a ConfigError naming it, and a bad configuration stops
the start with one line on stderr (no traceback)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TEST_SECRET, clean_env
from pieces_service import create_app
from pieces_service.config import Config, ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
GOOD = {"DATABASE_URL": "postgresql://pieces@db.internal:5432/pieces",
        "PIECES_JWT_SECRET": TEST_SECRET}


def test_good_environment():
    config = Config.from_env({**GOOD, "PORT": "9000", "WEB_CONCURRENCY": "3",
                              "PIECES_LOG_LEVEL": "debug"})
    assert config.database_url.drivername == "postgresql+psycopg2"
    assert (config.port, config.web_concurrency, config.log_level) == (9000, 3, "DEBUG")


@pytest.mark.parametrize("changes, variable", [
    ({"PIECES_JWT_SECRET": None}, "PIECES_JWT_SECRET"),
    ({"PIECES_JWT_SECRET": "too-short"}, "PIECES_JWT_SECRET"),
    ({"DATABASE_URL": None}, "DATABASE_URL"),
    ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    ({"DATABASE_URL": "postgresql://u@h:port/db"}, "DATABASE_URL"),
    ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
    ({"PIECES_DB_POOL_SIZE": "four"}, "PIECES_DB_POOL_SIZE"),
    ({"PIECES_DB_POOL_SIZE": "0"}, "PIECES_DB_POOL_SIZE"),
    ({"PIECES_STATEMENT_TIMEOUT_MS": "1.5"}, "PIECES_STATEMENT_TIMEOUT_MS"),
    ({"PORT": "http"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
    ({"PIECES_LOG_LEVEL": "chatty"}, "PIECES_LOG_LEVEL"),
    ({"PIECES_EXPORT_TIMEOUT_S": "0"}, "PIECES_EXPORT_TIMEOUT_S"),
    ({"PIECES_EXPORT_TIMEOUT_S": "86401"}, "PIECES_EXPORT_TIMEOUT_S"),
    ({"PIECES_EXPORT_TIMEOUT_S": "5m"}, "PIECES_EXPORT_TIMEOUT_S"),
    ({"PIECES_DATABASE_REPLICA_URLS": "mysql://u@h/db"}, "PIECES_DATABASE_REPLICA_URLS"),
    ({"PIECES_DATABASE_REPLICA_URLS": "postgresql://a/db,,postgresql://b/db"},
     "PIECES_DATABASE_REPLICA_URLS"),
    ({"PIECES_REPLICA_MAX_LAG_MS": "-1"}, "PIECES_REPLICA_MAX_LAG_MS"),
    ({"PIECES_REPLICA_CHECK_MS": "1"}, "PIECES_REPLICA_CHECK_MS"),
    ({"PIECES_REPLICA_RETRY_MS": "soon"}, "PIECES_REPLICA_RETRY_MS"),
    ({"PIECES_DB_PREPARED_STATEMENTS": "sometimes"}, "PIECES_DB_PREPARED_STATEMENTS"),
    ({"PIECES_TENANT_SHARE": "0"}, "PIECES_TENANT_SHARE"),
    ({"PIECES_TENANT_SHARE": "1.5"}, "PIECES_TENANT_SHARE"),
    ({"PIECES_TENANT_SHARE": "half"}, "PIECES_TENANT_SHARE"),
    ({"PIECES_ADMISSION_SLOTS": "0"}, "PIECES_ADMISSION_SLOTS"),
    ({"PIECES_QUEUE_TIMEOUT_MS": "5"}, "PIECES_QUEUE_TIMEOUT_MS"),
    ({"PIECES_SEND_TIMEOUT_S": "0"}, "PIECES_SEND_TIMEOUT_S"),
    ({"PIECES_THREADS": "8"}, "PIECES_THREADS"),  # under slots + heavy + long slots + 2 = 13
    ({"PIECES_DB_POOL_SIZE": "4", "PIECES_DB_MAX_OVERFLOW": "4"}, "PIECES_DB_POOL_SIZE"),
])
def test_bad_variable_is_named(changes, variable):
    env = {**GOOD, **changes}
    env = {key: val for key, val in env.items() if val is not None}
    with pytest.raises(ConfigError, match=variable):
        Config.from_env(env)


@pytest.mark.parametrize("value, prepared", [
    (None, True), ("", True), ("on", True), ("1", True), ("TRUE", True), ("yes", True),
    ("off", False), ("0", False), ("false", False), (" No ", False),
])
def test_prepared_statements_are_on_unless_turned_off(value, prepared):
    env = GOOD if value is None else {**GOOD, "PIECES_DB_PREPARED_STATEMENTS": value}
    assert Config.from_env(env).db_prepared_statements is prepared


def test_export_time_limit_defaults_to_five_minutes_and_takes_its_range():
    assert Config.from_env(GOOD).export_timeout_s == 300
    for value in ("1", "86400"):
        assert Config.from_env({**GOOD, "PIECES_EXPORT_TIMEOUT_S": value}).export_timeout_s \
            == int(value)


def test_replica_urls_are_parsed_in_order_and_their_passwords_never_shown():
    assert Config.from_env(GOOD).replica_urls == ()
    config = Config.from_env({**GOOD, "PIECES_DATABASE_REPLICA_URLS":
                              " postgresql://u:s3cret@r1:5432/pieces, postgres://u@r2/pieces "})
    assert [url.host for url in config.replica_urls] == ["r1", "r2"]
    assert {url.drivername for url in config.replica_urls} == {"postgresql+psycopg2"}
    assert config.replica_max_lag_ms == 5000
    assert "s3cret" not in repr(config)
    with pytest.raises(ConfigError) as error:
        Config.from_env({**GOOD, "PIECES_DATABASE_REPLICA_URLS":
                         "postgresql://u@r1/p,postgresql://u:s3cret@r2:port/p"})
    assert "entry 2" in str(error.value) and "s3cret" not in str(error.value)


def test_missing_key_message_says_what_to_set():
    with pytest.raises(ConfigError) as error:
        Config.from_env({"DATABASE_URL": GOOD["DATABASE_URL"]})
    assert "PIECES_JWT_SECRET" in str(error.value)
    assert "PIECES_JWT_PUBLIC_KEY" in str(error.value)


def test_create_app_reads_and_validates_the_environment():
    with pytest.raises(ConfigError, match="PIECES_DB_MAX_OVERFLOW"):
        create_app(env={**GOOD, "PIECES_DB_MAX_OVERFLOW": "-1"})
    assert create_app(env=GOOD).config["PIECES"].database_url.host == "db.internal"


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
    [sys.executable, "-c", "import wsgi"],
], ids=["gunicorn", "wsgi"])
@pytest.mark.parametrize("variables, message", [
    ({"DATABASE_URL": GOOD["DATABASE_URL"]}, "no token verification key"),
    ({**GOOD, "DATABASE_URL": "postgresql://user@host:notaport/db"}, "DATABASE_URL"),
    ({**GOOD, "PIECES_DB_POOL_SIZE": "lots"}, "PIECES_DB_POOL_SIZE must be an integer"),
], ids=["no-key", "bad-url", "bad-int"])
def test_start_fails_with_one_line(tmp_path, command, variables, message):
    env = clean_env(**variables, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    result = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    line, = result.stderr.splitlines()
    assert line.startswith("pieces_service: configuration error: ")
    assert message in line
    assert "Traceback" not in result.stdout + result.stderr


def test_admission_defaults_fit_their_threads_and_pool():
    config = Config.from_env(GOOD)
    slots = (config.admission_slots, config.heavy_slots, config.long_slots)
    assert (config.threads, *slots) == (64, 8, 1, 2)
    assert config.threads >= sum(slots) + 2
    assert config.db_pool_size + config.db_max_overflow >= sum(slots)
    assert (config.tenant_queue, config.admission_wait_ms) == (32, 500)
    assert config.tenant_share == 0.5 and config.queue_timeout_ms == 2000
    assert config.send_timeout_s == 30
