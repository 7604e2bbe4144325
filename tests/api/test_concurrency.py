"""Concurrent cascades on overlapping subtrees leave a consistent hierarchy.

Each scenario holds a row lock from a separate owner connection so that both requests are
queued on PostgreSQL at the same time, then releases it: whichever order they run in, no
row may stay active under a deleted parent and no acknowledged restore may be lost.
"""
from __future__ import annotations

import threading
import time

import pytest

from pieces_service.migrate import connect
from helpers import fetch_one, make_token

INVARIANT = """
SELECT (SELECT count(*) FROM components c JOIN projects p ON p.guid = c.project_guid
        WHERE c.company_guid = %(t)s AND c.is_active AND NOT p.is_active)
     + (SELECT count(*) FROM assemblies a JOIN components c ON c.guid = a.component_guid
        WHERE a.company_guid = %(t)s AND a.is_active AND NOT c.is_active)
     + (SELECT count(*) FROM pieces x JOIN components c ON c.guid = x.component_guid
        WHERE x.company_guid = %(t)s AND x.is_active AND NOT c.is_active)
     + (SELECT count(*) FROM pieces x JOIN assemblies a ON a.guid = x.assembly_guid
        WHERE x.company_guid = %(t)s AND x.is_active AND NOT a.is_active)
"""


def orphans(conn, tenant):
    """Active rows under a deleted parent (must be 0)."""
    return fetch_one(conn, INVARIANT, {"t": str(tenant)})[0]


def run_together(app, db_url, lock_sql, lock_params, requests, waiting):
    """Hold `lock_sql`'s row lock, start `requests` (callables taking a client) in threads,
    wait until `waiting` backends are blocked on locks, release, return the responses."""
    holder = connect(db_url)
    results = [None] * len(requests)
    try:
        with holder.cursor() as cur:
            cur.execute(lock_sql, lock_params)

            def work(i, call):
                results[i] = call(app.test_client())

            threads = [threading.Thread(target=work, args=(i, call))
                       for i, call in enumerate(requests)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 15
            blocked = 0
            while time.monotonic() < deadline:
                # Activity stats are cached per transaction; this holder's lasts throughout.
                cur.execute("SELECT pg_stat_clear_snapshot()")
                cur.execute("SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                            " AND application_name = 'pieces_service'")
                blocked = cur.fetchone()[0]
                if blocked >= waiting:
                    break
                time.sleep(0.02)
            assert blocked >= waiting, "the requests never queued on the lock"
        holder.rollback()  # release
        for thread in threads:
            thread.join(timeout=30)
        assert all(r is not None for r in results)
    finally:
        holder.close()
    return results


def call(method, path, tenant, role="CompanyAdmin", json=None):
    headers = {"Authorization": "Bearer " + make_token(tenant, role)}
    return lambda client: getattr(client, method)(path, headers=headers, json=json)


@pytest.mark.parametrize("attempt", range(3))
def test_project_delete_vs_assembly_restore(app, db_url, seed, tenant, admin_conn, attempt,
                                            as_tenant):
    tree = seed.tree(tenant, pieces_per_assembly=3)
    caller = as_tenant(tenant, "CompanyAdmin")
    assert caller.delete(f"/api/v1/assemblies/{tree.assembly}").status_code == 204
    delete_p, restore_a = run_together(
        app, db_url, "SELECT 1 FROM projects WHERE guid = %s FOR UPDATE", (str(tree.project),),
        [call("delete", f"/api/v1/projects/{tree.project}", tenant),
         call("post", f"/api/v1/assemblies/{tree.assembly}/restore", tenant)],
        waiting=2)
    assert delete_p.status_code == 204
    assert restore_a.status_code in (204, 409)
    assert orphans(admin_conn, tenant) == 0
    project_deleted_at = fetch_one(admin_conn, "SELECT deleted_at FROM projects WHERE guid = %s",
                                   (str(tree.project),))[0]
    assembly = fetch_one(admin_conn, "SELECT is_active, deleted_at FROM assemblies"
                         " WHERE guid = %s", (str(tree.assembly),))
    if restore_a.status_code == 204:
        # The restore ran first; the project's cascade then took the assembly with it, so
        # restoring the project brings the assembly back: the restore is not lost.
        assert assembly == (False, project_deleted_at)
        assert caller.post(f"/api/v1/projects/{tree.project}/restore").status_code == 204
        assert fetch_one(admin_conn, "SELECT count(*) FROM pieces WHERE assembly_guid = %s"
                         " AND is_active", (str(tree.assembly),)) == (3,)
    else:
        assert assembly[0] is False and assembly[1] != project_deleted_at


@pytest.mark.parametrize("attempt", range(3))
def test_sync_inserts_vs_project_delete(app, db_url, seed, tenant, admin_conn, attempt):
    tree = seed.tree(tenant)
    batch = {"pieces": [{"company_guid": str(tenant), "project_guid": str(tree.project),
                         "component_guid": str(tree.component),
                         "assembly_guid": str(tree.assembly), "piece_id": f"NEW-{i}"}
                        for i in range(50)]}
    delete_p, synced = run_together(
        app, db_url, "SELECT 1 FROM projects WHERE guid = %s FOR UPDATE", (str(tree.project),),
        [call("delete", f"/api/v1/projects/{tree.project}", tenant),
         call("post", "/api/v1/sync/pieces", tenant, json=batch)],
        waiting=2)
    assert delete_p.status_code == 204
    assert synced.status_code == 200, synced.json
    assert synced.json == {"inserted": 50, "updated": 0, "unchanged": 0}
    assert orphans(admin_conn, tenant) == 0
    # Whatever the order, the new pieces carry the project's deleted_at and come back
    # with it.
    assert fetch_one(admin_conn, "SELECT count(*) FROM pieces p JOIN projects j"
                     " ON j.guid = p.project_guid WHERE p.project_guid = %s"
                     " AND p.deleted_at = j.deleted_at", (str(tree.project),)) == (52,)


@pytest.mark.parametrize("attempt", range(3))
def test_overlapping_deletes_then_restores(app, db_url, seed, tenant, admin_conn, attempt,
                                           as_tenant):
    tree = seed.tree(tenant)
    delete_p, delete_c = run_together(
        app, db_url, "SELECT 1 FROM components WHERE guid = %s FOR UPDATE",
        (str(tree.component),),
        [call("delete", f"/api/v1/projects/{tree.project}", tenant),
         call("delete", f"/api/v1/components/{tree.component}", tenant)],
        waiting=2)
    assert orphans(admin_conn, tenant) == 0
    codes = sorted([delete_p.status_code, delete_c.status_code])
    assert codes in ([204, 204], [204, 404])
    caller = as_tenant(tenant, "CompanyAdmin")
    # Restoring the project, then the component if it was deleted on its own, brings all back.
    assert caller.post(f"/api/v1/projects/{tree.project}/restore").status_code == 204
    caller.post(f"/api/v1/components/{tree.component}/restore")
    assert orphans(admin_conn, tenant) == 0
    assert fetch_one(admin_conn, "SELECT count(*) FROM pieces WHERE project_guid = %s"
                     " AND is_active", (str(tree.project),)) == (2,)
