"""GET /api/v1/changes/<level>: the change feed (SPEC §9, docs/change-feed.md)."""
from __future__ import annotations

import base64
import uuid

import pytest

from helpers import Caller, assert_error, explain_as_app, item, ok, plan_nodes, post
from pieces_service.catalogue import DETAIL_FIELDS, LEVELS
from pieces_service.migrate import connect

FEED = "/api/v1/changes/"


def follow(caller, plural, since=None, limit=100, **query):
    """Every page from `since` until a short page: (rows, tokens of each page)."""
    rows, tokens = [], []
    while True:
        args = {"limit": limit, **query}
        if since:
            args["since"] = since
        page = ok(caller.get(FEED + plural, **args))
        rows += page["changes"]
        tokens.append(page["next"])
        since = page["next"]
        if len(page["changes"]) < limit:
            return rows, tokens


def caught_up(caller, plural, **query):
    """The token of a poll that has seen everything so far."""
    _, tokens = follow(caller, plural, limit=1000, **query)
    return tokens[-1]


def piece_items(tree, count, prefix="PC"):
    return [item("pieces", tree, f"{prefix}-{n:04d}", outer_length=n) for n in range(count)]


@pytest.fixture
def tree(seed, tenant):
    return seed.tree(tenant, pieces_per_assembly=0)


# --- what a page carries ----------------------------------------------------------------------

def test_the_initial_load_carries_every_row_in_full(integration, tree, tenant, as_tenant):
    ok(post(integration, "pieces", piece_items(tree, 3)))
    page = ok(integration.get(FEED + "pieces"))
    assert len(page["changes"]) == 3
    reader = as_tenant(tenant, "Operator")
    for row in page["changes"]:
        assert list(row) == list(DETAIL_FIELDS)
        detail = ok(reader.get(f"/api/v1/pieces/{row['guid']}"))
        assert row == detail  # the feed's representation is the detail's
    for level in ("project", "component", "assembly"):
        rows = ok(integration.get(FEED + LEVELS[level].plural))["changes"]
        assert [r["guid"] for r in rows] == [str(getattr(tree, level))]
        assert list(rows[0]) == list(LEVELS[level].fields)
        assert "change_xid" not in rows[0]


def test_next_is_in_the_body_and_the_link_header(integration, tree):
    ok(post(integration, "pieces", piece_items(tree, 2)))
    response = integration.get(FEED + "pieces", limit=1)
    token = response.json["next"]
    assert response.headers["Link"] == f'</api/v1/changes/pieces?limit=1&since={token}>; ' \
                                       'rel="next"'
    second = ok(integration.get(FEED + "pieces", limit=1, since=token))
    assert second["changes"][0]["guid"] != response.json["changes"][0]["guid"]


def test_paging_returns_every_changed_row_exactly_once(integration, tree):
    for batch in range(3):  # three transactions, interleaving rows of several levels
        ok(post(integration, "pieces", piece_items(tree, 9, prefix=f"B{batch}")))
        ok(post(integration, "components", [item("components", tree, f"C{batch}")]))
    rows, tokens = follow(integration, "pieces", limit=4)
    guids = [row["guid"] for row in rows]
    assert len(guids) == 27 and len(set(guids)) == 27
    assert len(tokens) == 7  # 4+4+4+4+4+4+3
    # Caught up: an empty page, and a token to poll with that stays valid.
    empty = ok(integration.get(FEED + "pieces", since=tokens[-1]))
    assert empty["changes"] == [] and empty["next"] == tokens[-1]
    # An update moves the row to the end of the feed, once.
    ok(post(integration, "pieces", [item("pieces", tree, "B1-0003", outer_length=7)]))
    again = ok(integration.get(FEED + "pieces", since=tokens[-1]))["changes"]
    assert [(r["piece_id"], r["outer_length"]) for r in again] == [("B1-0003", 7)]


def test_an_empty_feed_still_hands_out_a_token(integration):
    page = ok(integration.get(FEED + "projects"))
    assert page["changes"] == []
    assert ok(integration.get(FEED + "projects", since=page["next"]))["changes"] == []


# --- commit safety ----------------------------------------------------------------------------

class HeldWrite:
    """A transaction, as the service's role and tenant, that writes and stays open."""

    def __init__(self, db_url, tenant):
        self.conn = connect(db_url)
        self.cur = self.conn.cursor()
        self.cur.execute("SET LOCAL ROLE pieces_app;"
                         " SELECT set_config('pieces.tenant', %s, true)", (str(tenant),))

    def execute(self, sql, params):
        self.cur.execute(sql, params)
        return self

    def commit(self):
        self.conn.commit()
        self.conn.close()

    def rollback(self):
        self.conn.rollback()
        self.conn.close()


def test_a_write_that_commits_after_a_read_is_on_the_next_page(db_url, integration, tree,
                                                                 tenant, admin_conn):
    """The failure a timestamp watermark has: a transaction writes (updated_at t1), a later
    one writes and commits (t2 > t1), a reader pages past t2, then the first commits: its row
    is behind the reader's watermark, lost. The feed serves neither row until the first
    transaction ends, then both."""
    since = caught_up(integration, "pieces")
    held = HeldWrite(db_url, tenant).execute(
        "INSERT INTO pieces (guid, company_guid, project_guid, component_guid, piece_id)"
        " VALUES (%s, %s, %s, %s, 'LATE')",
        (str(uuid.uuid4()), str(tenant), str(tree.project), str(tree.component)))
    try:
        ok(post(integration, "pieces", [item("pieces", tree, "EARLY")]))  # commits first
        page = ok(integration.get(FEED + "pieces", since=since))
        assert page["changes"] == []  # EARLY waits for LATE's transaction to end
        since = page["next"]
    finally:
        held.commit()
    rows = ok(integration.get(FEED + "pieces", since=since))["changes"]
    assert [r["piece_id"] for r in rows] == ["LATE", "EARLY"]
    late, early = rows
    assert late["updated_at"] < early["updated_at"]  # a timestamp watermark would skip LATE


def test_an_update_that_commits_late_is_not_skipped(db_url, integration, tree, tenant):
    ok(post(integration, "pieces", piece_items(tree, 2)))
    since = caught_up(integration, "pieces")
    held = HeldWrite(db_url, tenant).execute(
        "UPDATE pieces SET outer_length = 99 WHERE company_guid = %s AND piece_id = 'PC-0000'",
        (str(tenant),))
    try:
        ok(post(integration, "pieces", [item("pieces", tree, "PC-0001", outer_length=5)]))
        page = ok(integration.get(FEED + "pieces", since=since))
        since = page["next"]
    finally:
        held.commit()
    seen = page["changes"] + ok(integration.get(FEED + "pieces", since=since))["changes"]
    assert sorted((r["piece_id"], r["outer_length"]) for r in seen) == \
        [("PC-0000", 99), ("PC-0001", 5)]


def test_a_rolled_back_write_leaves_nothing_and_holds_nothing(db_url, integration, tree,
                                                              tenant):
    since = caught_up(integration, "pieces")
    held = HeldWrite(db_url, tenant).execute(
        "INSERT INTO pieces (guid, company_guid, project_guid, component_guid, piece_id)"
        " VALUES (%s, %s, %s, %s, 'GONE')",
        (str(uuid.uuid4()), str(tenant), str(tree.project), str(tree.component)))
    held.rollback()
    ok(post(integration, "pieces", [item("pieces", tree, "KEPT")]))
    rows = ok(integration.get(FEED + "pieces", since=since))["changes"]
    assert [r["piece_id"] for r in rows] == ["KEPT"]


def test_a_read_during_a_write_never_sees_half_of_it(db_url, integration, tree, tenant):
    """Rows of one transaction share its change_xid: a page shows all of them or none."""
    since = caught_up(integration, "pieces")
    held = HeldWrite(db_url, tenant)
    for n in range(3):
        held.execute("INSERT INTO pieces (guid, company_guid, project_guid, component_guid,"
                     " piece_id) VALUES (%s, %s, %s, %s, %s)",
                     (str(uuid.uuid4()), str(tenant), str(tree.project), str(tree.component),
                      f"T-{n}"))
    try:
        assert ok(integration.get(FEED + "pieces", since=since))["changes"] == []
    finally:
        held.commit()
    rows = ok(integration.get(FEED + "pieces", since=since))["changes"]
    assert sorted(r["piece_id"] for r in rows) == ["T-0", "T-1", "T-2"]


# --- what counts as a change ------------------------------------------------------------------

def test_deletes_are_tombstones_and_restores_come_back(as_tenant, integration, tree, tenant):
    manager = as_tenant(tenant, "ProjectManager")
    ok(post(integration, "pieces", piece_items(tree, 2)))
    since = {plural: caught_up(integration, plural)
             for plural in ("projects", "components", "assemblies", "pieces")}
    assert manager.delete(f"/api/v1/projects/{tree.project}").status_code == 204
    for plural, expected in (("projects", 1), ("components", 1), ("assemblies", 1),
                             ("pieces", 2)):
        rows = ok(integration.get(FEED + plural, since=since[plural]))["changes"]
        assert len(rows) == expected, plural
        assert all(r["is_active"] is False and r["deleted_at"] for r in rows)
        since[plural] = ok(integration.get(FEED + plural, since=since[plural]))["next"]
    assert manager.post(f"/api/v1/projects/{tree.project}/restore").status_code == 204
    rows = ok(integration.get(FEED + "pieces", since=since["pieces"]))["changes"]
    assert len(rows) == 2 and all(r["is_active"] and r["deleted_at"] is None for r in rows)


def test_a_resend_that_changes_nothing_adds_nothing(integration, tree):
    batch = piece_items(tree, 5)
    ok(post(integration, "pieces", batch))
    since = caught_up(integration, "pieces")
    assert ok(post(integration, "pieces", batch))["unchanged"] == 5
    assert ok(integration.get(FEED + "pieces", since=since))["changes"] == []
    for kind in ("projects", "components", "assemblies"):
        since = caught_up(integration, kind)
        level = next(level for level in LEVELS.values() if level.plural == kind)
        guid = str(getattr(tree, level.name))
        row = next(r for r in ok(integration.get(FEED + kind))["changes"] if r["guid"] == guid)
        resend = {k: row[k] for k in ("guid", "company_guid", *level.parent_columns, "code")}
        assert ok(post(integration, kind, [resend]))["unchanged"] == 1
        assert ok(integration.get(FEED + kind, since=since))["changes"] == []


def test_a_cascade_of_100000_rows_comes_through_the_feed(admin_conn, as_tenant, integration,
                                                         tree, tenant):
    with admin_conn.cursor() as cur:
        cur.execute("INSERT INTO pieces (guid, company_guid, project_guid, component_guid,"
                    " assembly_guid, piece_id)"
                    " SELECT gen_random_uuid(), %s, %s, %s, %s, 'BULK-' || n"
                    " FROM generate_series(1, 100000) AS n",
                    (str(tenant), str(tree.project), str(tree.component), str(tree.assembly)))
    since = caught_up(integration, "pieces")
    manager = as_tenant(tenant, "ProjectManager")
    assert manager.delete(f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    rows, _ = follow(integration, "pieces", since=since, limit=1000)
    assert len(rows) == 100000
    assert len({r["guid"] for r in rows}) == 100000
    deleted_at = {r["deleted_at"] for r in rows}
    assert len(deleted_at) == 1 and None not in deleted_at
    assert not any(r["is_active"] for r in rows)


# --- tenants and tokens -----------------------------------------------------------------------

def test_a_tenant_sees_only_its_own_changes(as_tenant, seed, integration, tree, other_tenant):
    ok(post(integration, "pieces", piece_items(tree, 2)))
    other = seed.tree(other_tenant, pieces_per_assembly=3)
    rows, _ = follow(as_tenant(other_tenant, "Operator"), "pieces")
    assert sorted(r["guid"] for r in rows) == sorted(str(g) for g in other.pieces)


def test_system_admin_reads_another_tenant_with_company_guid(as_tenant, seed, tenant,
                                                              other_tenant):
    other = seed.tree(other_tenant, pieces_per_assembly=2)
    admin = as_tenant(tenant, "SystemAdmin")
    response = admin.get(FEED + "pieces", company_guid=str(other_tenant))
    page = ok(response)
    assert sorted(r["guid"] for r in page["changes"]) == sorted(str(g) for g in other.pieces)
    assert f"company_guid={other_tenant}" in response.headers["Link"]
    # The token is bound to the tenant read: without company_guid it is not this feed's.
    assert_error(admin.get(FEED + "pieces", since=page["next"]), 422)
    again = ok(admin.get(FEED + "pieces", since=page["next"], company_guid=str(other_tenant)))
    assert again["changes"] == []


def test_others_may_not_name_another_company(as_tenant, tenant, other_tenant):
    caller = as_tenant(tenant, "CompanyAdmin")
    assert_error(caller.get(FEED + "pieces", company_guid=str(other_tenant)), 403,
                 "User does not have access to the specified company.")
    assert ok(caller.get(FEED + "pieces", company_guid=str(tenant)))["changes"] == []


def _tampered(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[20] ^= 1  # a bit of the position
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_foreign_forged_and_garbage_tokens_are_422(as_tenant, integration, tree, tenant,
                                                    other_tenant, seed):
    ok(post(integration, "pieces", piece_items(tree, 2)))
    token = ok(integration.get(FEED + "pieces", limit=1))["next"]
    seed.tree(other_tenant, pieces_per_assembly=2)
    stranger = as_tenant(other_tenant, "Operator")
    bad = {
        "another tenant's": (stranger, "pieces", token),
        "another level's": (integration, "projects", token),
        "tampered": (integration, "pieces", _tampered(token)),
        "truncated": (integration, "pieces", token[:-2]),
        "a list cursor": (integration, "pieces", "MTcwMDAwMDAwMDAwMDAwMCBhYmM"),
        "not base64": (integration, "pieces", "%%%"),
    }
    for why, (caller, plural, since) in bad.items():
        response = caller.get(FEED + plural, since=since)
        assert_error(response, 422, "Validation error: since")
        assert response.json["errors"] == {"since": ["Not a valid token for this feed."]}, why


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1001}, {"limit": "x"},
                                   {"since": ""}, {"company_guid": "nope"}, {"offset": 1}])
def test_bad_query_is_422(integration, query):
    assert_error(integration.get(FEED + "pieces", **query), 422)


@pytest.mark.parametrize("role", ["SystemAdmin", "CompanyAdmin", "ProjectManager", "Operator",
                                  "Integration"])
def test_every_role_reads_the_feed(as_tenant, tenant, role):
    assert as_tenant(tenant, role).get(FEED + "assemblies").status_code == 200


def test_the_feed_needs_a_token(client):
    response = client.get(FEED + "pieces")
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_caught_up_poll_is_one_index_probe(db_url, admin_conn, integration, tree, tenant):
    """As a request runs it (pieces_app, row-level security on), every condition of a
    caught-up poll is an index condition of pieces_changes_idx and the probe finds nothing.
    Sequential and bitmap scans are switched off so that a small test table, where the
    planner would rather read it whole, still shows whether the index can serve it."""
    from pieces_service.dao import changes as changes_dao

    ok(post(integration, "pieces", piece_items(tree, 3)))
    rows = ok(integration.get(FEED + "pieces"))["changes"]
    with admin_conn.cursor() as cur:
        cur.execute("SELECT change_xid FROM pieces WHERE guid = %s", (rows[-1]["guid"],))
        xid = int(cur.fetchone()[0])
    params = changes_dao.parameters(tenant=tenant, after=(xid, uuid.UUID(rows[-1]["guid"])),
                                    limit=100)
    plan = explain_as_app(db_url, tenant, changes_dao.statement(LEVELS["piece"]), params)
    index_scans = [n for n in plan_nodes(plan) if n.get("Relation Name") == "pieces"]
    assert [n.get("Index Name") for n in index_scans] == ["pieces_changes_idx"], index_scans
    cond = index_scans[0]["Index Cond"]
    assert "company_guid" in cond and "change_xid" in cond and "pg_snapshot_xmin" in cond
    assert "Filter" not in index_scans[0]
    assert index_scans[0]["Actual Rows"] == 0


def test_a_processs_first_page_needs_one_pooled_connection(app_factory, seed, tenant):
    """The signing key is read (on a connection of its own, as the owner) before the page's
    connection is taken: with a pool of one, a first page once waited for a second
    connection until the pool timed out (503)."""
    app = app_factory(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=1)
    seed.tree(tenant, pieces_per_assembly=1)
    response = Caller(app.test_client(), tenant, "Operator").get(FEED + "pieces")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.get_json()["changes"]) == 1
