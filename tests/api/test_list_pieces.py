"""SPEC §4: GET /api/v1/pieces — filters, tenancy, validation, order and paging."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from helpers import assert_error

LIST = "/api/v1/pieces"
PIECE_RESPONSE_FIELDS = {
    "guid", "piece_id", "project_guid", "component_guid", "assembly_guid", "barcode",
    "outer_length", "angle_left", "angle_right", "is_active", "deleted_at", "company_guid",
    "created_at",
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LINK_RE = re.compile(r'^<([^>]+)>; rel="next"$')
BASE_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)


def guids(response):
    assert response.status_code == 200, response.get_json()
    return [p["guid"] for p in response.json]


def next_link(response):
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK_RE.match(link)
    assert match, link
    return match.group(1)


def seed_timed(seed, tree, count, start=BASE_TIME, **kwargs):
    """`count` pieces under `tree`'s assembly, one second apart from `start`."""
    return [seed.piece(tree.company, tree.project, tree.component, tree.assembly,
                       created_at=start + timedelta(seconds=i), **kwargs)
            for i in range(count)]


# --- what is listed -----------------------------------------------------------------------

def test_active_only_by_default_and_include_inactive(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    active = seed.piece(tenant, tree.project, tree.component, tree.assembly,
                        created_at=BASE_TIME)
    deleted = seed.piece(tenant, tree.project, tree.component, tree.assembly, active=False,
                         created_at=BASE_TIME + timedelta(seconds=1))
    caller = as_tenant(tenant)
    assert guids(caller.get(LIST)) == [str(active)]
    assert guids(caller.get(LIST, include_inactive="false")) == [str(active)]
    response = caller.get(LIST, include_inactive="true")
    assert guids(response) == [str(active), str(deleted)]
    assert [p["is_active"] for p in response.json] == [True, False]
    assert response.json[0]["deleted_at"] is None
    assert response.json[1]["deleted_at"] is not None


def test_each_parent_filter(as_tenant, seed, tenant):
    project = seed.project(tenant)
    component_a = seed.component(tenant, project)
    component_b = seed.component(tenant, project)
    assembly_a1 = seed.assembly(tenant, project, component_a)
    assembly_a2 = seed.assembly(tenant, project, component_a)
    other_project = seed.project(tenant)
    other_component = seed.component(tenant, other_project)
    p_a1 = seed.piece(tenant, project, component_a, assembly_a1, created_at=BASE_TIME)
    p_a2 = seed.piece(tenant, project, component_a, assembly_a2,
                      created_at=BASE_TIME + timedelta(seconds=1))
    p_b = seed.piece(tenant, project, component_b, created_at=BASE_TIME + timedelta(seconds=2))
    p_other = seed.piece(tenant, other_project, other_component,
                         created_at=BASE_TIME + timedelta(seconds=3))
    caller = as_tenant(tenant)
    assert guids(caller.get(LIST)) == [str(p) for p in (p_a1, p_a2, p_b, p_other)]
    assert guids(caller.get(LIST, project_guid=project)) == [str(p_a1), str(p_a2), str(p_b)]
    assert guids(caller.get(LIST, component_guid=component_a)) == [str(p_a1), str(p_a2)]
    assert guids(caller.get(LIST, assembly_guid=assembly_a2)) == [str(p_a2)]
    assert guids(caller.get(LIST, project_guid=project, component_guid=component_a,
                            assembly_guid=assembly_a1)) == [str(p_a1)]
    assert guids(caller.get(LIST, project_guid=other_project)) == [str(p_other)]


def test_another_tenants_rows_never_appear(as_tenant, seed, tenant, other_tenant):
    mine = seed.tree(tenant, pieces_per_assembly=2)
    seed.tree(other_tenant, pieces_per_assembly=3)
    seed.piece(other_tenant, *_parents(seed.tree(other_tenant, 0)), active=False)
    for role in ("Operator", "CompanyAdmin", "SystemAdmin"):
        response = as_tenant(tenant, role).get(LIST, include_inactive="true", limit=1000)
        assert sorted(guids(response)) == sorted(str(g) for g in mine.pieces)
        assert {p["company_guid"] for p in response.json} == {str(tenant)}


def _parents(tree):
    return tree.project, tree.component, tree.assembly


# --- company_guid -------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["CompanyAdmin", "ProjectManager", "Operator", "Integration"])
def test_company_guid_own_allowed_other_forbidden(as_tenant, seed, tenant, other_tenant, role):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    seed.tree(other_tenant, pieces_per_assembly=1)
    caller = as_tenant(tenant, role)
    assert guids(caller.get(LIST, company_guid=tenant)) == [str(tree.pieces[0])]
    assert guids(caller.get(LIST, company_guid=str(tenant).upper())) == [str(tree.pieces[0])]
    assert_error(caller.get(LIST, company_guid=other_tenant), 403,
                 "User does not have access to the specified company.")


def test_system_admin_lists_other_tenant_with_company_guid(as_tenant, seed, tenant, other_tenant):
    own = seed.tree(tenant, pieces_per_assembly=1)
    theirs = seed.tree(other_tenant, pieces_per_assembly=2)
    admin = as_tenant(tenant, "SystemAdmin")
    response = admin.get(LIST, company_guid=other_tenant)
    assert sorted(guids(response)) == sorted(str(g) for g in theirs.pieces)
    assert {p["company_guid"] for p in response.json} == {str(other_tenant)}
    assert guids(admin.get(LIST)) == [str(own.pieces[0])]
    assert guids(admin.get(LIST, company_guid=other_tenant, project_guid=theirs.project,
                           assembly_guid=theirs.assembly, limit=1)) == \
        [guids(response)[0]]


def test_system_admin_parent_filters_use_the_named_tenant(as_tenant, seed, tenant, other_tenant):
    theirs = seed.tree(other_tenant, pieces_per_assembly=1)
    admin = as_tenant(tenant, "SystemAdmin")
    # Without company_guid SystemAdmin lists its own tenant, where that project does not exist.
    assert_error(admin.get(LIST, project_guid=theirs.project), 404,
                 f"Project with GUID {theirs.project} not found or not accessible.")
    assert guids(admin.get(LIST, project_guid=theirs.project, company_guid=other_tenant)) == \
        [str(theirs.pieces[0])]


# --- parent filter errors -----------------------------------------------------------------

@pytest.mark.parametrize("param, entity", [
    ("project_guid", "Project"), ("component_guid", "Component"), ("assembly_guid", "Assembly"),
])
def test_unknown_parent_is_404(as_tenant, tenant, param, entity):
    missing = uuid.uuid4()
    assert_error(as_tenant(tenant).get(LIST, **{param: missing}), 404,
                 f"{entity} with GUID {missing} not found or not accessible.")


@pytest.mark.parametrize("param, entity, attr", [
    ("project_guid", "Project", "project"), ("component_guid", "Component", "component"),
    ("assembly_guid", "Assembly", "assembly"),
])
def test_other_tenants_parent_is_404(as_tenant, seed, tenant, other_tenant, param, entity, attr):
    theirs = seed.tree(other_tenant, pieces_per_assembly=1)
    guid = getattr(theirs, attr)
    for include_inactive in ("false", "true"):
        assert_error(as_tenant(tenant).get(LIST, include_inactive=include_inactive,
                                           **{param: guid}), 404,
                     f"{entity} with GUID {guid} not found or not accessible.")


def test_uppercase_parent_guid_is_echoed_lowercase(as_tenant, tenant):
    missing = uuid.uuid4()
    assert_error(as_tenant(tenant).get(LIST, project_guid=str(missing).upper()), 404,
                 f"Project with GUID {missing} not found or not accessible.")


@pytest.mark.parametrize("param, entity, deleted", [
    ("project_guid", "Project", "project"),
    ("component_guid", "Component", "component"),
    ("assembly_guid", "Assembly", "assembly"),
])
def test_soft_deleted_parent_is_404_unless_include_inactive(as_tenant, seed, tenant, param,
                                                            entity, deleted):
    project = seed.project(tenant, active=deleted != "project")
    component = seed.component(tenant, project, active=deleted != "component")
    assembly = seed.assembly(tenant, project, component, active=deleted != "assembly")
    piece = seed.piece(tenant, project, component, assembly, active=False)
    guid = {"project": project, "component": component, "assembly": assembly}[deleted]
    caller = as_tenant(tenant)
    assert_error(caller.get(LIST, **{param: guid}), 404,
                 f"{entity} with GUID {guid} not found or not accessible.")
    assert guids(caller.get(LIST, include_inactive="true", **{param: guid})) == [str(piece)]


def test_component_not_in_project_is_400(as_tenant, seed, tenant):
    a, b = seed.tree(tenant, 1), seed.tree(tenant, 1)
    assert_error(as_tenant(tenant).get(LIST, project_guid=a.project, component_guid=b.component),
                 400, f"Component {b.component} does not belong to project {a.project}.")


def test_assembly_not_in_component_is_400(as_tenant, seed, tenant):
    tree = seed.tree(tenant, 1)
    sibling = seed.component(tenant, tree.project)
    assert_error(as_tenant(tenant).get(LIST, component_guid=sibling,
                                       assembly_guid=tree.assembly),
                 400, f"Assembly {tree.assembly} does not belong to component {sibling}.")


def test_assembly_not_in_project_is_400(as_tenant, seed, tenant):
    a, b = seed.tree(tenant, 1), seed.tree(tenant, 1)
    assert_error(as_tenant(tenant).get(LIST, project_guid=a.project, assembly_guid=b.assembly),
                 400, f"Assembly {b.assembly} does not belong to project {a.project}.")


# --- query validation ---------------------------------------------------------------------

@pytest.mark.parametrize("query, field", [
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "99999999999999999999999"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "x"}, "offset"),
    ({"offset": str(2**63)}, "offset"),
    ({"offset": "9" * 30}, "offset"),
    ({"project_guid": "not-a-uuid"}, "project_guid"),
    ({"component_guid": "123"}, "component_guid"),
    ({"assembly_guid": "g" * 36}, "assembly_guid"),
    ({"company_guid": "xyz"}, "company_guid"),
    ({"project_guid": "\x00"}, "project_guid"),
    ({"include_inactive": "maybe"}, "include_inactive"),
    ({"colour": "red"}, "colour"),
    ({"Limit": "5"}, "Limit"),
    ({"cursor": "not a cursor"}, "cursor"),
    ({"cursor": "Zm9v"}, "cursor"),
    ({"cursor": "MjAyNC0wMS0wMSBub3QtYS11dWlk"}, "cursor"),
    ({"cursor": "x" * 500}, "cursor"),
])
def test_bad_query_is_422_naming_the_field(as_tenant, tenant, query, field):
    body = assert_error(as_tenant(tenant).get(LIST, **query), 422)
    assert field in body["errors"], body
    assert field in body["detail"], body


@pytest.mark.parametrize("limit", ["1", "1000"])
def test_limit_bounds_are_accepted(as_tenant, seed, tenant, limit):
    seed.tree(tenant, pieces_per_assembly=2)
    assert len(guids(as_tenant(tenant).get(LIST, limit=limit))) == min(int(limit), 2)


def test_huge_offset_is_an_empty_page(as_tenant, seed, tenant):
    seed.tree(tenant, pieces_per_assembly=1)
    assert guids(as_tenant(tenant).get(LIST, offset=str(2**63 - 1))) == []


def test_default_limit_is_100(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    seed_timed(seed, tree, 101)
    caller = as_tenant(tenant)
    assert len(guids(caller.get(LIST))) == 100
    assert len(guids(caller.get(LIST, offset=100))) == 1


# --- order and paging ---------------------------------------------------------------------

def test_order_is_created_at_then_guid(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    later = seed.piece(tenant, *_parents(tree), created_at=BASE_TIME + timedelta(hours=1))
    tied = [seed.piece(tenant, *_parents(tree), created_at=BASE_TIME) for _ in range(6)]
    earliest = seed.piece(tenant, *_parents(tree), created_at=BASE_TIME - timedelta(hours=1))
    expected = [str(earliest), *sorted(str(g) for g in tied), str(later)]
    caller = as_tenant(tenant)
    assert guids(caller.get(LIST)) == expected
    assert guids(caller.get(LIST)) == expected


def test_offset_pages_neither_repeat_nor_skip(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    # Many ties on created_at: only the guid tie-break makes the order total.
    pieces = [seed.piece(tenant, *_parents(tree), created_at=BASE_TIME + timedelta(seconds=i % 3))
              for i in range(17)]
    caller = as_tenant(tenant)
    whole = guids(caller.get(LIST, limit=1000))
    paged = []
    for offset in range(0, 20, 4):
        paged += guids(caller.get(LIST, limit=4, offset=offset))
    assert paged == whole
    assert sorted(whole) == sorted(str(g) for g in pieces)
    assert guids(caller.get(LIST, limit=4, offset=17)) == []


def test_cursor_walks_every_row_exactly_once(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    pieces = [seed.piece(tenant, *_parents(tree), created_at=BASE_TIME + timedelta(seconds=i // 2))
              for i in range(7)]
    caller = as_tenant(tenant)
    expected = guids(caller.get(LIST))
    assert sorted(expected) == sorted(str(g) for g in pieces)
    first = caller.get(LIST, limit=3)
    walked, url, pages = guids(first), next_link(first), 1
    assert url is not None and url.startswith(LIST + "?")
    while url:
        page = caller.client.get(url, headers=caller.headers)
        walked += guids(page)
        url, pages = next_link(page), pages + 1
        assert pages < 10
    assert walked == expected


def test_cursor_is_stable_while_pieces_are_inserted(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    original = seed_timed(seed, tree, 6)
    caller = as_tenant(tenant)
    first = caller.get(LIST, limit=2)
    walked, url = guids(first), next_link(first)
    # Rows that sort before the cursor would shift an offset page; a keyset page ignores them.
    seed.piece(tenant, *_parents(tree), created_at=BASE_TIME - timedelta(days=1))
    seed.piece(tenant, *_parents(tree), created_at=BASE_TIME - timedelta(days=2))
    newest = seed.piece(tenant, *_parents(tree), created_at=BASE_TIME + timedelta(days=1))
    while url:
        page = caller.client.get(url, headers=caller.headers)
        walked += guids(page)
        url = next_link(page)
    assert walked == [str(g) for g in original] + [str(newest)]


def test_cursor_keeps_filters(as_tenant, seed, tenant):
    a = seed.tree(tenant, pieces_per_assembly=0)
    b = seed.tree(tenant, pieces_per_assembly=0)
    in_a = seed_timed(seed, a, 3)
    seed_timed(seed, b, 3, start=BASE_TIME + timedelta(milliseconds=500))
    caller = as_tenant(tenant)
    first = caller.get(LIST, project_guid=a.project, limit=2)
    url = next_link(first)
    assert f"project_guid={a.project}" in url
    second = caller.client.get(url, headers=caller.headers)
    assert guids(first) + guids(second) == [str(g) for g in in_a]


def test_no_link_on_a_short_page(as_tenant, seed, tenant):
    seed.tree(tenant, pieces_per_assembly=2)
    response = as_tenant(tenant).get(LIST, limit=3)
    assert len(guids(response)) == 2
    assert "Link" not in response.headers


def test_cursor_is_bound_to_the_tenant(as_tenant, seed, tenant, other_tenant):
    mine = seed.tree(tenant, pieces_per_assembly=0)
    seed_timed(seed, mine, 3)
    theirs = seed.tree(other_tenant, pieces_per_assembly=0)
    their_pieces = seed_timed(seed, theirs, 3)
    url = next_link(as_tenant(tenant).get(LIST, limit=1))
    stranger = as_tenant(other_tenant)
    response = stranger.client.get(url, headers=stranger.headers)
    assert set(guids(response)) <= {str(g) for g in their_pieces}
    assert {p["company_guid"] for p in response.json} <= {str(other_tenant)}


# --- response shape -----------------------------------------------------------------------

def test_response_fields_and_formats(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    piece = seed.piece(tenant, *_parents(tree), piece_id="PCE-001", barcode="1234567890123",
                       outer_length=1500, angle_left=45, angle_right=90,
                       profile_code="PF001", created_at=BASE_TIME)
    bare = seed.piece(tenant, tree.project, tree.component, None, piece_id="PCE-002",
                      created_at=BASE_TIME + timedelta(seconds=1))
    response = as_tenant(tenant).get(LIST)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    first, second = response.json
    assert set(first) == PIECE_RESPONSE_FIELDS
    assert set(second) == PIECE_RESPONSE_FIELDS
    assert first == {
        "guid": str(piece), "piece_id": "PCE-001", "project_guid": str(tree.project),
        "component_guid": str(tree.component), "assembly_guid": str(tree.assembly),
        "barcode": "1234567890123", "outer_length": 1500, "angle_left": 45, "angle_right": 90,
        "is_active": True, "deleted_at": None, "company_guid": str(tenant),
        "created_at": first["created_at"],
    }
    assert second["guid"] == str(bare)
    assert second["assembly_guid"] is None and second["barcode"] is None
    assert second["outer_length"] is None
    for item in (first, second):
        for key in ("guid", "project_guid", "component_guid", "company_guid"):
            assert UUID_RE.match(item[key]), item[key]
        created = datetime.fromisoformat(item["created_at"])
        assert created.tzinfo is not None, item["created_at"]
    assert datetime.fromisoformat(first["created_at"]) == BASE_TIME


def test_deleted_at_is_iso_8601_with_offset(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    seed.piece(tenant, *_parents(tree), active=False, deleted_at="2024-02-03T04:05:06Z")
    item, = as_tenant(tenant).get(LIST, include_inactive="true").json
    deleted = datetime.fromisoformat(item["deleted_at"])
    assert deleted == datetime(2024, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    assert deleted.utcoffset() is not None


def test_cursor_walks_microsecond_neighbours_and_pre_epoch_times(as_tenant, seed, tenant):
    """The cursor carries created_at exactly (integer µs), also before 1970, and its text
    needs no ISO parser (Python 3.10's refused PostgreSQL's `+00` offsets)."""
    tree = seed.tree(tenant, pieces_per_assembly=0)
    times = ["1969-12-31 23:59:59.999999+00", "2024-01-01 00:00:00.000001+00",
             "2024-01-01 00:00:00.000002+00", "2024-01-01 00:00:00.000002+00",
             "2024-01-01 02:00:00.000003+02"]
    for created_at in times:
        seed.piece(tenant, *_parents(tree), created_at=created_at)
    caller = as_tenant(tenant)
    expected = guids(caller.get(LIST))
    walked, url = [], LIST + "?limit=1"
    while url:
        page = caller.client.get(url, headers=caller.headers)
        assert page.status_code == 200, page.get_json()
        walked += guids(page)
        url = next_link(page)
    assert walked == expected and len(walked) == 5


def test_cursor_is_integers_and_a_guid():
    from pieces_service.domain.pieces import decode_cursor, encode_cursor

    guid = uuid.uuid4()
    assert decode_cursor(encode_cursor(f"-1 {guid}")) == (-1, guid)
    assert decode_cursor(encode_cursor(f"1704067200000001 {guid}")) == (1704067200000001, guid)


def test_setup_cfg_names_only_the_python_the_suite_runs_on():
    import configparser
    import sys
    from pathlib import Path

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    floor = config["options"]["python_requires"].strip()
    assert floor.startswith(">=")
    assert tuple(int(p) for p in floor[2:].split(".")) <= sys.version_info[:2]
