"""Test fixtures: one migrated PostgreSQL database per run, a fresh tenant per test.

The database is `TEST_DATABASE_URL` when set, else a database on the embedded server. Each
test makes its own tenants (random company GUIDs), so tests never see each other's rows and
need no cleanup.
"""
from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import uuid

import psycopg2.errors
import pytest

from helpers import Caller, Seeder, make_config
from walls import (MODES, OWNER_ROLE, TENANT_PREDICATE, Wall, dao_queries,
                   disable_row_level_security, migrate_as_owner, without_tenant_predicates)
from pieces_service import create_app
from pieces_service.config import database_url as parse_url
from pieces_service.migrate import migrate
from pieces_service.web.logs import logging_config


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
    """Drop test databases left behind by runs that no longer exist (`pieces_test_<pid>`
    and its scratch databases `pieces_test_<pid>_<label>`)."""
    listing = server.psql("SELECT datname FROM pg_database WHERE datname LIKE 'pieces_test_%';")
    for word in listing.split():
        if word.startswith("pieces_test_") and word[12:].split("_")[0].isdigit():
            pid = int(word[12:].split("_")[0])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                server.psql(f'DROP DATABASE IF EXISTS "{word}" WITH (FORCE);')
            except PermissionError:
                pass


@pytest.fixture(scope="session")
def app(db_url):
    return create_app(make_config(db_url))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def admin_conn(db_url):
    """A connection as the tables' owner (bypasses nothing: it seeds and inspects)."""
    conn = _autocommit(db_url)
    yield conn
    conn.close()


@pytest.fixture
def as_tenant(client):
    """`as_tenant(company_guid, role)` -> a Caller for that principal."""

    def factory(company_guid, role="Operator", sub="user-1"):
        return Caller(client, company_guid, role, sub)

    return factory


@pytest.fixture
def integration(as_tenant, tenant):
    """An Integration caller of `tenant` (it may sync)."""
    return as_tenant(tenant, "Integration")


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


@pytest.fixture
def new_database(admin_conn, db_url):
    """`new_database()` -> the URL of a new, empty database on the test server (all dropped
    after the test; skipped when the test role may not create databases)."""
    made = []

    def factory():
        name = f"pieces_empty_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            with admin_conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        except psycopg2.errors.InsufficientPrivilege:
            pytest.skip("the test database's role may not create databases")
        made.append(name)
        return db_url.set(database=name)

    yield factory
    with admin_conn.cursor() as cur:
        for name in made:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database(new_database):
    """One new, unmigrated database (see `new_database`)."""
    return new_database()


@pytest.fixture(scope="session")
def scratch_database(admin_conn, db_url):
    """`scratch_database(label)` -> the URL of a new, migrated database on the test server,
    `pieces_test_<pid>_<label>`, for tests that change its schema (dropped after the run)."""
    made = []

    def factory(label):
        name = f"pieces_test_{os.getpid()}_{label}"
        with admin_conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        url = db_url.set(database=name)
        migrate(url, echo=lambda *_: None)
        return url

    yield factory
    with admin_conn.cursor() as cur:
        for name in made:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _autocommit(url):
    from pieces_service.migrate import connect

    conn = connect(url)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def predicate_only_database(scratch_database):
    """A migrated database with row-level security turned off on every table (`predicate`
    mode: the tenant predicates are the only wall)."""
    url = scratch_database("predicate")
    conn = _autocommit(url)
    try:
        assert disable_row_level_security(conn) == [
            "assemblies", "audit_log", "components", "pieces", "projects"]
    finally:
        conn.close()
    return url


@pytest.fixture(scope="session")
def owner_cluster(tmp_path_factory):
    """A private PostgreSQL whose database `pieces` is owned, migrated (`pieces-service
    migrate`) and served by a LOGIN CREATEROLE role that is not a superuser, as the README
    documents for production -> (superuser URL, owner URL)."""
    from reliability.reliability_harness import PrivatePostgres

    cluster = PrivatePostgres(tmp_path_factory.mktemp("owner-cluster"))
    try:
        cluster.server.psql(f"CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE;"
                            f" CREATE DATABASE pieces OWNER {OWNER_ROLE};")
        superuser = parse_url(cluster.server.get_uri("pieces"), "owner cluster")
        owner = superuser.set(username=OWNER_ROLE)
        migrate_as_owner(owner.render_as_string(hide_password=False))
        yield superuser, owner
    finally:
        cluster.server.cleanup()  # stops it and deletes its data directory


@pytest.fixture(scope="module", params=MODES)
def wall(request, db_url):
    """One mode of tests/walls.py (`both`, `predicate`, `rls`, `owner`): the tests using it run
    once per mode."""
    mode = request.param
    admin_url = app_url = db_url
    if mode == "predicate":
        admin_url = app_url = request.getfixturevalue("predicate_only_database")
    elif mode == "owner":
        admin_url, app_url = request.getfixturevalue("owner_cluster")
    admin = _autocommit(admin_url)
    # make_config is looked up when called: a plugin (test_replicas.py's) may wrap it.
    wall = Wall(mode, admin_url, admin, app_url, lambda *a, **k: make_config(*a, **k))
    try:
        if mode == "rls":
            with without_tenant_predicates() as removed:
                assert removed >= 50, removed
                assert not [name for statements in dao_queries().values()
                            for name, text in statements.items()
                            if TENANT_PREDICATE.search(text)]
                yield wall
        else:
            yield wall
    finally:
        wall.close()
        admin.close()


@pytest.fixture
def json_logs():
    """Apply the service's logging configuration (as gunicorn does) for one test, its stdout
    handler writing to a buffer; returns a function giving the JSON lines written so far."""
    names = ["", "gunicorn.error", "gunicorn.access", "pieces_service.access"]
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in names}
    logging.config.dictConfig(logging_config("INFO"))
    stdout, = logging.getLogger().handlers
    buffer = io.StringIO()
    stdout.setStream(buffer)

    def lines():
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield lines
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
