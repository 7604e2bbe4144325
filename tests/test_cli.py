"""The installed `pieces-service` command (operator commands only), on real PostgreSQL.

The development commands built on it (`python -m devtools`, `make run`, the demo data) are
tested in tests/test_devtools.py.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from pieces_service import cli
from pieces_service.auth import Principal, Role, decode_token
from pieces_service.config import JWTSettings
from pieces_service.migrate import connect, head_version, migration_files

from helpers import assert_one_line_error, raw_url, run_main

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET = "cli-test-secret-" + "s" * 32
COMPANY = uuid.UUID("0b5c6a8e-2f44-4c1e-9d0a-6f1d2a3b4c5d")


def run_cli(capsys, *argv, **env):
    return run_main(capsys, cli.main, *argv, **env)


assert_one_line_error = functools.partial(assert_one_line_error, prog="pieces-service")


# --- token -----------------------------------------------------------------------------------

def test_token_round_trips_through_decode_token(capsys):
    status, out, err = run_cli(capsys, "token", "--company", str(COMPANY), "--role",
                               "ProjectManager", "--sub", "alice", PIECES_JWT_SECRET=SECRET)
    assert status == 0, err
    assert err == ""
    principal = decode_token(out.strip(), JWTSettings(SECRET, ("HS256",)))
    assert principal == Principal(subject="alice", company_guid=COMPANY,
                                  role=Role.PROJECT_MANAGER)


def test_token_carries_audience_and_issuer_when_configured(capsys):
    status, out, err = run_cli(capsys, "token", "--company", str(COMPANY), "--role",
                               "Integration", "--ttl-seconds", "60", PIECES_JWT_SECRET=SECRET,
                               PIECES_JWT_AUDIENCE="pieces", PIECES_JWT_ISSUER="https://idp")
    assert status == 0, err
    settings = JWTSettings(SECRET, ("HS256",), audience="pieces", issuer="https://idp")
    assert decode_token(out.strip(), settings).role is Role.INTEGRATION


def test_token_signs_only_with_the_environment_secret(capsys):
    # Never the development secret of a source checkout (.local/jwt-secret), even if there
    # is one: that fallback is `python -m devtools token`.
    status, out, err = run_cli(capsys, "token", "--company", str(COMPANY), "--role",
                               "Operator")
    assert out == ""
    assert_one_line_error(status, err, 1, "PIECES_JWT_SECRET is not set")
    with pytest.raises(cli.CommandError, match="PIECES_JWT_SECRET is not set"):
        cli.signing_settings({})


@pytest.mark.parametrize("argv, env, status, fragments", [
    (["token", "--role", "Operator"], {"PIECES_JWT_SECRET": SECRET}, 2, ["--company"]),
    (["token", "--company", "nope", "--role", "Operator"], {"PIECES_JWT_SECRET": SECRET}, 2,
     ["not a UUID"]),
    (["token", "--company", str(COMPANY), "--role", "Admin"], {"PIECES_JWT_SECRET": SECRET}, 2,
     ["unknown role"]),
    (["token", "--company", str(COMPANY), "--role", "Operator", "--ttl-seconds", "0"],
     {"PIECES_JWT_SECRET": SECRET}, 2, ["--ttl-seconds"]),
    (["token", "--company", str(COMPANY), "--role", "Operator"],
     {"PIECES_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}, 1, ["PIECES_JWT_PUBLIC_KEY"]),
    (["token", "--company", str(COMPANY), "--role", "Operator"],
     {"PIECES_JWT_JWKS_URL": "https://idp.internal/.well-known/jwks.json"}, 1,
     ["PIECES_JWT_JWKS_URL is configured", "no private key"]),
    (["token", "--company", str(COMPANY), "--role", "Operator"],
     {"PIECES_JWT_SECRET": "short"}, 1, ["at least 32 characters"]),
    ([], {}, 2, ["required"]),
    (["frobnicate"], {}, 2, ["invalid choice"]),
    (["demo-data"], {}, 2, ["invalid choice"]),  # a development command (devtools)
    (["migrate"], {}, 1, ["DATABASE_URL is not set", "make migrate"]),
    (["migrate"], {"DATABASE_URL": "mysql://localhost/pieces"}, 1, ["DATABASE_URL"]),
    (["migrate"], {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/pieces"}, 1,
     ["database error"]),
])
def test_errors_are_one_line_and_a_non_zero_exit(capsys, argv, env, status, fragments):
    got, out, err = run_cli(capsys, *argv, **env)
    assert "Traceback" not in out
    assert_one_line_error(got, err, status, *fragments)


def test_the_module_entry_point_reports_errors_without_a_traceback():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIECES_JWT")}
    env["PIECES_JWT_SECRET"] = "short"
    result = subprocess.run(
        [sys.executable, "-m", "pieces_service.cli", "token", "--company", str(COMPANY),
         "--role", "Operator"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "pieces-service: error: PIECES_JWT_SECRET must be at least 32 characters"]


def test_the_installed_command_needs_database_url():
    script = shutil.which("pieces-service", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the console script is not installed next to this interpreter")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run([script, "migrate"], capture_output=True, text=True, env=env,
                            cwd=PROJECT_DIR, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "pieces-service: error: DATABASE_URL is not set (for a local embedded PostgreSQL use "
        "`make migrate` from a source checkout)"]


# Run from the project directory, where `devtools` is importable: absent from sys.modules
# afterwards means nothing imported it, not that it could not be found.
_NO_DEVELOPMENT_TOOLS = textwrap.dedent("""
    import importlib, pkgutil, sys

    import pieces_service
    from pieces_service import cli, create_app

    create_app(env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/pieces",
                    "PIECES_JWT_SECRET": "s" * 40})
    for module in pkgutil.walk_packages(pieces_service.__path__, "pieces_service."):
        importlib.import_module(module.name)
    assert cli.main(["migrate"], env={}) == 1
    assert cli.main(["token", "--company", "{company}", "--role", "Operator"],
                    env={"PIECES_JWT_SECRET": "s" * 40}) == 0
    print(sorted(name for name in sys.modules
                 if name.partition(".")[0] in ("pgserver", "devtools")))
""")


def test_the_service_never_imports_the_development_tools():
    assert (PROJECT_DIR / "devtools" / "__init__.py").exists()
    result = subprocess.run(
        [sys.executable, "-c", _NO_DEVELOPMENT_TOOLS.replace("{company}", str(COMPANY))],
        capture_output=True, text=True, cwd=PROJECT_DIR, timeout=120,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


# --- migrate ---------------------------------------------------------------------------------

def test_migrate_applies_everything_once_and_then_nothing(capsys, empty_database):
    env = {"DATABASE_URL": raw_url(empty_database)}
    status, out, err = run_cli(capsys, "migrate", **env)
    assert status == 0, err
    assert f"{len(migration_files())} migration(s) applied" in out

    status, out, err = run_cli(capsys, "migrate", **env)
    assert status == 0, err
    assert "already up to date" in out
    conn = connect(empty_database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), max(version) FROM schema_migrations")
            assert cur.fetchone() == (len(migration_files()), head_version())
    finally:
        conn.close()
