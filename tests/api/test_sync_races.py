"""SPEC §6: a `200` from sync means every item is stored as sent, also when requests race.

Each test makes the race happen, not hope for it: an owner connection inserts the
contested row and holds its transaction open; the sync request, started meanwhile, queues
on that row's unique index entry; only then does the holder commit (or roll back).
"""
from __future__ import annotations

import threading
import uuid

import pytest

from helpers import assert_error, fetch_one, make_token, wait_until_blocked
from pieces_service.migrate import connect

INSERT_PIECE = ("INSERT INTO pieces (guid, company_guid, project_guid, component_guid, piece_id,"
                " outer_length) VALUES (%s, %s, %s, %s, %s, %s)")


def race(app, db_url, row: tuple, tenant, body: dict, *, commit: bool):
    """Insert `row` (INSERT_PIECE's values) in an open transaction, send the sync `body` as
    `tenant`'s Integration caller, wait until it queues on the row, then commit or roll
    back; return the response."""
    holder = connect(db_url)
    result = {}
    headers = {"Authorization": "Bearer " + make_token(tenant, "Integration")}
    try:
        with holder.cursor() as cur:
            cur.execute(INSERT_PIECE, row)
            thread = threading.Thread(target=lambda: result.update(response=app.test_client()
                                      .post("/api/v1/sync/pieces", json=body, headers=headers)))
            thread.start()
            wait_until_blocked(cur, thread, result, "sync")
        holder.commit() if commit else holder.rollback()
        thread.join(timeout=30)
    finally:
        holder.close()
    return result["response"]


def piece_item(tree, guid=None, piece_id="RACE-1", **fields):
    item = {"company_guid": str(tree.company), "project_guid": str(tree.project),
            "component_guid": str(tree.component), "piece_id": piece_id, **fields}
    if guid is not None:
        item["guid"] = str(guid)
    return item


def test_two_tenants_taking_one_new_guid_the_loser_gets_403(app, db_url, seed, admin_conn,
                                                            tenant, other_tenant):
    winner, loser = seed.tree(other_tenant, 0), seed.tree(tenant, 0)
    guid = uuid.uuid4()
    response = race(app, db_url, (str(guid), str(other_tenant), str(winner.project),
                                  str(winner.component), "THEIRS", 1),
                    tenant, {"pieces": [piece_item(loser, piece_id="OK-0"),
                                        piece_item(loser, guid, "MINE", outer_length=2)]},
                    commit=True)
    body = assert_error(response, 403)
    assert body["detail"] == f"pieces[1].guid: GUID {guid} belongs to another tenant.", body
    assert fetch_one(admin_conn, "SELECT company_guid, piece_id, outer_length FROM pieces"
                     " WHERE guid = %s", (str(guid),)) == (other_tenant, "THEIRS", 1)
    assert fetch_one(admin_conn, "SELECT count(*) FROM pieces WHERE company_guid = %s",
                     (str(tenant),)) == (0,)


def test_the_guid_freed_by_a_rollback_is_inserted(app, db_url, seed, admin_conn, tenant,
                                                  other_tenant):
    winner, loser = seed.tree(other_tenant, 0), seed.tree(tenant, 0)
    guid = uuid.uuid4()
    response = race(app, db_url, (str(guid), str(other_tenant), str(winner.project),
                                  str(winner.component), "THEIRS", 1),
                    tenant, {"pieces": [piece_item(loser, guid, "MINE", outer_length=2)]},
                    commit=False)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"inserted": 1, "updated": 0, "unchanged": 0}
    assert fetch_one(admin_conn, "SELECT company_guid, piece_id, outer_length FROM pieces"
                     " WHERE guid = %s", (str(guid),)) == (tenant, "MINE", 2)


@pytest.mark.parametrize("values", ["differ", "same"])
def test_one_tenant_racing_on_one_natural_key_stores_the_later_values(app, db_url, seed,
                                                                      admin_conn, tenant,
                                                                      values):
    """The request waits for the row with its natural key, then updates it: stored as sent."""
    tree = seed.tree(tenant, 0)
    first = uuid.uuid4()
    length = 7 if values == "same" else 8
    response = race(app, db_url, (str(first), str(tenant), str(tree.project),
                                  str(tree.component), "RACE-1", 7),
                    tenant, {"pieces": [piece_item(tree, outer_length=length)]}, commit=True)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == ({"inserted": 0, "updated": 1, "unchanged": 0}
                                   if values == "differ"
                                   else {"inserted": 0, "updated": 0, "unchanged": 1})
    assert fetch_one(admin_conn, "SELECT guid, outer_length FROM pieces WHERE company_guid = %s"
                     " AND piece_id = 'RACE-1'", (str(tenant),)) == (first, length)


def test_one_tenant_racing_on_one_guid_stores_the_later_values(app, db_url, seed, admin_conn,
                                                               tenant):
    tree = seed.tree(tenant, 0)
    guid = uuid.uuid4()
    response = race(app, db_url, (str(guid), str(tenant), str(tree.project),
                                  str(tree.component), "RACE-1", 7),
                    tenant, {"pieces": [piece_item(tree, guid, outer_length=9)]}, commit=True)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"inserted": 0, "updated": 1, "unchanged": 0}
    assert fetch_one(admin_conn, "SELECT outer_length FROM pieces WHERE guid = %s",
                     (str(guid),)) == (9,)
