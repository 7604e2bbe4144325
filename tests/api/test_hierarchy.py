"""SPEC §4 (piece delete/restore) and §5 (cascade across the hierarchy, audit)."""
from __future__ import annotations

import uuid

import pytest

from helpers import fetch_one

WRITERS = ["SystemAdmin", "CompanyAdmin", "ProjectManager"]
NOT_WRITERS = ["Operator", "Integration"]
SEGMENT = {"project": "projects", "component": "components", "assembly": "assemblies",
           "piece": "pieces"}
NAME = {"project": "Project", "component": "Component", "assembly": "Assembly",
        "piece": "Piece"}


def state(conn, table, guid):
    """(is_active, deleted_at) of one row, read as the owner."""
    return fetch_one(conn, f"SELECT is_active, deleted_at FROM {table} WHERE guid = %s",
                     (str(guid),))


def root_guid(tree, entity):
    return {"project": tree.project, "component": tree.component,
            "assembly": tree.assembly, "piece": tree.pieces[0]}[entity]


@pytest.fixture
def big_tree(seed, tenant):
    """A project with two components, each with two assemblies of two pieces, plus one
    piece straight under a component (no assembly)."""
    project = seed.project(tenant)
    tree = {"project": project, "components": [], "assemblies": [], "pieces": []}
    for _ in range(2):
        component = seed.component(tenant, project)
        tree["components"].append(component)
        tree["pieces"].append(seed.piece(tenant, project, component))
        for _ in range(2):
            assembly = seed.assembly(tenant, project, component)
            tree["assemblies"].append(assembly)
            for _ in range(2):
                tree["pieces"].append(seed.piece(tenant, project, component, assembly))
    return tree


def test_delete_piece_sets_inactive_and_hides_it(as_tenant, seed, tenant, admin_conn):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, "ProjectManager")
    r = caller.delete(f"/api/v1/pieces/{tree.pieces[0]}")
    assert r.status_code == 204
    assert r.data == b""
    active, deleted_at = state(admin_conn, "pieces", tree.pieces[0])
    assert active is False and deleted_at is not None
    assert caller.get(f"/api/v1/pieces/{tree.pieces[0]}").status_code == 404
    listed = caller.get("/api/v1/pieces").json
    assert [p["guid"] for p in listed] == [str(tree.pieces[1])]


@pytest.mark.parametrize("entity", ["project", "component", "assembly", "piece"])
def test_delete_twice_is_404(as_tenant, seed, tenant, entity):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, "CompanyAdmin")
    guid = root_guid(tree, entity)
    assert caller.delete(f"/api/v1/{SEGMENT[entity]}/{guid}").status_code == 204
    r = caller.delete(f"/api/v1/{SEGMENT[entity]}/{guid}")
    assert r.status_code == 404
    assert r.json == {"detail": f"{NAME[entity]} not found or forbidden"}


@pytest.mark.parametrize("entity", ["project", "component", "assembly", "piece"])
def test_delete_and_restore_unknown_guid_is_404(as_tenant, tenant, entity):
    caller = as_tenant(tenant, "CompanyAdmin")
    guid = uuid.uuid4()
    for r in (caller.delete(f"/api/v1/{SEGMENT[entity]}/{guid}"),
              caller.post(f"/api/v1/{SEGMENT[entity]}/{guid}/restore")):
        assert r.status_code == 404
        assert r.json == {"detail": f"{NAME[entity]} not found or forbidden"}


@pytest.mark.parametrize("entity", ["project", "component", "assembly", "piece"])
def test_other_tenants_entity_is_404_and_untouched(as_tenant, seed, tenant, other_tenant,
                                                    admin_conn, entity):
    tree = seed.tree(other_tenant)
    guid = root_guid(tree, entity)
    caller = as_tenant(tenant, "CompanyAdmin")
    r = caller.delete(f"/api/v1/{SEGMENT[entity]}/{guid}")
    assert r.status_code == 404
    assert r.json == {"detail": f"{NAME[entity]} not found or forbidden"}
    assert state(admin_conn, {"project": "projects", "component": "components",
                              "assembly": "assemblies", "piece": "pieces"}[entity],
                 guid)[0] is True
    # and restore of another tenant's deleted entity
    owner = as_tenant(other_tenant, "CompanyAdmin")
    assert owner.delete(f"/api/v1/{SEGMENT[entity]}/{guid}").status_code == 204
    r = caller.post(f"/api/v1/{SEGMENT[entity]}/{guid}/restore")
    assert r.status_code == 404
    assert r.json == {"detail": f"{NAME[entity]} not found or forbidden"}


@pytest.mark.parametrize("role", NOT_WRITERS)
@pytest.mark.parametrize("entity", ["project", "piece"])
def test_roles_without_write_get_403(as_tenant, seed, tenant, admin_conn, role, entity):
    tree = seed.tree(tenant)
    guid = root_guid(tree, entity)
    caller = as_tenant(tenant, role)
    assert caller.delete(f"/api/v1/{SEGMENT[entity]}/{guid}").status_code == 403
    assert caller.post(f"/api/v1/{SEGMENT[entity]}/{guid}/restore").status_code == 403
    assert state(admin_conn, "pieces", tree.pieces[0])[0] is True


@pytest.mark.parametrize("role", WRITERS)
def test_writer_roles_may_delete_and_restore(as_tenant, seed, tenant, role):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, role)
    assert caller.delete(f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    assert caller.post(f"/api/v1/assemblies/{tree.assembly}/restore").status_code == 204


def test_system_admin_reaches_any_tenant(as_tenant, seed, tenant, other_tenant, admin_conn):
    tree = seed.tree(other_tenant)
    admin = as_tenant(tenant, "SystemAdmin")
    assert admin.delete(f"/api/v1/projects/{tree.project}").status_code == 204
    assert state(admin_conn, "pieces", tree.pieces[0])[0] is False
    assert admin.post(f"/api/v1/projects/{tree.project}/restore").status_code == 204
    assert state(admin_conn, "pieces", tree.pieces[0])[0] is True
    row = fetch_one(admin_conn, "SELECT company_guid, actor FROM audit_log"
                    " WHERE entity_guid = %s ORDER BY id DESC LIMIT 1", (str(tree.project),))
    assert row == (other_tenant, "user-1")


def test_project_cascade_shares_one_deleted_at(as_tenant, big_tree, tenant, admin_conn):
    caller = as_tenant(tenant, "CompanyAdmin")
    assert caller.delete(f"/api/v1/projects/{big_tree['project']}").status_code == 204
    stamps = set()
    stamps.add(state(admin_conn, "projects", big_tree["project"]))
    for c in big_tree["components"]:
        stamps.add(state(admin_conn, "components", c))
    for a in big_tree["assemblies"]:
        stamps.add(state(admin_conn, "assemblies", a))
    for p in big_tree["pieces"]:
        stamps.add(state(admin_conn, "pieces", p))
    assert len(stamps) == 1
    (active, deleted_at), = stamps
    assert active is False and deleted_at is not None


@pytest.mark.parametrize("entity, expected_rows", [
    ("component", 1 + 2 + 1 + 4),   # itself, 2 assemblies, 1 loose piece, 4 pieces
    ("assembly", 1 + 2),
])
def test_cascade_reaches_exactly_the_subtree(as_tenant, big_tree, tenant, admin_conn,
                                             entity, expected_rows):
    caller = as_tenant(tenant, "CompanyAdmin")
    target = big_tree["components"][0] if entity == "component" else big_tree["assemblies"][0]
    assert caller.delete(f"/api/v1/{SEGMENT[entity]}/{target}").status_code == 204
    inactive = fetch_one(admin_conn, """
        SELECT (SELECT count(*) FROM components WHERE project_guid = %(p)s AND NOT is_active)
             + (SELECT count(*) FROM assemblies WHERE project_guid = %(p)s AND NOT is_active)
             + (SELECT count(*) FROM pieces WHERE project_guid = %(p)s AND NOT is_active)
    """, {"p": str(big_tree["project"])})[0]
    assert inactive == expected_rows
    audit_rows = fetch_one(admin_conn, "SELECT rows_affected FROM audit_log"
                           " WHERE entity_guid = %s AND action = 'delete'", (str(target),))
    assert audit_rows == (expected_rows,)


@pytest.mark.parametrize("entity", ["project", "component", "assembly"])
def test_restore_brings_back_cascade_but_not_earlier_deletions(
        as_tenant, big_tree, tenant, admin_conn, entity):
    caller = as_tenant(tenant, "CompanyAdmin")
    # A piece deleted on its own first, under assembly 0 (so under every level's subtree).
    lone = big_tree["pieces"][1]
    assert caller.delete(f"/api/v1/pieces/{lone}").status_code == 204
    lone_state = state(admin_conn, "pieces", lone)
    target = {"project": big_tree["project"], "component": big_tree["components"][0],
              "assembly": big_tree["assemblies"][0]}[entity]
    assert caller.delete(f"/api/v1/{SEGMENT[entity]}/{target}").status_code == 204
    assert caller.post(f"/api/v1/{SEGMENT[entity]}/{target}/restore").status_code == 204
    assert state(admin_conn, "pieces", lone) == lone_state   # still deleted, same time
    others = [p for p in big_tree["pieces"] if p != lone]
    assert all(state(admin_conn, "pieces", p) == (True, None) for p in others)
    assert all(state(admin_conn, "assemblies", a) == (True, None)
               for a in big_tree["assemblies"])


def test_restore_active_piece_is_404(as_tenant, seed, tenant):
    tree = seed.tree(tenant)
    r = as_tenant(tenant, "CompanyAdmin").post(f"/api/v1/pieces/{tree.pieces[0]}/restore")
    assert r.status_code == 404
    assert r.json == {"detail": "Piece not found or forbidden"}


@pytest.mark.parametrize("deleted, child", [
    ("assembly", "piece"), ("component", "piece"), ("project", "piece"),
    ("component", "assembly"), ("project", "assembly"), ("project", "component"),
])
def test_restore_child_under_deleted_parent_is_409(as_tenant, seed, tenant, admin_conn,
                                                    deleted, child):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, "CompanyAdmin")
    child_guid = root_guid(tree, child)
    parent_guid = root_guid(tree, deleted)
    # Child deleted on its own, then the parent (which cascades over nothing new below).
    assert caller.delete(f"/api/v1/{SEGMENT[child]}/{child_guid}").status_code == 204
    assert caller.delete(f"/api/v1/{SEGMENT[deleted]}/{parent_guid}").status_code == 204
    r = caller.post(f"/api/v1/{SEGMENT[child]}/{child_guid}/restore")
    assert r.status_code == 409
    assert str(parent_guid) in r.json["detail"]
    assert deleted in r.json["detail"]
    assert state(admin_conn, SEGMENT[child], child_guid)[0] is False


def test_sync_never_touches_soft_delete_state(as_tenant, seed, tenant, admin_conn):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, "CompanyAdmin")
    assert caller.delete(f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    before = state(admin_conn, "pieces", tree.pieces[0])
    piece_id = fetch_one(admin_conn, "SELECT piece_id FROM pieces WHERE guid = %s",
                         (str(tree.pieces[0]),))[0]
    r = caller.post("/api/v1/sync/pieces", json={"pieces": [{
        "guid": str(tree.pieces[0]), "company_guid": str(tenant),
        "project_guid": str(tree.project), "component_guid": str(tree.component),
        "assembly_guid": str(tree.assembly), "piece_id": piece_id, "outer_length": 1234}]})
    assert r.status_code == 200, r.json
    assert r.json == {"inserted": 0, "updated": 1, "unchanged": 0}
    assert state(admin_conn, "pieces", tree.pieces[0]) == before
    assert fetch_one(admin_conn, "SELECT outer_length FROM pieces WHERE guid = %s",
                     (str(tree.pieces[0]),)) == (1234,)
    # A new piece synced under the deleted assembly arrives deleted with the assembly's
    # deleted_at, so restoring the assembly brings it back with the rest.
    r = caller.post("/api/v1/sync/pieces", json={"pieces": [{
        "company_guid": str(tenant), "project_guid": str(tree.project),
        "component_guid": str(tree.component), "assembly_guid": str(tree.assembly),
        "piece_id": "LATE-1"}]})
    assert r.json == {"inserted": 1, "updated": 0, "unchanged": 0}
    late = fetch_one(admin_conn, "SELECT is_active, deleted_at FROM pieces"
                     " WHERE company_guid = %s AND piece_id = 'LATE-1'", (str(tenant),))
    assert late == (False, before[1])
    assert caller.post(f"/api/v1/assemblies/{tree.assembly}/restore").status_code == 204
    assert fetch_one(admin_conn, "SELECT is_active FROM pieces WHERE company_guid = %s"
                     " AND piece_id = 'LATE-1'", (str(tenant),)) == (True,)


def test_not_a_uuid_path_is_404_json(as_tenant, tenant):
    r = as_tenant(tenant, "CompanyAdmin").delete("/api/v1/projects/not-a-uuid")
    assert r.status_code == 404
    assert "detail" in r.json


def test_cascade_rows_are_counted_in_metrics(as_tenant, client, seed, tenant):
    def counted():
        text = client.get("/metrics").get_data(as_text=True)
        for line in text.splitlines():
            if line.startswith("pieces_cascade_rows_total{") and 'entity="assembly"' in line \
                    and 'action="delete"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    tree = seed.tree(tenant, pieces_per_assembly=4)
    before = counted()
    assert as_tenant(tenant, "CompanyAdmin").delete(
        f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    assert counted() == before + 5
