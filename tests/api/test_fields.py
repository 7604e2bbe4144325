"""Field selection (issue 12, point 2): `fields=a,b` on the list, the detail and the export
returns just those fields, the SQL reads just those columns, and an unknown name is a 422
naming it. Without it, everything is as before."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest

from helpers import assert_error, explain_as_app, ok, plan_nodes
from pieces_service.catalogue import DETAIL_FIELDS, LIST_FIELDS, REQUIRED_DETAIL_FIELDS
from pieces_service.dao import load_queries, narrowed
from pieces_service.dao import pieces as pieces_dao

LIST = "/api/v1/pieces"
EXPORT = "/api/v1/pieces/export"


@pytest.fixture
def tree(seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    for n in range(3):
        seed.piece(tenant, tree.project, tree.component, tree.assembly, piece_id=f"F-{n}",
                   barcode=f"BC-{n}", profile_code="PF001", outer_length=1000 + n)
    return tree


@pytest.fixture
def reader(as_tenant, tenant):
    return as_tenant(tenant)


def get(caller, path, headers=None, **query):
    return caller.client.get(path, query_string=query,
                             headers={**caller.headers, **(headers or {})})


def test_the_list_returns_just_the_fields_asked_for(reader, tree):
    full = ok(get(reader, LIST, project_guid=str(tree.project)))
    some = ok(get(reader, LIST, project_guid=str(tree.project),
                  fields="guid,piece_id,barcode"))
    assert [list(row) for row in some] == [["guid", "piece_id", "barcode"]] * 3
    assert some == [{k: row[k] for k in ("guid", "piece_id", "barcode")} for row in full]


def test_fields_come_in_the_representations_order_however_asked(reader, tree):
    one = get(reader, LIST, project_guid=str(tree.project), fields="barcode,guid")
    other = get(reader, LIST, project_guid=str(tree.project), fields=" guid , barcode,guid")
    assert [list(row) for row in ok(one)] == [["guid", "barcode"]] * 3
    assert one.get_data() == other.get_data()
    assert one.headers["ETag"] == other.headers["ETag"]


def test_without_fields_everything_is_as_before(reader, tree):
    rows = ok(get(reader, LIST, project_guid=str(tree.project)))
    assert [list(row) for row in rows] == [list(LIST_FIELDS)] * 3
    detail = ok(get(reader, f"{LIST}/{rows[0]['guid']}"))
    assert list(detail) == list(DETAIL_FIELDS)


def test_a_page_with_fields_has_its_own_tag_and_revalidates(reader, tree):
    query = {"project_guid": str(tree.project), "limit": 2}
    full = get(reader, LIST, **query)
    some = get(reader, LIST, fields="guid", **query)
    assert full.headers["ETag"] != some.headers["ETag"]
    again = get(reader, LIST, headers={"If-None-Match": some.headers["ETag"]}, fields="guid",
                **query)
    assert again.status_code == 304


def test_the_next_page_keeps_the_fields(reader, tree):
    first = get(reader, LIST, project_guid=str(tree.project), limit=2, fields="piece_id")
    link = first.headers["Link"].split(";")[0].strip("<>")
    second = reader.client.get(link, headers=reader.headers)
    assert ok(second) == [{"piece_id": "F-2"}]


def test_fields_and_a_count_combine(reader, tree):
    response = get(reader, LIST, headers={"Prefer": "count=exact"},
                   project_guid=str(tree.project), fields="guid", limit=2)
    assert response.headers["Content-Range"] == "0-1/3"
    assert [list(row) for row in ok(response)] == [["guid"]] * 2


def test_the_detail_returns_just_the_fields_asked_for(reader, tree):
    [row] = ok(get(reader, LIST, piece_id="F-1"))
    path = f"{LIST}/{row['guid']}"
    full = ok(get(reader, path))
    some = ok(get(reader, path, fields="profile_code,guid,updated_at,outer_length"))
    chosen = [name for name in DETAIL_FIELDS
              if name in ("guid", "updated_at", "outer_length", "profile_code")]
    assert list(some) == chosen  # the detail's order
    assert some == {k: full[k] for k in chosen}
    # The detail's rules are the same with fields: 404 for a piece not there.
    assert_error(get(reader, f"{LIST}/00000000-0000-0000-0000-000000000001", fields="guid"),
                 404, "Piece not found")


def test_the_export_returns_just_the_fields_asked_for(reader, tree):
    ndjson = get(reader, EXPORT, project_guid=str(tree.project), fields="barcode,piece_id")
    lines = [json.loads(line) for line in ndjson.get_data(as_text=True).splitlines()]
    assert lines == [{"piece_id": f"F-{n}", "barcode": f"BC-{n}"} for n in range(3)]
    text = get(reader, EXPORT, headers={"Accept": "text/csv"}, project_guid=str(tree.project),
               fields="outer_length,piece_id,profile_code").get_data(as_text=True)
    records = list(csv.reader(io.StringIO(text)))
    assert records == [["piece_id", "outer_length", "profile_code"],
                       *[[f"F-{n}", str(1000 + n), "PF001"] for n in range(3)]]


@pytest.mark.parametrize("path, fields, named", [
    (LIST, "guid,nope", "nope"),
    (LIST, "guid,profile_code", "profile_code"),  # a detail field: not in the list item
    (LIST, "Guid", "Guid"),
    (EXPORT, "guid,colour", "colour"),
    ("DETAIL", "barcode,x1,x2", "x1, x2"),
])
def test_an_unknown_field_is_a_422_naming_it(reader, tree, path, fields, named):
    if path == "DETAIL":
        [row] = ok(get(reader, LIST, piece_id="F-0"))
        path = f"{LIST}/{row['guid']}"
    body = assert_error(get(reader, path, fields=fields), 422)
    [message] = body["errors"]["fields"]
    assert f": {named}." in message, message


@pytest.mark.parametrize("fields", ["", ",", "guid,,piece_id", "guid,"])
def test_an_empty_field_name_is_a_422(reader, tree, fields):
    body = assert_error(get(reader, LIST, fields=fields), 422)
    assert "fields" in body["errors"]


# --- the SQL reads just those columns -------------------------------------------------------

def _columns_read(plan) -> set[str]:
    """The pieces columns any scan of pieces outputs (EXPLAIN VERBOSE qualifies them)."""
    return {name for node in plan_nodes(plan) if node.get("Relation Name") == "pieces"
            for output in node.get("Output", []) for name in re.findall(r"\w+\.(\w+)", output)}


def test_the_list_statement_reads_just_the_fields(db_url, admin_conn, tenant, tree):
    """With fields=guid,created_at, the page's columns are all in the list index: the page
    is an index-only scan, and no scan of pieces outputs any other field."""
    with admin_conn.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) pieces")  # index-only scans need the visibility map
    params = pieces_dao.list_parameters(
        tenant=tenant, project_guid=tree.project, component_guid=None, assembly_guid=None,
        include_inactive=False, limit=100, offset=0, after=None)
    statement = narrowed(load_queries("pieces.sql")["list_pieces"], LIST_FIELDS,
                         ("guid", "created_at"))
    plan = explain_as_app(db_url, tenant, statement, params, verbose=True)
    scans = [n for n in plan_nodes(plan) if n.get("Relation Name") == "pieces"]
    assert scans and {n["Node Type"] for n in scans} == {"Index Only Scan"}, [
        (n["Node Type"], n.get("Index Name")) for n in scans]
    read = _columns_read(plan)
    assert {"guid", "created_at"} <= read
    assert not read & {"piece_id", "barcode", "outer_length", "angle_left", "angle_right",
                       "deleted_at"}, read


def test_the_detail_statement_reads_just_the_fields(db_url, tenant, tree, reader):
    [row] = ok(get(reader, LIST, piece_id="F-0"))
    statement = narrowed(load_queries("pieces.sql")["get_piece"], DETAIL_FIELDS,
                         ("guid", "barcode"))
    plan = explain_as_app(db_url, tenant, statement,
                          {"tenant": tenant, "guid": row["guid"], "include_inactive": False},
                          verbose=True)
    read = _columns_read(plan)
    # The required fields are read for the integrity check of the stored row (SPEC §4).
    assert read <= {"guid", "barcode", *REQUIRED_DETAIL_FIELDS}, read
    assert "profile_code" not in read and "barcode" in read


def test_narrowing_keeps_exactly_the_chosen_lines():
    statement = load_queries("export.sql")["export_pieces_csv"]
    cut = narrowed(statement, DETAIL_FIELDS, ("guid", "piece_id"))
    assert cut.count("t.guid::text,\n") == 1 and "t.project_guid::text" not in cut
    assert "CASE WHEN t.piece_id = ''" in cut and cut.count("CASE WHEN") == 1
    assert narrowed(statement, DETAIL_FIELDS, None) == statement
    with pytest.raises(ValueError):
        narrowed(statement, LIST_FIELDS, ("guid",))  # the projection is the detail's
