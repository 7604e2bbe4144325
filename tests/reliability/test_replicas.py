"""Read replicas against a real hot standby (streaming replication, `pg_basebackup -R` from
the pgserver wheel's binaries, a second port): reads go to the standby, writes to the
primary; a write's `X-Pieces-Consistency` token makes the next read see it even with the
standby's replay paused, where a read without it is served stale by the standby; a lagging
standby is skipped; stopping the standby under load costs no request and restarting it
brings it back; row-level security and the tenant setting hold on the standby."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers import TEST_SECRET, Caller, Seeder, make_config, make_token
from pieces_service import create_app, db
from pieces_service.config import database_url as parse_url
from pieces_service.catalogue import PIECE
from pieces_service.dao import audit as audit_dao, changes as changes_dao
from pieces_service.dao import pieces as pieces_dao, prepared_for
from pieces_service.migrate import connect, migrate

from .reliability_harness import PROJECT_DIR, Gunicorn, StreamingReplication, wait_until

LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
HEADER = "X-Pieces-Consistency"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    replication = StreamingReplication(tmp_path_factory.mktemp("replicas"))
    try:
        primary = replication.create_database()
        migrate(parse_url(primary), echo=lambda *_: None)
        replication.start_standby()
        yield replication
    finally:
        replication.close()


def _sql(url: str, statement: str, params=()):
    conn = connect(parse_url(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def urls(pair):
    return pair.url(pair.primary_port), pair.url(pair.standby_port)


@pytest.fixture(scope="module")
def owner(urls):
    conn = connect(parse_url(urls[0]))
    conn.autocommit = True
    yield conn
    conn.close()


def _app(urls, **overrides):
    primary, standby = urls
    fields = dict(replica_urls=(parse_url(standby),), replica_check_ms=50,
                  replica_retry_ms=300, replica_max_lag_ms=60000)
    fields.update(overrides)
    return create_app(make_config(parse_url(primary), **fields))


@pytest.fixture(scope="module")
def replica_app(urls):
    built = _app(urls)
    yield built
    db.dispose(built)


def _replayed(urls) -> None:
    """Wait until the standby has replayed everything the primary has written so far."""
    primary, standby = urls
    target = _sql(primary, "SELECT pg_current_wal_insert_lsn()")[0][0]
    wait_until(lambda: _sql(standby, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                            (target,))[0][0], 20, 0.02, "standby replay")


def _reads(client) -> dict[str, float]:
    """pieces_db_reads_total by node, from /metrics."""
    text = client.get("/metrics").get_data(as_text=True)
    return {node: float(value) for node, value in
            re.findall(r'^pieces_db_reads_total\{node="([^"]+)"\} (\S+)$', text, re.M)}


def _delta(before: dict, after: dict) -> dict:
    return {node: after.get(node, 0) - before.get(node, 0)
            for node in {*before, *after} if after.get(node, 0) != before.get(node, 0)}


@pytest.fixture
def tree(owner, urls):
    tree = Seeder(owner).tree(uuid.uuid4(), pieces_per_assembly=3)
    _replayed(urls)
    return tree


def _sync_piece(caller, tree, piece_id):
    response = caller.post("/api/v1/sync/pieces", json={"pieces": [{
        "company_guid": str(tree.company), "project_guid": str(tree.project),
        "component_guid": str(tree.component), "piece_id": piece_id}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def _standby_ran(url, like: str) -> int:
    """The standby's backends of the service whose last statement is `like`."""
    return _sql(url, "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                     " 'pieces_service' AND query LIKE %s", (like,))[0][0]


def test_every_read_is_served_by_the_standby(replica_app, tree, urls):
    client = replica_app.test_client()
    caller = Caller(client, tree.company, "CompanyAdmin")
    # The reads run as prepared statements, EXECUTE <name>(…), here of the shape with no
    # optional filter given; the export as FETCHes.
    executes = {kind: f"%EXECUTE {prepared_for(text, {}).name}(%" for kind, text in (
        ("list", pieces_dao.list_statement(0)), ("detail", pieces_dao._Q["get_piece"]),
        ("audit", audit_dao._Q["list_entries"]), ("changes", changes_dao.statement(PIECE)))}
    paths = {"/api/v1/pieces": executes["list"], f"/api/v1/pieces/{tree.pieces[0]}":
             executes["detail"], "/api/v1/pieces/export": "%FETCH%",
             "/api/v1/audit": executes["audit"], "/api/v1/changes/pieces": executes["changes"]}
    for path, statement in paths.items():
        before = _reads(client)
        response = caller.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        assert _delta(before, _reads(client)) == {"replica1": 1}, path
        # The standby's own view: one of its backends ran that read last.
        assert _standby_ran(urls[1], statement) >= 1, path
    assert len(client.get("/api/v1/pieces", headers=caller.headers).get_json()) == 3


def test_a_write_goes_to_the_primary_and_returns_its_wal_position(replica_app, tree, urls):
    caller = Caller(replica_app.test_client(), tree.company, "Integration")
    token = _sync_piece(caller, tree, "RYW-1").headers[HEADER]
    assert LSN.fullmatch(token)
    # At or past the end of the commit: the standby has the row once it has replayed that far.
    wait_until(lambda: _sql(urls[1], "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                            (token,))[0][0], 20, 0.02, "replay of the token")
    assert _sql(urls[1], "SELECT count(*) FROM pieces WHERE piece_id = 'RYW-1'"
                         " AND company_guid = %s", (str(tree.company),))[0][0] == 1
    # Delete and restore carry one too.
    piece = tree.pieces[0]
    deleted = caller.client.delete(f"/api/v1/pieces/{piece}",
                                   headers=Caller(caller.client, tree.company,
                                                  "CompanyAdmin").headers)
    assert deleted.status_code == 204 and LSN.fullmatch(deleted.headers[HEADER])
    restored = Caller(caller.client, tree.company, "CompanyAdmin").post(
        f"/api/v1/pieces/{piece}/restore")
    assert restored.status_code == 204 and LSN.fullmatch(restored.headers[HEADER])


def test_with_replay_paused_the_token_reads_the_write_and_no_token_reads_stale(replica_app, tree,
                                                                            urls):
    client = replica_app.test_client()
    writer = Caller(client, tree.company, "Integration")
    reader = Caller(client, tree.company, "Operator")
    _sql(urls[1], "SELECT pg_wal_replay_pause()")
    try:
        token = _sync_piece(writer, tree, "PAUSED-1").headers[HEADER]
        before = _reads(client)
        stale = client.get("/api/v1/pieces", query_string={"limit": 100},
                           headers=reader.headers)
        assert _delta(before, _reads(client)) == {"replica1": 1}
        assert stale.status_code == 200
        assert "PAUSED-1" not in {row["piece_id"] for row in stale.get_json()}, \
            "without a token the standby (replay paused) answered: stale, as documented"
        before = _reads(client)
        fresh = client.get("/api/v1/pieces", query_string={"limit": 100},
                           headers={**reader.headers, HEADER: token})
        assert _delta(before, _reads(client)) == {"primary": 1}
        assert "PAUSED-1" in {row["piece_id"] for row in fresh.get_json()}
        # The export honours it too.
        exported = client.get("/api/v1/pieces/export", headers={**reader.headers,
                                                                 HEADER: token})
        assert b"PAUSED-1" in exported.get_data()
    finally:
        _sql(urls[1], "SELECT pg_wal_replay_resume()")
    # Replayed: the same token is served by the standby again.
    _replayed(urls)
    time.sleep(0.1)  # past one lag check
    before = _reads(client)
    again = client.get("/api/v1/pieces", query_string={"limit": 100},
                       headers={**reader.headers, HEADER: token})
    assert "PAUSED-1" in {row["piece_id"] for row in again.get_json()}
    assert _delta(before, _reads(client)) == {"replica1": 1}


def test_a_replica_beyond_the_lag_bound_is_skipped(urls, tree, owner):
    app = _app(urls, replica_max_lag_ms=300)
    client = app.test_client()
    reader = Caller(client, tree.company, "Operator")
    try:
        assert reader.get("/api/v1/pieces").status_code == 200
        _sql(urls[1], "SELECT pg_wal_replay_pause()")
        try:
            Seeder(owner).piece(tree.company, tree.project, tree.component, piece_id="LAG-1")
            time.sleep(0.6)  # the standby's last replayed commit is now older than the bound
            before = _reads(client)
            rows = reader.get("/api/v1/pieces", limit=100).get_json()
            assert _delta(before, _reads(client)) == {"primary": 1}
            assert "LAG-1" in {row["piece_id"] for row in rows}
            lag = re.search(r'^pieces_db_replica_lag_seconds\{node="replica1"\} (\S+)$',
                            client.get("/metrics").get_data(as_text=True), re.M)
            assert lag and float(lag.group(1)) > 0.3
        finally:
            _sql(urls[1], "SELECT pg_wal_replay_resume()")
        _replayed(urls)
        wait_until(lambda: _delta(before, _reads(client)).get("replica1") or
                   reader.get("/api/v1/pieces").status_code != 200, 10, 0.05,
                   "the caught-up standby back in rotation")
    finally:
        db.dispose(app)


def test_a_read_on_a_lost_replica_runs_again_on_the_primary(pair, urls, tree):
    """The standby dies unnoticed by three apps: one holds a pooled connection to it for a
    list, one for an export, one none (it must connect). The next read of each fails on the
    standby and is served, in full, by the primary."""
    cases = {"list": "/api/v1/pieces", "export": "/api/v1/pieces/export",
             "connect": "/api/v1/pieces"}
    apps = {case: _app(urls, replica_check_ms=60000) for case in cases}
    try:
        clients = {case: built.test_client() for case, built in apps.items()}
        callers = {case: Caller(c, tree.company, "Operator") for case, c in clients.items()}
        for case, caller in callers.items():  # measured, and a pooled connection each
            warm = caller.get(cases[case])
            assert warm.status_code == 200
            warm.close()  # the export's connection back in the pool
        with apps["connect"].app_context():
            db._state()["replicas"][0].engine.dispose()  # no pooled connection left
        pair.stop_standby("immediate")
        try:
            for case, caller in callers.items():
                before = _reads(clients[case])
                response = caller.get(cases[case])
                assert response.status_code == 200, response.get_data(as_text=True)
                assert _delta(before, _reads(clients[case])) == {"primary": 1}, case
                assert str(tree.pieces[0]) in response.get_data(as_text=True)
        finally:
            pair.start_standby()
    finally:
        for built in apps.values():
            db.dispose(built)


def test_a_malformed_token_is_a_422(client, replica_app):
    for server in (client, replica_app.test_client()):  # without replicas, and with
        caller = Caller(server, uuid.uuid4(), "Operator")
        for bad in ("banana", "0/", "1/2/3", "G/1", "0/123456789"):
            response = server.get("/api/v1/pieces", headers={**caller.headers, HEADER: bad})
            assert response.status_code == 422, bad
            body = response.get_json()
            assert HEADER in body["detail"] and HEADER in body["errors"], body


def test_without_replicas_a_write_sends_no_token(client, tenant):
    response = Caller(client, tenant, "Integration").post(
        "/api/v1/sync/projects", json={"projects": [{"company_guid": str(tenant),
                                                     "code": "no-replica"}]})
    assert response.status_code == 200
    assert HEADER not in response.headers


def _scrape(server) -> dict[str, float]:
    status, body, _ = server.request("GET", "/metrics")
    assert status == 200
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {node: float(value) for node, value in
            re.findall(r'^pieces_db_reads_total\{node="([^"]+)"\} (\S+)$', text, re.M)}


def test_stopping_the_standby_under_load_costs_no_request(pair, urls, owner):
    company = uuid.uuid4()
    tree = Seeder(owner).tree(company, pieces_per_assembly=3)
    _replayed(urls)
    server = Gunicorn(urls[0], TEST_SECRET, workers=2,
                      PIECES_DATABASE_REPLICA_URLS=urls[1], PIECES_REPLICA_CHECK_MS=100,
                      PIECES_REPLICA_RETRY_MS=500, PIECES_DB_CONNECT_TIMEOUT_SECONDS=2,
                      # Room for the 4 clients' exports in one worker: every request is to be
                      # served, so admission control must not refuse any (a 429 is no outage).
                      PIECES_LONG_SLOTS=4, PIECES_TENANT_LONG_SLOTS=4,
                      PIECES_DB_POOL_SIZE=11)  # a connection for every slot (8 + 1 + 4)
    reader, writer = make_token(company, "Operator"), make_token(company, "Integration")
    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def load(index):
        n = 0
        while not stop.is_set():
            n += 1
            calls = [("GET", "/api/v1/pieces", None, reader),
                     ("GET", f"/api/v1/pieces/{tree.pieces[0]}", None, reader),
                     ("GET", "/api/v1/pieces/export", None, reader),
                     ("POST", "/api/v1/sync/pieces", {"pieces": [{
                         "company_guid": str(company), "project_guid": str(tree.project),
                         "component_guid": str(tree.component),
                         "piece_id": f"load-{index}-{n}"}]}, writer)]
            method, path, body, token = calls[n % len(calls)]
            status, answer, _ = server.request(method, path, body=body, token=token)
            statuses.append(status)
            if not 200 <= status < 300:
                failures.append(f"{method} {path}: {status} {answer!r:.300}")

    try:
        threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        at_stop = _scrape(server)
        assert at_stop.get("replica1", 0) > 0, at_stop
        pair.stop_standby("immediate")
        time.sleep(2.0)
        down = _scrape(server)
        pair.start_standby()
        wait_until(lambda: _scrape(server).get("replica1", 0) > down.get("replica1", 0) + 5,
                   30, 0.2, "the restarted standby serving reads again")
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not failures, failures[:5]
        assert len(statuses) > 50
        assert down["primary"] > at_stop.get("primary", 0), (at_stop, down)
        print(f"\n{len(statuses)} requests, all 2xx; reads by node at the stop {at_stop}, "
              f"2 s later {down}, at the end {_scrape(server)}")
    finally:
        stop.set()
        server.close()


def test_isolation_properties_hold_with_reads_on_the_standby(pair, urls):
    """tests/reliability/test_isolation_properties.py, every app reading from the standby."""
    before = _sql(urls[1], "SELECT xact_commit FROM pg_stat_database"
                           " WHERE datname = current_database()")[0][0]
    env = {**os.environ, "TEST_DATABASE_URL": urls[0], "PIECES_TEST_REPLICA_URL": urls[1],
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                          os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "replica_app", "-p", "no:cacheprovider",
         "tests/reliability/test_isolation_properties.py"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    served = re.search(r"reads served by the standby: (\d+)", run.stdout)
    assert served and int(served.group(1)) > 10, run.stdout[-3000:]
    print(f"\nisolation properties on the standby: {run.stdout.strip().splitlines()[-1]}; "
          f"{served.group(0)}")
    time.sleep(1.1)  # the standby's statistics are flushed at most every second
    after = _sql(urls[1], "SELECT xact_commit FROM pg_stat_database"
                          " WHERE datname = current_database()")[0][0]
    assert after - before > 10


def test_the_openapi_document_describes_the_token(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    reads = writes = 0
    for operations in paths.values():
        for method, operation in operations.items():
            if method == "get":
                reads += 1
                assert HEADER in {p["name"] for p in operation["parameters"]}
            elif method in ("post", "delete"):
                writes += 1
                ok = next(r for s, r in operation["responses"].items() if s in ("200", "204"))
                assert HEADER in ok["headers"]
    assert reads >= 7 and writes >= 11
