"""Behind PgBouncer in transaction-pooling mode (`make pgbouncer-test`).

1. The shared API suite (tests/api) passes with every app connecting through PgBouncer.
2. Requests of different tenants that share ONE server connection (default_pool_size=1)
   never see each other's rows: the tenant and role are transaction-local."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from helpers import make_config, make_token
from pieces_service import create_app

from .reliability_harness import PROJECT_DIR, PgBouncer

pytestmark = pytest.mark.pgbouncer


def _bouncer_for(db_url, pool_size):
    socket_dir = db_url.query.get("host") or db_url.host or "/tmp"
    if isinstance(socket_dir, tuple):
        socket_dir = socket_dir[0]
    return PgBouncer(socket_dir=socket_dir, server_port=db_url.port or 5432,
                     dbname=db_url.database, user=db_url.username or "postgres",
                     pool_size=pool_size)


def _through(bouncer, db_url):
    return db_url.set(host="127.0.0.1", port=bouncer.port, query={})


def test_api_suite_passes_through_pgbouncer(db_url):
    bouncer = _bouncer_for(db_url, pool_size=20)
    try:
        env = {**os.environ,
               "TEST_DATABASE_URL": db_url.render_as_string(hide_password=False),
               "PIECES_TEST_APP_DATABASE_URL":
                   _through(bouncer, db_url).render_as_string(hide_password=False),
               "PYTHONPATH": os.pathsep.join(
                   [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "pgbouncer_app", "-p",
             "no:cacheprovider", "tests/api"],
            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600)
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
        print(f"\ntests/api through PgBouncer: {summary}")
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
        assert "passed" in summary
        logins = bouncer.log_text().count("login attempt")
        print(f"PgBouncer client logins during the run: {logins}")
        assert logins > 0, "the suite did not go through PgBouncer"
    finally:
        bouncer.close()


def test_tenants_sharing_one_server_connection_never_see_each_other(db_url, seed):
    bouncer = _bouncer_for(db_url, pool_size=1)
    app = create_app(make_config(db_url, database_url=_through(bouncer, db_url),
                                 db_pool_size=8, db_max_overflow=8))
    try:
        tenants = [uuid.uuid4() for _ in range(4)]
        trees = {t: seed.tree(t, pieces_per_assembly=5) for t in tenants}
        owned = {t: {str(p) for p in trees[t].pieces} for t in tenants}
        failures: list[str] = []
        counts = {"requests": 0}
        lock = threading.Lock()

        def worker(index):
            rng = random.Random(index)
            client = app.test_client()
            for n in range(40):
                tenant = rng.choice(tenants)
                headers = {"Authorization": "Bearer " + make_token(tenant, "CompanyAdmin")}
                if n % 4 == 3:
                    item = {"company_guid": str(tenant), "project_guid": str(trees[tenant].project),
                            "component_guid": str(trees[tenant].component),
                            "piece_id": f"pgb-{index}-{n}"}
                    response = client.post("/api/v1/sync/pieces", json={"pieces": [item]},
                                           headers=headers)
                    ok = response.status_code == 200
                else:
                    response = client.get("/api/v1/pieces", headers=headers,
                                          query_string={"limit": 1000})
                    rows = response.get_json() if response.status_code == 200 else None
                    ok = rows is not None and all(
                        row["company_guid"] == str(tenant) for row in rows) and owned[
                            tenant] <= {row["guid"] for row in rows}
                with lock:
                    counts["requests"] += 1
                    if not ok:
                        failures.append(f"{tenant}: {response.status_code} "
                                        f"{response.get_data(as_text=True)[:300]}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        assert not failures, failures[:5]
        assert counts["requests"] == 8 * 40
        print(f"\nshared server connection: {counts['requests']} requests by 4 tenants, "
              f"0 cross-tenant rows")
    finally:
        engine = app.extensions["pieces_db"].get("engine")
        if engine is not None:
            engine.dispose()
        bouncer.close()
