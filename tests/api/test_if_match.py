"""Issue 12, point 4: DELETE and POST …/restore honour `If-Match`.

A piece's tag is the `ETag` of its GET (with `include_inactive=true` once deleted); the other
levels have no GET, so only `*` matches them. A mismatch is a `412` and changes nothing (no
row, no audit entry); without `If-Match`, nothing changes (tests/api/test_hierarchy.py).
The race it exists for is forced: a writer holds the piece's row lock while the conditional
delete queues on it.
"""
from __future__ import annotations

import threading
import uuid

import pytest

from helpers import (assert_error, fetch_one, item, make_token, ok, post,
                     wait_until_blocked)
from pieces_service.migrate import connect

SEGMENT = {"project": "projects", "component": "components", "assembly": "assemblies",
           "piece": "pieces"}
TABLE = SEGMENT


@pytest.fixture
def writer(as_tenant, tenant):
    return as_tenant(tenant, "CompanyAdmin")


@pytest.fixture
def piece(seed, tenant):
    """(tree, guid) of an active piece with a few attributes set (a non-ASCII one too: the
    tag is of the bytes sent)."""
    tree = seed.tree(tenant, pieces_per_assembly=0)
    guid = seed.piece(tenant, tree.project, tree.component, tree.assembly, piece_id="IFM-1",
                      barcode="BC-1", outer_length=1234.5, angle_left=45,
                      profile_name="Flügel 70 – weiß")
    return tree, guid


def etag(caller, guid, **query):
    """The piece's ETag as the GET hands it out (quoted, as a client sends it back)."""
    response = caller.get(f"/api/v1/pieces/{guid}", **query)
    assert response.status_code == 200, response.json
    return response.headers["ETag"]


def if_match(value):
    return {"If-Match": value}


def state(admin_conn, table, guid):
    """(is_active, deleted_at, updated_at) of one row, read as the owner."""
    return fetch_one(admin_conn, f"SELECT is_active, deleted_at, updated_at FROM {table}"
                     " WHERE guid = %s", (str(guid),))


def audit_rows(admin_conn, guid):
    return fetch_one(admin_conn, "SELECT count(*) FROM audit_log WHERE entity_guid = %s",
                     (str(guid),))[0]


def test_the_tag_of_the_get_deletes(writer, piece, admin_conn):
    _, guid = piece
    r = writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(etag(writer, guid)))
    assert r.status_code == 204, r.json
    assert state(admin_conn, "pieces", guid)[0] is False
    assert audit_rows(admin_conn, guid) == 1


def test_a_tag_gone_stale_by_a_sync_update_is_412_and_changes_nothing(
        writer, as_tenant, tenant, seed, admin_conn):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    guid = str(uuid.uuid4())
    integration = as_tenant(tenant, "Integration")
    ok(post(integration, "pieces", [item("pieces", tree, "IFM-2", guid=guid, barcode="OLD")]))
    stale = etag(writer, guid)
    ok(post(integration, "pieces", [item("pieces", tree, "IFM-2", guid=guid, barcode="NEW")]))
    after_sync = writer.get(f"/api/v1/pieces/{guid}").get_data()
    before = state(admin_conn, "pieces", guid)

    body = assert_error(writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(stale)), 412)
    assert body["detail"] == (f"If-Match does not match piece {guid} as it is now; nothing "
                              f"was changed. Its current ETag: GET /api/v1/pieces/{guid}.")
    assert state(admin_conn, "pieces", guid) == before
    assert writer.get(f"/api/v1/pieces/{guid}").get_data() == after_sync
    assert audit_rows(admin_conn, guid) == 0
    # The current tag does it.
    fresh = etag(writer, guid)
    assert fresh != stale
    assert writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(fresh)).status_code == 204


def test_star_matches_any_current_piece(writer, piece, admin_conn):
    _, guid = piece
    assert writer.delete(f"/api/v1/pieces/{guid}", headers=if_match("*")).status_code == 204
    assert writer.post(f"/api/v1/pieces/{guid}/restore",
                       headers=if_match("*")).status_code == 204
    assert state(admin_conn, "pieces", guid)[0] is True
    assert audit_rows(admin_conn, guid) == 2


def test_a_list_matches_when_any_tag_does(writer, piece, admin_conn):
    _, guid = piece
    tag = etag(writer, guid)
    others = '"0123456789abcdef0123456789abcdef", "ffff"'
    assert_error(writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(others)), 412)
    assert state(admin_conn, "pieces", guid)[0] is True
    r = writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(f"{others}, {tag}"))
    assert r.status_code == 204, r.json


@pytest.mark.parametrize("value", ['W/{tag}', '', 'W/"*"'])
def test_weak_or_no_tag_never_matches(writer, piece, admin_conn, value):
    """If-Match compares strongly (RFC 9110 §13.1.1): the right tag sent weak is a 412; a
    header that lists no tag matches nothing."""
    _, guid = piece
    header = if_match(value.format(tag=etag(writer, guid)))
    assert_error(writer.delete(f"/api/v1/pieces/{guid}", headers=header), 412)
    assert state(admin_conn, "pieces", guid)[0] is True
    assert audit_rows(admin_conn, guid) == 0


def test_restore_matches_the_deleted_pieces_tag(writer, piece, admin_conn):
    _, guid = piece
    active_tag = etag(writer, guid)
    assert writer.delete(f"/api/v1/pieces/{guid}").status_code == 204
    deleted_tag = etag(writer, guid, include_inactive="true")
    assert deleted_tag != active_tag
    deleted = state(admin_conn, "pieces", guid)

    body = assert_error(writer.post(f"/api/v1/pieces/{guid}/restore",
                                    headers=if_match(active_tag)), 412)
    assert body["detail"].endswith(f"GET /api/v1/pieces/{guid}?include_inactive=true.")
    assert state(admin_conn, "pieces", guid) == deleted
    assert audit_rows(admin_conn, guid) == 1  # the delete's only

    r = writer.post(f"/api/v1/pieces/{guid}/restore", headers=if_match(deleted_tag))
    assert r.status_code == 204, r.json
    assert state(admin_conn, "pieces", guid)[0] is True
    assert audit_rows(admin_conn, guid) == 2


def test_an_active_piece_gets_the_same_tag_with_include_inactive(writer, piece):
    _, guid = piece
    tag = etag(writer, guid, include_inactive="true")
    assert tag == etag(writer, guid)
    assert writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(tag)).status_code == 204


def test_system_admin_deletes_another_tenants_piece_with_its_tag(as_tenant, piece,
                                                                   admin_conn):
    """The tag is computed in the owner's tenant, as SystemAdmin's GET reads it there."""
    _, guid = piece
    admin = as_tenant(uuid.uuid4(), "SystemAdmin")
    r = admin.delete(f"/api/v1/pieces/{guid}", headers=if_match(etag(admin, guid)))
    assert r.status_code == 204, r.json
    assert state(admin_conn, "pieces", guid)[0] is False


@pytest.mark.parametrize("level", ["project", "component", "assembly"])
def test_levels_without_a_get_match_only_star(writer, seed, tenant, admin_conn, level):
    tree = seed.tree(tenant)
    guid = getattr(tree, level)
    path = f"/api/v1/{SEGMENT[level]}/{guid}"
    active = state(admin_conn, TABLE[level], guid)
    body = assert_error(writer.delete(path, headers=if_match('"anything"')), 412)
    assert body["detail"] == (f"If-Match does not match: a {level} has no readable "
                              f"representation, so only `If-Match: *` can; nothing was "
                              f"changed.")
    assert state(admin_conn, TABLE[level], guid) == active
    assert writer.delete(path, headers=if_match("*")).status_code == 204
    deleted = state(admin_conn, TABLE[level], guid)
    assert deleted[0] is False
    assert fetch_one(admin_conn, "SELECT count(*) FROM pieces WHERE project_guid = %s"
                     " AND is_active", (str(tree.project),)) == (0,)

    assert_error(writer.post(path + "/restore", headers=if_match('"anything"')), 412)
    assert state(admin_conn, TABLE[level], guid) == deleted
    assert audit_rows(admin_conn, guid) == 1
    assert writer.post(path + "/restore", headers=if_match("*")).status_code == 204
    assert state(admin_conn, TABLE[level], guid)[0] is True


@pytest.mark.parametrize("level", ["project", "piece"])
def test_another_tenants_guid_stays_404_whatever_the_tag(as_tenant, seed, tenant,
                                                         other_tenant, admin_conn, level):
    """No tag oracle: the owner's own valid tag, `*` or junk all get the plain 404."""
    tree = seed.tree(other_tenant)
    guid = tree.pieces[0] if level == "piece" else tree.project
    path = f"/api/v1/{SEGMENT[level]}/{guid}"
    owner = as_tenant(other_tenant, "CompanyAdmin")
    tags = ["*", '"junk"'] + ([etag(owner, guid)] if level == "piece" else [])
    stranger = as_tenant(tenant, "CompanyAdmin")
    title = level.title()
    for tag in tags:
        assert_error(stranger.delete(path, headers=if_match(tag)), 404,
                     f"{title} not found or forbidden")
    assert state(admin_conn, TABLE[level], guid)[0] is True
    assert owner.delete(path).status_code == 204
    if level == "piece":
        tags.append(etag(owner, guid, include_inactive="true"))
    for tag in tags:
        assert_error(stranger.post(path + "/restore", headers=if_match(tag)), 404,
                     f"{title} not found or forbidden")
    assert state(admin_conn, TABLE[level], guid)[0] is False


def test_absent_or_already_deleted_is_404_before_the_tag(writer, piece):
    _, guid = piece
    tag = etag(writer, guid)
    assert_error(writer.delete(f"/api/v1/pieces/{uuid.uuid4()}", headers=if_match("*")), 404)
    assert writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(tag)).status_code == 204
    assert_error(writer.delete(f"/api/v1/pieces/{guid}", headers=if_match(tag)), 404,
                 "Piece not found or forbidden")
    assert writer.post(f"/api/v1/pieces/{guid}/restore").status_code == 204
    assert_error(writer.post(f"/api/v1/pieces/{guid}/restore", headers=if_match("*")), 404)


def test_role_is_checked_first(as_tenant, piece, tenant, admin_conn):
    _, guid = piece
    operator = as_tenant(tenant, "Operator")
    assert_error(operator.delete(f"/api/v1/pieces/{guid}",
                                 headers=if_match(etag(operator, guid))), 403)
    assert state(admin_conn, "pieces", guid)[0] is True


def test_restore_checks_the_tag_before_the_parent_rule(writer, seed, tenant, admin_conn):
    """412 before 409: a stale tag is reported even under a deleted parent; the matching
    tag then meets the parent rule."""
    tree = seed.tree(tenant, pieces_per_assembly=1)
    guid = tree.pieces[0]
    assert writer.delete(f"/api/v1/pieces/{guid}").status_code == 204
    tag = etag(writer, guid, include_inactive="true")
    assert writer.delete(f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    path = f"/api/v1/pieces/{guid}/restore"
    assert_error(writer.post(path, headers=if_match('"stale"')), 412)
    body = assert_error(writer.post(path, headers=if_match(tag)), 409)
    assert body["detail"].startswith(f"Cannot restore piece {guid}: its assembly")
    assert state(admin_conn, "pieces", guid)[0] is False


def test_a_write_committed_while_the_delete_waits_makes_it_412(app, db_url, writer, piece,
                                                               tenant, admin_conn):
    """The race: the client reads tag T; a writer locks and updates the piece; the DELETE
    with If-Match T queues on the writer's row lock; the writer commits. The tag is judged
    after the lock, on the piece as committed: 412, and the piece stays as updated."""
    _, guid = piece
    tag = etag(writer, guid)
    headers = {"Authorization": "Bearer " + make_token(tenant, "CompanyAdmin"),
               "If-Match": tag}
    result = {}
    holder = connect(db_url)
    try:
        with holder.cursor() as cur:
            cur.execute("UPDATE pieces SET barcode = 'RACED', updated_at = now()"
                        " WHERE guid = %s", (str(guid),))
            thread = threading.Thread(target=lambda: result.update(
                response=app.test_client().delete(f"/api/v1/pieces/{guid}", headers=headers)))
            thread.start()
            wait_until_blocked(cur, thread, result, "delete")
        holder.commit()
        thread.join(timeout=30)
    finally:
        holder.close()
    assert_error(result["response"], 412)
    assert fetch_one(admin_conn, "SELECT is_active, barcode FROM pieces WHERE guid = %s",
                     (str(guid),)) == (True, "RACED")
    assert audit_rows(admin_conn, guid) == 0
    assert writer.get(f"/api/v1/pieces/{guid}").json["barcode"] == "RACED"
