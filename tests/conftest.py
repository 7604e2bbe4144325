"""Test fixtures: one migrated PostgreSQL database per run, a fresh tenant per test.

The database is `TEST_DATABASE_URL` when set, else a database on the embedded server. Each
test makes its own tenants (random company GUIDs), so tests never see each other's rows and
need no cleanup.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass

import jwt
import psycopg2
import pytest

from pieces_service import create_app
from pieces_service.config import Config, JWTSettings, database_url as parse_url
from pieces_service.migrate import migrate

TEST_SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def db_url():
    """URL of the migrated test database (as its owner)."""
    raw = os.environ.get("TEST_DATABASE_URL")
    server = None
    if not raw:
        from devtools import embedded

        server = embedded.start()
        _drop_stale_test_databases(server)
        # One database per run, so concurrent runs on one machine never disturb each other.
        name = f"pieces_test_{os.getpid()}"
        raw = embedded.database_url(server, name)
    url = parse_url(raw, "TEST_DATABASE_URL")
    migrate(url, echo=lambda *_: None)
    yield url
    if server is not None:
        server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')


def _drop_stale_test_databases(server):
    """Drop test databases left behind by runs that no longer exist."""
    listing = server.psql("SELECT datname FROM pg_database WHERE datname LIKE 'pieces_test_%';")
    for word in listing.split():
        if word.startswith("pieces_test_") and word[12:].isdigit():
            pid = int(word[12:])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                server.psql(f'DROP DATABASE IF EXISTS "{word}" WITH (FORCE);')
            except PermissionError:
                pass


def make_config(db_url, **overrides) -> Config:
    fields = dict(database_url=db_url, jwt=JWTSettings(TEST_SECRET, ("HS256",)),
                  db_pool_size=2, db_max_overflow=8)
    fields.update(overrides)
    return Config(**fields)


@pytest.fixture(scope="session")
def app(db_url):
    return create_app(make_config(db_url))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def admin_conn(db_url):
    """A connection as the tables' owner (bypasses nothing: it seeds and inspects)."""
    from pieces_service.migrate import connect

    conn = connect(db_url)
    conn.autocommit = True
    yield conn
    conn.close()


def make_token(company_guid, role, *, sub="user-1", secret=TEST_SECRET, exp_in=300, **extra):
    claims = {"sub": sub, "company_guid": str(company_guid), "role": role,
              "exp": int(time.time()) + exp_in, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass
class Caller:
    """A client acting as one principal: `caller.get(path, **query)`."""

    client: object
    company_guid: uuid.UUID
    role: str
    sub: str = "user-1"

    @property
    def headers(self):
        return {"Authorization": "Bearer " + make_token(self.company_guid, self.role,
                                                        sub=self.sub)}

    def get(self, path, **query):
        return self.client.get(path, query_string=query, headers=self.headers)

    def post(self, path, json=None, **kwargs):
        return self.client.post(path, json=json, headers=self.headers, **kwargs)

    def delete(self, path):
        return self.client.delete(path, headers=self.headers)


@pytest.fixture
def as_tenant(client):
    """`as_tenant(company_guid, role)` -> a Caller for that principal."""

    def factory(company_guid, role="Operator", sub="user-1"):
        return Caller(client, company_guid, role, sub)

    return factory


class Seeder:
    """Inserts hierarchies straight into the database as the owner, for tests to read."""

    def __init__(self, conn):
        self.conn = conn

    def _exec(self, sql, params):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)

    def project(self, company, code=None, active=True, deleted_at=None):
        guid = uuid.uuid4()
        self._exec("INSERT INTO projects (guid, company_guid, code, is_active, deleted_at)"
                   " VALUES (%s, %s, %s, %s, %s)",
                   (str(guid), str(company), code or f"P-{guid.hex[:8]}", active,
                    None if active else (deleted_at or "2024-01-01T00:00:00Z")))
        return guid

    def component(self, company, project, code=None, active=True, deleted_at=None):
        guid = uuid.uuid4()
        self._exec("INSERT INTO components (guid, company_guid, project_guid, code, is_active,"
                   " deleted_at) VALUES (%s, %s, %s, %s, %s, %s)",
                   (str(guid), str(company), str(project), code or f"C-{guid.hex[:8]}", active,
                    None if active else (deleted_at or "2024-01-01T00:00:00Z")))
        return guid

    def assembly(self, company, project, component, code=None, active=True, deleted_at=None):
        guid = uuid.uuid4()
        self._exec("INSERT INTO assemblies (guid, company_guid, project_guid, component_guid,"
                   " code, is_active, deleted_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   (str(guid), str(company), str(project), str(component),
                    code or f"A-{guid.hex[:8]}", active,
                    None if active else (deleted_at or "2024-01-01T00:00:00Z")))
        return guid

    def piece(self, company, project, component, assembly=None, piece_id=None, active=True,
              deleted_at=None, created_at=None, **attrs):
        guid = uuid.uuid4()
        columns = ["guid", "company_guid", "project_guid", "component_guid", "assembly_guid",
                   "piece_id", "is_active", "deleted_at", *attrs]
        values = [str(guid), str(company), str(project), str(component),
                  str(assembly) if assembly else None, piece_id or f"PC-{guid.hex[:8]}",
                  active, None if active else (deleted_at or "2024-01-01T00:00:00Z"),
                  *attrs.values()]
        if created_at is not None:
            columns.append("created_at")
            values.append(created_at)
        self._exec(f"INSERT INTO pieces ({', '.join(columns)})"
                   f" VALUES ({', '.join(['%s'] * len(values))})", values)
        return guid

    def tree(self, company, pieces_per_assembly=2):
        """project -> component -> assembly -> pieces; returns a namespace of guids."""
        project = self.project(company)
        component = self.component(company, project)
        assembly = self.assembly(company, project, component)
        pieces = [self.piece(company, project, component, assembly)
                  for _ in range(pieces_per_assembly)]
        return Tree(company, project, component, assembly, pieces)


@dataclass
class Tree:
    company: uuid.UUID
    project: uuid.UUID
    component: uuid.UUID
    assembly: uuid.UUID
    pieces: list


@pytest.fixture
def seed(admin_conn):
    return Seeder(admin_conn)


@pytest.fixture
def tenant():
    """A fresh company GUID: a tenant nobody else in the run uses."""
    return uuid.uuid4()


@pytest.fixture
def other_tenant():
    return uuid.uuid4()


def fetch_one(conn, sql, params=()):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def psycopg2_errors():
    return psycopg2.errors


# Markers of a leaked internal error: none may ever appear in a response body.
LEAK_MARKERS = ("Traceback", 'File "', "psycopg2", "sqlalchemy", "SELECT ", "INSERT ",
                "UPDATE ", " FROM ")


def assert_error(response, status, detail=None):
    """`response` is a JSON error with `status` and a string `detail` (equal to `detail`
    when given), and leaks no traceback or SQL. Returns the body."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json", response.mimetype
    body = response.get_json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if detail is not None:
        assert body["detail"] == detail, body
    text = response.get_data(as_text=True)
    for marker in LEAK_MARKERS:
        assert marker not in text, (marker, text)
    return body


@pytest.fixture
def app_factory(db_url):
    """`app_factory(**config_overrides)` -> an app of its own (its pool closed after the test);
    `app_factory(config=Config(...))` takes a whole config."""
    made = []

    def factory(config=None, **overrides):
        built = create_app(config or make_config(db_url, **overrides))
        made.append(built)
        return built

    yield factory
    for built in made:
        engine = built.extensions["pieces_db"].get("engine")
        if engine is not None:
            engine.dispose()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge_token(header: dict, claims, key: bytes | None, digest=hashlib.sha256) -> str:
    """A JWT assembled by hand, so that nothing refuses to build the hostile ones
    (`claims` may be raw bytes; no `key` means an empty signature)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(payload)
    signature = hmac.new(key, signing_input.encode(), digest).digest() if key else b""
    return signing_input + "." + _b64(signature)


def claims_for(company, role="Operator", **overrides):
    """Valid claims for `company` and `role`, with `overrides` applied."""
    claims = {"sub": "user-1", "company_guid": str(company), "role": role,
              "exp": int(time.time()) + 300}
    claims.update(overrides)
    return claims
