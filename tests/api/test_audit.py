"""The audit trail: one row per delete/restore, in the same transaction; GET /api/v1/audit."""
from __future__ import annotations

import uuid

import pytest

from helpers import fetch_one


def test_each_delete_and_restore_writes_one_audit_row(as_tenant, seed, tenant, admin_conn):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, "ProjectManager", sub="pm-7")
    assert caller.delete(f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    assert caller.post(f"/api/v1/assemblies/{tree.assembly}/restore").status_code == 204
    with admin_conn.cursor() as cur:
        cur.execute("SELECT entity_type, entity_guid, action, actor, company_guid,"
                    " rows_affected, occurred_at FROM audit_log WHERE entity_guid = %s"
                    " ORDER BY id", (str(tree.assembly),))
        rows = cur.fetchall()
    assert [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("assembly", tree.assembly, "delete", "pm-7", tenant, 3),
        ("assembly", tree.assembly, "restore", "pm-7", tenant, 3),
    ]
    assert all(r[6] is not None for r in rows)


def test_failed_delete_writes_no_audit_row(as_tenant, tenant, admin_conn):
    guid = uuid.uuid4()
    assert as_tenant(tenant, "CompanyAdmin").delete(f"/api/v1/pieces/{guid}").status_code == 404
    assert fetch_one(admin_conn, "SELECT count(*) FROM audit_log WHERE entity_guid = %s",
                     (str(guid),)) == (0,)


def test_audit_list_newest_first_filtered_and_tenant_scoped(as_tenant, seed, tenant,
                                                            other_tenant):
    mine = seed.tree(tenant)
    theirs = seed.tree(other_tenant)
    caller = as_tenant(tenant, "CompanyAdmin")
    for piece in mine.pieces:
        assert caller.delete(f"/api/v1/pieces/{piece}").status_code == 204
    assert as_tenant(other_tenant, "CompanyAdmin").delete(
        f"/api/v1/pieces/{theirs.pieces[0]}").status_code == 204
    r = caller.get("/api/v1/audit")
    assert r.status_code == 200
    assert [e["entity_guid"] for e in r.json] == [str(p) for p in reversed(mine.pieces)]
    assert {e["company_guid"] for e in r.json} == {str(tenant)}
    assert set(r.json[0]) == {"id", "entity_type", "entity_guid", "action", "actor",
                              "company_guid", "rows_affected", "occurred_at"}
    r = caller.get("/api/v1/audit", entity_guid=str(mine.pieces[0]))
    assert [e["entity_guid"] for e in r.json] == [str(mine.pieces[0])]
    r = caller.get("/api/v1/audit", limit=1, offset=1)
    assert [e["entity_guid"] for e in r.json] == [str(mine.pieces[0])]
    assert caller.get("/api/v1/audit", company_guid=str(other_tenant)).status_code == 403
    admin = as_tenant(tenant, "SystemAdmin")
    r = admin.get("/api/v1/audit", company_guid=str(other_tenant))
    assert [e["entity_guid"] for e in r.json] == [str(theirs.pieces[0])]


@pytest.mark.parametrize("role", ["ProjectManager", "Operator", "Integration"])
def test_audit_list_roles(as_tenant, tenant, role):
    assert as_tenant(tenant, role).get("/api/v1/audit").status_code == 403


@pytest.mark.parametrize("query", [
    {"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"offset": -1},
    {"entity_guid": "nope"}, {"bogus": 1},
])
def test_audit_list_bad_query_is_422(as_tenant, tenant, query):
    r = as_tenant(tenant, "CompanyAdmin").get("/api/v1/audit", **query)
    assert r.status_code == 422
    assert "detail" in r.json and r.json["errors"]
