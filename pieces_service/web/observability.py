"""Request ids, traces, the per-request log line, and Prometheus metrics.

Every request gets an id (the caller's `X-Request-ID` when it is well formed, else a new
uuid4 hex), echoed on the response and stamped on every log line of the request, and a
place in a trace (`web/tracing.py`: the caller's `traceparent` continued, else a new trace),
whose trace and span ids are stamped on those lines too. Every
request ends with one JSON log line and one observation in the request metrics, labelled by
the Flask endpoint (never the raw path, which would give a series per GUID).

Metrics live in prometheus_client's default registry in one process, or, when
`PROMETHEUS_MULTIPROC_DIR` is set (gunicorn with several workers, see gunicorn.conf.py), in
per-process files in that directory that `/metrics` sums up. Other modules report domain
counts with `record_sync_rows` and `record_cascade_rows`.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
import weakref

from flask import Flask, Response, g, request
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest, multiprocess)
from prometheus_client import REGISTRY as _PROCESS_REGISTRY
from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import tracing
from .logs import ACCESS_LOGGER

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Methods outside this set share one label value, so a client cannot mint new series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ENDPOINT = "unmatched"

access_log = logging.getLogger(ACCESS_LOGGER)

HTTP_REQUESTS = Counter(
    "pieces_http_requests_total", "HTTP requests served, by Flask endpoint, method and status.",
    ["endpoint", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "pieces_http_request_duration_seconds",
    "Time from the start of the request to the response, by Flask endpoint, method and status.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DB_CONNECTIONS_CHECKED_OUT = Gauge(
    "pieces_db_connections_checked_out",
    "Database connections currently checked out of the pools of live workers.",
    multiprocess_mode="livesum",
)
DB_CONNECTIONS_MAX = Gauge(
    "pieces_db_connections_max",
    "Most connections the pools of live workers may open (pool size + overflow).",
    multiprocess_mode="livesum",
)
SYNC_ROWS = Counter(
    "pieces_sync_rows_total", "Rows written by sync, by entity and outcome (inserted/updated).",
    ["entity", "outcome"],
)
CASCADE_ROWS = Counter(
    "pieces_cascade_rows_total",
    "Rows changed by soft delete and restore (the entity and its descendants), by entity and "
    "action.",
    ["entity", "action"],
)

DB_READS = Counter(
    "pieces_db_reads_total",
    "Read statements served (list, detail, audit, change feed; an export counts once), by "
    "database node: primary, replica1, replica2, … (in PIECES_DATABASE_REPLICA_URLS order).",
    ["node"],
)
REPLICA_LAG = Gauge(
    "pieces_db_replica_lag_seconds",
    "Each replica's replay lag as last measured by a live worker (0: it has replayed all it "
    "received; +Inf: it replayed no commit since it started and is not caught up).",
    ["node"], multiprocess_mode="livemostrecent",
)
REPLICA_UP = Gauge(
    "pieces_db_replica_up",
    "1 when a replica answered its last check as a standby, 0 when it failed or is not one "
    "(a live worker's most recent view).",
    ["node"], multiprocess_mode="livemostrecent",
)


def record_replica(node: str, *, up: bool, lag_ms: float | None) -> None:
    """Report a replica's check: whether it is usable as one, and its lag when measured."""
    REPLICA_UP.labels(node).set(1 if up else 0)
    if lag_ms is not None:
        REPLICA_LAG.labels(node).set(lag_ms / 1000)


def record_sync_rows(entity: str, inserted: int, updated: int) -> None:
    """Count the rows one sync request wrote, e.g. `record_sync_rows("pieces", 3, 1)`.
    Call it after the transaction committed."""
    if inserted:
        SYNC_ROWS.labels(entity, "inserted").inc(inserted)
    if updated:
        SYNC_ROWS.labels(entity, "updated").inc(updated)


def record_cascade_rows(entity: str, action: str, rows: int) -> None:
    """Count the rows one delete or restore changed, e.g.
    `record_cascade_rows("project", "delete", 42)`. Call it after the transaction committed."""
    if rows:
        CASCADE_ROWS.labels(entity, action).inc(rows)


def multiprocess_mode() -> bool:
    """Whether metrics are kept in `PROMETHEUS_MULTIPROC_DIR` (decided when prometheus_client
    is first imported, so the variable must be set before that: gunicorn.conf.py does)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def metrics_view() -> Response:
    """`GET /metrics`: every metric in the Prometheus text format, summed over all workers."""
    if multiprocess_mode():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = _PROCESS_REGISTRY
    return Response(generate_latest(registry), mimetype=None,
                    headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


# Pools already carrying our checkout/checkin listeners (one engine per worker process).
_instrumented_pools: weakref.WeakSet = weakref.WeakSet()
_instrument_lock = threading.Lock()
_CHECKED_OUT = "pieces_metrics_checked_out"


def _on_checkout(dbapi_connection, record, proxy) -> None:
    record.info[_CHECKED_OUT] = True
    DB_CONNECTIONS_CHECKED_OUT.inc()


def _on_checkin(dbapi_connection, record) -> None:
    # Only connections we saw checked out: a failed first connect is "checked in" too.
    if record.info.pop(_CHECKED_OUT, False):
        DB_CONNECTIONS_CHECKED_OUT.dec()


def instrument_engine(engine: Engine) -> None:
    """Count `engine`'s checked-out connections in the pool metrics (idempotent)."""
    pool = engine.pool
    if pool in _instrumented_pools:
        return
    with _instrument_lock:
        if pool in _instrumented_pools:
            return
        event.listen(pool, "checkout", _on_checkout)
        event.listen(pool, "checkin", _on_checkin)
        DB_CONNECTIONS_MAX.inc(pool.size() + max(getattr(pool, "_max_overflow", 0), 0))
        _instrumented_pools.add(pool)


def request_id() -> str:
    """This request's id: the caller's `X-Request-ID` if well formed, else a new one."""
    rid = g.get("request_id")
    if rid is None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        rid = given if _VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        g.request_id = rid
    return rid


# The request metrics' series by (endpoint, method, status): `labels()` validates and locks
# on every call; the series are few (endpoints × methods × statuses) and kept per process.
_SERIES: dict[tuple[str, str, int], tuple] = {}


def _request_series(endpoint: str, method: str, status: int) -> tuple:
    series = _SERIES.get((endpoint, method, status))
    if series is None:
        labels = (endpoint, method, str(status))
        series = _SERIES[(endpoint, method, status)] = (
            HTTP_REQUESTS.labels(*labels), HTTP_REQUEST_DURATION.labels(*labels))
    return series


def _start_request() -> None:
    g.request_started = time.perf_counter()
    request_id()
    g.trace = tracing.begin_untraced(request.environ)


def _start_traced_request(exporter: tracing.Exporter) -> None:
    g.request_started = time.perf_counter()
    rule = request.url_rule
    method = request.method if request.method in _METHODS else "OTHER"
    attributes = {"http.request.method": method, "pieces.request_id": request_id()}
    if rule is not None:
        attributes["http.route"] = rule.rule
    g.trace = exporter.begin(request.environ,
                             f"{method} {rule.rule}" if rule is not None else method,
                             attributes)


def carry_trace(body):
    """`body`, a streamed response body, whose database round trips (after the request has
    ended) are still the request's children in its trace (`tracing.carry`)."""
    return tracing.carry(g.get("trace"), body)


def log_context() -> dict:
    """The request's ids for log lines written after its context has ended (an export's):
    `request_id`, `trace_id`, `span_id`."""
    trace = g.get("trace")
    return {"request_id": request_id(), "trace_id": trace.trace_id if trace else None,
            "span_id": trace.span_id if trace else None}


def _finish_request(response: Response) -> Response:
    """Echo the request id, observe the request, write its log line."""
    rid = request_id()
    response.headers[REQUEST_ID_HEADER] = rid
    started = g.pop("request_started", None)
    seconds = time.perf_counter() - started if started is not None else 0.0
    rule = request.url_rule
    endpoint = rule.endpoint if rule is not None else UNMATCHED_ENDPOINT
    method = request.method if request.method in _METHODS else "OTHER"
    requests, durations = _request_series(endpoint, method, response.status_code)
    requests.inc()
    durations.observe(seconds)
    principal = g.get("principal")
    tenant = str(principal.company_guid) if principal else None
    access_log.info("request", extra={
        "method": method,
        "path": rule.rule if rule is not None else None,
        "endpoint": endpoint,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 3),
        "tenant": tenant,
        "subject": principal.subject if principal else None,
        "role": principal.role.value if principal else None,
    })
    trace = g.get("trace")
    if trace is not None and trace.exporter is not None:
        trace.exporter.end(trace, response.status_code, {"pieces.tenant": tenant})
    return response


def _end_trace(_exc) -> None:
    """The request's span, if `_finish_request` did not end it (an error in an after_request
    hook): ended as a 500, and no longer current."""
    trace = g.get("trace")
    if trace is not None and trace.exporter is not None:
        trace.exporter.end(trace, 500, {})


def init_app(app: Flask) -> None:
    """Wire request ids, traces, request metrics and the request log line into `app`, and
    serve `/metrics`. Register it before any other before_request hook, so that a request
    stopped early (401) still has an id and a trace; its after_request hook runs last of the
    app's. With tracing on (`Config.tracing`) requests and round trips are exported spans:
    `app.extensions["pieces_tracing"]` is the exporter, else None."""
    exporter = tracing.Exporter() if app.config["PIECES"].tracing else None
    app.extensions["pieces_tracing"] = exporter
    if exporter is None:
        app.before_request(_start_request)
    else:
        app.before_request(lambda: _start_traced_request(exporter))
        app.teardown_request(_end_trace)
    app.after_request(_finish_request)
    app.add_url_rule("/metrics", "metrics", metrics_view, methods=["GET"])
