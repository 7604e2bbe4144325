"""Admission control (web/admission.py): slots per tenant share, borrowing when free, a brief
queue, the long-request pool, queue-time shedding, and the answers: 429/503 JSON with
Retry-After, a log line with the tenant, metrics without tenant labels. The slots are
held with real threads blocked on an event, not timed; the gunicorn side (a stalled reader
cut, several tenants at once) is in tests/reliability/test_fairness.py."""
from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from helpers import Caller, assert_error, make_config
from pieces_service.errors import Overloaded, TooManyRequests
from pieces_service.web import admission
from pieces_service.web.admission import HEAVY, LONG, SHORT, Admission


def _admission(db_url, **overrides) -> Admission:
    fields = dict(admission_slots=4, tenant_share=0.5, heavy_slots=2, long_slots=2,
                  tenant_long_slots=1,
                  admission_wait_ms=0, tenant_queue=2, threads=16, db_pool_size=10,
                  db_max_overflow=2)
    fields.update(overrides)
    return Admission(make_config(db_url, **fields))


A, B, C = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def test_a_tenant_holds_its_share_and_borrows_only_while_more_than_one_slot_is_free(db_url):
    gate = _admission(db_url)  # 4 slots, share 2
    mine = [gate.admit(A) for _ in range(3)]  # 2 of its share + 1 borrowed (2 were free)
    with pytest.raises(TooManyRequests, match="share is 2 of 4"):
        gate.admit(A)  # over its share, and only one slot is free: kept for someone else
    theirs = gate.admit(B)  # admitted at once
    assert gate.held() == {"short": 4, "heavy": 0, "long": 0, "waiting": 0, "tenants": 2}
    with pytest.raises(Overloaded):
        gate.admit(C)  # under its share, but nothing is free and no wait is allowed
    mine.pop().release()
    with pytest.raises(TooManyRequests):
        gate.admit(A)  # one free: A (at its share) may not take the last one
    again = gate.admit(C)
    for slot in (*mine, theirs, again):
        slot.release()
        slot.release()  # idempotent
    assert gate.held() == {"short": 0, "heavy": 0, "long": 0, "waiting": 0, "tenants": 0}


def test_a_lone_tenant_uses_every_slot_but_one_and_then_the_last(db_url):
    gate = _admission(db_url, admission_slots=8, tenant_share=0.25)
    held = [gate.admit(A) for _ in range(7)]
    with pytest.raises(TooManyRequests):
        gate.admit(A)
    assert gate.held()["short"] == 7
    for slot in held:
        slot.release()


def test_a_waiting_request_gets_the_next_slot_freed(db_url):
    gate = _admission(db_url, admission_wait_ms=30_000)
    held = [gate.admit(A), gate.admit(A), gate.admit(A), gate.admit(B)]
    result = {}
    waiter = threading.Thread(target=lambda: result.setdefault("slot", gate.admit(C)))
    waiter.start()
    deadline = time.monotonic() + 10
    while gate.held()["waiting"] != 1:
        assert time.monotonic() < deadline, "the request never queued"
        time.sleep(0.005)
    assert "slot" not in result
    held.pop(0).release()
    waiter.join(10)
    assert result["slot"].tenant == C
    for slot in (*held, result["slot"]):
        slot.release()


def test_the_queue_is_bounded_per_tenant(db_url):
    gate = _admission(db_url, admission_wait_ms=30_000, tenant_queue=1)
    held = [gate.admit(A), gate.admit(A), gate.admit(A), gate.admit(B)]
    waiter = threading.Thread(target=lambda: gate.admit(A), daemon=True)
    waiter.start()
    deadline = time.monotonic() + 10
    while gate.held()["waiting"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    started = time.monotonic()
    with pytest.raises(TooManyRequests):
        gate.admit(A)  # its queue is full: refused at once, not after the wait
    assert time.monotonic() - started < 5
    for slot in held:
        slot.release()
    waiter.join(10)


def test_a_wait_that_runs_out_is_refused(db_url):
    gate = _admission(db_url, admission_wait_ms=50)
    held = [gate.admit(A), gate.admit(A), gate.admit(A), gate.admit(B)]
    with pytest.raises(Overloaded):
        gate.admit(C)
    with pytest.raises(TooManyRequests):
        gate.admit(A)
    for slot in held:
        slot.release()


def test_long_requests_have_their_own_pool(db_url):
    gate = _admission(db_url)  # 2 long slots, 1 per tenant
    first = gate.admit(A, LONG)
    with pytest.raises(TooManyRequests, match="PIECES_TENANT_LONG_SLOTS = 1"):
        gate.admit(A, LONG)
    second = gate.admit(B, LONG)
    with pytest.raises(TooManyRequests, match="PIECES_LONG_SLOTS = 2"):
        gate.admit(C, LONG)
    short = [gate.admit(C, SHORT) for _ in range(2)]  # the work slots are untouched
    for slot in (first, second, *short):
        slot.release()
    assert gate.held() == {"short": 0, "heavy": 0, "long": 0, "waiting": 0, "tenants": 0}


@pytest.mark.parametrize("header, waited_s, refused", [
    ("t={:.3f}", 5, True), ("t={:.0f}", 5, True), ("{:.0f}", 5, True),  # s, ms, µs below
    ("t={:.3f}", 0, False), ("t=garbage", 5, False), ("", 5, False),
])
def test_queue_time_comes_from_x_request_start(db_url, header, waited_s, refused):
    config = make_config(db_url, queue_timeout_ms=2000)
    started = time.time() - waited_s
    scale = {"t={:.3f}": 1, "t={:.0f}": 1000, "{:.0f}": 1_000_000}.get(header, 1)
    value = header.format(started * scale) if "{" in header else header
    admission.queued_since(None)
    if refused:
        with pytest.raises(Overloaded, match="limit PIECES_QUEUE_TIMEOUT_MS = 2000 ms"):
            admission.check_queue_time(config, value, A)
    else:
        admission.check_queue_time(config, value, A)


def test_without_the_header_the_workers_own_stamp_counts(db_url):
    config = make_config(db_url, queue_timeout_ms=2000)
    admission.queued_since(time.time() - 3)
    try:
        with pytest.raises(Overloaded):
            admission.check_queue_time(config, None, A)
    finally:
        admission.queued_since(None)


# --- through the app ------------------------------------------------------------------------

@pytest.fixture
def small_app(app_factory):
    """One work slot for a tenant's share of two, no waiting."""
    return app_factory(admission_slots=2, tenant_share=0.5, admission_wait_ms=0,
                       long_slots=1, tenant_long_slots=1)


def test_a_refusal_is_a_429_json_with_retry_after_and_a_log_line(small_app, seed, tenant,
                                                                  caplog):
    tree = seed.tree(tenant, 1)
    gate = small_app.extensions["pieces_admission"]
    held = gate.admit(tenant)  # the tenant's share: one of the two slots
    caller = Caller(small_app.test_client(), tenant, "Operator")
    try:
        with caplog.at_level(logging.WARNING, logger="pieces_service.web.admission"):
            response = caller.get(f"/api/v1/pieces/{tree.pieces[0]}")
        body = assert_error(response, 429)
        assert "share is 1 of 2" in body["detail"]
        assert response.headers["Retry-After"] == "1"
        record = next(r for r in caplog.records if r.getMessage().startswith("request refused"))
        assert record.reason == "tenant_share" and record.tenant == str(tenant)
        other = Caller(small_app.test_client(), uuid.uuid4(), "Operator")
        assert other.get("/api/v1/pieces").status_code == 200  # another tenant: at once
    finally:
        held.release()
    assert caller.get(f"/api/v1/pieces/{tree.pieces[0]}").status_code == 200
    assert gate.held()["short"] == 0  # every request gave its slot back


def test_an_export_holds_a_long_slot_until_its_stream_ends(small_app, seed, tenant):
    seed.tree(tenant, 2)
    gate = small_app.extensions["pieces_admission"]
    caller = Caller(small_app.test_client(), tenant, "Operator")
    response = caller.client.get("/api/v1/pieces/export", headers=caller.headers,
                                 buffered=False)
    assert response.status_code == 200
    assert gate.held()["long"] == 1 and gate.held()["short"] == 0  # past the view's return
    refused = caller.client.get("/api/v1/pieces/export", headers=caller.headers)
    assert_error(refused, 429)
    assert refused.headers["Retry-After"] == "1"
    assert b"".join(response.response).count(b"\n") == 2
    response.close()
    assert gate.held()["long"] == 0
    assert caller.client.get("/api/v1/pieces/export", headers=caller.headers).status_code == 200


def test_a_request_that_waited_too_long_is_a_503_before_any_database_work(app_factory, tenant):
    app = app_factory(queue_timeout_ms=100)
    caller = Caller(app.test_client(), tenant, "Operator")
    started = f"t={time.time() - 1:.3f}"
    response = caller.client.get("/api/v1/pieces", headers={**caller.headers,
                                                            "X-Request-Start": started})
    body = assert_error(response, 503)
    assert "PIECES_QUEUE_TIMEOUT_MS = 100 ms" in body["detail"]
    assert response.headers["Retry-After"] == "1"
    assert app.extensions["pieces_db"].get("engine") is None  # no connection was ever made


def test_the_metrics_count_refusals_by_reason_and_no_tenant_label(small_app, tenant):
    from prometheus_client import REGISTRY

    def refusals(reason):
        return REGISTRY.get_sample_value("pieces_admission_refusals_total",
                                         {"reason": reason}) or 0

    before = refusals("tenant_share")
    gate = small_app.extensions["pieces_admission"]
    held = gate.admit(tenant)
    try:
        caller = Caller(small_app.test_client(), tenant, "Operator")
        assert caller.get("/api/v1/pieces").status_code == 429
    finally:
        held.release()
    assert refusals("tenant_share") == before + 1
    for metric in REGISTRY.collect():
        if metric.name.startswith("pieces_admission"):
            for sample in metric.samples:
                assert set(sample.labels) <= {"kind", "reason", "le"}, sample


# --- heavy requests ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule, limit, length, kind", [
    ("/api/v1/pieces/export", None, None, LONG),
    ("/api/v1/pieces", "1000", None, HEAVY),
    ("/api/v1/pieces", str(admission.HEAVY_PAGE_ROWS + 1), None, HEAVY),
    ("/api/v1/pieces", str(admission.HEAVY_PAGE_ROWS), None, SHORT),
    ("/api/v1/pieces", None, None, SHORT),
    ("/api/v1/pieces", "abc", None, SHORT),  # the schema refuses it (422), cheaply
    ("/api/v1/sync/pieces", None, admission.HEAVY_BODY_BYTES + 1, HEAVY),
    ("/api/v1/sync/pieces", None, admission.HEAVY_BODY_BYTES, SHORT),
    ("/api/v1/pieces/<uuid:piece_guid>", None, None, SHORT),
])
def test_a_request_is_long_heavy_or_short(rule, limit, length, kind):
    assert admission.request_kind(rule, limit, length) == kind


def _wait_until(predicate, what):
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def _waiting_admit(gate, tenant, kind, results, name):
    thread = threading.Thread(target=lambda: results.append((name, gate.admit(tenant, kind))),
                              daemon=True)
    thread.start()
    return thread


def test_a_lone_tenant_takes_every_heavy_slot_and_short_ones_stay_free(db_url):
    gate = _admission(db_url, admission_wait_ms=50)  # 2 heavy slots, a tenant's share 1
    heavy = [gate.admit(A, HEAVY), gate.admit(A, HEAVY)]  # alone: beyond its share
    with pytest.raises(TooManyRequests, match="share is 1 of 2 heavy-request slots"):
        gate.admit(A, HEAVY)  # waited 50 ms, nothing freed
    short = gate.admit(B, SHORT)  # a short request never waits for heavy ones
    assert gate.held() == {"short": 1, "heavy": 2, "long": 0, "waiting": 0, "tenants": 2}
    for slot in (*heavy, short):
        slot.release()


def test_a_freed_heavy_slot_goes_to_the_tenant_under_its_share_first(db_url):
    gate = _admission(db_url, admission_wait_ms=30_000)
    held = [gate.admit(A, HEAVY), gate.admit(A, HEAVY)]
    results = []
    first_a = _waiting_admit(gate, A, HEAVY, results, "A1")  # waits first
    _wait_until(lambda: gate.held()["waiting"] == 1, "A's request never queued")
    b = _waiting_admit(gate, B, HEAVY, results, "B")
    _wait_until(lambda: gate.held()["waiting"] == 2, "B's request never queued")
    held.pop().release()
    b.join(10)
    assert [name for name, _ in results] == ["B"]  # B holds none: it goes first
    held.pop().release()
    first_a.join(10)
    assert [name for name, _ in results] == ["B", "A1"]
    for _, slot in results:
        slot.release()
    assert gate.held() == {"short": 0, "heavy": 0, "long": 0, "waiting": 0, "tenants": 0}


def test_waiting_requests_are_served_in_turn_between_tenants_and_in_order_within_one(db_url):
    gate = _admission(db_url, admission_slots=2, tenant_share=0.5, admission_wait_ms=30_000,
                      tenant_queue=8)
    D = uuid.uuid4()
    held = [gate.admit(C), gate.admit(D)]  # each its share of one: none free
    results, threads = [], []
    for name, tenant in (("A1", A), ("A2", A), ("A3", A), ("B1", B), ("B2", B)):
        threads.append(_waiting_admit(gate, tenant, SHORT, results, name))
        _wait_until(lambda n=len(threads): gate.held()["waiting"] == n, f"{name} not queued")
    order = []
    for _ in range(5):
        (held.pop(0) if held else results[len(order) - 2][1]).release()
        _wait_until(lambda n=len(order): len(results) > n, "no waiter was handed the slot")
        order.append(results[-1][0])
    # One slot at a time: A and B alternate (each holds none or one), A's in arrival order.
    assert order == ["A1", "B1", "A2", "B2", "A3"]
    for _, slot in results:
        slot.release()
    for thread in threads:
        thread.join(10)
    assert gate.held()["waiting"] == 0
