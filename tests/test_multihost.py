"""A libpq multi-host `DATABASE_URL` (docs/high-availability.md) at every entry point: the
one conversion to a libpq connection string (`config.libpq_dsn`), and, on real PostgreSQL,
`pieces-service migrate` and the service on a URL whose first host is down."""
from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import psycopg2
import pytest

from pieces_service import create_app, db
from pieces_service.config import database_url, libpq_dsn, url_text
from pieces_service.migrate import connect, migration_files

from helpers import Caller, behind_a_dead_host, clean_env, make_config


def _dsn(raw: str) -> dict:
    return psycopg2.extensions.parse_dsn(libpq_dsn(database_url(raw)))


def test_one_host():
    assert _dsn("postgresql://app:pw@db.internal:6543/pieces") == {
        "host": "db.internal", "port": "6543", "dbname": "pieces", "user": "app",
        "password": "pw"}


@pytest.mark.parametrize("raw", [
    "postgresql://app@/pieces?host=h1:5432&host=h2:5433&target_session_attrs=read-write",
    "postgresql://app@/pieces?host=h1,h2&port=5432,5433&target_session_attrs=read-write",
    "postgresql://app@h1:5432,h2:5433/pieces?target_session_attrs=read-write",  # libpq's form
])
def test_several_hosts_with_their_ports(raw):
    assert _dsn(raw) == {"host": "h1,h2", "port": "5432,5433", "dbname": "pieces",
                         "user": "app", "target_session_attrs": "read-write"}


def test_a_unix_socket_directory():
    assert _dsn("postgresql://app@/pieces?host=/run/postgresql") == {
        "host": "/run/postgresql", "dbname": "pieces", "user": "app"}


def test_a_password_with_special_characters_survives():
    password = "p@ss w'o\\rd:/?#&="
    url = database_url("postgresql://app@/pieces?host=h1:5432&host=h2:5432").set(
        password=password)
    assert _dsn(url_text(url))["password"] == password
    assert psycopg2.extensions.parse_dsn(libpq_dsn(url))["password"] == password


def test_the_text_form_reads_back_as_the_same_url():
    url = database_url("postgresql://app:pw@h1:5432,h2:5433/pieces?target_session_attrs=any")
    assert database_url(url_text(url)) == url


@pytest.fixture
def dead_port():
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_migrate_skips_a_dead_first_host(empty_database, dead_port):
    url = behind_a_dead_host(empty_database, dead_port)
    result = subprocess.run([sys.executable, "-m", "pieces_service.cli", "migrate"],
                            env=clean_env(DATABASE_URL=url_text(url)), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"{len(migration_files())} migration(s) applied" in result.stdout
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), inet_server_port() FROM schema_migrations")
            assert cur.fetchone() == (len(migration_files()), empty_database.port or 5432)
    finally:
        conn.close()


def test_the_service_writes_and_reads_past_a_dead_first_host(db_url, dead_port):
    app = create_app(make_config(behind_a_dead_host(db_url, dead_port)))
    company = uuid.uuid4()
    caller = Caller(app.test_client(), company, "SystemAdmin")
    try:
        synced = caller.post("/api/v1/sync/projects", json={"projects": [
            {"company_guid": str(company), "code": "HA-1"}]})
        assert synced.status_code == 200, synced.get_data(as_text=True)
        assert synced.json["inserted"] == 1
        listed = caller.get("/api/v1/changes/projects")
        assert listed.status_code == 200
        assert [row["code"] for row in listed.json["changes"]] == ["HA-1"]
        assert caller.get("/readyz").status_code == 200
    finally:
        db.dispose(app)
