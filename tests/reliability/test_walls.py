"""Each wall between tenants keeps every tenant's rows on its own, on every path.

The tests run in every mode of tests/walls.py (both walls, the tenant predicates alone,
row-level security alone, both as the production owner role), each with prepared
statements on and off. Two tenants hold mirror hierarchies: the same codes, piece_ids and
barcodes, one soft-deleted piece each, an audit trail and feed rows each, so a lookup that
lost its tenant would find the other tenant's twin. Tenant A asks every path — the list in
each shape, a cursor page, its revalidation and its counts, the detail and its owner probe,
the export, the feed, the audit trail, sync, delete and restore — with its own and the
other tenant's GUIDs; every answer is exactly A's, and B's rows never change.
"""
from __future__ import annotations

import csv
import io
import json
import uuid
from dataclasses import dataclass

import pytest

from helpers import Caller, Seeder, assert_error, item, ok, post
from pieces_service import db
from walls import visible_tenants_as_app

TABLES = ("projects", "components", "assemblies", "pieces", "audit_log")
LIST = "/api/v1/pieces"


@dataclass
class Mirror:
    """One tenant's hierarchy: project > component > assembly > 3 active pieces, and one
    soft-deleted piece, with the codes every tenant here shares."""

    company: uuid.UUID
    project: uuid.UUID
    component: uuid.UUID
    assembly: uuid.UUID
    pieces: list           # the active ones, piece_id SHARED-1.., barcode SHARED-BC-1..
    deleted: uuid.UUID     # piece_id SHARED-X


def mirror(seeder: Seeder, company) -> Mirror:
    project = seeder.project(company, code="SHARED-P")
    component = seeder.component(company, project, code="SHARED-C")
    assembly = seeder.assembly(company, project, component, code="SHARED-A")
    pieces = [seeder.piece(company, project, component, assembly, piece_id=f"SHARED-{n}",
                           barcode=f"SHARED-BC-{n}") for n in (1, 2, 3)]
    deleted = seeder.piece(company, project, component, assembly, piece_id="SHARED-X",
                           barcode="SHARED-BC-X", active=False)
    return Mirror(company, project, component, assembly, pieces, deleted)


@pytest.fixture(scope="module")
def world(wall):
    """Tenants A and B, mirrors of each other; B has deleted and restored its assembly
    (audit rows, feed rows)."""
    seeder = Seeder(wall.admin)
    a, b = mirror(seeder, uuid.uuid4()), mirror(seeder, uuid.uuid4())
    owner_b = Caller(wall.app().test_client(), b.company, "CompanyAdmin")
    for path in (f"/api/v1/assemblies/{b.assembly}", f"/api/v1/assemblies/{b.assembly}/restore"):
        response = owner_b.delete(path) if "restore" not in path else owner_b.post(path)
        assert response.status_code == 204, response.get_data(as_text=True)
    return a, b


@pytest.fixture(scope="module", params=[True, False], ids=["prepared", "plain"])
def client(request, wall):
    return wall.app(prepared=request.param).test_client()


def snapshot(admin, company) -> dict:
    """Every row of `company` in every tenant table, as the owner reads it."""
    state = {}
    with admin.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT row_to_json(t)::text FROM {table} t WHERE company_guid = %s"
                        f" ORDER BY 1", (str(company),))
            state[table] = [row for (row,) in cur.fetchall()]
    return state


@pytest.fixture
def b_untouched(wall, world):
    """B's rows are exactly as before the test."""
    _, b = world
    before = snapshot(wall.admin, b.company)
    yield
    assert snapshot(wall.admin, b.company) == before, "tenant B's rows changed"


def guids(rows) -> set[str]:
    return {row["guid"] for row in rows}


def strs(values) -> set[str]:
    return {str(value) for value in values}


def assert_only(rows, mine: Mirror, expected=None):
    """Every row is `mine`'s (and, when given, the rows are exactly `expected`)."""
    for row in rows:
        if "company_guid" in row:
            assert row["company_guid"] == str(mine.company), row
    if expected is not None:
        assert guids(rows) == strs(expected), rows


def test_the_mode_took_its_wall_away(wall, world):
    """So that no mode passes by quietly testing both walls: without a predicate,
    pieces_app sees B's rows in the `predicate` mode, and only A's in the others."""
    a, b = world
    seen = visible_tenants_as_app(wall.admin, a.company)
    if wall.mode == "predicate":
        assert str(b.company) in seen
    else:
        assert seen == {str(a.company)}
    if wall.mode == "owner":
        with wall.app().app_context():
            with db.untenanted() as conn:
                row = conn.exec_driver_sql(
                    "SELECT session_user, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles"
                    " WHERE rolname = session_user").one()
        assert tuple(row) == ("pieces_owner", False, False, True)


LIST_SHAPES = {
    "everything": lambda a: ({}, a.pieces),
    "by project": lambda a: ({"project_guid": a.project}, a.pieces),
    "by component": lambda a: ({"component_guid": a.component}, a.pieces),
    "by assembly": lambda a: ({"assembly_guid": a.assembly}, a.pieces),
    "by all three": lambda a: ({"project_guid": a.project, "component_guid": a.component,
                                "assembly_guid": a.assembly}, a.pieces),
    "by barcode": lambda a: ({"barcode": "SHARED-BC-2"}, a.pieces[1:2]),
    "by piece_id": lambda a: ({"piece_id": "SHARED-3", "project_guid": a.project},
                              a.pieces[2:]),
    "with inactive": lambda a: ({"include_inactive": "true"}, [*a.pieces, a.deleted]),
    "deleted by barcode": lambda a: ({"barcode": "SHARED-BC-X", "include_inactive": "true"},
                                     [a.deleted]),
    "deep page": lambda a: ({"offset": 1000}, []),
    "fields": lambda a: ({"fields": "guid,company_guid"}, a.pieces),
}


@pytest.mark.parametrize("shape", LIST_SHAPES)
def test_every_list_shape_shows_exactly_the_callers_rows(client, world, b_untouched, shape):
    a, _ = world
    query, expected = LIST_SHAPES[shape](a)
    me = Caller(client, a.company, "Operator")
    for prefer in (None, "count=exact", "count=planned"):
        headers = {**me.headers, **({"Prefer": prefer} if prefer else {})}
        response = client.get(LIST, query_string=query, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert_only(response.get_json(), a, expected)
        if prefer == "count=exact":
            assert response.headers["Content-Range"].endswith(f"/{len(expected)}") or (
                shape == "deep page" and response.headers["Content-Range"] == "*/3"), (
                response.headers["Content-Range"])


def test_a_cursor_walk_shows_exactly_the_callers_rows(client, world, b_untouched):
    a, _ = world
    me = Caller(client, a.company, "Operator")
    seen, path = [], f"{LIST}?limit=1"
    while path:
        response = client.get(path, headers=me.headers)
        assert response.status_code == 200
        seen += response.get_json()
        link = response.headers.get("Link")
        path = link.split(">")[0].lstrip("<") if link else None
        assert len(seen) <= 10, seen
    assert_only(seen, a, a.pieces)


@pytest.mark.parametrize("kind", ["project_guid", "component_guid", "assembly_guid"])
def test_another_tenants_parent_filters_like_one_that_does_not_exist(client, world,
                                                                      b_untouched, kind):
    a, b = world
    me = Caller(client, a.company, "Operator")
    theirs = {"project_guid": b.project, "component_guid": b.component,
              "assembly_guid": b.assembly}[kind]
    mapping = {str(theirs): str(uuid.uuid4())}
    answers = []
    for guid in (str(theirs), mapping[str(theirs)]):
        response = me.get(LIST, **{kind: guid})
        answers.append((response.status_code, response.get_data(as_text=True).replace(
            guid, "<guid>")))
        response = me.client.get("/api/v1/pieces/export", query_string={kind: guid},
                                 headers=me.headers)
        answers.append((response.status_code, response.get_data(as_text=True).replace(
            guid, "<guid>")))
    assert answers[0][0] == 404, answers
    assert answers[:2] == answers[2:]


def test_a_revalidated_page_ignores_the_other_tenants_writes(wall, client, world):
    """A's page tag is made from A's rows: B's writes (by hand, and a sync through the API)
    never change it (304); A's own do (200)."""
    a, b = world
    me = Caller(client, a.company, "Operator")
    tag = me.get(LIST, limit=100).headers["ETag"]

    def revalidated():
        return client.get(LIST, query_string={"limit": 100},
                          headers={**me.headers, "If-None-Match": tag}).status_code

    with wall.admin.cursor() as cur:  # the trigger moves each row's change_xid
        cur.execute("UPDATE pieces SET updated_at = now() WHERE company_guid = %s",
                    (str(b.company),))
    assert revalidated() == 304
    writer = Caller(client, b.company, "Integration")
    ok(post(writer, "pieces", [item("pieces", b, "SHARED-1",
                                    outer_length=int(uuid.uuid4().int % 1000))]))
    assert revalidated() == 304
    with wall.admin.cursor() as cur:
        cur.execute("UPDATE pieces SET updated_at = now() WHERE guid = %s",
                    (str(a.pieces[0]),))
    assert revalidated() == 200


def test_the_detail_answers_only_for_the_callers_pieces(client, world, b_untouched):
    a, b = world
    me = Caller(client, a.company, "Operator")
    mine = me.get(f"/api/v1/pieces/{a.pieces[0]}")
    assert mine.status_code == 200 and mine.get_json()["company_guid"] == str(a.company)
    for guid in (b.pieces[0], b.deleted):
        for inactive in ("false", "true"):
            response = me.get(f"/api/v1/pieces/{guid}", include_inactive=inactive)
            assert_error(response, 403)
            assert str(b.company) not in response.get_data(as_text=True)
    assert_error(me.get(f"/api/v1/pieces/{uuid.uuid4()}"), 404)
    reached = Caller(client, a.company, "SystemAdmin").get(f"/api/v1/pieces/{b.pieces[0]}")
    assert reached.status_code == 200  # SPEC §2: SystemAdmin reaches any tenant by GUID
    assert reached.get_json()["company_guid"] == str(b.company)


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_the_export_streams_exactly_the_callers_rows(client, world, b_untouched, fmt):
    a, _ = world
    me = Caller(client, a.company, "Operator")
    accept = {"ndjson": "application/x-ndjson", "csv": "text/csv"}[fmt]
    for query, expected in (({}, a.pieces), ({"include_inactive": "true"},
                                             [*a.pieces, a.deleted]),
                            ({"assembly_guid": a.assembly}, a.pieces)):
        response = client.get("/api/v1/pieces/export", query_string=query,
                              headers={**me.headers, "Accept": accept})
        assert response.status_code == 200, response.get_data(as_text=True)
        text = response.get_data(as_text=True)
        rows = ([json.loads(line) for line in text.splitlines()] if fmt == "ndjson"
                else list(csv.DictReader(io.StringIO(text))))
        assert_only(rows, a, expected)


@pytest.mark.parametrize("plural", ["projects", "components", "assemblies", "pieces"])
def test_the_feed_carries_only_the_callers_rows(client, world, b_untouched, plural):
    a, b = world
    me = Caller(client, a.company, "Operator")
    expected = {"projects": [a.project], "components": [a.component],
                "assemblies": [a.assembly], "pieces": [*a.pieces, a.deleted]}[plural]
    page = ok(me.get(f"/api/v1/changes/{plural}", limit=1000))
    assert_only(page["changes"], a, expected)
    again = ok(me.get(f"/api/v1/changes/{plural}", since=page["next"]))
    assert again["changes"] == []
    theirs = Caller(client, b.company, "Operator")
    assert_error(theirs.get(f"/api/v1/changes/{plural}", since=page["next"]), 422)
    assert_error(me.get(f"/api/v1/changes/{plural}", company_guid=str(b.company)), 403)


def test_the_audit_trail_shows_only_the_callers_entries(wall, client, world, b_untouched):
    a, b = world
    admin = Caller(client, a.company, "CompanyAdmin")
    entries = ok(admin.get("/api/v1/audit", limit=1000))
    assert all(entry["company_guid"] == str(a.company) for entry in entries), entries
    assert ok(admin.get("/api/v1/audit", entity_guid=str(b.assembly))) == []
    assert_error(admin.get("/api/v1/audit", company_guid=str(b.company)), 403)
    with wall.admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM audit_log WHERE company_guid = %s", (str(b.company),))
        assert cur.fetchone()[0] >= 2  # there was something to leak


def test_sync_never_writes_the_other_tenants_rows(wall, client, world, b_untouched):
    """B's GUIDs as item guids or parents are refused; a natural key B also has (same
    piece_id, code) under A's own parents updates A's row alone."""
    a, b = world
    writer = Caller(client, a.company, "Integration")
    for kind, guid in (("projects", b.project), ("components", b.component),
                       ("assemblies", b.assembly), ("pieces", b.pieces[0])):
        response = post(writer, kind, [item(kind, a, "SHARED-Z", guid=str(guid))])
        assert response.status_code == 403, response.get_data(as_text=True)
    response = post(writer, "pieces", [
        {**item("pieces", b, "SHARED-Y"), "company_guid": str(a.company)}])
    assert response.status_code in (403, 404, 409, 422), response.get_data(as_text=True)
    length = int(uuid.uuid4().int % 1000) + 1
    result = ok(post(writer, "pieces", [item("pieces", a, "SHARED-1",
                                             outer_length=length)]))
    assert result["updated"] == 1 and result["inserted"] == 0, result
    assert Caller(client, a.company, "Operator").get(
        f"/api/v1/pieces/{a.pieces[0]}").get_json()["outer_length"] == length


@pytest.mark.parametrize("level", ["projects", "components", "assemblies", "pieces"])
def test_delete_and_restore_of_the_other_tenants_rows_are_404(client, world, b_untouched,
                                                              level):
    a, b = world
    manager = Caller(client, a.company, "CompanyAdmin")
    guid = {"projects": b.project, "components": b.component, "assemblies": b.assembly,
            "pieces": b.pieces[0]}[level]
    assert_error(manager.delete(f"/api/v1/{level}/{guid}"), 404)
    if level == "pieces":
        assert_error(manager.post(f"/api/v1/pieces/{b.deleted}/restore"), 404)
    assert_error(manager.post(f"/api/v1/{level}/{guid}/restore"), 404)


def test_a_cascade_takes_only_the_callers_rows(wall, client, world, b_untouched):
    """A deletes and restores its own project: every row under it, none of B's twins."""
    a, _ = world
    manager = Caller(client, a.company, "CompanyAdmin")
    me = Caller(client, a.company, "Operator")
    assert manager.delete(f"/api/v1/projects/{a.project}").status_code == 204
    assert ok(me.get(LIST)) == []
    assert manager.post(f"/api/v1/projects/{a.project}/restore").status_code == 204
    assert_only(ok(me.get(LIST)), a, a.pieces)
