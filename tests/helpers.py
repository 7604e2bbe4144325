"""What the tests share: tokens, a test client acting as one principal, a seeder that writes
hierarchies as the tables' owner, the error-shape assertion, and the SPEC §7 attribute
lists written out independently of the catalogue. Tests import these (`from helpers import
…`); `conftest.py` holds only fixtures."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass

import jwt

from pieces_service.config import Config, JWTSettings, url_text

TEST_SECRET = "test-secret-" + "x" * 40


def make_config(db_url, **overrides) -> Config:
    fields = dict(database_url=db_url, jwt=JWTSettings(TEST_SECRET, ("HS256",)),
                  db_pool_size=2, db_max_overflow=8)
    fields.update(overrides)
    return Config(**fields)


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

    def post(self, path, json=None, headers=None, **kwargs):
        return self.client.post(path, json=json, headers={**self.headers, **(headers or {})},
                                **kwargs)

    def delete(self, path, headers=None):
        return self.client.delete(path, headers={**self.headers, **(headers or {})})


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

    def many_pieces(self, company, tree, n: int, prefix: str, analyze: bool = False):
        """`n` pieces under `tree`'s component, piece_id and barcode `<prefix>-1` .. `-n`,
        in one statement; `analyze`: refresh the planner's statistics afterwards."""
        self._exec("INSERT INTO pieces (guid, company_guid, project_guid, component_guid,"
                   " piece_id, barcode) SELECT gen_random_uuid(), %s, %s, %s,"
                   " %s || '-' || n, 'B' || %s || '-' || n FROM generate_series(1, %s) AS n",
                   (str(company), str(tree.project), str(tree.component), prefix, prefix, n))
        if analyze:
            self._exec("ANALYZE pieces", ())

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


def fetch_one(conn, sql, params=()):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


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


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forge_token(header: dict, claims, key: bytes | None, digest=hashlib.sha256) -> str:
    """A JWT assembled by hand, so that nothing refuses to build the hostile ones
    (`claims` may be raw bytes; no `key` means an empty signature)."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(payload)
    signature = hmac.new(key, signing_input.encode(), digest).digest() if key else b""
    return signing_input + "." + b64url(signature)


def claims_for(company, role="Operator", **overrides):
    """Valid claims for `company` and `role`, with `overrides` applied."""
    claims = {"sub": "user-1", "company_guid": str(company), "role": role,
              "exp": int(time.time()) + 300}
    claims.update(overrides)
    return claims


# SPEC §7, as the contract lists them (not derived from the catalogue, which they check).
DIMENSIONS = (
    "outer_length", "inner_length", "angle_left", "angle_right", "assembly_width",
    "assembly_height", "reinforcement_length", "other_length", "bar_rest", "bar_length",
    "bar_cutting_tolerance", "profile_width", "profile_height", "welding_tolerance",
)
TEXTS = (
    "barcode", "orientation", "trolley", "cell", "trolley_cell", "trolley_size",
    "parent_assembly_trolley_cell", "mullion_trolley_cell", "glazing_bead_trolley_cell",
    "operations", "component_code", "component_description", "info2", "info3", "client",
    "dealer", "project_description", "project_phase", "reinforcement_code", "hardware_info",
    "glass_info", "project_number", "component_number", "water_handle", "segment_order",
    "cutting_pattern", "fixing_mode", "material_type", "project_code_parent", "bar_id",
    "profile_code", "profile_name", "lamination", "gasket", "profile_color",
    "profile_type_ra", "profile_type", "profile_code_with_color",
)


# Sync request helpers.
SYNC = "/api/v1/sync/"


def rows(admin_conn, table, company):
    """{guid: row-dict} of `table` for one tenant, read as the owner."""
    with admin_conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} WHERE company_guid = %s", (str(company),))
        names = [c.name for c in cur.description]
        return {str(r[0]): dict(zip(names, r)) for r in cur.fetchall()}


def item(kind, tree, code, **fields):
    """A valid item of `kind` under `tree`'s parents (company, project, component, assembly)."""
    base = {"company_guid": str(tree.company)}
    if kind == "projects":
        base["code"] = code
    elif kind == "components":
        base.update(project_guid=str(tree.project), code=code)
    elif kind == "assemblies":
        base.update(project_guid=str(tree.project), component_guid=str(tree.component),
                    code=code)
    else:
        base.update(project_guid=str(tree.project), component_guid=str(tree.component),
                    assembly_guid=str(tree.assembly), piece_id=code)
    base.update(fields)
    return base


def post(caller, kind, items):
    return caller.post(SYNC + kind, json={kind: items})


def ok(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


# Command-line helpers (pieces-service and python -m devtools).

def raw_url(url) -> str:
    """A URL as the user would write it (str(URL) would hide the password)."""
    return url_text(url)


def clean_env(**variables):
    """This process's environment without the service's variables, plus `variables`: for
    starting the service in a subprocess."""
    env = {key: val for key, val in os.environ.items()
           if not key.startswith(("PIECES_", "PROMETHEUS_", "GUNICORN_", "OTEL_"))
           and key not in ("DATABASE_URL", "PORT", "WEB_CONCURRENCY")}
    env.update(variables)
    return env


def run_main(capsys, main, *argv, **env):
    """`main(argv, env=env)` in this process -> (exit status, stdout, stderr)."""
    try:
        status = main(list(argv), env=env)
    except SystemExit as exc:  # argparse usage errors and --help
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, expected_status, *fragments, prog):
    """The command failed with `expected_status` and one line on stderr from `prog`."""
    assert status == expected_status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prog), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


# Held locks.

def service_backends_blocked_by(cur) -> int:
    """How many of the service's database sessions wait on a lock that the session of `cur`
    holds (pg_blocking_pids)."""
    cur.execute("SELECT pg_stat_clear_snapshot()")  # activity stats are cached per transaction
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pieces_service'"
                " AND pg_backend_pid() = ANY (pg_blocking_pids(pid))")
    return cur.fetchone()[0]


def wait_until_blocked(cur, thread, result: dict, what: str, timeout_s: float = 15) -> None:
    """Wait until a request running in `thread` (its response lands in `result`) queues on a
    lock held by the session of `cur`: the forced interleaving of a race test."""
    deadline = time.monotonic() + timeout_s
    while service_backends_blocked_by(cur) < 1:
        assert time.monotonic() < deadline, f"the {what} never queued on the lock"
        assert thread.is_alive(), result
        time.sleep(0.02)
    assert "response" not in result


# Plans, as a request's statement runs.

def explain_as_app(db_url, tenant, statement: str, params: dict, verbose=False) -> dict:
    """EXPLAIN ANALYZE's plan of `statement` run as a request runs it (pieces_app, RLS on,
    `tenant` set), with sequential and bitmap scans off: whether an index can serve it,
    however small the test table. `verbose`: each node also lists its "Output" columns."""
    from pieces_service.migrate import connect

    conn = connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL ROLE pieces_app; SET LOCAL enable_seqscan = off;"
                        " SET LOCAL enable_bitmapscan = off;"
                        " SELECT set_config('pieces.tenant', %s, true)", (str(tenant),))
            options = "ANALYZE, VERBOSE, FORMAT JSON" if verbose else "ANALYZE, FORMAT JSON"
            cur.execute(f"EXPLAIN ({options}) " + statement, params)
            return cur.fetchone()[0][0]["Plan"]
    finally:
        conn.rollback()
        conn.close()


def plan_nodes(plan: dict):
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def behind_a_dead_host(url, dead_port: int):
    """`url` as a two-host URL whose first host (127.0.0.1:`dead_port`, nothing listening)
    is down, with `target_session_attrs=read-write`: libpq must skip it (a failover)."""
    if not url.host:
        import pytest

        pytest.skip("the test database is reached over a socket, not host:port")
    return url.set(host=None, port=None, query={
        **url.query, "host": (f"127.0.0.1:{dead_port}", f"{url.host}:{url.port or 5432}"),
        "target_session_attrs": "read-write"})


def required_tool(name: str, how: str) -> str:
    """The path of the command-line tool `name`; the test is skipped, saying `how` to
    install it, when it is missing (make test installs it where apt-get is there)."""
    path = shutil.which(name)
    if path is None:
        import pytest

        pytest.skip(f"{name} is not installed ({how})")
    return path
