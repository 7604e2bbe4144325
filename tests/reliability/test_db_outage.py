"""The database goes away and comes back (`make outage`).

A private PostgreSQL (pgserver's binaries), the real service under gunicorn against it,
requests before, during and after `pg_ctl stop` (fast, then immediate): during the outage
every request is a 503 `Database unavailable` within a bounded time, never a 500 or a hang;
after `pg_ctl start` the same workers serve again without a restart."""
from __future__ import annotations

import time
import uuid

import pytest

from helpers import TEST_SECRET, make_token
from pieces_service.config import database_url as parse_url
from pieces_service.migrate import connect, migrate

from .reliability_harness import Gunicorn, PrivatePostgres, wait_until



CONNECT_TIMEOUT = 2
REQUESTS_PER_PHASE = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    pg = PrivatePostgres(tmp_path_factory.mktemp("outage"))
    server = None
    try:
        url = pg.url("pieces_outage")
        migrate(parse_url(url), echo=lambda *_: None)
        tenant = uuid.uuid4()
        conn = connect(parse_url(url))
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO projects (guid, company_guid, code) VALUES (%s, %s, 'P')"
                        " RETURNING guid", (str(uuid.uuid4()), str(tenant)))
        conn.close()
        server = Gunicorn(url, TEST_SECRET, workers=2,
                          PIECES_DB_CONNECT_TIMEOUT_SECONDS=CONNECT_TIMEOUT,
                          PIECES_DB_POOL_TIMEOUT_SECONDS=2)
        yield pg, server, tenant
    finally:
        if server is not None:
            server.close()
        pg.close()


def _mixed_requests(server, tenant):
    """A read list, a detail miss, and a write: (method, path, body, token)."""
    reader = make_token(tenant, "Operator")
    writer = make_token(tenant, "Integration")
    return [
        ("GET", "/api/v1/pieces", None, reader),
        ("GET", f"/api/v1/pieces/{uuid.uuid4()}", None, reader),
        ("POST", "/api/v1/sync/projects",
         {"projects": [{"company_guid": str(tenant), "code": f"o-{uuid.uuid4().hex[:8]}"}]},
         writer),
    ]


def _phase(server, tenant, n=REQUESTS_PER_PHASE):
    """Send n requests; return [(status, body, elapsed)]."""
    results = []
    calls = _mixed_requests(server, tenant)
    for i in range(n):
        method, path, body, token = calls[i % len(calls)]
        results.append(server.request(method, path, body=body, token=token, timeout=30))
    return results


def _ok(results):
    return all(status in (200, 404) for status, _, _ in results)


@pytest.mark.outage
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_outage_is_503_and_the_service_recovers_by_itself(stack, mode, record_property):
    pg, server, tenant = stack
    workers = sorted(server.worker_pids())
    assert len(workers) == 2

    before = _phase(server, tenant)
    assert _ok(before), before

    pg.stop(mode)
    stopped_at = time.monotonic()
    during = _phase(server, tenant)
    statuses = [status for status, _, _ in during]
    if statuses != [503] * len(during):
        noteworthy = [line for line in server.log_text().splitlines()
                      if "INFO" not in line and "No such file" not in line]
        print("\n".join(noteworthy)[-20000:])
    assert statuses == [503] * len(during), during
    assert all(body == {"detail": "Database unavailable"} for _, body, _ in during), during
    slowest = max(elapsed for _, _, elapsed in during)
    assert slowest < CONNECT_TIMEOUT + 3, slowest

    pg.start()
    restarted_at = time.monotonic()

    def serving():
        status, _, _ = server.request("GET", "/api/v1/pieces",
                                      token=make_token(tenant, "Operator"), timeout=30)
        assert status in (200, 503), status
        return status == 200

    wait_until(serving, 20, 0.2, "service serving again after the database restart")
    recovery = time.monotonic() - restarted_at
    after = _phase(server, tenant)
    assert _ok(after), after
    assert sorted(server.worker_pids()) == workers, "a worker was restarted"
    log = server.log_text()
    assert "WORKER TIMEOUT" not in log and "Traceback" not in log, log[-3000:]
    record_property("outage", {
        "mode": mode, "requests": len(before) + len(during) + len(after),
        "during_outage_503": len(during), "slowest_503_s": round(slowest, 3),
        "outage_s": round(restarted_at - stopped_at, 2),
        "recovered_after_restart_s": round(recovery, 2)})
    print(f"\noutage[{mode}]: {len(before)} ok before, {len(during)}×503 during "
          f"(slowest {slowest:.3f}s), recovered {recovery:.2f}s after restart, "
          f"{len(after)} ok after, same workers {workers}")


def test_database_that_accepts_but_never_answers_is_503_within_the_connect_timeout(
        app_factory, db_url, tenant):
    """A black-holed database (TCP accepted by the kernel, no reply): bounded by
    PIECES_DB_CONNECT_TIMEOUT_SECONDS, then 503. Runs in `make test` (no extra server)."""
    import socket

    from helpers import assert_error

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        app = app_factory(database_url=db_url.set(host="127.0.0.1", port=port, query={}),
                          db_connect_timeout_seconds=1)
        started = time.monotonic()
        response = app.test_client().get(
            "/api/v1/pieces", headers={"Authorization": "Bearer " + make_token(tenant,
                                                                                "Operator")})
        elapsed = time.monotonic() - started
    assert_error(response, 503, "Database unavailable")
    assert elapsed < 3, elapsed
