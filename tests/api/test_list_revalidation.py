"""The list's ETag comes from the change stamps of the page's range (domain/pieces.py `page_tag`),
so a matching If-None-Match is a 304 answered without building the page."""
from __future__ import annotations

import hashlib
import uuid

import pytest

from helpers import assert_error, explain_as_app, item, ok, plan_nodes, post
from pieces_service.dao import pieces as pieces_dao
from pieces_service.migrate import connect

LIST = "/api/v1/pieces"


@pytest.fixture
def tree(seed, tenant):
    return seed.tree(tenant, pieces_per_assembly=0)


@pytest.fixture
def reader(as_tenant, tenant):
    return as_tenant(tenant, "Operator")


def seed_pieces(integration, tree, count):
    ok(post(integration, "pieces", [item("pieces", tree, f"P-{n:03d}", outer_length=n)
                                    for n in range(count)]))


def get(caller, tag=None, **query):
    headers = dict(caller.headers)
    if tag:
        headers["If-None-Match"] = tag
    return caller.client.get(LIST, query_string=query, headers=headers)


def body_hash(response) -> str:
    return '"' + hashlib.blake2b(response.get_data(), digest_size=16).hexdigest() + '"'


def test_a_match_is_a_304_without_building_the_page(reader, integration, tree, monkeypatch):
    seed_pieces(integration, tree, 5)
    first = get(reader, limit=3)
    tag = first.headers["ETag"]
    assert tag.startswith('"l') and tag != body_hash(first)  # from the stamps, not the body

    def no_page(*args, **kwargs):
        raise AssertionError("the page was built for a matching If-None-Match")

    monkeypatch.setattr(pieces_dao, "list_pieces", no_page)
    again = get(reader, tag, limit=3)
    assert again.status_code == 304 and again.get_data() == b""
    assert again.headers["ETag"] == tag
    assert again.headers["Cache-Control"] == "private, no-cache"


def test_the_tag_is_that_of_the_page_and_of_the_query(reader, integration, tree):
    seed_pieces(integration, tree, 5)
    tag = get(reader, limit=3).headers["ETag"]
    assert get(reader, limit=3).headers["ETag"] == tag
    assert get(reader, tag, limit=3).status_code == 304
    for other in ({"limit": 2}, {"limit": 3, "offset": 1}, {"limit": 3, "include_inactive": True},
                  {"limit": 3, "project_guid": str(tree.project)}):
        response = get(reader, tag, **other)
        assert response.status_code == 200 and response.headers["ETag"] != tag, other


def test_every_change_to_the_page_changes_the_tag(as_tenant, reader, integration, tree,
                                                  tenant):
    seed_pieces(integration, tree, 6)
    manager = as_tenant(tenant, "ProjectManager")
    rows = ok(get(reader, limit=6))  # one batch: one created_at, so in guid order
    guids = [row["guid"] for row in rows]
    page = {"limit": 3, "offset": 1}  # rows 1-3; row 0 is skipped by the offset

    def changed(write) -> bool:
        tag = get(reader, **page).headers["ETag"]
        write()
        response = get(reader, tag, **page)
        return response.status_code == 200 and response.headers["ETag"] != tag

    update = [item("pieces", tree, rows[2]["piece_id"], outer_length=999)]
    assert changed(lambda: ok(post(integration, "pieces", update)))           # a row's value
    assert changed(lambda: manager.delete(f"{LIST}/{guids[2]}"))              # a row leaves
    assert changed(lambda: manager.post(f"{LIST}/{guids[2]}/restore"))        # ... and returns
    assert changed(lambda: manager.delete(f"{LIST}/{guids[0]}"))              # the page shifts
    # After the page's last row nothing it shows changes: the tag stays.
    tag = get(reader, **page).headers["ETag"]
    ok(post(integration, "pieces", [item("pieces", tree, "P-100")]))
    assert get(reader, tag, **page).status_code == 304
    # A short page reaches the end: a new row joins it.
    tag = get(reader, limit=100).headers["ETag"]
    ok(post(integration, "pieces", [item("pieces", tree, "P-101")]))
    assert get(reader, tag, limit=100).status_code == 200


def test_a_write_committing_under_a_newer_stamp_still_changes_the_tag(db_url, reader,
                                                                      integration, tree,
                                                                      tenant):
    """The commit-order trap: T1 (older id) updates a row of the page and stays open; T2
    (newer id) updates another and commits. The page's newest stamp is T2's; when T1 commits
    it stays T2's and the count stays too, so a tag of (count, newest) alone would answer the
    next revalidation with a false 304. While a transaction older than the page's newest
    stamp is open, the tag is the body's hash instead."""
    seed_pieces(integration, tree, 3)
    held = connect(db_url)
    try:
        with held.cursor() as cur:
            cur.execute("SET LOCAL ROLE pieces_app;"
                        " SELECT set_config('pieces.tenant', %s, true);"
                        " UPDATE pieces SET outer_length = -1"
                        " WHERE company_guid = %s AND piece_id = 'P-000'",
                        (str(tenant), str(tenant)))
        ok(post(integration, "pieces", [item("pieces", tree, "P-001", outer_length=-2)]))
        during = get(reader)
        assert during.headers["ETag"] == body_hash(during)  # no cheap tag can be trusted now
        assert get(reader, during.headers["ETag"]).status_code == 304  # nothing new visible
        held.commit()
    finally:
        held.close()
    after = get(reader, during.headers["ETag"])
    assert after.status_code == 200
    assert sorted((row["piece_id"], row["outer_length"]) for row in after.json) == \
        [("P-000", -1), ("P-001", -2), ("P-002", 2)]
    assert after.headers["ETag"].startswith('"l')  # settled: cheap again


def test_parent_checks_come_first(reader, tenant):
    missing = uuid.uuid4()
    assert_error(get(reader, "*", project_guid=str(missing)), 404,
                 f"Project with GUID {missing} not found or not accessible.")


def test_star_matches_any_page(reader, integration, tree):
    seed_pieces(integration, tree, 2)
    assert get(reader, "*").status_code == 304


def test_a_deep_offset_page_is_tagged_by_its_body(reader, integration, tree, monkeypatch):
    """From offset DEEP_OFFSET on, a cheap tag would cost a second pass over every skipped
    row; the page is tagged by its body's hash instead, and still revalidates."""
    monkeypatch.setattr(pieces_dao, "DEEP_OFFSET", 2)
    seed_pieces(integration, tree, 4)
    deep = get(reader, limit=1, offset=2)
    assert deep.headers["ETag"] == body_hash(deep)
    assert get(reader, deep.headers["ETag"], limit=1, offset=2).status_code == 304
    shallow = get(reader, limit=1, offset=1)
    assert shallow.headers["ETag"].startswith('"l')


def test_cursor_pages_have_their_own_tags(reader, integration, tree):
    seed_pieces(integration, tree, 4)
    first = get(reader, limit=2)
    link = first.headers["Link"]
    cursor = link.split("cursor=")[1].split(">")[0].split("&")[0]
    second = get(reader, limit=2, cursor=cursor)
    assert second.headers["ETag"] != first.headers["ETag"]
    assert get(reader, second.headers["ETag"], limit=2, cursor=cursor).status_code == 304


@pytest.mark.parametrize("statement", ["list_pieces", "list_validator"])
def test_the_range_is_an_index_range_under_row_level_security(db_url, seed, tenant,
                                                              statement):
    """As pieces_app (row-level security on), the range's upper bound must be an index
    condition. A bound written as a subquery in the condition is kept behind the policy as a
    filter: the validator then reads every row of the project (60,000 for a big one, five
    times the page's cost in `make bench`) instead of the page's span."""
    from pieces_service.dao import load_queries

    tree = seed.tree(tenant, pieces_per_assembly=0)
    seed.many_pieces(tenant, tree, 300, "R")
    plan = explain_as_app(db_url, tenant, load_queries("pieces.sql")[statement],
                          pieces_dao.list_parameters(
                              tenant=tenant, project_guid=tree.project, component_guid=None,
                              assembly_guid=None, include_inactive=False, limit=10, offset=0,
                              after=None))
    ranges = [node for node in plan_nodes(plan) if node.get("Relation Name") == "pieces"
              and "<=" in node.get("Index Cond", "")]
    assert len(ranges) == 1, [n.get("Index Cond") for n in plan_nodes(plan)]
    # (On a table without statistics the planner may take another tenant-leading index and
    # filter the project there: that filter removes nothing when the bound is in the index.)
    assert ranges[0]["Actual Rows"] <= 10 and ranges[0].get("Rows Removed by Filter", 0) == 0
