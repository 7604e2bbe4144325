"""A write whose COMMIT has an unknown outcome is a 503, never a 200 (docs/high-availability.md).

A primary of the test's own (the pgserver wheel's binaries) whose `synchronous_standby_names`
names a standby that does not exist: every COMMIT commits locally, then waits for that standby
forever. When the wait is cancelled (the request's statement_timeout, or pg_cancel_backend
from another session) PostgreSQL only sends a WARNING with the COMMIT's success; when the
session is terminated the connection is lost in the COMMIT. Either way the service answers
503 with Retry-After, and a retry of the sync once the setting is cleared finds the rows
stored (`unchanged`)."""
from __future__ import annotations

import threading
import uuid

import pytest

from helpers import Caller, make_config
from pieces_service import create_app, db
from pieces_service.config import database_url as parse_url
from pieces_service.migrate import connect, migrate

from .reliability_harness import StreamingReplication, wait_until

STATEMENT_TIMEOUT_MS = 700


@pytest.fixture(scope="module")
def primary(tmp_path_factory):
    replication = StreamingReplication(tmp_path_factory.mktemp("sync-commit"))
    try:
        url = parse_url(replication.create_database())
        migrate(url, echo=lambda *_: None)
        yield url
    finally:
        replication.close()


def _admin(url):
    conn = connect(url)
    conn.autocommit = True
    return conn


def _synchronous_standby(url, names: str) -> None:
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER SYSTEM SET synchronous_standby_names = %s", (names,))
            cur.execute("SELECT pg_reload_conf()")
        wait_until(lambda: _setting(url) == names, 10, 0.05, "the reloaded setting")
    finally:
        conn.close()


def _setting(url) -> str:
    conn = _admin(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW synchronous_standby_names")
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def stuck_commits(primary):
    """Every COMMIT on `primary` waits for a standby that never comes, until the test ends."""
    _synchronous_standby(primary, "no_such_standby")
    try:
        yield primary
    finally:
        _synchronous_standby(primary, "")


@pytest.fixture
def app(primary):
    built = create_app(make_config(primary, statement_timeout_ms=STATEMENT_TIMEOUT_MS))
    yield built
    db.dispose(built)


def _sync(caller, company, codes):
    return caller.post("/api/v1/sync/projects", json={"projects": [
        {"company_guid": str(company), "code": code} for code in codes]})


def _assert_unknown_outcome(response):
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "1"
    detail = response.get_json()["detail"]
    assert "outcome of this write is unknown" in detail and "safe to retry" in detail


def _assert_stored_on_retry(primary, caller, company, codes):
    """The retry, once the primary commits again, finds every row stored: nothing new."""
    _synchronous_standby(primary, "")
    retried = _sync(caller, company, codes)
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert retried.get_json() == {"inserted": 0, "updated": 0, "unchanged": len(codes)}


def _waiting_backend(url) -> int:
    """The pid of the service's session waiting for synchronous replication."""
    def find():
        conn = _admin(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name ="
                            " 'pieces_service' AND wait_event = 'SyncRep'")
                row = cur.fetchone()
                return row and row[0]
        finally:
            conn.close()
    return wait_until(find, 10, 0.02, "a COMMIT waiting for its standby")


def test_a_commit_whose_standby_wait_times_out_is_a_503(stuck_commits, app):
    """PostgreSQL's statement_timeout does not reach the wait: the service's deadline does."""
    company = uuid.uuid4()
    caller = Caller(app.test_client(), company, "Integration")
    codes = ["SYNC-TIMEOUT-1", "SYNC-TIMEOUT-2"]
    answers = []
    request = threading.Thread(target=lambda: answers.append(_sync(caller, company, codes)),
                               daemon=True)
    request.start()
    request.join(STATEMENT_TIMEOUT_MS / 1000 + 10)
    assert answers, "the COMMIT still waits: nothing bounded it"
    _assert_unknown_outcome(answers[0])
    _assert_stored_on_retry(stuck_commits, caller, company, codes)


@pytest.mark.parametrize("action", ["pg_cancel_backend", "pg_terminate_backend"])
def test_a_commit_cancelled_or_killed_in_its_standby_wait_is_a_503(stuck_commits, primary,
                                                                    action):
    built = create_app(make_config(primary, statement_timeout_ms=60000))
    company = uuid.uuid4()
    caller = Caller(built.test_client(), company, "Integration")
    codes = [f"SYNC-{action}"]
    answers = []
    request = threading.Thread(target=lambda: answers.append(_sync(caller, company, codes)))
    try:
        request.start()
        pid = _waiting_backend(primary)
        conn = _admin(primary)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT {action}(%s)", (pid,))
        finally:
            conn.close()
        request.join(30)
        assert answers, "the request did not return"
        _assert_unknown_outcome(answers[0])
        _assert_stored_on_retry(primary, caller, company, codes)
    finally:
        request.join(30)
        db.dispose(built)
