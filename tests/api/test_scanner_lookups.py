"""The list's `barcode` and `piece_id` filters (issue 12, point 3): exact match, combinable
with the parent filters, tenant rules unchanged, each served by an index."""
from __future__ import annotations

import uuid

import pytest

from helpers import assert_error, explain_as_app, item, ok, plan_nodes, post
from pieces_service.dao import load_queries
from pieces_service.dao import pieces as pieces_dao

LIST = "/api/v1/pieces"


@pytest.fixture
def trees(seed, tenant):
    return seed.tree(tenant, pieces_per_assembly=0), seed.tree(tenant, pieces_per_assembly=0)


def guids(response):
    return sorted(row["piece_id"] for row in ok(response))


def test_barcode_and_piece_id_are_exact_and_combine_with_parents(as_tenant, integration,
                                                                  trees, tenant):
    first, second = trees
    ok(post(integration, "pieces", [item("pieces", first, "A-1", barcode="2000000000017"),
                                    item("pieces", first, "A-2", barcode="20000000000170"),
                                    item("pieces", first, "A-3")]))
    ok(post(integration, "pieces", [item("pieces", second, "A-1", barcode="2000000000017")]))
    reader = as_tenant(tenant)
    assert guids(reader.get(LIST, barcode="2000000000017")) == ["A-1", "A-1"]
    assert guids(reader.get(LIST, barcode="2000000000017",
                            project_guid=str(first.project))) == ["A-1"]
    assert guids(reader.get(LIST, barcode="200000000001")) == []  # no prefix match
    assert guids(reader.get(LIST, piece_id="A-2")) == ["A-2"]
    assert guids(reader.get(LIST, piece_id="A-1", barcode="2000000000017",
                            assembly_guid=str(second.assembly))) == ["A-1"]
    assert guids(reader.get(LIST, piece_id="a-1")) == []  # case matters


def test_soft_deleted_pieces_only_with_include_inactive(as_tenant, integration, trees, tenant):
    first, _ = trees
    ok(post(integration, "pieces", [item("pieces", first, "D-1", barcode="BC-D")]))
    reader = as_tenant(tenant)
    [row] = ok(reader.get(LIST, barcode="BC-D"))
    assert as_tenant(tenant, "ProjectManager").delete(f"{LIST}/{row['guid']}").status_code == 204
    assert ok(reader.get(LIST, barcode="BC-D")) == []
    assert [r["guid"] for r in ok(reader.get(LIST, barcode="BC-D", include_inactive=True))] \
        == [row["guid"]]


def test_another_tenants_barcode_is_not_found(as_tenant, seed, integration, trees, tenant,
                                              other_tenant):
    first, _ = trees
    ok(post(integration, "pieces", [item("pieces", first, "T-1", barcode="SHARED")]))
    theirs = seed.tree(other_tenant, pieces_per_assembly=0)
    seed.piece(other_tenant, theirs.project, theirs.component, barcode="SHARED")
    mine = ok(as_tenant(tenant).get(LIST, barcode="SHARED"))
    assert [uuid.UUID(r["company_guid"]) for r in mine] == [tenant]
    assert_error(as_tenant(tenant).get(LIST, barcode="SHARED",
                                       company_guid=str(other_tenant)), 403,
                 "User does not have access to the specified company.")
    admin = as_tenant(tenant, "SystemAdmin")
    theirs_seen = ok(admin.get(LIST, barcode="SHARED", company_guid=str(other_tenant)))
    assert [uuid.UUID(r["company_guid"]) for r in theirs_seen] == [other_tenant]


def test_parent_checks_still_come_first(as_tenant, tenant):
    missing = uuid.uuid4()
    assert_error(as_tenant(tenant).get(LIST, barcode="X", project_guid=str(missing)), 404,
                 f"Project with GUID {missing} not found or not accessible.")


@pytest.mark.parametrize("query", [{"barcode": "x" * 1001}, {"piece_id": "a\x00b"},
                                   {"barcode": "ok", "barcodes": "typo"}])
def test_bad_lookups_are_422(as_tenant, tenant, query):
    assert_error(as_tenant(tenant).get(LIST, **query), 422)


@pytest.mark.parametrize("field, index", [("barcode", "pieces_barcode_idx"),
                                          ("piece_id", "pieces_piece_id_idx")])
def test_each_lookup_is_served_by_its_index(db_url, seed, tenant, field, index):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    seed.many_pieces(tenant, tree, 2000, "L", analyze=True)
    value = {"barcode": "BL-1234", "piece_id": "L-1234"}[field]
    params = pieces_dao.list_parameters(
        tenant=tenant, project_guid=None, component_guid=None, assembly_guid=None,
        include_inactive=False, limit=100, offset=0, after=None, **{field: value})
    plan = explain_as_app(db_url, tenant, load_queries("pieces.sql")["list_pieces"], params)
    scans = [n for n in plan_nodes(plan) if n.get("Relation Name") == "pieces"
             and n.get("Index Name") == index]
    assert scans and field in scans[0]["Index Cond"], [
        (n.get("Index Name"), n.get("Index Cond")) for n in plan_nodes(plan)]
    assert scans[0]["Actual Rows"] == 1
