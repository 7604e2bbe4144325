"""Admission control: no tenant and no slow client can take the service from the others.

Every API request takes a *slot* before it does any database work, and gives it back when
its work is done (a streamed export: when its stream ends). The limits are per worker
process, each process with its own threads (gunicorn's gthread worker, gunicorn.conf.py);
an instance of W workers has W times each limit (docs/operations.md, "Sizing").

- **Work slots** (`PIECES_ADMISSION_SLOTS`). A tenant holds at most its *share*
  (`PIECES_TENANT_SHARE` of the slots, at least one) while anyone else may need one; it may
  borrow beyond its share while more than one slot is free and no other tenant waits, so a
  lone tenant uses the whole worker (work-conserving), and the next tenant to arrive finds
  a free slot at once.
- **Heavy requests** (`request_kind`: a page of more than `HEAVY_PAGE_ROWS` rows, a body
  over `HEAVY_BODY_BYTES`) take a slot of their own small pool (`PIECES_HEAVY_SLOTS`), with
  the same share rule: they hold the worker's interpreter for long stretches, and the
  short requests beside them wait for it.
- **Its own queue.** A request that finds no slot it may take waits briefly
  (`PIECES_ADMISSION_WAIT_MS`), at most `PIECES_TENANT_QUEUE` of one tenant at a time and
  no more waiters than the threads left over; past either bound, or when the wait runs
  out: `429` with `Retry-After` when the tenant holds its share, `503` when the worker
  was full with others' work. A freed slot is handed to one waiting request (`_grant`): a
  tenant under its share first, the tenant holding the fewest next, tenants in turn, each
  tenant's requests in arrival order; only that request's thread wakes.
- **Long requests** (the export) take a slot of their own small pool:
  `PIECES_LONG_SLOTS` per worker, `PIECES_TENANT_LONG_SLOTS` per tenant; beyond, `429` at
  once. So exports can never hold every thread.
- **Queue time.** A request that waited longer than `PIECES_QUEUE_TIMEOUT_MS` before its
  work started (from the gateway's `X-Request-Start`, else from when the worker queued
  it) is answered `503` at once: its caller has given up.
- **Stalled readers.** A client that reads nothing for `PIECES_SEND_TIMEOUT_S` loses its
  connection (web/worker.py); its stream is closed, freeing its slot and its database
  connection, and one log line names the tenant and the bytes sent (`stalled`).

Every refusal is counted (`pieces_admission_refusals_total{reason}`) and logged with its
tenant; slots in use are a gauge by kind and admission waits a histogram. No metric has a
tenant label.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from flask import g, request
from prometheus_client import Counter, Gauge, Histogram

from ..config import Config
from ..errors import Overloaded, TooManyRequests

log = logging.getLogger(__name__)

SHORT, HEAVY, LONG = "short", "heavy", "long"

IN_FLIGHT = Gauge("pieces_admission_in_flight",
                  "Requests holding an admission slot, by slot kind (short, long).",
                  ["kind"], multiprocess_mode="livesum")
REFUSALS = Counter("pieces_admission_refusals_total",
                   "Requests refused or cut by admission control, by reason: tenant_share, "
                   "overloaded, long_slots, queue_time, stalled_reader.", ["reason"])
WAITS = Histogram("pieces_admission_wait_seconds",
                  "Time a request waited for its slot (0 when one was free).",
                  buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))

_local = threading.local()


def queued_since(started: float | None) -> None:
    """Record when the worker queued the current request (epoch seconds; web/worker.py)."""
    _local.queued_at = started


def _queued_at(header: str | None) -> float | None:
    """When the request was first queued: the gateway's `X-Request-Start` (`t=` seconds,
    milliseconds or microseconds since the epoch, as nginx, HAProxy and Heroku write it),
    else the worker's own stamp; None when neither is known."""
    if header:
        text = header.strip()
        if text.startswith("t="):
            text = text[2:]
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if value > 1e14:
            return value / 1e6
        if value > 1e11:
            return value / 1e3
        if value > 1e8:
            return value
    return getattr(_local, "queued_at", None)


def check_queue_time(config: Config, header: str | None, tenant: uuid.UUID | None) -> None:
    """Refuse (503) a request that waited past `PIECES_QUEUE_TIMEOUT_MS` before its work."""
    started = _queued_at(header)
    if started is None:
        return
    waited_ms = (time.time() - started) * 1000
    if waited_ms > config.queue_timeout_ms:
        _refused("queue_time", tenant, waited_ms=round(waited_ms))
        raise Overloaded(f"The request waited {waited_ms / 1000:.1f} s before it could start "
                         f"(limit PIECES_QUEUE_TIMEOUT_MS = {config.queue_timeout_ms} ms); "
                         "nothing was done. Retry later.")


def _refused(reason: str, tenant: uuid.UUID | None, **details) -> None:
    REFUSALS.labels(reason).inc()
    log.warning("request refused by admission control",
                extra={"reason": reason, "tenant": str(tenant) if tenant else None, **details})


class _Waiter:
    """A request waiting for a slot: its thread waits on `event`, set when a slot is
    handed to it."""

    __slots__ = ("event",)

    def __init__(self):
        self.event = threading.Event()


@dataclass
class _Tenant:
    held: dict = field(default_factory=lambda: {SHORT: 0, HEAVY: 0, LONG: 0})
    queued: dict = field(default_factory=lambda: {SHORT: deque(), HEAVY: deque()})

    def waiting(self) -> int:
        return len(self.queued[SHORT]) + len(self.queued[HEAVY])

    def idle(self) -> bool:
        return not (any(self.held.values()) or self.waiting())


@dataclass
class _Pool:
    """The work slots of one kind (short, heavy) of one worker, and the tenants waiting for
    one, in turn order."""

    kind: str
    slots: int
    share: int    # what a tenant may hold while another tenant waits for this pool
    reserve: int  # slots a tenant over its share leaves free (for a tenant yet to come)
    used: int = 0
    turns: OrderedDict = field(default_factory=OrderedDict)  # tenant -> _Tenant, waiting

    def may_take(self, mine: _Tenant) -> bool:
        """Whether a request arriving now takes a slot at once (else it waits)."""
        free = self.slots - self.used
        if free <= 0 or mine.queued[self.kind]:
            return False  # nothing free, or its own earlier requests wait: behind them
        if mine.held[self.kind] < self.share:
            return True
        return free > self.reserve and not self.turns

    def next_turn(self) -> tuple[uuid.UUID, _Tenant] | None:
        """The waiting tenant a freed slot goes to, if any may have it now: a tenant under
        its share first, then the one holding the fewest, earliest in turn order first; one
        over its share only while more than `reserve` slots are free."""
        free = self.slots - self.used
        if free <= 0 or not self.turns:
            return None
        tenant, mine = min(self.turns.items(), key=lambda item: (
            item[1].held[self.kind] >= self.share, item[1].held[self.kind]))
        if mine.held[self.kind] < self.share or free > self.reserve:
            return tenant, mine
        return None


class Slot:
    """A held slot; `release()` gives it back (once, whatever calls it)."""

    __slots__ = ("_admission", "tenant", "kind", "_held")

    def __init__(self, admission: "Admission", tenant: uuid.UUID, kind: str):
        self._admission = admission
        self.tenant = tenant
        self.kind = kind
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission._release(self)


class Admission:
    """The slots of one worker process (thread-safe). A freed slot is handed to the next
    waiting request directly (fair between tenants, first come first served within one),
    so only that request's thread wakes."""

    def __init__(self, config: Config):
        self.long_slots = config.long_slots
        self.tenant_long_slots = config.tenant_long_slots
        self.wait_s = config.admission_wait_ms / 1000
        self.tenant_queue = config.tenant_queue
        # Waiters hold threads: leave one free for a quick refusal or a new tenant.
        self.max_waiting = max(0, config.threads - config.admission_slots - config.heavy_slots
                               - config.long_slots - 1)
        self._pools = {
            # One short slot stays free for a tenant yet to come: it is admitted at once.
            SHORT: _Pool(SHORT, config.admission_slots,
                         max(1, int(config.admission_slots * config.tenant_share)), reserve=1),
            # Heavy requests hold the worker's interpreter for long stretches: a few at a
            # time use it fully, and each more only slows every other request down.
            HEAVY: _Pool(HEAVY, config.heavy_slots,
                         max(1, int(config.heavy_slots * config.tenant_share)), reserve=0),
        }
        self._lock = threading.Lock()
        self._long = 0
        self._waiting = 0
        self._tenants: dict[uuid.UUID, _Tenant] = {}

    def admit(self, tenant: uuid.UUID, kind: str = SHORT) -> Slot:
        """A slot for `tenant`'s request of `kind`, after a brief wait at most; raises
        `TooManyRequests` (429) or `Overloaded` (503), both with `Retry-After`."""
        started = time.monotonic()
        with self._lock:
            mine = self._tenants.get(tenant)
            if mine is None:
                mine = self._tenants[tenant] = _Tenant()
            if kind == LONG:
                return self._admit_long(tenant, mine)
            pool = self._pools[kind]
            if pool.may_take(mine):
                self._take(pool, mine)
                waiter = None
            else:
                if (mine.waiting() >= self.tenant_queue or self._waiting >= self.max_waiting
                        or self.wait_s <= 0):
                    self._refuse(tenant, mine, pool)
                waiter = self._enqueue(pool, tenant, mine)
        if waiter is not None:
            self._await(waiter, pool, tenant, mine, started + self.wait_s)
        _local.tenant = tenant
        IN_FLIGHT.labels(kind).inc()
        WAITS.observe(time.monotonic() - started)
        return Slot(self, tenant, kind)

    def _admit_long(self, tenant: uuid.UUID, mine: _Tenant) -> Slot:
        if self._long >= self.long_slots or mine.held[LONG] >= self.tenant_long_slots:
            limit = ("PIECES_TENANT_LONG_SLOTS", self.tenant_long_slots) \
                if mine.held[LONG] >= self.tenant_long_slots \
                else ("PIECES_LONG_SLOTS", self.long_slots)
            self._forget_if_idle(tenant, mine)
            _refused("long_slots", tenant)
            raise TooManyRequests(
                f"Too many long requests (exports) running: limit {limit[0]} = "
                f"{limit[1]} per worker. Retry later.")
        self._long += 1
        mine.held[LONG] += 1
        _local.tenant = tenant
        IN_FLIGHT.labels(LONG).inc()
        return Slot(self, tenant, LONG)

    @staticmethod
    def _take(pool: _Pool, mine: _Tenant) -> None:
        pool.used += 1
        mine.held[pool.kind] += 1

    def _enqueue(self, pool: _Pool, tenant: uuid.UUID, mine: _Tenant) -> _Waiter:
        waiter = _Waiter()
        mine.queued[pool.kind].append(waiter)
        pool.turns.setdefault(tenant, mine)
        self._waiting += 1
        return waiter

    def _await(self, waiter: _Waiter, pool: _Pool, tenant: uuid.UUID, mine: _Tenant,
               deadline: float) -> None:
        """Wait for a slot to be handed over; past `deadline`, leave the queue, refused.
        (Leaving frees no slot and lets no other waiter take one: a waiter is passed over
        only when every waiter is.)"""
        waiter.event.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if waiter.event.is_set():  # handed a slot, perhaps just as the wait ran out
                return
            mine.queued[pool.kind].remove(waiter)
            self._waiting -= 1
            if not mine.queued[pool.kind]:
                pool.turns.pop(tenant, None)
            self._refuse(tenant, mine, pool)

    def _grant(self, pool: _Pool) -> None:
        """Hand free slots to waiting requests (the lock held)."""
        while (turn := pool.next_turn()) is not None:
            tenant, mine = turn
            waiter = mine.queued[pool.kind].popleft()
            self._waiting -= 1
            self._take(pool, mine)
            pool.turns.pop(tenant)
            if mine.queued[pool.kind]:
                pool.turns[tenant] = mine  # to the end of the turn order
            waiter.event.set()

    def _refuse(self, tenant: uuid.UUID, mine: _Tenant, pool: _Pool) -> None:
        """429 when the tenant holds its share, else 503 (the worker is full)."""
        held = mine.held[pool.kind]
        self._forget_if_idle(tenant, mine)
        if held >= pool.share:
            _refused("tenant_share", tenant, in_flight=held, kind=pool.kind)
            what = "request slots" if pool.kind == SHORT else "heavy-request slots"
            setting = "PIECES_ADMISSION_SLOTS" if pool.kind == SHORT else "PIECES_HEAVY_SLOTS"
            raise TooManyRequests(
                f"Too many concurrent requests for this tenant: its share is {pool.share} of "
                f"{pool.slots} {what} per worker ({setting} x PIECES_TENANT_SHARE). "
                "Retry later.")
        _refused("overloaded", tenant, kind=pool.kind)
        raise Overloaded("The service is at capacity; nothing was done. Retry later.")

    def _forget_if_idle(self, tenant: uuid.UUID, mine: _Tenant) -> None:
        if mine.idle():
            self._tenants.pop(tenant, None)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            mine = self._tenants[slot.tenant]
            mine.held[slot.kind] -= 1
            if slot.kind == LONG:
                self._long -= 1
            else:
                pool = self._pools[slot.kind]
                pool.used -= 1
                self._grant(pool)
            self._forget_if_idle(slot.tenant, mine)
        IN_FLIGHT.labels(slot.kind).dec()

    def held(self) -> dict:
        """What is held now (tests, debugging): {"short": n, "heavy": n, "long": n,
        "waiting": n, "tenants": n}."""
        with self._lock:
            return {"short": self._pools[SHORT].used, "heavy": self._pools[HEAVY].used,
                    "long": self._long, "waiting": self._waiting,
                    "tenants": len(self._tenants)}


class HeldStream:
    """A streamed body that holds `slot` until it ends or is closed (by the server, when the
    client went away or stalled)."""

    def __init__(self, body, slot: Slot):
        self._body = body
        self._iterator = iter(body)
        self.slot = slot

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._iterator)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self.slot.release()

    def __del__(self):
        # A body dropped unclosed (a test client's unread response; gunicorn always closes)
        # ends its stream and gives its slot back at once, not whenever the cyclic garbage
        # collector finds the stream.
        try:
            self.close()
        except Exception:
            self.slot.release()


def stalled(send_timeout_s: int, bytes_sent: int) -> None:
    """The worker cut a client that read nothing for `send_timeout_s` after `bytes_sent`
    bytes of its response: count it, and log it with the request's tenant
    (web/worker.py)."""
    tenant = getattr(_local, "tenant", None)
    REFUSALS.labels("stalled_reader").inc()
    log.warning("client stopped reading: connection closed",
                extra={"reason": "stalled_reader", "send_timeout_s": send_timeout_s,
                       "tenant": str(tenant) if tenant else None, "bytes_sent": bytes_sent})


# --- the Flask side -----------------------------------------------------------------------

# Requests that may run long: their slots come from the long pool.
LONG_RULES = frozenset({"/api/v1/pieces/export"})
# Heavy requests take a slot of the heavy pool: a page of more rows than this (`limit`), or
# a body larger than this (a sync batch of some hundreds of items). BENCHMARKS.md, issue 21,
# measures what they cost.
HEAVY_PAGE_ROWS = 250
HEAVY_BODY_BYTES = 128 * 1024


def request_kind(rule: str | None, limit: str | None, content_length: int | None) -> str:
    """The pool a request takes its slot from: long, heavy or short."""
    if rule in LONG_RULES:
        return LONG
    if content_length is not None and content_length > HEAVY_BODY_BYTES:
        return HEAVY
    if limit is not None and limit.isdigit() and int(limit) > HEAVY_PAGE_ROWS:
        return HEAVY
    return SHORT


def init_app(app, is_api_call) -> None:
    """Admit every API call (`is_api_call(path)`) after authentication: the queue-time
    check, then a slot, given back when the request ends (a stream: `hold`)."""
    config: Config = app.config["PIECES"]
    app.extensions["pieces_admission"] = Admission(config)

    @app.before_request
    def _admit():
        _local.tenant = None
        if not is_api_call(request.path):
            return
        principal = g.get("principal")
        tenant = principal.company_guid if principal else None
        check_queue_time(config, request.headers.get("X-Request-Start"), tenant)
        if tenant is None:
            return
        rule = request.url_rule
        kind = request_kind(rule.rule if rule is not None else None, request.args.get("limit"),
                            request.content_length)
        g.admission_slot = app.extensions["pieces_admission"].admit(tenant, kind)

    @app.teardown_request
    def _release(_exc):
        slot = g.pop("admission_slot", None)
        if slot is not None:
            slot.release()


def hold(body) -> HeldStream:
    """`body`, a streamed response body, holding the request's slot until it ends or is
    closed (instead of until the view returns)."""
    return HeldStream(body, g.pop("admission_slot"))
