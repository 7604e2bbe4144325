"""A deadlock between concurrent writers is a 409 with nothing written, never a 500/503."""
from __future__ import annotations

import threading
import time

from pieces_service.migrate import connect
from helpers import fetch_one, make_token


def test_deadlock_victim_gets_409_and_writes_nothing(app, db_url, seed, tenant, admin_conn):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    piece = tree.pieces[0]
    other = seed.piece(tenant, tree.project, tree.component, tree.assembly)
    holder = connect(db_url)
    result = {}
    try:
        with holder.cursor() as cur:
            # The holder locks `other`; the request deletes the assembly (locking its row,
            # then wanting `other`); the holder then wants the assembly: a cycle.
            # The holder checks for deadlocks late, so the request (1 s default) is the one
            # PostgreSQL picks as the victim.
            cur.execute("SET deadlock_timeout = '20s'")
            cur.execute("SELECT 1 FROM pieces WHERE guid = %s FOR UPDATE", (str(other),))

            def delete_assembly():
                headers = {"Authorization": "Bearer " + make_token(tenant, "CompanyAdmin")}
                result["response"] = app.test_client().delete(
                    f"/api/v1/assemblies/{tree.assembly}", headers=headers)

            thread = threading.Thread(target=delete_assembly)
            thread.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                cur.execute("SELECT pg_stat_clear_snapshot()")
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                            " 'Lock' AND application_name = 'pieces_service'"
                            " AND datname = current_database()")
                if cur.fetchone()[0] >= 1:
                    break
                time.sleep(0.02)
            cur.execute("SELECT 1 FROM assemblies WHERE guid = %s FOR UPDATE",
                        (str(tree.assembly),))
            holder.rollback()
            thread.join(timeout=30)
    finally:
        holder.close()
    response = result["response"]
    assert response.status_code == 409, response.get_json()
    assert "Retry" in response.get_json()["detail"]
    assert response.headers["Retry-After"] == "1"
    assert fetch_one(admin_conn, "SELECT is_active FROM pieces WHERE guid = %s",
                     (str(piece),)) == (True,)
    assert fetch_one(admin_conn, "SELECT count(*) FROM audit_log WHERE entity_guid = %s",
                     (str(tree.assembly),)) == (0,)
