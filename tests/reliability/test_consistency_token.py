"""The read-your-writes token (`X-Pieces-Consistency`) is taken after COMMIT, proved on the
server: a write's token is at or past the END of that write's commit record in the WAL, so a
replica replayed exactly to the token has replayed the commit (and sees the write).

The test writes through the HTTP API with a replica configured (the test database itself:
only the write matters here), finds the write's transaction id (the row's `change_xid`,
`pg_current_xact_id()` of the writing transaction: its top-level xid, which is the one the
commit record carries even though a sync writes inside a savepoint), and locates that
transaction's COMMIT record in the WAL between a position read before the request and one
flushed after it. Two ways to read the WAL, each run where it exists:

- `pg_walinspect` (contrib, PostgreSQL 15+), installed in a scratch database of the test
  server (the WAL is the cluster's, so any database sees it), never in the test database;
- the server's own `pg_waldump` (the same major version, from the pgserver wheel or
  /usr/lib/postgresql/<major>/bin) over its `pg_wal` directory, when the server runs on this
  machine and its data directory is readable: the cluster is matched by its system
  identifier (`pg_controldata`), and the record's end is computed from its start and total
  length as PostgreSQL's WAL reader computes it (page headers included).

A token read before COMMIT (a `SELECT pg_current_wal_insert_lsn()` before it, or in the same
message ahead of it) is at most the commit record's start, which is always before its end:
the assertion fails. The test checks that this holds for the record it found (the negative
control), so it could fail.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from helpers import Caller, Seeder, make_config
from pieces_service import create_app, db
from pieces_service.migrate import connect

HEADER = "X-Pieces-Consistency"


def lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _one(conn, statement, params=()):
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchone()


@pytest.fixture
def replica_app(db_url):
    """The service with a replica configured (the test database again), so writes answer
    the token."""
    app = create_app(make_config(db_url, replica_urls=(db_url,)))
    yield app
    db.dispose(app)


# --- reading the WAL ------------------------------------------------------------------------

def _walinspect_commits(new_database, admin_conn, xid: str, start: str, end: str):
    """[(start_lsn, end_lsn)] of the COMMIT records of `xid` between `start` and `end`, by
    pg_walinspect in a scratch database (skipped where the extension is not installed)."""
    if _one(admin_conn, "SELECT count(*) FROM pg_available_extensions"
                        " WHERE name = 'pg_walinspect'")[0] == 0:
        pytest.skip("pg_walinspect is not installed on this server (the pg_waldump variant"
                    " runs instead)")
    conn = connect(new_database())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            except psycopg2.errors.InsufficientPrivilege:
                pytest.skip("the test role may not create pg_walinspect")
            cur.execute("SELECT start_lsn::text, end_lsn::text, record_type"
                        " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)"
                        " WHERE resource_manager = 'Transaction' AND xid = %s::xid",
                        (start, end, xid))
            records = cur.fetchall()
    finally:
        conn.close()
    return [(lsn(s), lsn(e)) for s, e, kind in records if kind.startswith("COMMIT")]


_WALDUMP_LINE = re.compile(
    r"^rmgr: (?P<rmgr>\S+)\s+len \(rec/tot\):\s*\d+/\s*(?P<total>\d+), tx:\s*(?P<xid>\d+),"
    r" lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+), prev \S+, desc: (?P<desc>\S+)")


def _server_tool(admin_conn, name: str) -> str | None:
    """`name` (pg_waldump, pg_controldata) of the server's own major version, or None."""
    major = int(_one(admin_conn, "SHOW server_version_num")[0]) // 10000
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/{name}")]
    try:
        import pgserver
        candidates.insert(0, Path(pgserver.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:
        pass
    if shutil.which(name):
        candidates.append(Path(shutil.which(name)))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            version = subprocess.run([str(path), "--version"], capture_output=True,
                                     text=True).stdout
            found = re.search(r"\(PostgreSQL\) (\d+)", version)
            if found and int(found.group(1)) == major:
                return str(path)
    return None


def _record_end(start: int, total: int, page: int, segment: int) -> int:
    """Where PostgreSQL's WAL reader puts the end of a record of `total` bytes starting at
    `start` (its EndRecPtr, pg_walinspect's end_lsn): past the page headers it spans, then
    MAXALIGNed."""
    short_header, long_header = 24, 40  # MAXALIGN(SizeOfXLogShortPHD), (…LongPHD)
    position, remaining = start, total
    while True:
        room = page - position % page
        if remaining <= room:
            position += remaining
            break
        remaining -= room
        position += room
        position += long_header if position % segment == 0 else short_header
    return (position + 7) & ~7


def _waldump_commits(admin_conn, xid: str, start: str, end: str):
    """The same as `_walinspect_commits`, by the server's pg_waldump over its pg_wal
    directory (skipped where the server's files are not on this machine)."""
    if not _one(admin_conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0]:
        pytest.skip("the test role is no superuser: cannot read data_directory")
    data = Path(_one(admin_conn, "SHOW data_directory")[0])
    waldump, controldata = (_server_tool(admin_conn, name)
                            for name in ("pg_waldump", "pg_controldata"))
    if waldump is None or controldata is None:
        pytest.skip("no pg_waldump/pg_controldata of the server's major version here")
    if not os.access(data / "pg_wal", os.R_OK | os.X_OK):
        pytest.skip(f"the server's WAL ({data}/pg_wal) is not readable here")
    # The same cluster, not another one at the same path on this machine.
    control = subprocess.run([controldata, "-D", str(data)], capture_output=True, text=True,
                             env={**os.environ, "LC_ALL": "C"})
    identifier = re.search(r"Database system identifier:\s*(\d+)", control.stdout)
    server_identifier = _one(admin_conn,
                             "SELECT system_identifier::text FROM pg_control_system()")[0]
    if not identifier or identifier.group(1) != server_identifier:
        pytest.skip(f"{data} is not the test server's cluster (a server elsewhere)")
    page, segment = _one(admin_conn, "SELECT wal_block_size, bytes_per_wal_segment"
                                     " FROM pg_control_init()")
    dump = subprocess.run([waldump, "--path", str(data / "pg_wal"), "--start", start,
                           "--end", end, "--rmgr", "Transaction"],
                          capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    commits = []
    for line in dump.stdout.splitlines():
        record = _WALDUMP_LINE.match(line)
        assert record, f"unexpected pg_waldump line: {line!r}"
        if record["xid"] == xid and record["desc"].startswith("COMMIT"):
            begin = lsn(record["lsn"])
            commits.append((begin, _record_end(begin, int(record["total"]), page, segment)))
    return commits


# --- the test -------------------------------------------------------------------------------

@pytest.mark.parametrize("reader", ["pg_walinspect", "pg_waldump"])
def test_the_token_is_at_or_past_the_end_of_the_writes_commit_record(
        reader, replica_app, admin_conn, new_database):
    company = uuid.uuid4()
    tree = Seeder(admin_conn).tree(company)
    before = _one(admin_conn, "SELECT pg_current_wal_insert_lsn()::text")[0]

    piece_id = f"TOKEN-{uuid.uuid4().hex[:8]}"
    response = Caller(replica_app.test_client(), company, "Integration").post(
        "/api/v1/sync/pieces", json={"pieces": [{
            "company_guid": str(company), "project_guid": str(tree.project),
            "component_guid": str(tree.component), "piece_id": piece_id}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    token = response.headers[HEADER]

    # The writing transaction: its top-level xid (the row's change_xid), as the 32-bit xid
    # a WAL record carries.
    xid = _one(admin_conn, "SELECT (change_xid::text::numeric %% 4294967296)::bigint::text"
                           " FROM pieces WHERE company_guid = %s AND piece_id = %s",
               (str(company), piece_id))[0]
    # Everything up to here flushed (a commit with synchronous_commit on flushes the WAL up
    # to its own record, past the write's), then the window's end is the flushed position.
    with admin_conn.cursor() as cur:
        cur.execute("BEGIN; SET LOCAL synchronous_commit = on;"
                    " SELECT pg_current_xact_id(); COMMIT")
    end = _one(admin_conn, "SELECT pg_current_wal_flush_lsn()::text")[0]

    if reader == "pg_walinspect":
        commits = _walinspect_commits(new_database, admin_conn, xid, before, end)
    else:
        commits = _waldump_commits(admin_conn, xid, before, end)
    assert len(commits) == 1, (f"expected one COMMIT record of xid {xid} in"
                               f" [{before}, {end}]: {commits}")
    commit_start, commit_end = commits[0]

    # The negative control: a token read before COMMIT is at most the commit record's start,
    # and that is before its end, so the assertion below can fail.
    assert lsn(before) <= commit_start < commit_end
    assert lsn(token) >= commit_end, (
        f"the token {token} is before the end of the write's commit record"
        f" ({lsn_text(commit_start)}..{lsn_text(commit_end)}, xid {xid}): it was taken"
        f" before the COMMIT, and a replica replayed to it may not have the write")
