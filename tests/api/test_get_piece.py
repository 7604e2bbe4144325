"""SPEC §4 and §7: GET /api/v1/pieces/{piece_guid}."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone

import pytest

from helpers import DIMENSIONS, TEXTS, assert_error

PIECES = "/api/v1/pieces"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Spelled out here, not imported, so that dropping one from the service fails this test.
PIECE_RESPONSE_FIELDS = {
    "guid", "piece_id", "project_guid", "component_guid", "assembly_guid", "barcode",
    "outer_length", "angle_left", "angle_right", "is_active", "deleted_at", "company_guid",
    "created_at",
}
PIECE_DETAIL_FIELDS = PIECE_RESPONSE_FIELDS | {"updated_at"} | set(DIMENSIONS) | set(TEXTS)


def url(guid):
    return f"{PIECES}/{guid}"


def test_detail_has_every_field_with_its_value(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    attrs = {name: 100 + i for i, name in enumerate(DIMENSIONS)}
    attrs.update({name: f"{name}-value" for name in TEXTS})
    piece = seed.piece(tenant, tree.project, tree.component, tree.assembly, piece_id="PCE-9",
                       created_at=datetime(2023, 10, 26, 10, 0, tzinfo=timezone.utc), **attrs)
    response = as_tenant(tenant).get(url(piece))
    assert response.status_code == 200, response.json
    assert response.mimetype == "application/json"
    body = response.json
    assert set(body) == PIECE_DETAIL_FIELDS
    for name, value in attrs.items():
        assert body[name] == value, name
    assert body["guid"] == str(piece)
    assert body["piece_id"] == "PCE-9"
    assert body["project_guid"] == str(tree.project)
    assert body["component_guid"] == str(tree.component)
    assert body["assembly_guid"] == str(tree.assembly)
    assert body["company_guid"] == str(tenant)
    assert body["is_active"] is True and body["deleted_at"] is None
    for key in ("guid", "project_guid", "component_guid", "assembly_guid", "company_guid"):
        assert UUID_RE.match(body[key]), body[key]
    assert datetime.fromisoformat(body["created_at"]) == datetime(2023, 10, 26, 10, 0,
                                                                  tzinfo=timezone.utc)
    updated = datetime.fromisoformat(body["updated_at"])
    assert updated.tzinfo is not None


def test_detail_with_no_attributes_has_them_all_as_null(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    piece = seed.piece(tenant, tree.project, tree.component)
    body = as_tenant(tenant).get(url(piece)).json
    assert set(body) == PIECE_DETAIL_FIELDS
    assert body["assembly_guid"] is None
    assert all(body[name] is None for name in DIMENSIONS + TEXTS)


def test_list_item_and_detail_agree(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    caller = as_tenant(tenant)
    item, = caller.get(PIECES).json
    detail = caller.get(url(tree.pieces[0])).json
    assert {k: detail[k] for k in PIECE_RESPONSE_FIELDS} == item


def test_absent_piece_is_404(as_tenant, tenant):
    for include_inactive in ("false", "true"):
        assert_error(as_tenant(tenant).get(url(uuid.uuid4()), include_inactive=include_inactive),
                     404, "Piece not found")


def test_soft_deleted_piece_needs_include_inactive(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    piece = seed.piece(tenant, tree.project, tree.component, active=False,
                       deleted_at="2024-05-06T07:08:09Z")
    caller = as_tenant(tenant)
    assert_error(caller.get(url(piece)), 404, "Piece not found")
    assert_error(caller.get(url(piece), include_inactive="false"), 404, "Piece not found")
    response = caller.get(url(piece), include_inactive="true")
    assert response.status_code == 200, response.json
    assert response.json["is_active"] is False
    assert datetime.fromisoformat(response.json["deleted_at"]) == \
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize("role", ["CompanyAdmin", "ProjectManager", "Operator", "Integration"])
def test_other_tenants_piece_is_403(as_tenant, seed, tenant, other_tenant, role):
    theirs = seed.tree(other_tenant, pieces_per_assembly=1)
    deleted = seed.piece(other_tenant, theirs.project, theirs.component, active=False)
    caller = as_tenant(tenant, role)
    for piece in (theirs.pieces[0], deleted):
        for include_inactive in ("false", "true"):
            assert_error(caller.get(url(piece), include_inactive=include_inactive), 403,
                         "Access to this piece is forbidden.")


def test_system_admin_reaches_any_tenants_piece(as_tenant, seed, tenant, other_tenant):
    theirs = seed.tree(other_tenant, pieces_per_assembly=1)
    deleted = seed.piece(other_tenant, theirs.project, theirs.component, active=False)
    admin = as_tenant(tenant, "SystemAdmin")
    response = admin.get(url(theirs.pieces[0]))
    assert response.status_code == 200, response.json
    assert response.json["company_guid"] == str(other_tenant)
    assert_error(admin.get(url(deleted)), 404, "Piece not found")
    assert admin.get(url(deleted), include_inactive="true").json["guid"] == str(deleted)
    assert_error(admin.get(url(uuid.uuid4())), 404, "Piece not found")


def test_uppercase_guid_in_path_works(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    response = as_tenant(tenant).get(url(str(tree.pieces[0]).upper()))
    assert response.status_code == 200, response.json
    assert response.json["guid"] == str(tree.pieces[0])


@pytest.mark.parametrize("path", [
    "not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g", "%00", "' OR 1=1 --",
    "a" * 300,
])
def test_not_a_uuid_path_is_404_or_422(as_tenant, tenant, path):
    response = as_tenant(tenant).get(f"{PIECES}/{path}")
    assert response.status_code in (404, 422), response.status_code
    assert_error(response, response.status_code)


@pytest.mark.parametrize("query, field", [
    ({"include_inactive": "perhaps"}, "include_inactive"),
    ({"limit": "5"}, "limit"),
    ({"company_guid": str(uuid.UUID(int=1))}, "company_guid"),
])
def test_bad_detail_query_is_422(as_tenant, seed, tenant, query, field):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    body = assert_error(as_tenant(tenant).get(url(tree.pieces[0]), **query), 422)
    assert field in body["errors"]


def test_row_missing_a_required_field_is_500(as_tenant, seed, admin_conn, tenant, caplog):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    guid = uuid.uuid4()
    with admin_conn.cursor() as cur:
        cur.execute("ALTER TABLE pieces ALTER COLUMN piece_id DROP NOT NULL")
    try:
        with admin_conn.cursor() as cur:
            cur.execute("INSERT INTO pieces (guid, company_guid, project_guid, component_guid,"
                        " piece_id) VALUES (%s, %s, %s, %s, NULL)",
                        (str(guid), str(tenant), str(tree.project), str(tree.component)))
        token = as_tenant(tenant).headers["Authorization"].split()[1]
        with caplog.at_level("ERROR", logger="pieces_service"):
            response = as_tenant(tenant).get(url(guid))
        assert_error(response, 500, "Piece missing required fields: ['piece_id']")
        alarms = [r for r in caplog.records if r.levelname == "ERROR"
                  and str(guid) in r.getMessage() and "piece_id" in r.getMessage()]
        assert alarms, caplog.records  # the integrity alarm is logged, never silent
        assert all(token not in r.getMessage() for r in caplog.records)
    finally:
        with admin_conn.cursor() as cur:
            cur.execute("DELETE FROM pieces WHERE guid = %s", (str(guid),))
            cur.execute("ALTER TABLE pieces ALTER COLUMN piece_id SET NOT NULL")
