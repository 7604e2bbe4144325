"""SPEC §6: sync never puts an existing active row under a soft-deleted parent (a move); it
is a 409 naming the item and the deleted parent, and nothing of the request is written."""
from __future__ import annotations

import uuid

import pytest

from helpers import assert_error, fetch_one, item, post, rows



def deleted(as_tenant, tenant, plural, guid):
    """Soft-delete `guid` through the API (the cascade's own deleted_at)."""
    response = as_tenant(tenant, "CompanyAdmin").delete(f"/api/v1/{plural}/{guid}")
    assert response.status_code == 204, response.get_json()
    return guid


def moves(seed, as_tenant, tenant):
    """(plural, the active row's item moved under a deleted parent, field, deleted parent)
    for every level that has a parent."""
    tree = seed.tree(tenant, pieces_per_assembly=1)
    piece_id = fetch_one(seed.conn, "SELECT piece_id FROM pieces WHERE guid = %s",
                         (str(tree.pieces[0]),))[0]
    gone_assembly = deleted(as_tenant, tenant, "assemblies",
                            seed.assembly(tenant, tree.project, tree.component))
    gone_component = deleted(as_tenant, tenant, "components",
                             seed.component(tenant, tree.project))
    gone_project = deleted(as_tenant, tenant, "projects", seed.project(tenant))
    childless_assembly = seed.assembly(tenant, tree.project, tree.component, code="CA")
    childless_component = seed.component(tenant, tree.project, code="CC")
    return tree, [
        ("pieces", item("pieces", tree, piece_id, guid=str(tree.pieces[0]),
                        assembly_guid=str(gone_assembly)), "assembly_guid", gone_assembly),
        ("assemblies", item("assemblies", tree, "CA", guid=str(childless_assembly),
                            component_guid=str(gone_component)),
         "component_guid", gone_component),
        ("components", item("components", tree, "CC", guid=str(childless_component),
                            project_guid=str(gone_project)), "project_guid", gone_project),
    ]


# A component's or assembly's natural key contains the parent it would move to: matching
# by natural key, such an item names another row (a new one), so only pieces move that way.
@pytest.mark.parametrize("case, by", [(0, "guid"), (0, "natural_key"), (1, "guid"),
                                      (2, "guid")],
                         ids=["piece-by-guid", "piece-by-natural-key", "assembly", "component"])
def test_moving_an_active_row_under_a_deleted_parent_is_409(as_tenant, seed, admin_conn,
                                                            tenant, case, by):
    tree, cases = moves(seed, as_tenant, tenant)
    plural, moved, field, parent = cases[case]
    if by == "natural_key":
        moved = {k: v for k, v in moved.items() if k != "guid"}
    before = rows(admin_conn, plural, tenant)
    batch = [item(plural, tree, "NEW-0"), moved]  # a valid new item first: not written either
    body = assert_error(post(as_tenant(tenant, "Integration"), plural, batch), 409)
    assert body["detail"].startswith(f"{plural}[1].{field}: "), body
    assert str(parent) in body["detail"] and "deleted" in body["detail"], body
    assert field in body["errors"][plural]["1"], body
    assert rows(admin_conn, plural, tenant) == before


def test_an_assembly_with_pieces_gets_the_same_409(as_tenant, seed, admin_conn, tenant):
    """Before, only the composite foreign key stopped it, with a generic conflict."""
    tree = seed.tree(tenant, pieces_per_assembly=2)
    gone = deleted(as_tenant, tenant, "components", seed.component(tenant, tree.project))
    code = fetch_one(admin_conn, "SELECT code FROM assemblies WHERE guid = %s",
                     (str(tree.assembly),))[0]
    body = assert_error(post(as_tenant(tenant, "Integration"), "assemblies", [
        item("assemblies", tree, code, guid=str(tree.assembly), component_guid=str(gone))]),
        409)
    assert body["detail"].startswith("assemblies[0].component_guid: ") and str(gone) in \
        body["detail"], body


def test_a_deleted_row_may_be_updated_under_a_deleted_parent(as_tenant, seed, admin_conn,
                                                             tenant):
    """Not a move of an active row: it stays deleted, its values change."""
    tree = seed.tree(tenant, pieces_per_assembly=1)
    deleted(as_tenant, tenant, "pieces", tree.pieces[0])
    gone = deleted(as_tenant, tenant, "assemblies",
                   seed.assembly(tenant, tree.project, tree.component))
    piece_id = fetch_one(admin_conn, "SELECT piece_id FROM pieces WHERE guid = %s",
                         (str(tree.pieces[0]),))[0]
    response = post(as_tenant(tenant, "Integration"), "pieces", [
        item("pieces", tree, piece_id, guid=str(tree.pieces[0]), assembly_guid=str(gone))])
    assert response.status_code == 200, response.get_json()
    assert response.json == {"inserted": 0, "updated": 1, "unchanged": 0}
    assert fetch_one(admin_conn, "SELECT assembly_guid, is_active FROM pieces WHERE guid = %s",
                     (str(tree.pieces[0]),)) == (gone, False)


def test_a_new_row_under_a_deleted_parent_arrives_deleted(as_tenant, seed, admin_conn, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    gone = deleted(as_tenant, tenant, "assemblies",
                   seed.assembly(tenant, tree.project, tree.component))
    guid = uuid.uuid4()
    response = post(as_tenant(tenant, "Integration"), "pieces", [
        item("pieces", tree, "LATE", guid=str(guid), assembly_guid=str(gone))])
    assert response.json == {"inserted": 1, "updated": 0, "unchanged": 0}
    parent_deleted_at = fetch_one(admin_conn, "SELECT deleted_at FROM assemblies WHERE guid = %s",
                                  (str(gone),))[0]
    assert fetch_one(admin_conn, "SELECT is_active, deleted_at FROM pieces WHERE guid = %s",
                     (str(guid),)) == (False, parent_deleted_at)
