"""GET /livez and GET /readyz: unauthenticated probes; readyz checks the database and that
its schema is at this build's migration head."""
from __future__ import annotations

import shutil
import socket

import pytest

from helpers import make_config
from pieces_service import create_app
from pieces_service.config import database_url
from pieces_service.migrate import head_version, migrate, migration_files


@pytest.fixture
def app_without_database(db_url):
    """An app whose database URL names a port where nothing listens (held while in use)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        yield create_app(make_config(db_url.set(host="127.0.0.1", port=port)))


def test_livez_needs_no_token_and_no_database(app_without_database):
    response = app_without_database.test_client().get("/livez")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_with_migrated_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {"status": "ready", "schema_version": head_version()}


def test_readyz_when_database_unreachable(app_without_database):
    response = app_without_database.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {"detail": "Database unavailable."}
    assert response.headers["Retry-After"]


def test_readyz_when_migrations_never_ran(empty_database):
    response = create_app(make_config(empty_database)).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "detail": "Database has no schema_migrations table; run the migrations."}


def test_readyz_when_schema_is_behind_head(empty_database, tmp_path):
    *older, newest = migration_files()
    for path in older:
        shutil.copy(path, tmp_path / path.name)
    migrate(database_url(empty_database.render_as_string(hide_password=False)), tmp_path,
            echo=lambda *_: None)
    response = create_app(make_config(empty_database)).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "detail": f"Database schema is at {older[-1].stem}, this build needs {newest.stem}; "
                  "run the migrations."}


@pytest.mark.parametrize("path", ["/livez", "/readyz"])
def test_probes_answer_other_methods_with_json_405(client, path):
    response = client.post(path)
    assert response.status_code == 405
    assert "detail" in response.json
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize("invalidated, detail", [
    (True, "Database unavailable."), (False, "Database check failed.")])
def test_readyz_is_503_for_a_bare_database_error(client, monkeypatch, invalidated, detail):
    """psycopg2 raises a bare DatabaseError when the server dies mid-statement: not a 500."""
    import psycopg2
    from sqlalchemy.exc import DatabaseError

    from pieces_service.dao import health as health_dao

    def dying(conn, *, head):
        raise DatabaseError("SELECT …", {}, psycopg2.DatabaseError("server closed the "
                            "connection unexpectedly"), connection_invalidated=invalidated)

    monkeypatch.setattr(health_dao, "schema_state", dying)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"detail": detail}


def test_readyz_tells_a_broken_schema_table_from_a_missing_one(empty_database):
    """Any other ProgrammingError is not reported as "no schema_migrations table"."""
    from pieces_service.migrate import connect

    conn = connect(empty_database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE schema_migrations (something_else int)")
    finally:
        conn.close()
    response = create_app(make_config(empty_database)).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json == {"detail": "Database check failed."}
