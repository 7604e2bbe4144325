"""SPEC §9: GET /api/v1/pieces/export — the list's filters, order and errors; every PieceDetail
field as NDJSON or CSV; streamed from a cursor that is released as soon as the stream ends,
fails or is abandoned; its own time limit; and, under a real gunicorn, a client that goes
away, an export cut by its limit and one that outlives gunicorn's worker timeout."""
from __future__ import annotations

import csv
import http.client
import io
import json
import logging
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from helpers import TEST_SECRET, assert_error, fetch_one, make_token
from pieces_service.catalogue import DETAIL_FIELDS
from reliability.reliability_harness import Gunicorn, wait_until

EXPORT = "/api/v1/pieces/export"
LIST = "/api/v1/pieces"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
BASE_TIME = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
ROLES = ("SystemAdmin", "CompanyAdmin", "ProjectManager", "Operator", "Integration")


def export(caller, accept=None, **query):
    headers = dict(caller.headers)
    if accept is not None:
        headers["Accept"] = accept
    return caller.client.get(EXPORT, query_string=query, headers=headers)


def ndjson_rows(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.headers["Content-Type"] == NDJSON
    text = response.get_data(as_text=True)
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def guids(response) -> list[str]:
    return [row["guid"] for row in ndjson_rows(response)]


def listed(caller, **query) -> list[str]:
    response = caller.get(LIST, limit=1000, **query)
    assert response.status_code == 200, response.json
    return [row["guid"] for row in response.json]


def timed_tree(seed, tenant, count, **attrs):
    """A project -> component -> assembly with `count` pieces one second apart."""
    tree = seed.tree(tenant, pieces_per_assembly=0)
    tree.pieces = [seed.piece(tenant, tree.project, tree.component, tree.assembly,
                              created_at=BASE_TIME + timedelta(seconds=i), **attrs)
                   for i in range(count)]
    return tree


def open_export_transactions(admin_conn) -> int:
    """Backends of the service (this database) inside an export's transaction: idle in it
    between two FETCHes, or running one."""
    return fetch_one(admin_conn, """
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'pieces_service'
          AND pid <> pg_backend_pid()
          AND (state LIKE 'idle in transaction%%' OR state = 'active')
          AND query LIKE '%%pieces_export%%'""")[0]


# --- what is exported -----------------------------------------------------------------------

def test_ndjson_by_default_each_line_the_detail_in_list_order(as_tenant, seed, tenant):
    tree = timed_tree(seed, tenant, 3, outer_length=1480, profile_code="PF001",
                      barcode='quote " comma , newline \n end')
    caller = as_tenant(tenant)
    for accept in (None, "*/*", NDJSON, "application/*", "text/csv;q=0.5, */*"):
        response = export(caller, accept)
        assert response.headers["Vary"] == "Accept"
        lines = response.get_data(as_text=True).split("\n")
        assert lines[-1] == "" and len(lines) == 4, (accept, lines)
        assert [json.loads(line)["guid"] for line in lines[:-1]] == \
            [str(p) for p in tree.pieces], accept
    for line, piece in zip(lines, tree.pieces):
        # Byte for byte the detail's body: the same column list, built by PostgreSQL.
        assert line == caller.get(f"{LIST}/{piece}").get_data(as_text=True)
        assert list(json.loads(line)) == list(DETAIL_FIELDS)


def test_filters_and_order_are_the_lists(as_tenant, seed, tenant):
    project = seed.project(tenant)
    component_a = seed.component(tenant, project)
    component_b = seed.component(tenant, project)
    assembly_a = seed.assembly(tenant, project, component_a)
    assembly_b = seed.assembly(tenant, project, component_b)
    other_project = seed.project(tenant)
    other_component = seed.component(tenant, other_project)
    same_time = BASE_TIME + timedelta(seconds=5)  # ties are ordered by guid, as in the list
    for n, (c, a) in enumerate([(component_a, assembly_a), (component_b, assembly_b),
                                (component_a, None), (component_b, assembly_b)] * 2):
        seed.piece(tenant, project, c, a, created_at=same_time if n % 3 else
                   BASE_TIME + timedelta(seconds=n), active=n != 5)
    seed.piece(tenant, other_project, other_component, created_at=BASE_TIME)
    caller = as_tenant(tenant)
    for query in ({}, {"project_guid": project}, {"component_guid": component_a},
                  {"assembly_guid": assembly_b}, {"include_inactive": "true"},
                  {"project_guid": project, "component_guid": component_b,
                   "assembly_guid": assembly_b, "include_inactive": "true"}):
        expected = listed(caller, **query)
        assert expected, query
        assert guids(export(caller, **query)) == expected, query
    everything = ndjson_rows(export(caller, include_inactive="true"))
    assert [row["is_active"] for row in everything].count(False) == 1


def test_csv_header_values_and_quoting(as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    tricky = seed.piece(tenant, tree.project, tree.component, tree.assembly,
                        created_at=BASE_TIME, barcode='a "quoted", two\r\nlines',
                        operations="", outer_length=1480, angle_left=-45, trolley="T,07")
    plain = seed.piece(tenant, tree.project, tree.component, None, active=False,
                       created_at=BASE_TIME + timedelta(seconds=1), profile_code="PF001")
    caller = as_tenant(tenant)
    response = export(caller, CSV, include_inactive="true")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = response.get_data(as_text=True)
    assert raw.startswith(",".join(DETAIL_FIELDS) + "\r\n") and raw.endswith("\r\n")
    records = list(csv.reader(io.StringIO(raw, newline="")))
    assert records[0] == list(DETAIL_FIELDS)
    rows = [dict(zip(records[0], record)) for record in records[1:]]
    assert [row["guid"] for row in rows] == [str(tricky), str(plain)]
    details = [caller.get(f"{LIST}/{p}", include_inactive="true").json for p in (tricky, plain)]
    for row, detail in zip(rows, details):
        assert set(row) == set(detail)
        for name, value in detail.items():
            if value is None:
                expected = ""
            elif isinstance(value, bool):
                expected = "true" if value else "false"
            else:
                expected = str(value)  # timestamps: the JSON's ISO 8601 text, with offset
            assert row[name] == expected, (name, row[name], value)
    assert rows[0]["barcode"] == 'a "quoted", two\r\nlines'
    assert rows[1]["assembly_guid"] == "" and rows[1]["deleted_at"] != ""
    # An empty string is a quoted empty field; NULL is nothing at all.
    first_record = raw.split("\r\n", 1)[1]
    assert ',"",' in first_record and "T,07" not in first_record.replace('"T,07"', "")


def test_csv_of_nothing_is_its_header_and_ndjson_of_nothing_is_empty(as_tenant, tenant):
    caller = as_tenant(tenant)
    assert export(caller, CSV).get_data(as_text=True) == ",".join(DETAIL_FIELDS) + "\r\n"
    assert export(caller).get_data() == b""


@pytest.mark.parametrize("accept, content_type", [
    (None, NDJSON), ("", NDJSON), ("*/*", NDJSON), ("application/*", NDJSON),
    ("text/csv, application/x-ndjson", NDJSON), ("text/csv;q=0, */*", NDJSON),
    ("text/csv", "text/csv; charset=utf-8"), ("text/*", "text/csv; charset=utf-8"),
    ("*/*;q=0.1, text/csv", "text/csv; charset=utf-8"),
])
def test_accept_picks_the_representation(as_tenant, tenant, accept, content_type):
    response = export(as_tenant(tenant), accept)
    assert response.status_code == 200 and response.headers["Content-Type"] == content_type


@pytest.mark.parametrize("accept", ["application/xml", "application/json",
                                    "text/html, application/xhtml+xml",
                                    "application/x-ndjson;q=0, text/csv;q=0"])
def test_an_accept_that_allows_neither_is_406(as_tenant, tenant, accept):
    body = assert_error(export(as_tenant(tenant), accept), 406)
    assert "application/x-ndjson" in body["detail"] and "text/csv" in body["detail"]


def test_every_role_exports_its_own_tenant_only(as_tenant, seed, tenant, other_tenant):
    mine = timed_tree(seed, tenant, 2)
    timed_tree(seed, other_tenant, 2)
    for role in ROLES:
        assert guids(export(as_tenant(tenant, role))) == [str(p) for p in mine.pieces], role


def test_system_admin_exports_the_tenant_it_names(as_tenant, seed, tenant, other_tenant):
    theirs = timed_tree(seed, other_tenant, 2)
    admin = as_tenant(tenant, "SystemAdmin")
    assert guids(export(admin, company_guid=other_tenant)) == [str(p) for p in theirs.pieces]
    assert guids(export(admin)) == []
    assert guids(export(as_tenant(tenant, "Operator"), company_guid=tenant)) == []
    assert_error(export(as_tenant(tenant, "CompanyAdmin"), company_guid=other_tenant), 403,
                 "User does not have access to the specified company.")


def test_parent_errors_are_the_lists_word_for_word(as_tenant, seed, tenant, other_tenant):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    other = seed.tree(tenant, pieces_per_assembly=0)
    foreign = seed.tree(other_tenant, pieces_per_assembly=0)
    deleted = seed.project(tenant, active=False)
    missing = uuid.uuid4()
    caller = as_tenant(tenant)
    cases = [
        ({"project_guid": missing}, 404,
         f"Project with GUID {missing} not found or not accessible."),
        ({"project_guid": foreign.project}, 404,
         f"Project with GUID {foreign.project} not found or not accessible."),
        ({"project_guid": deleted}, 404,
         f"Project with GUID {deleted} not found or not accessible."),
        ({"component_guid": missing}, 404,
         f"Component with GUID {missing} not found or not accessible."),
        ({"assembly_guid": missing}, 404,
         f"Assembly with GUID {missing} not found or not accessible."),
        ({"project_guid": tree.project, "component_guid": other.component}, 400,
         f"Component {other.component} does not belong to project {tree.project}."),
        ({"component_guid": tree.component, "assembly_guid": other.assembly}, 400,
         f"Assembly {other.assembly} does not belong to component {tree.component}."),
        ({"project_guid": tree.project, "assembly_guid": other.assembly}, 400,
         f"Assembly {other.assembly} does not belong to project {tree.project}."),
    ]
    for query, status, detail in cases:
        assert_error(export(caller, **query), status, detail)
        assert_error(export(caller, CSV, **query), status, detail)
        assert_error(caller.get(LIST, **query), status, detail)  # the same as the list's
    assert guids(export(caller, project_guid=deleted, include_inactive="true")) == []


@pytest.mark.parametrize("query", [{"limit": "10"}, {"offset": "0"}, {"cursor": "abc"},
                                   {"project_guid": "not-a-uuid"}, {"include_inactive": "maybe"}])
def test_unknown_or_bad_parameters_are_422(as_tenant, tenant, query):
    assert_error(export(as_tenant(tenant), **query), 422)


def test_needs_a_token(client):
    assert_error(client.get(EXPORT), 401)


# --- the cursor's lifetime, in process ------------------------------------------------------

@pytest.fixture
def small_batches(monkeypatch):
    """Batches of 10 rows, so that a few dozen pieces make a multi-batch stream."""
    from pieces_service.domain import export as export_domain

    monkeypatch.setattr(export_domain, "BATCH_ROWS", 10)
    return 10


def checked_out(app) -> int:
    return app.extensions["pieces_db"]["engine"].pool.checkedout()


def test_a_stream_closed_midway_ends_its_transaction_at_once(app, as_tenant, seed, tenant,
                                                             admin_conn, small_batches):
    timed_tree(seed, tenant, 35)
    caller = as_tenant(tenant)
    response = caller.client.get(EXPORT, headers=caller.headers, buffered=False)
    chunks = iter(response.response)
    assert next(chunks).count(b"\n") == 10
    assert checked_out(app) == 1 and open_export_transactions(admin_conn) == 1
    response.close()
    assert checked_out(app) == 0 and open_export_transactions(admin_conn) == 0
    assert guids(export(caller)) != []  # the pool serves the next request


def test_a_stream_never_read_ends_its_transaction(app, as_tenant, seed, tenant, admin_conn):
    timed_tree(seed, tenant, 2)
    caller = as_tenant(tenant)
    head = caller.client.head(EXPORT, headers=caller.headers)
    assert head.status_code == 200 and head.get_data() == b""
    head.close()  # as a WSGI server does once it has sent the (empty) body
    assert checked_out(app) == 0 and open_export_transactions(admin_conn) == 0
    response = caller.client.get(EXPORT, headers=caller.headers, buffered=False)
    response.close()  # closed before its first chunk
    assert checked_out(app) == 0 and open_export_transactions(admin_conn) == 0


def test_the_whole_stream_is_read_in_batches(app, as_tenant, seed, tenant, small_batches):
    tree = timed_tree(seed, tenant, 30)  # exactly three batches, then an empty FETCH
    caller = as_tenant(tenant)
    response = caller.client.get(EXPORT, headers={**caller.headers, "Accept": CSV},
                                 buffered=False)
    chunks = list(response.response)
    assert [chunk.count(b"\r\n") for chunk in chunks] == [11, 10, 10]  # header + rows
    assert checked_out(app) == 0
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))[1:]
    assert [row[0] for row in rows] == [str(p) for p in tree.pieces]
    response.close()


def test_the_time_limit_cuts_the_stream_between_batches(app_factory, seed, tenant, caplog,
                                                         admin_conn, small_batches):
    from helpers import Caller
    from pieces_service.domain.export import ExportCut

    timed_tree(seed, tenant, 35)
    limited = app_factory(export_timeout_s=1)
    caller = Caller(limited.test_client(), tenant, "Operator")
    assert caller.get(LIST).status_code == 200  # the pool's connection made before the clock
    response = caller.client.get(EXPORT, headers=caller.headers, buffered=False)
    started_by = time.monotonic()  # the export's clock started before the view returned
    assert response.status_code == 200
    chunks = iter(response.response)
    with caplog.at_level(logging.WARNING, logger="pieces_service.domain.export"):
        assert next(chunks).count(b"\n") == 10
        # Past the limit for certain (it runs from before `started_by`); no upper bound here.
        time.sleep(max(0.0, started_by + 1 - time.monotonic()) + 0.05)
        with pytest.raises(ExportCut):
            next(chunks)
    assert checked_out(limited) == 0 and open_export_transactions(admin_conn) == 0
    (record,) = [r for r in caplog.records if r.name == "pieces_service.domain.export"]
    assert record.levelno == logging.WARNING and "time limit" in record.getMessage()
    assert (record.rows_sent, record.tenant, record.format) == (10, str(tenant), "ndjson")
    assert record.seconds >= 1 and record.exc_info is None  # cut at its limit, not before
    response.close()


def test_a_stream_that_loses_its_database_is_cut(app, as_tenant, seed, tenant, admin_conn,
                                                  caplog, small_batches):
    from pieces_service.domain.export import ExportCut

    timed_tree(seed, tenant, 35)
    caller = as_tenant(tenant)
    response = caller.client.get(EXPORT, headers=caller.headers, buffered=False)
    chunks = iter(response.response)
    assert next(chunks)
    (backend,) = fetch_one(admin_conn, """
        SELECT pid FROM pg_stat_activity WHERE datname = current_database()
          AND application_name = 'pieces_service' AND state LIKE 'idle in transaction%%'
          AND query LIKE '%%pieces_export%%' AND pid <> pg_backend_pid()""")
    fetch_one(admin_conn, "SELECT pg_terminate_backend(%s)", (backend,))
    with caplog.at_level(logging.WARNING, logger="pieces_service.domain.export"):
        with pytest.raises(ExportCut):
            next(chunks)
    assert [r.getMessage() for r in caplog.records
            if r.name == "pieces_service.domain.export"] == ["export cut: database unavailable"]
    response.close()
    assert checked_out(app) == 0
    assert len(guids(export(caller))) == 35  # the lost connection was not pooled again


# --- under a real gunicorn ------------------------------------------------------------------

BIG = 20_000  # pieces: ~20 MB of NDJSON, far more than the sockets buffer


@pytest.fixture(scope="module")
def big_tenant(admin_conn):
    """A tenant with BIG pieces under one assembly, inserted in one statement."""
    tenant = uuid.uuid4()
    with admin_conn.cursor() as cur:
        cur.execute("""
            WITH p AS (INSERT INTO projects (guid, company_guid, code)
                       VALUES (gen_random_uuid(), %(t)s, 'BIG') RETURNING guid),
                 c AS (INSERT INTO components (guid, company_guid, project_guid, code)
                       SELECT gen_random_uuid(), %(t)s, guid, 'C' FROM p RETURNING guid,
                       project_guid),
                 a AS (INSERT INTO assemblies (guid, company_guid, project_guid,
                                               component_guid, code)
                       SELECT gen_random_uuid(), %(t)s, project_guid, guid, 'A' FROM c
                       RETURNING guid, project_guid, component_guid)
            INSERT INTO pieces (guid, company_guid, project_guid, component_guid,
                                assembly_guid, piece_id, barcode, outer_length,
                                profile_code, created_at)
            SELECT gen_random_uuid(), %(t)s, a.project_guid, a.component_guid, a.guid,
                   'P-' || i, 'BC' || i, 300 + i %% 3000, 'PF001',
                   timestamptz '2024-01-01' + i * interval '1 second'
            FROM a, generate_series(1, %(n)s) AS i""", {"t": str(tenant), "n": BIG})
    return tenant


def _server(db_url, **env):
    return Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1,
                    PIECES_LOG_LEVEL="WARNING", **env)


@pytest.fixture(scope="module")
def short_worker_timeout(db_url):
    """One worker that gunicorn's arbiter kills after 2 s without a heartbeat."""
    server = _server(db_url, GUNICORN_CMD_ARGS="--timeout 2")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def one_second_exports(db_url):
    """One worker whose exports may take 1 s (PIECES_EXPORT_TIMEOUT_S=1)."""
    server = _server(db_url, PIECES_EXPORT_TIMEOUT_S=1)
    try:
        yield server
    finally:
        server.close()


def start_export(port: int, tenant, *, query: str = "", accept: str = NDJSON):
    """A raw HTTP/1.1 export request on a socket with a small receive buffer (so that the
    server blocks on a client that does not read); returns (socket, response)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    token = make_token(tenant, "Operator")
    sock.sendall(f"GET {EXPORT}{query} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    response = http.client.HTTPResponse(sock)
    response.begin()
    return sock, response


def raw_body(port: int, tenant, query: str = "") -> bytes:
    """The raw (still chunked) body of an export, read to the server's end of stream."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {EXPORT}{query} HTTP/1.1\r\nHost: x\r\n"
                     f"Authorization: Bearer {make_token(tenant, 'Operator')}\r\n\r\n"
                     .encode())
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head, head
    return body


def test_a_client_that_goes_away_frees_the_worker_and_the_connection(
        short_worker_timeout, big_tenant, admin_conn):
    server = short_worker_timeout
    workers = server.worker_pids()
    sock, response = start_export(server.port, big_tenant)
    assert response.status == 200 and response.getheader("Content-Type") == NDJSON
    assert response.read(200_000).count(b"\n") > 100
    # The worker is blocked writing to us, its export's transaction open. (It is silent
    # while blocked, and gunicorn kills a worker silent for 2 s: so nothing but this one
    # check, normally its first poll, stands between our last read and the close.)
    wait_until(lambda: open_export_transactions(admin_conn) == 1, 30, 0.02, "export running")
    response.close()
    sock.close()  # with ~MBs unread: the kernel resets the connection, the next write fails
    # The generous deadline still proves the service ended the transaction: left open,
    # PostgreSQL's own idle-in-transaction limit (the export's, 300 s) would end it far later.
    wait_until(lambda: open_export_transactions(admin_conn) == 0, 30, 0.02,
               "export transaction ended")
    status, body, _ = server.request("GET", f"{LIST}?limit=1", token=make_token(big_tenant,
                                                                               "Operator"))
    assert status == 200 and len(body) == 1
    # Freed by the failed write, not by gunicorn killing a stuck worker (2 s): the same
    # worker serves, and the arbiter logged no timeout.
    assert server.worker_pids() == workers
    text = server.log_text()
    assert "WORKER TIMEOUT" not in text and "Traceback" not in text


WORKER_TIMEOUT_S = 2  # short_worker_timeout's


def test_an_export_longer_than_the_worker_timeout_survives(short_worker_timeout, big_tenant,
                                                           admin_conn):
    """gunicorn kills a worker silent for 2 s; the export beats between batches. A client
    that reads the ~20 MB evenly over 6 s makes the export last well over that, while each
    batch (1/20 of it) drains in ~0.3 s: the silences stay far below the 2 s."""
    pace_s = 6
    server = short_worker_timeout
    workers = server.worker_pids()
    sock, response = start_export(server.port, big_tenant, query="?include_inactive=true")
    started = time.monotonic()
    lines = 0
    last_seen_open = None
    with sock, response:
        while chunk := response.read(1 << 18):  # raises IncompleteRead if cut
            lines += chunk.count(b"\n")
            if open_export_transactions(admin_conn) == 1:
                last_seen_open = time.monotonic()
            # An even pace: a busy machine makes us read later, never earlier.
            time.sleep(max(0.0, started + pace_s * lines / BIG - time.monotonic()))
    assert lines == BIG
    # The server's side: the export's transaction was still open (its worker alive, serving
    # it) more than twice the worker timeout after it began. A lower bound: load only adds.
    assert last_seen_open is not None and last_seen_open - started > 2 * WORKER_TIMEOUT_S, \
        (last_seen_open, started)
    assert server.worker_pids() == workers
    assert "WORKER TIMEOUT" not in server.log_text()


def test_an_export_cut_by_its_time_limit_ends_without_its_last_chunk(one_second_exports,
                                                                     big_tenant, tenant, seed):
    server = one_second_exports
    sock, response = start_export(server.port, big_tenant)
    started_by = time.monotonic()  # the export's 1 s runs from before its status line
    with sock, response:
        assert response.status == 200
        assert response.read(100_000)
        # The server waits on us until its limit has passed for certain; then, at its next
        # batch, it cuts. No upper bound on when: the cut itself is the evidence.
        time.sleep(max(0.0, started_by + 1 - time.monotonic()) + 0.2)
        with pytest.raises(http.client.IncompleteRead):
            while response.read(1 << 18):
                pass

    def cut_lines():
        lines = [json.loads(line) for line in server.log_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if "time limit" in line["message"]]

    # The one line about it: a WARNING with the rows sent, no traceback, no token.
    cuts = wait_until(cut_lines, 30, 0.05, "the time limit's log line")
    assert len(cuts) == 1, cuts
    assert cuts[0]["level"] == "WARNING" and 0 < cuts[0]["rows_sent"] < BIG
    assert cuts[0]["seconds"] >= 1  # not before its limit
    assert cuts[0]["tenant"] == str(big_tenant) and cuts[0]["time_limit_s"] == 1
    text = server.log_text()
    assert "Traceback" not in text and "exc_info" not in text and "Bearer" not in text
    # Meanwhile an export that ends in time ends properly: the terminating chunk is there.
    timed_tree(seed, tenant, 2)
    body = raw_body(server.port, tenant)
    assert body.endswith(b"\r\n0\r\n\r\n") and body.count(b"\n{") == 2
