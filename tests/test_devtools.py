"""The development tools (devtools/): `python -m devtools`, `make run`'s pieces and the demo
data (docs/running.md), on real PostgreSQL."""
from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg2
import pytest

from devtools import cli as devcli
from devtools import demo, embedded, localrun
from pieces_service import cli
from pieces_service.auth import Principal, Role, decode_token
from pieces_service.config import JWTSettings
from pieces_service.migrate import connect, migrate, migration_files

from helpers import TEST_SECRET, assert_one_line_error, raw_url, run_main

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET = "devtools-test-secret-" + "s" * 32
COMPANY = uuid.UUID("0b5c6a8e-2f44-4c1e-9d0a-6f1d2a3b4c5d")


def run_devtools(capsys, *argv, **env):
    return run_main(capsys, devcli.main, *argv, **env)


assert_one_line_error = functools.partial(assert_one_line_error, prog="python -m devtools")


# --- the development secret and tokens -------------------------------------------------------

def test_make_run_generates_the_development_secret_once(tmp_path):
    env = {}
    note = localrun.ensure_jwt_key(env, tmp_path / "jwt-secret")
    assert "generated" in note and env["PIECES_JWT_SECRET"] not in note
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o777 == 0o600
    again = {}
    assert "earlier run" in localrun.ensure_jwt_key(again, tmp_path / "jwt-secret")
    assert again == env
    mine = {"PIECES_JWT_SECRET": SECRET}
    assert "from the environment" in localrun.ensure_jwt_key(mine, tmp_path / "jwt-secret")
    assert mine == {"PIECES_JWT_SECRET": SECRET}


def test_the_development_secret_stands_in_for_an_unset_secret(tmp_path):
    secret_file = tmp_path / "jwt-secret"
    env = {}
    localrun.ensure_jwt_key(env, secret_file)

    signing_env, note = devcli.with_dev_secret({}, secret_file)
    assert "development secret" in note and env["PIECES_JWT_SECRET"] not in note
    token = cli.mint_token(cli.signing_settings(signing_env), company_guid=COMPANY,
                           role=Role.OPERATOR)
    assert decode_token(token, JWTSettings(env["PIECES_JWT_SECRET"], ("HS256",))).company_guid \
        == COMPANY
    # A configured key wins; a public key is not replaced by the development secret.
    assert devcli.with_dev_secret({"PIECES_JWT_SECRET": SECRET}, secret_file) == (
        {"PIECES_JWT_SECRET": SECRET}, None)
    public = {"PIECES_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}
    assert devcli.with_dev_secret(public, secret_file) == (public, None)
    with pytest.raises(cli.CommandError, match="there is no development secret"):
        devcli.with_dev_secret({}, tmp_path / "absent")


def test_the_token_command_falls_back_to_the_development_secret(capsys, monkeypatch, tmp_path):
    secret_file = tmp_path / "jwt-secret"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setattr(devcli, "DEV_SECRET_FILE", secret_file)
    status, out, err = run_devtools(capsys, "token", "--company", str(COMPANY), "--role",
                                    "ProjectManager", "--sub", "alice")
    assert status == 0, err
    assert err.strip() == (f"python -m devtools: using the development secret in {secret_file}"
                           f" (PIECES_JWT_SECRET is not set)")
    assert decode_token(out.strip(), JWTSettings(SECRET, ("HS256",))) == Principal(
        subject="alice", company_guid=COMPANY, role=Role.PROJECT_MANAGER)

    status, out, err = run_devtools(capsys, "token", "--company", str(COMPANY), "--role",
                                    "Operator", PIECES_JWT_SECRET="e" * 40)
    assert status == 0 and err == ""
    assert decode_token(out.strip(), JWTSettings("e" * 40, ("HS256",))).role is Role.OPERATOR

    monkeypatch.setattr(devcli, "DEV_SECRET_FILE", tmp_path / "absent")
    status, out, err = run_devtools(capsys, "token", "--company", str(COMPANY), "--role",
                                    "Operator")
    assert out == ""
    assert_one_line_error(status, err, 1, "PIECES_JWT_SECRET is not set",
                          "no development secret", "make run")


@pytest.mark.parametrize("argv, env, status, fragments", [
    (["token", "--company", "nope", "--role", "Operator"], {"PIECES_JWT_SECRET": SECRET}, 2,
     ["not a UUID"]),
    (["token", "--company", str(COMPANY), "--role", "Operator"],
     {"PIECES_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}, 1, ["PIECES_JWT_PUBLIC_KEY"]),
    ([], {}, 2, ["required"]),
    (["migrate"], {"DATABASE_URL": "mysql://localhost/pieces"}, 1, ["DATABASE_URL"]),
    (["demo-data"], {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/pieces"}, 1,
     ["database error"]),
])
def test_errors_are_one_line_and_a_non_zero_exit(capsys, argv, env, status, fragments):
    got, out, err = run_devtools(capsys, *argv, **env)
    assert "Traceback" not in out
    assert_one_line_error(got, err, status, *fragments)


def test_python_m_devtools_runs_from_the_project_directory():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIECES_JWT")}
    env["PIECES_JWT_SECRET"] = "short"
    result = subprocess.run(
        [sys.executable, "-m", "devtools", "token", "--company", str(COMPANY),
         "--role", "Operator"], capture_output=True, text=True, env=env, cwd=PROJECT_DIR,
        timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "python -m devtools: error: PIECES_JWT_SECRET must be at least 32 characters"]


# --- migrate and demo-data -------------------------------------------------------------------

def test_demo_data_needs_a_migrated_database(capsys, empty_database):
    env = {"DATABASE_URL": raw_url(empty_database)}
    status, _, err = run_devtools(capsys, "demo-data", **env)
    assert_one_line_error(status, err, 1, "not migrated", "make migrate")

    status, out, err = run_devtools(capsys, "migrate", **env)  # DATABASE_URL is used as is
    assert status == 0, err
    assert "embedded" not in out
    assert f"{len(migration_files())} migration(s) applied" in out


def test_migrate_uses_the_embedded_server_when_database_url_is_unset(capsys, monkeypatch):
    if os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("the suite runs against TEST_DATABASE_URL, not the embedded server")
    name = f"pieces_devtools_embedded_{os.getpid()}"
    monkeypatch.setattr(devcli, "EMBEDDED_DATABASE", name)
    try:
        status, out, err = run_devtools(capsys, "migrate")
        assert status == 0, err
        lines = out.splitlines()
        assert lines[0] == (f"DATABASE_URL is not set: using the embedded PostgreSQL in "
                            f"{embedded.PGDATA} (database {name})")
        assert lines[-1] == f"{len(migration_files())} migration(s) applied"
        status, out, err = run_devtools(capsys, "migrate")
        assert status == 0, err
        assert out.splitlines()[-1] == "already up to date"
    finally:
        embedded.start().psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')


@pytest.fixture(scope="module")
def demo_db(db_url):
    """A database of its own, migrated and loaded with the demo data, so that no other
    test's rows (fuzzers sync into arbitrary tenants) can touch the demo tenants. Yields
    (url, the tenants the load added)."""
    name = f"pieces_demo_{os.getpid()}"
    admin = connect(db_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
    except psycopg2.errors.InsufficientPrivilege:
        admin.close()
        pytest.skip("the test database's role may not create databases")
    url = db_url.set(database=name)
    migrate(url, echo=lambda *_: None)
    added = demo.load(url)
    yield url, added
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def demo_loaded(demo_db):
    return demo_db[1]


@pytest.fixture
def demo_conn(demo_db):
    conn = connect(demo_db[0])
    conn.autocommit = True
    yield conn
    conn.close()


def test_the_make_run_banner_prints_a_working_curl(capsys, app_factory, demo_db):
    localrun._banner({"PIECES_JWT_SECRET": TEST_SECRET}, 8765)
    out = capsys.readouterr().out
    assert "More tokens: .venv/bin/python -m devtools token --company <uuid>" in out
    match = re.search(r'^curl -H "Authorization: Bearer ([^"]+)" '
                      r'"http://127\.0\.0\.1:8765(/api/v1/pieces\?limit=5)"$', out, re.M)
    assert match, out
    token, path = match.groups()

    client = app_factory(database_url=demo_db[0]).test_client()
    response = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    pieces = response.get_json()
    assert len(pieces) == 5
    assert {p["company_guid"] for p in pieces} == {str(demo.DEFAULT_TENANT.company_guid)}
    assert all(p["is_active"] for p in pieces)


COUNTS = """
SELECT (SELECT count(*) FROM projects WHERE company_guid = %(t)s),
       (SELECT count(*) FROM components WHERE company_guid = %(t)s),
       (SELECT count(*) FROM assemblies WHERE company_guid = %(t)s),
       (SELECT count(*) FROM pieces WHERE company_guid = %(t)s),
       (SELECT count(*) FROM pieces WHERE company_guid = %(t)s AND is_active)
"""


def counts(conn):
    result = {}
    with conn.cursor() as cur:
        for tenant in demo.TENANTS:
            cur.execute(COUNTS, {"t": str(tenant.company_guid)})
            result[tenant.company_guid] = cur.fetchone()
    return result


def test_demo_data_has_the_documented_counts(demo_conn, demo_loaded):
    assert demo_loaded == list(demo.TENANTS)
    assert counts(demo_conn) == demo.EXPECTED_COUNTS == {
        uuid.UUID("d1000000-0000-4000-8000-000000000001"): (5, 25, 625, 5000, 4987),
        uuid.UUID("d2000000-0000-4000-8000-000000000002"): (3, 15, 375, 3000, 2800),
        uuid.UUID("d3000000-0000-4000-8000-000000000003"): (2, 10, 250, 2000, 1997),
    }
    assert sum(t.pieces for t in demo.TENANTS) == 10_000


def test_loading_the_demo_data_again_changes_nothing(capsys, demo_conn, demo_db):
    db_url = demo_db[0]
    before = counts(demo_conn)
    assert demo.load(db_url) == []
    status, out, err = run_devtools(capsys, "demo-data", DATABASE_URL=raw_url(db_url))
    assert status == 0, err
    assert "already present" in out
    assert counts(demo_conn) == before


def test_demo_deletes_follow_the_cascade_rules(demo_conn):
    nord, alpine, _ = demo.TENANTS
    with demo_conn.cursor() as cur:
        # Tenant 1: one assembly deleted with its 8 pieces, all at one deleted_at.
        cur.execute("SELECT deleted_at FROM assemblies WHERE guid = %s",
                    (str(demo.demo_guid(nord, 1, 2, 3)),))
        (assembly_deleted_at,) = cur.fetchone()
        cur.execute("SELECT count(*), count(DISTINCT deleted_at), min(deleted_at)"
                    " FROM pieces WHERE assembly_guid = %s",
                    (str(demo.demo_guid(nord, 1, 2, 3)),))
        assert cur.fetchone() == (8, 1, assembly_deleted_at)
        # Tenant 2: a component deleted by cascade; one of its pieces was deleted earlier.
        component = str(demo.demo_guid(alpine, 2, 4))
        cur.execute("SELECT deleted_at FROM components WHERE guid = %s", (component,))
        (component_deleted_at,) = cur.fetchone()
        cur.execute("SELECT count(*) FILTER (WHERE deleted_at = %s),"
                    " count(*) FILTER (WHERE deleted_at < %s), count(*) FILTER (WHERE is_active)"
                    " FROM pieces WHERE component_guid = %s",
                    (component_deleted_at, component_deleted_at, component))
        assert cur.fetchone() == (199, 1, 0)
        cur.execute("SELECT count(*) FROM assemblies WHERE component_guid = %s"
                    " AND deleted_at = %s", (component, component_deleted_at))
        assert cur.fetchone() == (25,)
        # Every delete is in the audit trail with the rows it touched.
        cur.execute("SELECT entity_type, rows_affected FROM audit_log"
                    " WHERE actor = %s AND entity_guid = ANY(%s::uuid[]) ORDER BY entity_type",
                    (demo.DEMO_ACTOR, [str(demo.demo_guid(nord, 1, 2, 3)), component]))
        assert cur.fetchall() == [("assembly", 9), ("component", 225)]


def test_demo_pieces_look_like_cut_bars(demo_conn):
    tenants = [str(t.company_guid) for t in demo.TENANTS]
    with demo_conn.cursor() as cur:
        cur.execute("SELECT array_agg(DISTINCT angle_left), count(DISTINCT barcode),"
                    " count(*), bool_and(outer_length > 0 AND inner_length > 0),"
                    " bool_and(trolley_cell = trolley || '/' || cell),"
                    " count(*) FILTER (WHERE profile_code IS NULL)"
                    " FROM pieces WHERE company_guid = ANY(%s::uuid[])", (tenants,))
        angles, barcodes, total, lengths_ok, slots_ok, no_profile = cur.fetchone()
    assert sorted(angles) == [45, 90]
    assert barcodes == total == 10_000
    assert lengths_ok and slots_ok and no_profile == 0


def test_demo_data_goes_through_the_services_sync_and_cascade():
    """No SQL of its own that writes rows: the loader calls the code the API runs."""
    import inspect

    source = inspect.getsource(demo)
    for statement in ("INSERT", "UPDATE", "DELETE FROM"):
        assert statement not in source, statement
    assert "sync.sync_batch(" in source and "cascade.soft_delete(" in source


def test_every_demo_row_is_a_valid_sync_item():
    from pieces_service.api.sync.schemas import BATCH_SCHEMAS
    from pieces_service.catalogue import LEVELS

    for name, rows in demo.ROWS.items():
        items = list(rows(demo.TENANTS[2]))
        plural = LEVELS[name].plural
        loaded = BATCH_SCHEMAS[name]().load({plural: items[:1000]})[plural]
        assert len(loaded) == min(len(items), 1000)
