"""Counts on request (issue 12, point 1): `Prefer: count=exact|planned` on the list answers
with PostgREST's `Content-Range: <first>-<last>/<total>` and `Preference-Applied`; without
the preference nothing is counted."""
from __future__ import annotations

import pytest

from helpers import explain_as_app, ok, plan_nodes
from pieces_service.dao import load_queries
from pieces_service.dao import pieces as pieces_dao

LIST = "/api/v1/pieces"


@pytest.fixture
def tree(seed, tenant):
    """A project of 5 active pieces and 2 soft-deleted ones."""
    tree = seed.tree(tenant, pieces_per_assembly=5)
    for _ in range(2):
        seed.piece(tenant, tree.project, tree.component, tree.assembly, active=False)
    return tree


def listing(caller, prefer=None, **query):
    headers = dict(caller.headers)
    if prefer is not None:
        headers["Prefer"] = prefer
    return caller.client.get(LIST, query_string=query, headers=headers)


def test_no_count_unless_asked(as_tenant, tenant, tree):
    response = listing(as_tenant(tenant), project_guid=str(tree.project), limit=2)
    assert len(ok(response)) == 2
    assert "Content-Range" not in response.headers
    assert "Preference-Applied" not in response.headers
    assert "Prefer" in response.headers["Vary"]


@pytest.mark.parametrize("query, expected", [
    ({"limit": 2}, "0-1/5"),
    ({"limit": 2, "offset": 2}, "2-3/5"),
    ({"limit": 2, "offset": 4}, "4-4/5"),
    ({"limit": 2, "offset": 10}, "*/5"),
    ({"limit": 100}, "0-4/5"),
    ({"limit": 3, "include_inactive": "true"}, "0-2/7"),
    ({"limit": 2, "offset": 1500}, "*/5"),  # a deep offset page (the other statement)
])
def test_exact_count_and_range(as_tenant, tenant, tree, query, expected):
    response = listing(as_tenant(tenant), "count=exact", project_guid=str(tree.project),
                       **query)
    ok(response)
    assert response.headers["Content-Range"] == expected
    assert response.headers["Preference-Applied"] == "count=exact"


def test_exact_count_on_a_cursor_page_gives_its_position(as_tenant, tenant, tree):
    reader = as_tenant(tenant)
    first = listing(reader, "count=exact", project_guid=str(tree.project), limit=2)
    link = first.headers["Link"].split(";")[0].strip("<>")
    second = reader.client.get(link, headers={**reader.headers, "Prefer": "count=exact"})
    assert len(ok(second)) == 2
    assert second.headers["Content-Range"] == "2-3/5"


def test_the_count_is_the_tenants_own(as_tenant, seed, tenant, other_tenant, tree):
    seed.tree(other_tenant, pieces_per_assembly=3)
    response = listing(as_tenant(tenant), "count=exact", limit=1)
    assert response.headers["Content-Range"] == "0-0/5"
    admin = as_tenant(tenant, "SystemAdmin")
    response = listing(admin, "count=exact", limit=1, company_guid=str(other_tenant))
    assert response.headers["Content-Range"] == "0-0/3"


@pytest.mark.parametrize("prefer", ["return=minimal, count=exact", "Count=exact",
                                    'count="exact"', "count=exact; x=1"])
def test_prefer_header_forms(as_tenant, tenant, tree, prefer):
    response = listing(as_tenant(tenant), prefer, project_guid=str(tree.project))
    assert response.headers["Content-Range"] == "0-4/5"


@pytest.mark.parametrize("prefer", ["count=estimated", "count", "return=minimal", ""])
def test_other_preferences_are_ignored(as_tenant, tenant, tree, prefer):
    response = listing(as_tenant(tenant), prefer, project_guid=str(tree.project))
    assert len(ok(response)) == 5
    assert "Content-Range" not in response.headers
    assert "Preference-Applied" not in response.headers


def test_first_occurrence_wins(as_tenant, tenant, tree):
    response = listing(as_tenant(tenant), "count=planned, count=exact",
                       project_guid=str(tree.project))
    assert response.headers["Preference-Applied"] == "count=planned"


def test_planned_count_is_the_planners_estimate(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    seed.many_pieces(tenant, tree, 3000, "N", analyze=True)
    reader = as_tenant(tenant)
    # include_inactive: the estimate of `is_active` follows the whole table's share of
    # active rows (the suite soft-deletes many), which is not what this test is about.
    query = {"project_guid": str(tree.project), "limit": 10, "include_inactive": "true"}
    response = listing(reader, "count=planned", **query)
    assert response.headers["Preference-Applied"] == "count=planned"
    first_last, total = response.headers["Content-Range"].split("/")
    assert first_last == "0-9"
    # An estimate, but of this project's rows: neither row-level security's tenant condition
    # nor the tenant filter may shrink it by the tenant's share of the table (the planner
    # knows from migration 0007's statistics that a project implies its tenant).
    assert 1500 <= int(total) <= 6000, total
    link = response.headers["Link"].split(";")[0].strip("<>")
    cursor_page = reader.client.get(link, headers={**reader.headers,
                                                   "Prefer": "count=planned"})
    assert cursor_page.headers["Content-Range"] == f"*/{total}"  # start unknown


def test_a_counted_tag_changes_with_the_total(as_tenant, seed, tenant, tree):
    """A full page's range ends at its last row: a row added after it leaves the page's tag
    alone, but not the counted page's tag."""
    reader = as_tenant(tenant)
    plain = listing(reader, project_guid=str(tree.project), limit=2)
    counted = listing(reader, "count=exact", project_guid=str(tree.project), limit=2)
    assert plain.headers["ETag"] != counted.headers["ETag"]
    unchanged = reader.client.get(LIST, query_string={"project_guid": str(tree.project),
                                                      "limit": 2},
                                  headers={**reader.headers, "Prefer": "count=exact",
                                           "If-None-Match": counted.headers["ETag"]})
    assert unchanged.status_code == 304
    assert "Prefer" in unchanged.headers["Vary"]
    seed.piece(tenant, tree.project, tree.component, tree.assembly)  # after the page
    again = listing(reader, project_guid=str(tree.project), limit=2)
    assert again.headers["ETag"] == plain.headers["ETag"]
    recounted = reader.client.get(LIST, query_string={"project_guid": str(tree.project),
                                                      "limit": 2},
                                  headers={**reader.headers, "Prefer": "count=exact",
                                           "If-None-Match": counted.headers["ETag"]})
    assert recounted.status_code == 200
    assert recounted.headers["Content-Range"] == "0-1/6"


def test_a_deep_counted_page_tag_changes_with_the_total(as_tenant, seed, tenant, tree):
    """A deep offset page is tagged by its body's hash: the count enters it too."""
    reader = as_tenant(tenant)
    query = {"project_guid": str(tree.project), "limit": 2, "offset": 1500}
    before = listing(reader, "count=exact", **query)
    seed.piece(tenant, tree.project, tree.component, tree.assembly)
    after = listing(reader, "count=exact", **query)
    assert ok(before) == ok(after) == []
    assert before.headers["ETag"] != after.headers["ETag"]


def _pieces_scans(db_url, tenant, tree, count_exact):
    params = pieces_dao.list_parameters(
        tenant=tenant, project_guid=tree.project, component_guid=None, assembly_guid=None,
        include_inactive=False, limit=100, offset=0, after=None, count_exact=count_exact)
    plan = explain_as_app(db_url, tenant, load_queries("pieces.sql")["list_pieces"], params)
    return [n for n in plan_nodes(plan)
            if n.get("Relation Name") == "pieces" and n.get("Actual Loops", 0) > 0]


def test_nothing_is_counted_unless_asked(db_url, tenant, tree):
    counting = _pieces_scans(db_url, tenant, tree, True)
    plain = _pieces_scans(db_url, tenant, tree, False)
    assert len(counting) == len(plain) + 1, (counting, plain)
