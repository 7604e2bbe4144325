"""No half writes: a 1000-piece sync and a cascade over thousands of rows whose backend is
killed mid-transaction (after some of their rows are written, while they wait on a row lock)
leave nothing behind, and the caller gets 503, not 500."""
from __future__ import annotations

import threading
import uuid

from helpers import assert_error, make_token

from .reliability_harness import blocked_backend, row_lock


def _in_thread(func):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("response", func()))
    thread.start()
    return thread, result


def _count(admin_conn, sql, params):
    with admin_conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def test_sync_of_1000_pieces_killed_mid_transaction_leaves_nothing(
        app_factory, db_url, seed, tenant, admin_conn):
    client = app_factory().test_client()
    tree = seed.tree(tenant, pieces_per_assembly=0)
    existing = seed.piece(tenant, tree.project, tree.component, tree.assembly,
                          piece_id="existing", outer_length=1)
    base = {"company_guid": str(tenant), "project_guid": str(tree.project),
            "component_guid": str(tree.component), "assembly_guid": str(tree.assembly)}
    # 999 new pieces by guid (one statement, written first), then one by natural key that
    # updates the locked row: the request waits there with 999 rows written.
    items = [{**base, "guid": str(uuid.uuid4()), "piece_id": f"hw-{i}", "outer_length": i}
             for i in range(999)]
    items.append({**base, "piece_id": "existing", "outer_length": 2})
    headers = {"Authorization": "Bearer " + make_token(tenant, "Integration")}
    before = _count(admin_conn, "SELECT count(*) FROM pieces WHERE company_guid = %s",
                    (str(tenant),))
    with row_lock(db_url, "SELECT 1 FROM pieces WHERE guid = %s FOR UPDATE", (str(existing),)):
        thread, result = _in_thread(lambda: client.post(
            "/api/v1/sync/pieces", json={"pieces": items}, headers=headers))
        pid = blocked_backend(admin_conn)
        with admin_conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(20)
    assert not thread.is_alive()
    assert_error(result["response"], 503, "Database unavailable")
    assert _count(admin_conn, "SELECT count(*) FROM pieces WHERE company_guid = %s",
                  (str(tenant),)) == before == 1
    assert _count(admin_conn, "SELECT outer_length FROM pieces WHERE guid = %s",
                  (str(existing),)) == 1
    # The service is fine afterwards: the same batch goes through whole.
    response = client.post("/api/v1/sync/pieces", json={"pieces": items}, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"inserted": 999,
                                                                   "updated": 1, "unchanged": 0}


def test_project_cascade_over_thousands_of_rows_killed_mid_transaction_leaves_nothing(
        app_factory, db_url, seed, tenant, admin_conn):
    client = app_factory().test_client()
    tree = seed.tree(tenant, pieces_per_assembly=0)
    with admin_conn.cursor() as cur:
        cur.execute("INSERT INTO pieces (guid, company_guid, project_guid, component_guid,"
                    " assembly_guid, piece_id)"
                    " SELECT gen_random_uuid(), %s, %s, %s, %s, 'bulk-' || n"
                    " FROM generate_series(1, 3000) AS n",
                    (str(tenant), str(tree.project), str(tree.component), str(tree.assembly)))
    last = seed.piece(tenant, tree.project, tree.component, tree.assembly, piece_id="zz-last")
    active_sql = ("SELECT count(*) FROM {} WHERE company_guid = %s AND is_active"
                  " AND deleted_at IS NULL")
    counts_before = {t: _count(admin_conn, active_sql.format(t), (str(tenant),))
                     for t in ("projects", "components", "assemblies", "pieces")}
    assert counts_before["pieces"] == 3001
    headers = {"Authorization": "Bearer " + make_token(tenant, "CompanyAdmin")}
    with row_lock(db_url, "SELECT 1 FROM pieces WHERE guid = %s FOR UPDATE", (str(last),)):
        thread, result = _in_thread(lambda: client.delete(
            f"/api/v1/projects/{tree.project}", headers=headers))
        pid = blocked_backend(admin_conn)
        with admin_conn.cursor() as cur:
            # Mid-flight: the project, component and assembly rows are already updated.
            cur.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
            assert "pieces" in cur.fetchone()[0]
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        thread.join(20)
    assert not thread.is_alive()
    assert_error(result["response"], 503, "Database unavailable")
    counts_after = {t: _count(admin_conn, active_sql.format(t), (str(tenant),))
                    for t in counts_before}
    assert counts_after == counts_before
    assert _count(admin_conn, "SELECT count(*) FROM audit_log WHERE company_guid = %s",
                  (str(tenant),)) == 0
    # And it works afterwards, whole.
    assert client.delete(f"/api/v1/projects/{tree.project}", headers=headers).status_code == 204
    assert _count(admin_conn, active_sql.format("pieces"), (str(tenant),)) == 0
