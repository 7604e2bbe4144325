"""No tenant and no slow client can take the service from the others (issue 21, point 4),
proven against the real service under gunicorn (gunicorn.conf.py: the gthread worker with
admission control, 2 workers) and real PostgreSQL.

In `make test` (small data, each well under 20 s):
- `test_slow_and_stalled_exports_short`: (a) in small: exports of tenant A read at
  200 kB/s and exports that read nothing, while B makes detail requests.
- `test_open_loop_overload_short`: (c) in small: a fixed arrival rate at 3× the measured
  capacity.
- two regression tests of defects found here, now fixed in web/worker.py: a stalled
  reader's cut held its worker's event loop for 2 s (gunicorn's graceful close waiting for
  a FIN), and a reader that never stopped reading was cut when a batch took longer than
  PIECES_SEND_TIMEOUT_S to send (sendall's timeout covered the whole call);
- a regression test of a third: a slow reader that asked for `Connection: close` held its
  worker's event loop for up to 2 s when its response ended (the same graceful close,
  reached the ordinary way); web/worker.py now lingers in the request's thread.

Behind `make fairness` (PIECES_FAIRNESS_TESTS=1; a scratch database with tenant A's
96,000-piece project and tenant B's 10,000 pieces, the bench's piece shape):
- (a) 16 exports of A read at 200 kB/s + 4 stalled, B's sequential details;
- (b) A floods with 32 connections on limit=1000 pages (wrk), B's details;
- (b') A syncs 1000-piece batches from 8 connections (wrk), B's details; every batch
  stored whole or not at all;
- (c) open-loop overload at 3× the measured capacity;

The admission settings are the service's defaults unless the environment overrides them
(e.g. `PIECES_ADMISSION_SLOTS=6 make fairness`): the Gunicorn helper passes the
environment on, and the bounds below read the same variables. Figures are printed (`-s`).
"""
from __future__ import annotations

import os
import random
import time
import uuid

import pytest

from helpers import TEST_SECRET, make_token

from .fairness_load import (Background, ExportClient, Sequential, Wrk, closed_loop,
                            have_wrk, metric_total, open_loop, percentile, seed_project,
                            server_durations, server_side_state, write_targets)
from .reliability_harness import Gunicorn


def _setting(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


QUEUE_TIMEOUT_MS = _setting("PIECES_QUEUE_TIMEOUT_MS", 2000)
ADMISSION_WAIT_MS = _setting("PIECES_ADMISSION_WAIT_MS", 250)
WORKERS = _setting("WEB_CONCURRENCY", 2)  # gunicorn workers (the default on 2 cores)
READ_RATE = 200_000        # bytes/s, the slow consumers of (a)
CUT_MARGIN_S = 2.0         # a stalled reader is cut within PIECES_SEND_TIMEOUT_S + this
P99_FACTOR = 5.0           # B's p99 under load within this × its p99 alone
KEEP_SHARE = 0.80          # A keeps this share of what it gets alone
OVERLOAD = 3.0             # (c): arrivals at this × the measured capacity
PRE_WORK_MARGIN_S = 0.5    # (c): a request's wait before its work: queue limit + this
# The export the slow consumers of (a) ask for: every piece of the project, four fields a
# line (about 115 bytes); at 200 kB/s the whole 96,000-row export takes about 55 s. Full
# rows (1.6 kB) would take 13 minutes, past the export's own time limit (300 s). The
# stalled ones ask for full rows.
EXPORT_FIELDS = "guid,piece_id,barcode,outer_length"


def _log(message: str) -> None:
    print(f"\nfairness: {message}", flush=True)


def _tokens(tenant, role="Operator"):
    return make_token(tenant, role, exp_in=3600)


def _export_path(project) -> str:
    return f"/api/v1/pieces/export?project_guid={project.project}&fields={EXPORT_FIELDS}"


def _export_backends(admin_conn, database: str) -> int:
    """The service's backends inside an export's transaction (its cursor open)."""
    with admin_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                    " AND application_name = 'pieces_service' AND state <> 'idle'"
                    " AND query ILIKE '%%pieces_export%%'", (database,))
        return cur.fetchone()[0]


def _stall_lines(server, tenant) -> list[dict]:
    import json

    lines = []
    for line in server.log_text().splitlines():
        if '"stalled_reader"' in line and "client stopped reading" in line:
            entry = json.loads(line)
            if entry.get("tenant") == str(tenant):
                lines.append(entry)
    return lines


# ------------------------------------------------------------------------------ data

@pytest.fixture(scope="module")
def small(admin_conn):
    """Tenant A: 6 assemblies × 1000 pieces (9 MB of full export rows, more than the
    kernel's socket buffers hold); tenant B: 200 pieces."""
    a = seed_project(admin_conn, uuid.uuid4(), components=2, assemblies_per_component=3,
                     per_assembly=1000, label="A", sample=200)
    b = seed_project(admin_conn, uuid.uuid4(), components=1, assemblies_per_component=2,
                     per_assembly=100, label="B", sample=200)
    return a, b


@pytest.fixture(scope="module")
def big(scratch_database):
    """A scratch database: tenant A's project of 96,000 pieces (100 assemblies × 960, the
    bench's piece shape), tenant B's 10,000, and an empty project of A for its syncs."""
    from pieces_service.migrate import connect

    url = scratch_database("fairness")
    conn = connect(url)
    conn.autocommit = True
    try:
        started = time.monotonic()
        a = seed_project(conn, uuid.uuid4(), components=10, assemblies_per_component=10,
                         per_assembly=960, label="A", sample=500)
        b = seed_project(conn, uuid.uuid4(), components=2, assemblies_per_component=5,
                         per_assembly=1000, label="B", sample=2000)
        sync_target = seed_project(conn, a.tenant, components=2, assemblies_per_component=5,
                                   per_assembly=0, label="S")
        _log(f"seeded {a.pieces:,} + {b.pieces:,} pieces in {time.monotonic() - started:.1f} s")
    finally:
        conn.close()
    return url, a, b, sync_target


@pytest.fixture(scope="module")
def big_admin(big):
    from pieces_service.migrate import connect

    conn = connect(big[0])
    conn.autocommit = True
    yield conn
    conn.close()


def _server(url, **env) -> Gunicorn:
    return Gunicorn(url.render_as_string(hide_password=False), TEST_SECRET, workers=WORKERS,
                    **env)


# ------------------------------------------------------------------------------ (a)

def _slow_and_stalled_exports(server, admin_conn, database, a, b, *, readers, stallers,
                              send_timeout_s, window_s, b_alone_s):
    """(a): `stallers` exports of A that read nothing, then `readers` exports of A read at
    200 kB/s (retrying on 429 after Retry-After while the window lasts), while B makes
    sequential detail requests; B alone first. Returns the figures; asserts the rules."""
    token_a, token_b = _tokens(a.tenant), _tokens(b.tenant)
    details = [(f"/api/v1/pieces/{guid}", token_b) for guid in b.sample]
    b_alone = _py_figures(Sequential(server.port, details, seconds=b_alone_s).run())
    assert b_alone["errors"] == 0, b_alone

    path = _export_path(a)
    started = time.monotonic()
    deadline = started + window_s + 240
    # The stalled ones ask for full rows: more than the kernel's buffers hold, even in
    # the short version, so the server really has to wait for them.
    stalled = [ExportClient(server.port, f"/api/v1/pieces/export?project_guid={a.project}",
                            token_a, rate=None, name=f"stalled-{i}")
               for i in range(stallers)]
    for client in stalled:
        client.start()
    for client in stalled:
        client.join(10)
        assert client.attempts and client.attempts[-1].status is not None, client.attempts
    time.sleep(0.3)
    retry_until = time.monotonic() + window_s
    slow = [ExportClient(server.port, path, token_a, rate=READ_RATE, retry_until=retry_until,
                         give_up_at=deadline, name=f"reader-{i}") for i in range(readers)]

    cut_at: dict[int, float] = {}
    after_cut: dict = {}
    b_load = Sequential(server.port, details, seconds=window_s)
    try:
        b_load.start()
        for client in slow:
            client.start()
        # Watch the server's end of each stalled connection until it is closed.
        watch_until = time.monotonic() + send_timeout_s + 30
        while len(cut_at) < stallers and time.monotonic() < watch_until:
            for i, client in enumerate(stalled):
                if i not in cut_at and server_side_state(
                        server.port, client.attempts[-1].client_port) in (None, "04", "05",
                                                                         "06", "07", "0B"):
                    cut_at[i] = time.monotonic()
            time.sleep(0.02)
        if len(cut_at) == stallers:
            time.sleep(1.0)
            after_cut["export_backends"] = _export_backends(admin_conn, database)
            after_cut["readers_streaming"] = sum(
                1 for c in slow for at in c.attempts[-1:] if at.status == 200 and at.ended is None)
            after_cut["readers_connected"] = sum(
                1 for c in slow for at in c.attempts[-1:] if at.ended is None)
    finally:
        b_run = b_load.wait()
        b_during = _py_figures(b_run)
        b_during["slowest"] = b_run.slowest(4, since=started)
        for client in slow:
            client.join(max(1.0, deadline - time.monotonic()))
        for client in stalled:
            client.drain(time.monotonic() + 30)
    assert not any(c.is_alive() for c in slow), "a reader did not finish by the deadline"
    time.sleep(0.5)
    backends_after = _export_backends(admin_conn, database)
    metrics = server.request("GET", "/metrics")[1].decode()
    stall_lines = _stall_lines(server, a.tenant)

    # The figures.
    attempts = [at for c in slow for at in c.attempts]
    complete = [at for at in attempts if at.status == 200 and at.complete]
    refused = [at for at in attempts if at.status == 429]
    other = [at for at in attempts if at not in complete and at not in refused]
    admitted_stalls = [i for i, c in enumerate(stalled) if c.attempts[-1].status == 200]
    assert all(stalled[i].sent_at for i in admitted_stalls)
    # From when the client stopped reading (its response head arrived), as the send timeout
    # counts: the export's first batch is fetched before anything is sent.
    cut_after = {i: cut_at[i] - stalled[i].stopped_reading_at for i in admitted_stalls
                 if i in cut_at}
    figures = {
        "b_alone": b_alone, "b_during": b_during,
        "b_ratio": b_during["p99_ms"] / max(b_alone["p99_ms"], 1e-6),
        "readers": readers, "reader_attempts": len(attempts),
        "complete": len(complete), "refused_429": len(refused), "other": len(other),
        "readers_completed": sum(1 for c in slow if any(at.complete for at in c.attempts)),
        "complete_rows": sorted({at.rows for at in complete}),
        "complete_seconds": [round(at.ended - at.started, 1) for at in complete],
        "stalled": stallers, "stalled_admitted": len(admitted_stalls),
        "stalled_statuses": [c.attempts[-1].status for c in stalled],
        "cut_after_s": {i: round(s, 2) for i, s in cut_after.items()},
        "stalled_sent_at": [round(c.sent_at - started, 3) for c in stalled if c.sent_at],
        "reader_attempts_timeline": sorted(
            (round(at.started - started, 2), at.status,
             round((at.ended or at.started) - started, 2)) for at in attempts)[:40],
        "after_cut": after_cut, "export_backends_after": backends_after,
        "stall_log_lines": [(e.get("tenant"), e.get("bytes_sent")) for e in stall_lines],
        "refusals": {reason: metric_total(metrics, "pieces_admission_refusals_total",
                                          reason=reason)
                     for reason in ("tenant_share", "overloaded", "long_slots", "queue_time",
                                    "stalled_reader")},
        "in_flight_long_after": metric_total(metrics, "pieces_admission_in_flight", kind="long"),
    }
    _log(f"(a) {figures}")

    # B: never an error; its p99 within 5× alone (the caller checks the factor).
    assert b_during["errors"] == 0, b_during
    assert b_during["requests"] > 0
    # Every export of A streamed completely or was refused with 429 and Retry-After.
    assert not other, [(at.status, at.error, at.complete, at.rows) for at in other]
    assert all(at.retry_after for at in refused), "a 429 without Retry-After"
    assert all(at.rows == a.pieces for at in complete), figures["complete_rows"]
    assert complete, "no export completed: the proof would be empty"
    # The stalled ones: each admitted one cut within PIECES_SEND_TIMEOUT_S (+ margin),
    # its body without the terminating chunk; a refused one got 429 with Retry-After.
    assert admitted_stalls, "no stalled export was admitted: the proof would be empty"
    for i, client in enumerate(stalled):
        last = client.attempts[-1]
        assert last.status in (200, 429), (last.status, last.error)
        if last.status == 429:
            assert last.retry_after
            continue
        assert i in cut_at, f"stalled export {i} was not cut"
        assert cut_after[i] <= send_timeout_s + CUT_MARGIN_S, cut_after
        assert not last.complete
    # Their threads and database connections are free: no export transaction is left but
    # those of readers still streaming, then none at all; no long slot held.
    if after_cut:
        assert after_cut["export_backends"] <= after_cut["readers_connected"], after_cut
    assert backends_after == 0
    assert figures["in_flight_long_after"] == 0
    # One log line per cut, naming tenant A, with the bytes sent.
    assert len(stall_lines) == len(admitted_stalls), stall_lines
    assert all(isinstance(e.get("bytes_sent"), int) and e["bytes_sent"] > 0
               for e in stall_lines), stall_lines
    return figures


def test_slow_and_stalled_exports_short(db_url, admin_conn, small, tmp_path):
    """(a), short: 2 exports of A that read nothing (full rows, 9 MB) and 4 read at
    200 kB/s (four fields, 0.7 MB), PIECES_SEND_TIMEOUT_S=2, while B sends details one at
    a time. Everything of the full version but B's latency ratio, which is printed (its
    single-request bound is test_stalled_reader_cut_does_not_freeze_its_worker's)."""
    a, b = small
    server = _server(db_url, PIECES_SEND_TIMEOUT_S=2)
    try:
        _slow_and_stalled_exports(
            server, admin_conn, db_url.database, a, b, readers=4, stallers=2,
            send_timeout_s=2, window_s=6, b_alone_s=2)
    finally:
        server.close()


@pytest.mark.fairness
def test_slow_and_stalled_exports(big, big_admin, tmp_path):
    """(a): 16 exports of A read at 200 kB/s (96,000 rows, four fields each) and 4 that stop
    reading (full rows; they start first, so that they hold A's long slots), while B makes
    sequential detail requests for 60 s; PIECES_SEND_TIMEOUT_S=3.
    B's p99 within 5× its p99 alone."""
    url, a, b, _ = big
    server = _server(url, PIECES_SEND_TIMEOUT_S=3)
    try:
        figures = _slow_and_stalled_exports(
            server, big_admin, url.database, a, b, readers=16, stallers=4, send_timeout_s=3,
            window_s=60, b_alone_s=15)
    finally:
        server.close()
    assert figures["b_ratio"] <= P99_FACTOR, figures


def test_stalled_reader_cut_does_not_freeze_its_worker(db_url, small):
    """One worker, one export of A that stops reading (cut after PIECES_SEND_TIMEOUT_S=1),
    and B's sequential details on the same worker meanwhile: no B request may wait 1 s."""
    a, b = small
    token_b = _tokens(b.tenant)
    details = [(f"/api/v1/pieces/{guid}", token_b) for guid in b.sample]
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1,
                      PIECES_SEND_TIMEOUT_S=1)
    try:
        with Background(server.port, lambda rng: ("GET", *rng.choice(details), None),
                        connections=1, seconds=5) as b_load:
            time.sleep(0.5)
            stalled = ExportClient(server.port, f"/api/v1/pieces/export?project_guid={a.project}",
                                   _tokens(a.tenant), rate=None)
            stalled.start()
            stalled.join(10)
            since = stalled.sent_at
        lines = _stall_lines(server, a.tenant)
        stalled.drain(time.monotonic() + 10)
    finally:
        server.close()
    run = b_load.run
    _log(f"one worker: stalled export status {stalled.attempts[-1].status}, "
         f"cut lines {len(lines)}; B {len(run.statuses)} requests, errors "
         f"{run.non_200 + len(run.errors)}, slowest (s after the stall began, seconds, status) "
         f"{run.slowest(3, since=since)}")
    assert stalled.attempts[-1].status == 200 and len(lines) == 1
    assert run.non_200 == 0 and not run.errors
    assert max(run.latencies) < 1.0, run.slowest(3, since=since)


def test_closing_slow_reader_does_not_freeze_its_worker(db_url, small):
    """One worker; an export of A (four fields, ~0.7 MB, 3.5 s at 200 kB/s, more than the
    socket buffers hold) read at 200 kB/s by a client that sent `Connection: close` (as
    urllib does), and B's sequential details on the same worker meanwhile: no B request
    may wait 1 s."""
    a, b = small
    token_b = _tokens(b.tenant)
    details = [(f"/api/v1/pieces/{guid}", token_b) for guid in b.sample]
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1)
    try:
        b_load = Sequential(server.port, details, seconds=6).start()
        time.sleep(1.0)
        since = time.monotonic()
        reader = ExportClient(server.port, _export_path(a), _tokens(a.tenant),
                              rate=READ_RATE, connection_close=True,
                              give_up_at=time.monotonic() + 20)
        reader.start()
        reader.join(30)
        run = b_load.wait()
    finally:
        server.close()
    attempt = reader.attempts[-1]
    _log(f"Connection: close reader: status {attempt.status}, complete {attempt.complete}, "
         f"{attempt.data_bytes:,} bytes in {attempt.ended - attempt.started:.1f} s; B "
         f"{len(run.statuses)} requests, slowest (s after the export began, seconds, status) "
         f"{run.slowest(3, since=since)}")
    assert attempt.status == 200 and attempt.complete
    assert run.non_200 == 0 and not run.errors
    assert max(run.latencies) < 1.0, run.slowest(3, since=since)


def test_a_reader_that_keeps_reading_is_not_cut(db_url, small):
    """A client that reads at 200 kB/s without a pause is not a stalled reader, whatever
    the size of a batch: full rows (~1.6 kB, a 1000-row batch ~1.5 MB) with
    PIECES_SEND_TIMEOUT_S=2, read for 6 s: no stalled_reader line, still streaming."""
    a, _ = small
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1,
                      PIECES_SEND_TIMEOUT_S=2)
    try:
        reader = ExportClient(server.port, f"/api/v1/pieces/export?project_guid={a.project}",
                              _tokens(a.tenant), rate=READ_RATE,
                              give_up_at=time.monotonic() + 6)
        reader.start()
        reader.join(20)
        lines = _stall_lines(server, a.tenant)
    finally:
        server.close()
    attempt = reader.attempts[-1]
    _log(f"steady reader: status {attempt.status}, {attempt.data_bytes:,} bytes read in 6 s; "
         f"stalled_reader lines {[(e['send_timeout_s'], e['bytes_sent']) for e in lines]}")
    assert attempt.status == 200
    assert not lines, lines


# ------------------------------------------------------------------------------ (b), (b')

def _b_details(server, b, tmp_path, seconds):
    """B's sequential details (a process of its own, one keep-alive connection)."""
    token_b = _tokens(b.tenant)
    details = [(f"/api/v1/pieces/{guid}", token_b) for guid in b.sample]

    class _B(Sequential):
        def wait(self):
            return _py_figures(super().wait())
    return _B(server.port, details, seconds=seconds)


def _py_figures(run) -> dict:
    ok = run.count(200)
    return {"requests": len(run.statuses) + len(run.errors), "ok": ok,
            "ok_per_s": ok / run.seconds, "errors": run.non_200 + len(run.errors),
            "p50_ms": run.p(50) * 1000, "p99_ms": run.p(99) * 1000,
            "max_ms": max(run.latencies, default=0) * 1000, "seconds": run.seconds,
            "inserted": run.inserted, "inserted_per_s": run.inserted / run.seconds,
            "statuses": {s: run.count(s) for s in set(run.statuses)}}


def _a_load(server, args_or_request, tmp_path, *, connections, seconds):
    """A's load: wrk with bench.lua's args, or Python threads with a request maker."""
    wrk_args, make_request = args_or_request
    if have_wrk():
        return Wrk(server.port, wrk_args, connections=connections, seconds=seconds, threads=2)

    class _Py:
        def start(self):
            self.bg = Background(server.port, make_request, connections=connections,
                                 seconds=seconds).__enter__()
            return self

        def wait(self):
            self.bg.__exit__(None, None, None)
            return _py_figures(self.bg.run)

        def run(self):
            return self.start().wait()

        def stop(self):
            pass
    return _Py()


def _fair_share(server, b, tmp_path, a_load, *, seconds):
    """B alone, A alone, then A and B together (A started first and stopped last), then A
    alone again: A's rate alone is the mean of the runs before and after (the machine's
    drift between runs is of the order of the effect measured)."""
    b_alone = _b_details(server, b, tmp_path, seconds).run()
    a_before = a_load(seconds + 4).run()
    a_run = a_load(seconds + 4).start()
    try:
        time.sleep(2)
        b_during = _b_details(server, b, tmp_path, seconds).run()
    finally:
        a_during = a_run.wait()
    a_after = a_load(seconds + 4).run()
    return b_alone, _alone(a_before, a_after), b_during, a_during


def _alone(before: dict, after: dict) -> dict:
    """Two runs of A alone as one: rates averaged, counts summed, each run's rates kept."""
    mean = {key: (before[key] + after[key]) / 2
            for key in ("ok_per_s", "inserted_per_s") if key in before}
    total = {key: before[key] + after[key] for key in ("errors", "requests", "inserted")
             if key in before}
    return {**mean, **total, "runs_ok_per_s": [round(before["ok_per_s"], 1),
                                               round(after["ok_per_s"], 1)],
            "runs_inserted_per_s": [round(before.get("inserted_per_s", 0)),
                                    round(after.get("inserted_per_s", 0))]}


@pytest.mark.fairness
def test_list_flood_keeps_b_fast(big, tmp_path):
    """(b): A floods with 32 concurrent clients on limit=1000 pages (its 100 assemblies'
    pages, 960 rows, ~0.4 MB each; wrk ignores Retry-After and asks again at once), while
    B makes sequential detail requests. B's p99 within 5× alone, B without errors; A's
    200s at least 80 % of what it gets alone (both with 32 clients)."""
    url, a, b, _ = big
    token_a = _tokens(a.tenant)
    pages = [(f"/api/v1/pieces?assembly_guid={guid}&limit=1000", token_a)
             for guid in a.assemblies]
    targets = write_targets(tmp_path / "a_pages.targets", pages)
    server = _server(url)
    try:
        b_alone, a_alone, b_during, a_during = _fair_share(
            server, b, tmp_path,
            lambda s: _a_load(server, (["get", str(targets)],
                                       lambda rng: ("GET", *rng.choice(pages), None)),
                              tmp_path, connections=32, seconds=s),
            seconds=15)
        metrics = server.request("GET", "/metrics")[1].decode()
    finally:
        server.close()
    figures = {
        "b_alone_p99_ms": b_alone["p99_ms"], "b_during_p99_ms": b_during["p99_ms"],
        "b_ratio": b_during["p99_ms"] / b_alone["p99_ms"], "b_errors": b_during["errors"],
        "b_during_max_ms": b_during["max_ms"], "b_alone_per_s": b_alone["ok_per_s"],
        "b_during_per_s": b_during["ok_per_s"],
        "a_alone_200_per_s": a_alone["ok_per_s"], "a_alone_runs": a_alone["runs_ok_per_s"],
        "a_during_200_per_s": a_during["ok_per_s"],
        "a_keeps": a_during["ok_per_s"] / a_alone["ok_per_s"],
        "a_alone_refused": a_alone["errors"], "a_during_refused": a_during["errors"],
        "a_alone_requests": a_alone["requests"],
        "refusals": {r: metric_total(metrics, "pieces_admission_refusals_total", reason=r)
                     for r in ("tenant_share", "overloaded", "queue_time")},
    }
    _log(f"(b) {figures}")
    assert b_during["errors"] == 0 and b_alone["errors"] == 0, figures
    assert figures["b_ratio"] <= P99_FACTOR, figures
    assert figures["a_keeps"] >= KEEP_SHARE, figures


@pytest.mark.fairness
def test_sync_flood_keeps_b_fast(big, big_admin, tmp_path):
    """(b'): A syncs 1000-piece batches (new pieces, fresh natural keys) from 8 concurrent
    clients while B makes sequential detail requests. B's p99 within 5× alone, no errors;
    A's ingest rate (pieces/s from the 200s) at least 80 % of alone. And sync stays
    all-or-nothing under refusals and load: every batch is stored whole or not at all."""
    url, a, b, sync_target = big
    token = _tokens(a.tenant, "Integration")
    pool_lines = [(str(a.tenant), str(sync_target.project), str(component), str(assembly),
                   token) for component, assembly in sync_target.parents]
    pool = tmp_path / "sync.pool"
    pool.write_text("".join(" ".join(line) + "\n" for line in pool_lines))
    run_ids = []

    def a_load(seconds):
        run_id = uuid.uuid4().hex[:8]
        run_ids.append(run_id)
        counter = iter(range(10**9))

        def make_request(rng):
            tenant, project, component, assembly, tok = rng.choice(pool_lines)
            n = next(counter)
            batch = [{"company_guid": tenant, "project_guid": project,
                      "component_guid": component, "assembly_guid": assembly,
                      "piece_id": f"S{run_id}-py-{n}-{k:05d}", "outer_length": 300 + k,
                      "profile_code": "P1101", "material_type": "PVC"} for k in range(1000)]
            return "POST", "/api/v1/sync/pieces", tok, {"pieces": batch}
        return _a_load(server, (["sync", str(pool), run_id, "1000"], make_request), tmp_path,
                       connections=8, seconds=seconds)

    server = _server(url)
    try:
        b_alone, a_alone, b_during, a_during = _fair_share(server, b, tmp_path, a_load,
                                                           seconds=15)
    finally:
        server.close()
    # All or nothing: per batch (piece_id "S<run>-<thread>-<n>-<k>"), 0 or 1000 rows.
    with big_admin.cursor() as cur:
        cur.execute("SELECT regexp_replace(piece_id, '-[0-9]+$', '') AS batch, count(*)"
                    " FROM pieces WHERE company_guid = %s AND project_guid = %s"
                    " GROUP BY 1", (str(a.tenant), str(sync_target.project)))
        batches = dict(cur.fetchall())
        cur.execute("DELETE FROM pieces WHERE company_guid = %s AND project_guid = %s",
                    (str(a.tenant), str(sync_target.project)))
        cur.execute("VACUUM ANALYZE pieces")
    partial = {k: v for k, v in batches.items() if v != 1000}
    stored = sum(batches.values())
    reported = a_alone["inserted"] + a_during["inserted"]
    figures = {
        "b_alone_p99_ms": b_alone["p99_ms"], "b_during_p99_ms": b_during["p99_ms"],
        "b_ratio": b_during["p99_ms"] / b_alone["p99_ms"], "b_errors": b_during["errors"],
        "b_during_max_ms": b_during["max_ms"], "b_alone_per_s": b_alone["ok_per_s"],
        "b_during_per_s": b_during["ok_per_s"],
        "a_alone_pieces_per_s": a_alone["inserted_per_s"],
        "a_alone_runs": a_alone["runs_inserted_per_s"],
        "a_during_pieces_per_s": a_during["inserted_per_s"],
        "a_keeps": a_during["inserted_per_s"] / a_alone["inserted_per_s"],
        "a_alone_refused": a_alone["errors"], "a_during_refused": a_during["errors"],
        "batches_stored": len(batches), "rows_stored": stored, "rows_reported": reported,
        "partial_batches": len(partial),
    }
    _log(f"(b') {figures}")
    assert not partial, list(partial.items())[:5]
    # 200 means stored: everything the 200s reported is there; the rest are the batches in
    # flight when the clients stopped (at most one per connection per run, three runs).
    assert reported <= stored <= reported + 3 * 8 * 1000, figures
    assert b_during["errors"] == 0 and b_alone["errors"] == 0, figures
    assert figures["b_ratio"] <= P99_FACTOR, figures
    assert figures["a_keeps"] >= KEEP_SHARE, figures


# ------------------------------------------------------------------------------ (c)

def _overload(server, a, b, *, capacity_s, overload_s, use_wrk, tmp_path, loose=False):
    """(c): capacity = the 200s per second of a closed loop at 16 connections (the
    instance's work slots) on limit=1000 pages of A and B; then arrivals at 3× that, each
    on its own connection at its due time, half of them stamped `X-Request-Start` (their
    due time) as a gateway would."""
    token_a, token_b = _tokens(a.tenant), _tokens(b.tenant)
    a_pages = [(f"/api/v1/pieces?assembly_guid={g}&limit=1000", token_a) for g in a.assemblies]
    b_pages = [(f"/api/v1/pieces?assembly_guid={g}&limit=1000", token_b) for g in b.assemblies]
    # Half A's, half B's (each tenant's pages repeated to the same count).
    mix = a_pages * len(b_pages) + b_pages * len(a_pages)
    # Warm-up (not measured): every worker's connections, prepared statements, caches.
    closed_loop(server.port, lambda rng: ("GET", *rng.choice(mix), None), connections=16,
                seconds=1.0)
    if use_wrk:
        targets = write_targets(tmp_path / "mix.targets", mix)
        capacity_run = Wrk(server.port, ["get", str(targets)], connections=16,
                           seconds=int(capacity_s), threads=2).run()
        capacity = capacity_run["ok_per_s"]
        work_max_s = capacity_run["max_ms"] / 1000
        capacity_errors = capacity_run["errors"]
    else:
        run = closed_loop(server.port, lambda rng: ("GET", *rng.choice(mix), None),
                          connections=16, seconds=capacity_s)
        capacity = run.rate(200)
        work_max_s = max(lat for lat, s in zip(run.latencies, run.statuses) if s == 200)
        capacity_errors = run.non_200 + len(run.errors)
    rate = OVERLOAD * capacity
    rng = random.Random(7)

    def make_request(i):
        path, token = mix[rng.randrange(len(mix))]
        return path, token, ({"X-Request-Start": "due"} if i % 2 else None)

    answers, sent_over = open_loop(server.port, make_request, rate=rate, seconds=overload_s)
    time.sleep(0.5)
    durations = server_durations(server.log_text())
    for answer in answers:
        answer.server_ms = durations.get(answer.request_id)
    metrics = server.request("GET", "/metrics")[1].decode()
    statuses: dict = {}
    for answer in answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    slowest = {status: round(max(x.seconds for x in answers if x.status == status), 3)
               for status in statuses}
    # Before its work: the client's time for it minus the service's own time for it.
    timed = [x for x in answers if x.server_ms is not None]
    before_work = [x.seconds - x.server_ms / 1000 for x in timed]
    before_work_gateway = [x.lag + x.seconds - x.server_ms / 1000 for x in timed
                           if x.gateway_header]
    bound_s = QUEUE_TIMEOUT_MS / 1000 + PRE_WORK_MARGIN_S
    if loose:  # make test: a margin, not the target (the full version asserts the target)
        bound_s = 2 * QUEUE_TIMEOUT_MS / 1000
    figures = {
        "capacity_200_per_s": round(capacity, 1), "capacity_refused": capacity_errors,
        "capacity_work_max_s": round(work_max_s, 3), "rate": round(rate, 1),
        "sent": len(answers), "achieved_rate": round(len(answers) / max(sent_over, 1e-6), 1),
        "generator_lag_p99_ms": round(percentile([x.lag for x in answers], 99) * 1000, 1),
        "statuses": statuses, "slowest_s_by_status": slowest,
        "p99_s": round(percentile([x.seconds for x in answers], 99), 3),
        "server_ms_max_by_status": {s: round(max((x.server_ms for x in timed if x.status == s),
                                                 default=0), 1) for s in statuses},
        "with_log_line": len(timed),
        "before_work_max_s": round(max(before_work, default=0), 3),
        "before_work_p99_s": round(percentile(before_work, 99), 3),
        "before_work_from_due_max_s": round(max(before_work_gateway, default=0), 3),
        "bound_before_work_s": bound_s,
        "over_bound": sum(1 for w in before_work if w > bound_s),
        "errors": [x.error for x in answers if x.error][:5],
        "refusals": {r: metric_total(metrics, "pieces_admission_refusals_total", reason=r)
                     for r in ("tenant_share", "overloaded", "queue_time")},
    }
    _log(f"(c) {figures}")
    assert not figures["errors"], figures
    assert set(statuses) <= {200, 429, 503}, figures
    missing = [x for x in answers if x.status in (429, 503) and not x.retry_after]
    assert not missing, f"{len(missing)} refusals without Retry-After"
    assert figures["achieved_rate"] >= (2 / 3 if loose else 0.9) * rate, (
        "the generator could not send at 3× capacity", figures)
    assert statuses.get(200) and (statuses.get(429, 0) + statuses.get(503, 0)), figures
    # Every answer has its log line, and no request waited before its work (the service's
    # own time for it, which includes its admission wait) longer than the queue limit
    # plus PRE_WORK_MARGIN_S (connect and accept, reading the request, writing the
    # response, the client's own scheduling).
    assert len(timed) == len(answers), figures
    assert figures["before_work_max_s"] <= bound_s, figures
    assert figures["before_work_from_due_max_s"] <= bound_s, figures
    return figures


def test_open_loop_overload_short(db_url, small, tmp_path):
    """(c), short: capacity measured for 2 s (Python, 16 connections), then 3 s of
    arrivals at 3× it. make test times nothing tightly: here every answer is 200, 429 or
    503 with Retry-After and has its log line, and no request waited before its work more
    than twice PIECES_QUEUE_TIMEOUT_MS (unbounded before admission control); the target
    bound (the limit + PRE_WORK_MARGIN_S) is the full version's. Figures are printed."""
    a, b = small
    server = _server(db_url, PIECES_LOG_LEVEL="INFO")
    try:
        _overload(server, a, b, capacity_s=2, overload_s=3, use_wrk=False, tmp_path=tmp_path,
                  loose=True)
    finally:
        server.close()


@pytest.mark.fairness
def test_open_loop_overload(big, tmp_path):
    """(c): capacity measured for 10 s (wrk, 16 connections), then 15 s at 3× it."""
    url, a, b, _ = big
    server = _server(url, PIECES_LOG_LEVEL="INFO")
    try:
        _overload(server, a, b, capacity_s=10, overload_s=15, use_wrk=have_wrk(),
                  tmp_path=tmp_path)
    finally:
        server.close()
