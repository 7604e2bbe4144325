"""SPEC §6: POST /api/v1/sync/{projects,components,assemblies,pieces}."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from helpers import SYNC, Tree, assert_error, fetch_one, item, ok, post, rows

KINDS = ("projects", "components", "assemblies", "pieces")


# --- upsert -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_insert_then_identical_resend_changes_nothing(as_tenant, seed, admin_conn, tenant,
                                                      kind):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    before = rows(admin_conn, kind, tenant)
    extra = {"outer_length": 1200, "profile_code": "PF1"} if kind == "pieces" \
        else {"name": "Name"}
    given = str(uuid.uuid4())
    batch = [item(kind, tree, "K-1", **extra), item(kind, tree, "K-2", guid=given)]
    caller = as_tenant(tenant, "Integration")
    assert ok(post(caller, kind, batch)) == {"inserted": 2, "updated": 0, "unchanged": 0}
    after = rows(admin_conn, kind, tenant)
    new = {g: r for g, r in after.items() if g not in before}
    assert len(new) == 2 and given in new
    code_column = "piece_id" if kind == "pieces" else "code"
    assert sorted(r[code_column] for r in new.values()) == ["K-1", "K-2"]
    assert all(r["is_active"] and r["deleted_at"] is None for r in new.values())

    assert ok(post(caller, kind, batch)) == {"inserted": 0, "updated": 0, "unchanged": 2}
    again = rows(admin_conn, kind, tenant)
    assert again == after  # updated_at included: nothing was rewritten


@pytest.mark.parametrize("kind", KINDS)
def test_update_by_guid(as_tenant, seed, admin_conn, tenant, kind):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    caller = as_tenant(tenant, "CompanyAdmin")
    guid = str(uuid.uuid4())
    ok(post(caller, kind, [item(kind, tree, "OLD", guid=guid)]))
    first = rows(admin_conn, kind, tenant)[guid]
    changed = {"barcode": "BC-2", "outer_length": 99} if kind == "pieces" else {"name": "New"}
    assert ok(post(caller, kind, [item(kind, tree, "NEW", guid=guid, **changed)])) == \
        {"inserted": 0, "updated": 1, "unchanged": 0}
    second = rows(admin_conn, kind, tenant)[guid]
    assert second["piece_id" if kind == "pieces" else "code"] == "NEW"
    for key, value in changed.items():
        assert second[key] == value
    assert second["created_at"] == first["created_at"]
    assert second["updated_at"] > first["updated_at"]


@pytest.mark.parametrize("kind", KINDS)
def test_match_by_natural_key_without_guid(as_tenant, seed, admin_conn, tenant, kind):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    caller = as_tenant(tenant, "Integration")
    ok(post(caller, kind, [item(kind, tree, "NK")]))
    before = rows(admin_conn, kind, tenant)
    changed = {"outer_length": 7} if kind == "pieces" else {"name": "Renamed"}
    assert ok(post(caller, kind, [item(kind, tree, "NK", **changed)])) == \
        {"inserted": 0, "updated": 1, "unchanged": 0}
    after = rows(admin_conn, kind, tenant)
    assert set(after) == set(before)
    key, value = next(iter(changed.items()))
    assert [r[key] for r in after.values() if r.get("code", r.get("piece_id")) == "NK"] == [value]


@pytest.mark.parametrize("how", ["null", "omitted"])
def test_update_clears_a_value_sent_as_null_or_left_out(as_tenant, seed, admin_conn, tenant,
                                                        how):
    """A sync item is the whole row: a field sent as null, or not sent, is stored as NULL."""
    tree = seed.tree(tenant, 0)
    caller = as_tenant(tenant, "Integration")
    guid = str(uuid.uuid4())
    full = {"barcode": "BC-1", "outer_length": 1200, "profile_code": "P-70"}
    ok(post(caller, "pieces", [item("pieces", tree, "P-1", guid=guid, **full)]))
    assert {k: rows(admin_conn, "pieces", tenant)[guid][k] for k in full} == full
    cleared = {"barcode": None, "outer_length": None} if how == "null" else {}
    assert ok(post(caller, "pieces", [item("pieces", tree, "P-1", guid=guid,
                                           profile_code="P-70", **cleared)])) == \
        {"inserted": 0, "updated": 1, "unchanged": 0}
    row = rows(admin_conn, "pieces", tenant)[guid]
    assert (row["barcode"], row["outer_length"], row["profile_code"]) == (None, None, "P-70")


def test_same_piece_id_in_another_project_is_another_piece(as_tenant, seed, admin_conn, tenant):
    a, b = seed.tree(tenant, 0), seed.tree(tenant, 0)
    caller = as_tenant(tenant, "Integration")
    assert ok(post(caller, "pieces", [item("pieces", a, "P-1"), item("pieces", b, "P-1")])) == \
        {"inserted": 2, "updated": 0, "unchanged": 0}
    assert len(rows(admin_conn, "pieces", tenant)) == 2


def test_piece_without_assembly(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, 0)
    caller = as_tenant(tenant, "Integration")
    assert ok(post(caller, "pieces", [item("pieces", tree, "P-1", assembly_guid=None)])) == \
        {"inserted": 1, "updated": 0, "unchanged": 0}
    row, = rows(admin_conn, "pieces", tenant).values()
    assert row["assembly_guid"] is None


def test_every_piece_attribute_is_stored(as_tenant, seed, tenant):
    from helpers import DIMENSIONS, TEXTS

    tree = seed.tree(tenant, 0)
    attrs = {name: i - 5 for i, name in enumerate(DIMENSIONS)}
    attrs.update({name: f"{name}: ünïcødé ✓" for name in TEXTS})
    guid = str(uuid.uuid4())
    caller = as_tenant(tenant, "Integration")
    ok(post(caller, "pieces", [item("pieces", tree, "P-1", guid=guid, **attrs)]))
    body = caller.get(f"/api/v1/pieces/{guid}").json
    assert {name: body[name] for name in attrs} == attrs


def test_empty_batch_is_a_no_op(as_tenant, tenant):
    for kind in KINDS:
        assert ok(post(as_tenant(tenant, "Integration"), kind, [])) == \
            {"inserted": 0, "updated": 0, "unchanged": 0}


def test_1000_items_are_accepted_and_1001_are_400(as_tenant, admin_conn, tenant):
    caller = as_tenant(tenant, "Integration")
    batch = [{"company_guid": str(tenant), "code": f"P-{i}"} for i in range(1001)]
    assert_error(post(caller, "projects", batch), 400)
    assert rows(admin_conn, "projects", tenant) == {}
    assert ok(post(caller, "projects", batch[:1000])) == \
        {"inserted": 1000, "updated": 0, "unchanged": 0}


@pytest.mark.parametrize("kind", KINDS)
def test_more_than_1000_items_is_400_for_each_endpoint(as_tenant, tenant, kind):
    body = assert_error(post(as_tenant(tenant, "Integration"), kind, [{}] * 1001), 400)
    assert "1000" in body["detail"]


# --- tenancy ------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["CompanyAdmin", "Integration"])
def test_company_guid_of_another_tenant_is_403(as_tenant, seed, admin_conn, tenant,
                                               other_tenant, role):
    theirs = seed.tree(other_tenant, 0)
    mine = seed.tree(tenant, 0)
    before = rows(admin_conn, "pieces", other_tenant)
    batch = [item("pieces", mine, "MINE"), item("pieces", theirs, "THEIRS")]
    body = assert_error(post(as_tenant(tenant, role), "pieces", batch), 403,
                        "User does not have access to the specified company.")
    assert list(body["errors"]["pieces"]) == ["1"]
    assert "company_guid" in body["errors"]["pieces"]["1"]
    assert rows(admin_conn, "pieces", other_tenant) == before
    assert rows(admin_conn, "pieces", tenant) == {}


def test_system_admin_writes_any_tenant_in_one_mixed_batch(as_tenant, seed, admin_conn, tenant,
                                                            other_tenant):
    mine, theirs = seed.tree(tenant, 0), seed.tree(other_tenant, 0)
    admin = as_tenant(tenant, "SystemAdmin")
    batch = [item("pieces", mine, "A"), item("pieces", theirs, "B"),
             item("pieces", mine, "C")]
    assert ok(post(admin, "pieces", batch)) == {"inserted": 3, "updated": 0, "unchanged": 0}
    assert sorted(r["piece_id"] for r in rows(admin_conn, "pieces", tenant).values()) == \
        ["A", "C"]
    assert [r["piece_id"] for r in rows(admin_conn, "pieces", other_tenant).values()] == ["B"]
    assert ok(post(admin, "pieces", batch)) == {"inserted": 0, "updated": 0, "unchanged": 3}


def test_system_admin_writes_another_tenant_alone(as_tenant, seed, admin_conn, tenant,
                                                  other_tenant):
    admin = as_tenant(tenant, "SystemAdmin")
    assert ok(post(admin, "projects", [{"company_guid": str(other_tenant), "code": "X"}])) == \
        {"inserted": 1, "updated": 0, "unchanged": 0}
    assert [r["code"] for r in rows(admin_conn, "projects", other_tenant).values()] == ["X"]


@pytest.mark.parametrize("role", ["Integration", "SystemAdmin"])
@pytest.mark.parametrize("kind", KINDS)
def test_guid_of_another_tenant_is_403_and_nothing_written(as_tenant, seed, admin_conn, tenant,
                                                           other_tenant, kind, role):
    theirs = seed.tree(other_tenant, 1)
    mine = seed.tree(tenant, 0)
    their_guid = {"projects": theirs.project, "components": theirs.component,
                  "assemblies": theirs.assembly, "pieces": theirs.pieces[0]}[kind]
    before_mine = rows(admin_conn, kind, tenant)
    before_theirs = rows(admin_conn, kind, other_tenant)
    batch = [item(kind, mine, "GOOD"), item(kind, mine, "STEAL", guid=str(their_guid))]
    body = assert_error(post(as_tenant(tenant, role), kind, batch), 403)
    assert "1" in body["detail"] and "guid" in body["detail"]
    assert rows(admin_conn, kind, tenant) == before_mine
    assert rows(admin_conn, kind, other_tenant) == before_theirs


# --- parents ------------------------------------------------------------------------------

def _assert_names_item(body, kind, index, field):
    assert f"{kind}[{index}].{field}" in body["detail"], body
    assert field in body["errors"][kind][str(index)], body


@pytest.mark.parametrize("kind, field", [
    ("components", "project_guid"),
    ("assemblies", "project_guid"),
    ("assemblies", "component_guid"),
    ("pieces", "project_guid"),
    ("pieces", "component_guid"),
    ("pieces", "assembly_guid"),
])
def test_missing_parent_is_422_naming_index_and_field(as_tenant, seed, admin_conn, tenant,
                                                      kind, field):
    tree = seed.tree(tenant, 0)
    before = rows(admin_conn, kind, tenant)
    batch = [item(kind, tree, "OK-0"), item(kind, tree, "OK-1"),
             item(kind, tree, "BAD", **{field: str(uuid.uuid4())})]
    body = assert_error(post(as_tenant(tenant, "Integration"), kind, batch), 422)
    _assert_names_item(body, kind, 2, field)
    assert rows(admin_conn, kind, tenant) == before


@pytest.mark.parametrize("kind, field", [
    ("components", "project_guid"),
    ("assemblies", "component_guid"),
    ("pieces", "component_guid"),
    ("pieces", "assembly_guid"),
])
def test_other_tenants_parent_is_422(as_tenant, seed, admin_conn, tenant, other_tenant, kind,
                                     field):
    tree, theirs = seed.tree(tenant, 0), seed.tree(other_tenant, 0)
    before_mine = rows(admin_conn, kind, tenant)
    before_theirs = rows(admin_conn, kind, other_tenant)
    parent = {"project_guid": theirs.project, "component_guid": theirs.component,
              "assembly_guid": theirs.assembly}[field]
    batch = [item(kind, tree, "BAD", **{field: str(parent)})]
    for role in ("Integration", "SystemAdmin"):
        body = assert_error(post(as_tenant(tenant, role), kind, batch), 422)
        _assert_names_item(body, kind, 0, field)
    assert rows(admin_conn, kind, tenant) == before_mine
    assert rows(admin_conn, kind, other_tenant) == before_theirs


def test_component_of_another_project_is_422(as_tenant, seed, admin_conn, tenant):
    a, b = seed.tree(tenant, 0), seed.tree(tenant, 0)
    caller = as_tenant(tenant, "Integration")
    bad_assembly = item("assemblies", a, "X", component_guid=str(b.component))
    body = assert_error(post(caller, "assemblies", [bad_assembly]), 422)
    _assert_names_item(body, "assemblies", 0, "component_guid")
    bad_piece = item("pieces", a, "X", component_guid=str(b.component), assembly_guid=None)
    body = assert_error(post(caller, "pieces", [bad_piece]), 422)
    _assert_names_item(body, "pieces", 0, "component_guid")
    assert rows(admin_conn, "pieces", tenant) == {}


def test_assembly_of_another_component_is_422(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, 0)
    sibling = seed.component(tenant, tree.project)
    other_assembly = seed.assembly(tenant, tree.project, sibling)
    body = assert_error(post(as_tenant(tenant, "Integration"), "pieces",
                             [item("pieces", tree, "X", assembly_guid=str(other_assembly))]),
                        422)
    _assert_names_item(body, "pieces", 0, "assembly_guid")
    assert rows(admin_conn, "pieces", tenant) == {}


def test_batch_whose_last_item_is_bad_writes_nothing(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, 0)
    caller = as_tenant(tenant, "Integration")
    existing = str(uuid.uuid4())
    ok(post(caller, "pieces", [item("pieces", tree, "E", guid=existing, outer_length=1)]))
    before = rows(admin_conn, "pieces", tenant)
    batch = [item("pieces", tree, f"N-{i}") for i in range(5)]
    batch.insert(0, item("pieces", tree, "E", guid=existing, outer_length=2))
    batch.append(item("pieces", tree, "LAST", project_guid=str(uuid.uuid4())))
    body = assert_error(post(caller, "pieces", batch), 422)
    _assert_names_item(body, "pieces", 6, "project_guid")
    assert rows(admin_conn, "pieces", tenant) == before


def test_mixed_tenant_batch_is_all_or_nothing(as_tenant, seed, admin_conn, tenant,
                                              other_tenant):
    mine, theirs = seed.tree(tenant, 0), seed.tree(other_tenant, 0)
    batch = [item("pieces", mine, "A"), item("pieces", theirs, "B"),
             item("pieces", theirs, "C", component_guid=str(mine.component))]
    body = assert_error(post(as_tenant(tenant, "SystemAdmin"), "pieces", batch), 422)
    _assert_names_item(body, "pieces", 2, "component_guid")
    assert rows(admin_conn, "pieces", tenant) == {}
    assert rows(admin_conn, "pieces", other_tenant) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_guid_in_one_batch_is_422(as_tenant, seed, admin_conn, tenant, kind):
    tree = seed.tree(tenant, 0)
    guid = str(uuid.uuid4())
    before = rows(admin_conn, kind, tenant)
    body = assert_error(post(as_tenant(tenant, "Integration"), kind,
                             [item(kind, tree, "A", guid=guid), item(kind, tree, "B", guid=guid)]),
                        422)
    _assert_names_item(body, kind, 1, "guid")
    assert rows(admin_conn, kind, tenant) == before


def test_new_guid_with_an_existing_natural_key_is_409(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, 1)
    before = rows(admin_conn, "pieces", tenant)
    piece_id = before[str(tree.pieces[0])]["piece_id"]
    batch = [item("pieces", tree, "NEW"),
             item("pieces", tree, piece_id, guid=str(uuid.uuid4()), outer_length=5)]
    assert_error(post(as_tenant(tenant, "Integration"), "pieces", batch), 409)
    assert rows(admin_conn, "pieces", tenant) == before


# --- soft-deleted rows --------------------------------------------------------------------

def test_sync_never_changes_is_active_or_deleted_at(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, 1)
    guid = tree.pieces[0]
    with admin_conn.cursor() as cur:
        cur.execute("UPDATE pieces SET is_active = false, deleted_at = '2024-04-04T04:04:04Z'"
                    " WHERE guid = %s", (str(guid),))
    deleted_at = fetch_one(admin_conn, "SELECT deleted_at FROM pieces WHERE guid = %s",
                           (str(guid),))[0]
    caller = as_tenant(tenant, "Integration")
    piece_id = fetch_one(admin_conn, "SELECT piece_id FROM pieces WHERE guid = %s",
                         (str(guid),))[0]
    by_guid = item("pieces", tree, piece_id, guid=str(guid), outer_length=321)
    assert ok(post(caller, "pieces", [by_guid])) == {"inserted": 0, "updated": 1, "unchanged": 0}
    by_key = item("pieces", tree, piece_id, outer_length=654)
    assert ok(post(caller, "pieces", [by_key])) == {"inserted": 0, "updated": 1, "unchanged": 0}
    row = rows(admin_conn, "pieces", tenant)[str(guid)]
    assert row["outer_length"] == 654
    assert row["is_active"] is False
    assert row["deleted_at"] == deleted_at


def test_sync_does_not_revive_a_deleted_project(as_tenant, seed, admin_conn, tenant):
    project = seed.project(tenant, code="DEL", active=False)
    caller = as_tenant(tenant, "Integration")
    assert ok(post(caller, "projects", [{"company_guid": str(tenant), "code": "DEL",
                                         "name": "n"}])) == \
        {"inserted": 0, "updated": 1, "unchanged": 0}
    row = rows(admin_conn, "projects", tenant)[str(project)]
    assert row["name"] == "n" and row["is_active"] is False and row["deleted_at"] is not None


DELETED_AT = datetime(2024, 6, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("kind, deleted", [
    ("components", "project"),
    ("assemblies", "component"),
    ("pieces", "component"),
    ("pieces", "assembly"),
])
def test_new_child_of_a_soft_deleted_parent_is_born_deleted(as_tenant, seed, admin_conn, tenant,
                                                            kind, deleted):
    """It takes its nearest parent's deleted_at, so restoring that parent's cascade brings
    it back too."""
    project = seed.project(tenant, active=deleted != "project", deleted_at=DELETED_AT)
    component = seed.component(tenant, project, active=deleted == "assembly",
                               deleted_at=DELETED_AT)
    assembly = seed.assembly(tenant, project, component, active=False, deleted_at=DELETED_AT)
    tree = Tree(tenant, project, component, assembly, [])
    new = item(kind, tree, "NEW")
    if kind == "pieces" and deleted == "component":
        new["assembly_guid"] = None
    before = rows(admin_conn, kind, tenant)
    assert ok(post(as_tenant(tenant, "Integration"), kind, [new])) == \
        {"inserted": 1, "updated": 0, "unchanged": 0}
    row, = (r for g, r in rows(admin_conn, kind, tenant).items() if g not in before)
    assert row["is_active"] is False
    assert row["deleted_at"] == DELETED_AT


def test_new_child_of_an_active_parent_is_active(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, 0)
    ok(post(as_tenant(tenant, "Integration"), "pieces", [item("pieces", tree, "NEW")]))
    row, = rows(admin_conn, "pieces", tenant).values()
    assert row["is_active"] is True and row["deleted_at"] is None


# --- roles and bodies ---------------------------------------------------------------------

@pytest.mark.parametrize("role", ["Operator", "ProjectManager"])
@pytest.mark.parametrize("kind", KINDS)
def test_roles_without_sync_are_403(as_tenant, seed, admin_conn, tenant, role, kind):
    tree = seed.tree(tenant, 0)
    before = rows(admin_conn, kind, tenant)
    assert_error(post(as_tenant(tenant, role), kind, [item(kind, tree, "X")]), 403)
    assert rows(admin_conn, kind, tenant) == before


@pytest.mark.parametrize("role", ["SystemAdmin", "CompanyAdmin", "Integration"])
def test_sync_roles_may_sync(as_tenant, tenant, role):
    assert ok(post(as_tenant(tenant, role), "projects",
                   [{"company_guid": str(tenant), "code": "X"}])) == \
        {"inserted": 1, "updated": 0, "unchanged": 0}


def _piece_item(tenant):
    return {"company_guid": str(tenant), "project_guid": str(uuid.uuid4()),
            "component_guid": str(uuid.uuid4()), "piece_id": "P"}


BAD_PIECE_FIELDS = [
    ("outer_length", 1.5),
    ("outer_length", 2.0),
    ("outer_length", "12"),
    ("outer_length", True),
    ("outer_length", 2**31),
    ("outer_length", -(2**31) - 1),
    ("outer_length", 10**40),
    ("outer_length", [1]),
    ("angle_left", {"deg": 1}),
    ("barcode", 123),
    ("barcode", "a\x00b"),
    ("barcode", "x" * 100_000),
    ("piece_id", ""),
    ("piece_id", None),
    ("piece_id", "x" * 256),
    ("piece_id", "nul\x00"),
    ("piece_id", 5),
    ("guid", "not-a-uuid"),
    ("guid", 1),
    ("company_guid", "nope"),
    ("company_guid", None),
    ("project_guid", ""),
    ("assembly_guid", "x"),
    ("colour", "red"),
    ("is_active", False),
    ("deleted_at", "2024-01-01T00:00:00Z"),
    ("created_at", "2024-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("field, value", BAD_PIECE_FIELDS)
def test_bad_piece_field_is_422(as_tenant, tenant, field, value):
    bad = {**_piece_item(tenant), field: value}
    body = assert_error(post(as_tenant(tenant, "Integration"), "pieces", [bad]), 422)
    assert field in body["errors"]["pieces"]["0"], body


@pytest.mark.parametrize("field", ["company_guid", "project_guid", "component_guid",
                                   "piece_id"])
def test_missing_required_piece_field_is_422(as_tenant, tenant, field):
    bad = _piece_item(tenant)
    del bad[field]
    body = assert_error(post(as_tenant(tenant, "Integration"), "pieces", [bad]), 422)
    assert field in body["errors"]["pieces"]["0"], body


@pytest.mark.parametrize("kind, missing", [
    ("projects", "code"), ("projects", "company_guid"),
    ("components", "project_guid"), ("components", "code"),
    ("assemblies", "component_guid"), ("assemblies", "project_guid"),
])
def test_missing_required_field_is_422(as_tenant, seed, tenant, kind, missing):
    tree = seed.tree(tenant, 0)
    bad = item(kind, tree, "X")
    del bad[missing]
    body = assert_error(post(as_tenant(tenant, "Integration"), kind, [bad]), 422)
    assert missing in body["errors"][kind]["0"], body


@pytest.mark.parametrize("kind, field, value", [
    ("projects", "name", "x" * 100_000),
    ("projects", "name", "\x00"),
    ("projects", "code", "x" * 256),
    ("components", "name", 5),
    ("assemblies", "code", ["a"]),
    ("projects", "extra", 1),
])
def test_bad_hierarchy_field_is_422(as_tenant, seed, tenant, kind, field, value):
    tree = seed.tree(tenant, 0)
    bad = {**item(kind, tree, "X"), field: value}
    body = assert_error(post(as_tenant(tenant, "Integration"), kind, [bad]), 422)
    assert field in body["errors"][kind]["0"], body


@pytest.mark.parametrize("data, field", [
    ("not json", "json"),
    ('{"projects": [', "json"),
    ("\x00", "json"),
    (b'{"projects": "\xff"}', "json"),
    ("[" * 100_000 + "]" * 100_000, "json"),
    ("", "projects"),
    ('{"projects": [{"company_guid": "%(tenant)s", "code": "\\ud800"}]}', "projects"),
    ('{"projects": [{"company_guid": "%(tenant)s", "code": "x", "name": "\\u0000"}]}',
     "projects"),
])
def test_body_that_does_not_parse_or_store_is_422(as_tenant, admin_conn, tenant, data, field):
    caller = as_tenant(tenant, "Integration")
    if isinstance(data, str):
        data = data % {"tenant": tenant}
    response = caller.client.post(SYNC + "projects", data=data, content_type="application/json",
                                  headers=caller.headers)
    body = assert_error(response, 422)
    assert field in body["errors"], body
    assert rows(admin_conn, "projects", tenant) == {}


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml"])
def test_body_that_is_not_json_is_415(as_tenant, admin_conn, tenant, content_type):
    caller = as_tenant(tenant, "Integration")
    data = '{"projects": [{"company_guid": "%s", "code": "X"}]}' % tenant
    response = caller.client.post(SYNC + "projects", data=data, content_type=content_type,
                                  headers=caller.headers)
    assert_error(response, 415)
    assert rows(admin_conn, "projects", tenant) == {}


@pytest.mark.parametrize("body", [
    [], {}, None, 1, "projects", {"projects": None}, {"projects": {}}, {"projects": "x"},
    {"projects": [1]}, {"projects": [None]}, {"projects": [[]]}, {"projects": []
                                                                   , "extra": 1},
    {"pieces": []},
])
def test_body_of_the_wrong_shape_is_422(as_tenant, tenant, body):
    caller = as_tenant(tenant, "Integration")
    response = caller.post(SYNC + "projects", json=body)
    assert_error(response, 422)


def test_sync_rows_are_counted_in_metrics(as_tenant, client, tenant):
    def counted(outcome):
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith("pieces_sync_rows_total{") and 'entity="projects"' in line \
                    and f'outcome="{outcome}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = counted("inserted"), counted("updated")
    caller = as_tenant(tenant, "Integration")
    body = {"projects": [{"company_guid": str(tenant), "code": f"M-{i}"} for i in range(3)]}
    assert caller.post("/api/v1/sync/projects", json=body).status_code == 200
    body["projects"][0]["name"] = "renamed"
    assert caller.post("/api/v1/sync/projects", json=body).status_code == 200
    assert (counted("inserted"), counted("updated")) == (before[0] + 3, before[1] + 1)
