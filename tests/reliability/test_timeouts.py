"""Statement and idle-in-transaction timeouts (PIECES_STATEMENT_TIMEOUT_MS,
PIECES_IDLE_IN_TRANSACTION_TIMEOUT_MS, and PIECES_CASCADE_TIMEOUT_MS for a cascade's
statements) are set per transaction; a statement cut by them is a
503 `Database unavailable`, never a 500, and the pooled connection is fine afterwards."""
from __future__ import annotations

import logging
import threading
import time

from helpers import assert_error, fetch_one, make_token
from pieces_service import db

from .reliability_harness import row_lock


def test_settings_are_transaction_local_for_the_app_role(app_factory, tenant):
    app = app_factory(statement_timeout_ms=1234, idle_in_transaction_timeout_ms=5678)
    with app.app_context():
        with db.transaction(tenant, readonly=True) as conn:
            values = conn.exec_driver_sql(
                "SELECT current_setting('statement_timeout'),"
                " current_setting('idle_in_transaction_session_timeout'), current_user,"
                " current_setting('pieces.tenant')").one()
        assert tuple(values) == ("1234ms", "5678ms", "pieces_app", str(tenant))
        # LOCAL: the pooled connection goes back without them.
        with db.get_engine().connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"


def test_statement_blocked_past_the_timeout_is_503_and_the_pool_recovers(
        app_factory, db_url, seed, tenant, admin_conn):
    app = app_factory(statement_timeout_ms=100, cascade_timeout_ms=100, db_pool_size=1,
                      db_max_overflow=0)
    client = app.test_client()
    tree = seed.tree(tenant, pieces_per_assembly=1)
    piece = tree.pieces[0]
    headers = {"Authorization": "Bearer " + make_token(tenant, "CompanyAdmin")}
    with row_lock(db_url, "SELECT 1 FROM pieces WHERE guid = %s FOR UPDATE", (str(piece),)):
        started = time.monotonic()
        response = client.delete(f"/api/v1/pieces/{piece}", headers=headers)
        elapsed = time.monotonic() - started
    assert_error(response, 503, "Database unavailable")
    assert response.headers.get("Retry-After")
    assert elapsed < 3, elapsed
    # The one pooled connection serves the next requests, and the delete was not applied.
    for _ in range(3):
        assert client.get(f"/api/v1/pieces/{piece}", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/pieces/{piece}", headers=headers).status_code == 204


def test_a_cascade_runs_under_its_own_timeout(app_factory, db_url, seed, tenant):
    """PIECES_CASCADE_TIMEOUT_MS, not the request's statement timeout, limits a cascade
    (100,000 pieces take seconds): a delete that waits 0.5 s on a row lock, ten times the
    statement timeout, still succeeds."""
    app = app_factory(statement_timeout_ms=50, cascade_timeout_ms=20000)
    client = app.test_client()
    tree = seed.tree(tenant, pieces_per_assembly=1)
    headers = {"Authorization": "Bearer " + make_token(tenant, "CompanyAdmin")}
    with row_lock(db_url, "SELECT 1 FROM pieces WHERE guid = %s FOR UPDATE",
                  (str(tree.pieces[0]),)) as holder:
        release = threading.Timer(0.5, holder.rollback)
        release.start()
        started = time.monotonic()
        response = client.delete(f"/api/v1/assemblies/{tree.assembly}", headers=headers)
        release.join()
    assert response.status_code == 204, response.get_data(as_text=True)
    assert time.monotonic() - started >= 0.5


def test_slow_read_is_cancelled_as_503(app_factory, tenant, monkeypatch, admin_conn, caplog):
    """A read that simply runs too long (pg_sleep) is cut the same way: by the server's
    statement_timeout (100 ms), on the session that sent it, long before the 30 s sleep
    would end by itself."""
    from pieces_service.dao import pieces as pieces_dao

    app = app_factory(statement_timeout_ms=100, db_pool_size=1, db_max_overflow=0)
    with app.app_context(), db.get_engine().connect() as conn:  # the one pooled session
        backend = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    real = pieces_dao.list_pieces

    def slow_list(reads, **kwargs):
        # Through the one-message read path, so its SET LOCAL statement_timeout must hold.
        reads.fetch_one(kwargs["tenant"], "SELECT pg_sleep(30)", {})
        return real(reads, **kwargs)

    monkeypatch.setattr(pieces_dao, "list_pieces", slow_list)
    headers = {"Authorization": "Bearer " + make_token(tenant, "Operator")}
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pieces_service.web.extensions"):
        response = app.test_client().get("/api/v1/pieces", headers=headers)
    elapsed = time.monotonic() - started
    assert_error(response, 503, "Database unavailable")
    # What cut it: PostgreSQL cancelled the statement (QueryCanceled: nothing else in this
    # test cancels), not a lost connection or a client-side timeout ...
    assert [r.getMessage() for r in caplog.records
            if r.name == "pieces_service.web.extensions"] == \
        ["database unavailable: QueryCanceled"]
    # ... no earlier than the timeout, and far from the sleep's 30 s: the 10 s bound is a
    # generous margin for a busy machine, yet a third of what an uncut sleep would take.
    assert 0.1 <= elapsed < 10, elapsed
    # The session survived the cancel, idle, its sleep gone (not left running on the
    # server), and it is the pool's one connection that serves the next request.
    state = fetch_one(admin_conn, "SELECT pg_stat_clear_snapshot(), state, query"
                      " FROM pg_stat_activity WHERE pid = %s", (backend,))
    assert state is not None and state[1] == "idle", state
    monkeypatch.setattr(pieces_dao, "list_pieces", real)
    assert app.test_client().get("/api/v1/pieces", headers=headers).status_code == 200
    with app.app_context(), db.get_engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == backend
