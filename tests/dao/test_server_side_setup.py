"""What each request's statements ran as, told by the server itself.

A scratch database gets a witness: a restrictive policy on every tenant table, for
`pieces_app` (and `pieces_probe`, the owner probe's role), whose function admits every row
and raises a NOTICE with what the server sees while the statement reads it:
`current_user`, the tenant setting, `transaction_read_only` and the message the client sent
(`current_query()`). A statement run as any other role (the owner, a superuser) is not under
the policy and raises no notice at all. The notices arrive on the pooled connection (a pool
of one), which the test reads after each request. A policy is checked on the rows a
statement reads, so every request here reads at least one row.

So for each read — prepared (`EXECUTE`) and plain — the test checks on the server side that
it ran as `pieces_app`, in the request's tenant, read-only; and for each write that it ran
as `pieces_app` in the tenant, read-write.
"""
from __future__ import annotations

import json
import uuid

import pytest

from helpers import Caller, Seeder, item, make_config, ok, post
from pieces_service import create_app, db

WITNESS = """
CREATE FUNCTION pieces_test_witness(tbl text) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RAISE NOTICE 'witness %', json_build_object(
        'table', tbl, 'user', current_user,
        'tenant', current_setting('pieces.tenant', true),
        'read_only', current_setting('transaction_read_only'),
        'query', current_query());
    RETURN true;
END
$$;
"""
TABLES = ("projects", "components", "assemblies", "pieces", "audit_log")


@pytest.fixture(scope="module")
def witnessed(scratch_database, admin_conn):
    """(database URL, owner connection) of a migrated scratch database with the witness."""
    url = scratch_database("witness")
    from pieces_service.migrate import connect

    conn = connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(WITNESS)
        for table in TABLES:
            cur.execute(f"CREATE POLICY witness ON {table} AS RESTRICTIVE"
                        f" TO pieces_app, pieces_probe USING (pieces_test_witness('{table}'))")
    yield url, conn
    conn.close()


class Notices:
    """Keeps every notice the connection receives. False when tested, so that SQLAlchemy's
    dialect neither logs nor clears it after its statements."""

    def __init__(self):
        self.kept: list[str] = []

    def append(self, notice: str) -> None:
        self.kept.append(notice)

    def __bool__(self) -> bool:
        return False


class Witness:
    """The service on the witnessed database, on one pooled connection whose notices it
    keeps."""

    def __init__(self, url, prepared: bool):
        self.app = create_app(make_config(url, db_pool_size=1, db_max_overflow=0,
                                          db_prepared_statements=prepared))
        self.client = self.app.test_client()

    def _connection(self):
        with self.app.app_context():
            pooled = db.get_engine().raw_connection()
        try:
            return pooled.dbapi_connection
        finally:
            pooled.close()  # back to the pool: the request takes the same one

    def notices(self, request) -> tuple[object, list[dict]]:
        """(the response of `request()`, the witness reports its statements raised)."""
        connection = self._connection()
        connection.notices = notices = Notices()
        response = request()
        assert self._connection() is connection, "the request used another connection"
        reports = [json.loads(notice.split("witness ", 1)[1])
                   for notice in notices.kept if "witness " in notice]
        return response, reports

    def close(self):
        engine = self.app.extensions["pieces_db"].get("engine")
        if engine is not None:
            engine.dispose()


@pytest.fixture(scope="module", params=[True, False], ids=["prepared", "plain"])
def witness(request, witnessed):
    made = Witness(witnessed[0], request.param)
    made.prepared = request.param
    yield made
    made.close()


@pytest.fixture(scope="module")
def world(witnessed):
    """Two tenants with a tree each; the first's assembly has a piece with barcode and
    piece_id SCAN-1."""
    seeder = Seeder(witnessed[1])
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    trees = {mine: seeder.tree(mine, 3), theirs: seeder.tree(theirs, 2)}
    tree = trees[mine]
    seeder.piece(mine, tree.project, tree.component, tree.assembly, piece_id="SCAN-1",
                 barcode="SCAN-1")
    return mine, theirs, trees


def caller(witness, tenant, role="CompanyAdmin"):
    return Caller(witness.client, tenant, role)


def assert_ran_as_app(reports, tenant, *, read_only: bool, prepared: bool | None = None,
                      user="pieces_app"):
    """Every witnessed statement ran as `user` (pieces_app; the owner probe's function as
    pieces_probe) in `tenant`, read-only or not; and, when `prepared` is given, was sent as
    EXECUTE of a prepared statement or not."""
    assert reports, f"no statement read a row under {user}'s row-level security"
    for report in reports:
        assert report["user"] == user, report
        assert report["tenant"] == str(tenant), report
        assert report["read_only"] == ("on" if read_only else "off"), report
        if prepared is not None:
            assert ("EXECUTE pieces_" in report["query"]) is prepared, report["query"]


def _list_reads(mine, theirs, trees):
    tree = trees[mine]
    return {
        "list": ({}, {}),
        "list by project": ({"project_guid": str(tree.project)}, {}),
        "list by component and assembly": ({"component_guid": str(tree.component),
                                            "assembly_guid": str(tree.assembly)}, {}),
        "list by barcode": ({"barcode": "SCAN-1"}, {}),
        "list by piece_id": ({"piece_id": "SCAN-1", "project_guid": str(tree.project)}, {}),
        "list with inactive": ({"include_inactive": "true"}, {}),
        "deep list page": ({"offset": "1000"}, {}),  # reads (and skips) every row
        "list counted": ({}, {"Prefer": "count=exact"}),
        "list counted, planned": ({}, {"Prefer": "count=planned"}),
    }


LIST_READS = ("list", "list by project", "list by component and assembly", "list by barcode",
              "list by piece_id", "list with inactive", "deep list page", "list counted",
              "list counted, planned")


@pytest.mark.parametrize("name", LIST_READS)
def test_each_list_shape_runs_as_the_app_in_the_tenant_read_only(witness, world, name):
    mine, theirs, trees = world
    query, headers = _list_reads(mine, theirs, trees)[name]
    me = caller(witness, mine, "Operator")
    response, reports = witness.notices(
        lambda: me.client.get("/api/v1/pieces", query_string=query,
                              headers={**me.headers, **headers}))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)


def test_a_cursor_page_and_a_revalidation_run_as_the_app(witness, world):
    mine, _, _ = world
    me = caller(witness, mine, "Operator")
    first = me.get("/api/v1/pieces", limit=2)
    assert first.status_code == 200
    link = first.headers["Link"].split(">")[0].lstrip("<")
    response, reports = witness.notices(lambda: me.client.get(link, headers=me.headers))
    assert response.status_code == 200 and response.get_json()
    assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)
    tag = first.headers["ETag"]
    response, reports = witness.notices(lambda: me.client.get(
        "/api/v1/pieces", query_string={"limit": 2},
        headers={**me.headers, "If-None-Match": tag}))
    assert response.status_code == 304
    assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)


def test_the_detail_runs_as_the_app(witness, world):
    mine, _, trees = world
    me = caller(witness, mine, "Operator")
    response, reports = witness.notices(lambda: me.get(f"/api/v1/pieces/{trees[mine].pieces[0]}"))
    assert response.status_code == 200
    assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)


def test_the_detail_of_another_tenants_piece_probes_its_owner_in_the_request(witness, world):
    """The row is not visible, so the statement's owner probe runs: its SECURITY DEFINER
    function reads as pieces_probe, inside the request's read-only transaction and tenant."""
    mine, theirs, trees = world
    me = caller(witness, mine, "Operator")
    response, reports = witness.notices(lambda: me.get(
        f"/api/v1/pieces/{trees[theirs].pieces[0]}"))
    assert response.status_code == 403
    assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared,
                      user="pieces_probe")


def test_the_change_feed_pages_run_as_the_app(witness, world):
    """The first page of each level, and a page after a token (something written since)."""
    mine, _, trees = world
    me = caller(witness, mine, "Operator")
    for level in ("projects", "components", "assemblies", "pieces"):
        response, reports = witness.notices(lambda: me.get(f"/api/v1/changes/{level}",
                                                           limit=1))
        assert response.status_code == 200 and len(response.get_json()["changes"]) == 1
        assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)
    token = me.get("/api/v1/changes/pieces", limit=1000).get_json()["next"]
    piece = item("pieces", trees[mine], f"F-{uuid.uuid4().hex[:8]}")
    assert ok(post(caller(witness, mine), "pieces", [piece]))["inserted"] == 1
    response, reports = witness.notices(lambda: me.get("/api/v1/changes/pieces", since=token))
    assert response.status_code == 200 and len(response.get_json()["changes"]) == 1
    assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)


def test_writes_and_the_audit_trail_run_as_the_app_in_the_tenant(witness, world):
    """Delete and restore (read-write), then the audit trail of them (read-only, prepared
    when on), then a sync and an export."""
    mine, _, trees = world
    tree = trees[mine]
    admin = caller(witness, mine)
    path = f"/api/v1/assemblies/{tree.assembly}"
    for request in (lambda: admin.delete(path), lambda: admin.post(path + "/restore")):
        response, reports = witness.notices(request)
        assert response.status_code == 204, response.get_data(as_text=True)
        assert_ran_as_app(reports, mine, read_only=False)
    for query in ({}, {"entity_guid": str(tree.assembly)}):
        response, reports = witness.notices(lambda: admin.get("/api/v1/audit", **query))
        assert response.status_code == 200 and len(response.get_json()) >= 2
        assert_ran_as_app(reports, mine, read_only=True, prepared=witness.prepared)
    piece = item("pieces", tree, f"W-{uuid.uuid4().hex[:8]}")
    response, reports = witness.notices(lambda: post(admin, "pieces", [piece]))
    assert ok(response)["inserted"] == 1
    assert_ran_as_app(reports, mine, read_only=False)
    response, reports = witness.notices(
        lambda: admin.client.get("/api/v1/pieces/export", headers=admin.headers).get_data())
    assert response.count(b"\n") >= 4
    assert_ran_as_app(reports, mine, read_only=True, prepared=False)


def test_system_admin_reaching_another_tenant_runs_in_that_tenant(witness, world):
    """SystemAdmin's read of another tenant's piece: the read in its own tenant finds no row
    and probes the owner (as pieces_probe), then the piece is read again in the owner's
    tenant, as pieces_app: never with no tenant, never as another role."""
    mine, theirs, trees = world
    admin = caller(witness, mine, "SystemAdmin")
    response, reports = witness.notices(lambda: admin.get(
        f"/api/v1/pieces/{trees[theirs].pieces[0]}"))
    assert response.status_code == 200
    by_role = {}
    for report in reports:
        by_role.setdefault(report["user"], []).append(report)
    assert set(by_role) == {"pieces_app", "pieces_probe"}, reports
    assert_ran_as_app(by_role["pieces_probe"], mine, read_only=True, user="pieces_probe")
    assert_ran_as_app(by_role["pieces_app"], theirs, read_only=True)
