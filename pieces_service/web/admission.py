"""Admission control: no tenant and no slow client can take the service from the others.

Every API request takes a *slot* before it does any database work, and gives it back when
its work is done (a streamed export: when its stream ends). The limits are per worker
process, each process with its own threads (gunicorn's gthread worker, gunicorn.conf.py);
an instance of W workers has W times each limit (docs/operations.md, "Sizing").

- **Work slots** (`PIECES_ADMISSION_SLOTS`). A tenant holds at most its *share*
  (`PIECES_TENANT_SHARE` of the slots, at least one) while anyone else may need one; it may
  borrow beyond its share while more than one slot is free, so a lone tenant uses the whole
  worker (work-conserving), and the next tenant to arrive finds a free slot at once.
- **Its own queue.** A request that finds no slot it may take waits briefly
  (`PIECES_ADMISSION_WAIT_MS`), at most `PIECES_TENANT_QUEUE` of one tenant at a time and
  no more waiters than the threads left over; past either bound, or when the wait runs
  out: `429` with `Retry-After` when the tenant holds its share, `503` when the worker
  was full with others' work.
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
from dataclasses import dataclass

from flask import g, request
from prometheus_client import Counter, Gauge, Histogram

from ..config import Config
from ..errors import Overloaded, TooManyRequests

log = logging.getLogger(__name__)

SHORT, LONG = "short", "long"

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


@dataclass
class _Tenant:
    short: int = 0
    long: int = 0
    waiting: int = 0


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
    """The slots of one worker process (thread-safe)."""

    def __init__(self, config: Config):
        self.slots = config.admission_slots
        self.share = max(1, int(config.admission_slots * config.tenant_share))
        self.long_slots = config.long_slots
        self.tenant_long_slots = config.tenant_long_slots
        self.wait_s = config.admission_wait_ms / 1000
        self.tenant_queue = config.tenant_queue
        # Waiters hold threads: leave one free for a quick refusal or a new tenant.
        self.max_waiting = max(0, config.threads - config.admission_slots
                               - config.long_slots - 1)
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._short = 0
        self._long = 0
        self._waiting = 0
        self._tenants: dict[uuid.UUID, _Tenant] = {}

    def _may_take(self, mine: _Tenant) -> bool:
        free = self.slots - self._short
        return free > 0 and (mine.short < self.share or free > 1)

    def admit(self, tenant: uuid.UUID, kind: str = SHORT) -> Slot:
        """A slot for `tenant`'s request of `kind`, after a brief wait at most; raises
        `TooManyRequests` (429) or `Overloaded` (503), both with `Retry-After`."""
        started = time.monotonic()
        with self._lock:
            mine = self._tenants.get(tenant)
            if mine is None:
                mine = self._tenants[tenant] = _Tenant()
            if kind == LONG:
                if self._long >= self.long_slots or mine.long >= self.tenant_long_slots:
                    limit = ("PIECES_TENANT_LONG_SLOTS", self.tenant_long_slots) \
                        if mine.long >= self.tenant_long_slots \
                        else ("PIECES_LONG_SLOTS", self.long_slots)
                    self._forget_if_idle(tenant, mine)
                    _refused("long_slots", tenant)
                    raise TooManyRequests(
                        f"Too many long requests (exports) running: limit {limit[0]} = "
                        f"{limit[1]} per worker. Retry later.")
                self._long += 1
                mine.long += 1
                _local.tenant = tenant
                IN_FLIGHT.labels(LONG).inc()
                return Slot(self, tenant, LONG)
            if not self._may_take(mine):
                if (mine.waiting >= self.tenant_queue or self._waiting >= self.max_waiting
                        or self.wait_s <= 0):
                    self._refuse_short(tenant, mine)
                mine.waiting += 1
                self._waiting += 1
                deadline = started + self.wait_s
                try:
                    while not self._may_take(mine):
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            self._refuse_short(tenant, mine)
                        self._freed.wait(remaining)
                finally:
                    mine.waiting -= 1
                    self._waiting -= 1
            self._short += 1
            mine.short += 1
        _local.tenant = tenant
        IN_FLIGHT.labels(SHORT).inc()
        WAITS.observe(time.monotonic() - started)
        return Slot(self, tenant, SHORT)

    def _refuse_short(self, tenant: uuid.UUID, mine: _Tenant) -> None:
        """429 when the tenant holds its share, else 503 (the worker is full)."""
        if mine.short >= self.share:
            self._forget_if_idle(tenant, mine)
            _refused("tenant_share", tenant, in_flight=mine.short)
            raise TooManyRequests(
                f"Too many concurrent requests for this tenant: its share is {self.share} of "
                f"{self.slots} request slots per worker (PIECES_TENANT_SHARE). Retry later.")
        self._forget_if_idle(tenant, mine)
        _refused("overloaded", tenant)
        raise Overloaded("The service is at capacity; nothing was done. Retry later.")

    def _forget_if_idle(self, tenant: uuid.UUID, mine: _Tenant) -> None:
        if not (mine.short or mine.long or mine.waiting):
            self._tenants.pop(tenant, None)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            mine = self._tenants[slot.tenant]
            if slot.kind == LONG:
                self._long -= 1
                mine.long -= 1
            else:
                self._short -= 1
                mine.short -= 1
                self._freed.notify_all()
            self._forget_if_idle(slot.tenant, mine)
        IN_FLIGHT.labels(slot.kind).dec()

    def held(self) -> dict:
        """What is held now (tests, debugging): {"short": n, "long": n, "waiting": n,
        "tenants": n}."""
        with self._lock:
            return {"short": self._short, "long": self._long, "waiting": self._waiting,
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
        kind = LONG if rule is not None and rule.rule in LONG_RULES else SHORT
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
