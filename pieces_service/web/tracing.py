"""W3C Trace Context for every request, and OpenTelemetry spans when they are configured.

Every request belongs to a trace: the caller's when it sends a well-formed `traceparent`
(the request is then a new span of that trace, whose parent is the caller's span), else a
new one. The trace id and the request's span id are on every log line of the request
(`web/logs.py`), so one search for a trace id finds this service's part of it. A malformed
`traceparent` is ignored (a new trace starts), never an error; `tracestate` is kept only
with a valid `traceparent`, and only for the exported spans. Nothing is echoed back.

With OpenTelemetry (`Config.tracing`: the `otel` extra installed and an OTLP endpoint set)
each request is a SERVER span named by its method and route template, and each round trip
to PostgreSQL a CLIENT span named by its statement's `-- name:` (`dao.statement_name`),
exported over OTLP/HTTP by a batch processor. The SDK reads everything else (service name,
sampler, batching, headers) from the standard `OTEL_*` variables. Spans carry names,
statuses and the tenant, never a token, a query string or a statement's parameters.
Without it, nothing of OpenTelemetry is imported, and a request costs two random ids.
"""
from __future__ import annotations

import os
import random
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import psycopg2.extensions

from ..dao import statement_name

TRACEPARENT_ENVIRON = "HTTP_TRACEPARENT"
TRACESTATE_ENVIRON = "HTTP_TRACESTATE"

# version-traceid-parentid-flags, lowercase hex (W3C Trace Context, level 1). A later
# version may append fields after a "-"; version ff is invalid.
_TRACEPARENT = re.compile(
    r"(?!ff)([0-9a-f]{2})-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})"
    r"(-.*)?")
_MAX_TRACESTATE = 512
_FALLBACK_SERVICE_NAME = "pieces_service"


def parse_traceparent(value: str | None) -> tuple[str, str, int] | None:
    """(trace id, parent span id, flags) of a well-formed `traceparent`, else None."""
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value.strip(" \t"))
    if match is None or (match.group(1) == "00" and match.group(5)):
        return None  # version 00 has exactly four fields
    return match.group(2), match.group(3), int(match.group(4), 16)


@dataclass(slots=True)
class RequestTrace:
    """The request's place in its trace: the ids the logs show and, with tracing on, the
    exporter, the request's span and the context token that made it current."""

    trace_id: str
    span_id: str
    exporter: "Exporter | None" = None
    span: object = None
    token: object = None


def carry(request_trace: RequestTrace | None, body):
    """`body`, a streamed response body, with the request's span current while it is
    iterated after the request has ended (`Exporter.carry`); `body` itself untraced."""
    if request_trace is None or request_trace.exporter is None:
        return body
    return request_trace.exporter.carry(body)


def _random_hex(bits: int) -> str:
    value = 0
    while not value:  # an all-zero id is invalid
        value = random.getrandbits(bits)
    return f"{value:0{bits // 4}x}"


def begin_untraced(environ: dict) -> RequestTrace:
    """The request's ids without OpenTelemetry: the caller's trace, else a new one, and a
    new span id."""
    parent = parse_traceparent(environ.get(TRACEPARENT_ENVIRON))
    return RequestTrace(parent[0] if parent else _random_hex(128), _random_hex(64))


class Exporter:
    """One application's OpenTelemetry tracing: a tracer provider with an OTLP/HTTP batch
    exporter, built in each process on first use (a gunicorn worker forks before it has
    one: the batch processor's thread would not survive the fork)."""

    def __init__(self):
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation import set_span_in_context

        self._context = context
        self._trace = trace
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._error = Status(StatusCode.ERROR)
        self._set_span = set_span_in_context
        self._lock = threading.Lock()
        self._pid = None
        self._provider = None
        self._tracer = None

    def tracer(self):
        """This process's tracer (see the class)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._provider, self._tracer = _tracer_provider()
                    self._pid = os.getpid()
        return self._tracer

    def flush(self, timeout_ms: int = 10000) -> bool:
        """Export every ended span now (tests, shutdown)."""
        return self._provider.force_flush(timeout_ms) if self._provider else True

    def shutdown(self) -> None:
        """Flush and stop this process's exporter (tests building apps of their own)."""
        if self._provider is not None and self._pid == os.getpid():
            self._provider.shutdown()
            self._provider = self._tracer = self._pid = None

    def begin(self, environ: dict, name: str, attributes: dict) -> RequestTrace:
        """Start the request's SERVER span, child of the caller's span when a valid
        `traceparent` names one, and make it current for the request's database spans."""
        trace = self._trace
        parent = parse_traceparent(environ.get(TRACEPARENT_ENVIRON))
        if parent is None:
            parent_context = self._context.Context()  # a new trace, whatever came before
        else:
            trace_id, span_id, flags = parent
            parent_context = self._set_span(trace.NonRecordingSpan(trace.SpanContext(
                int(trace_id, 16), int(span_id, 16), is_remote=True,
                trace_flags=trace.TraceFlags(flags & trace.TraceFlags.SAMPLED),
                trace_state=_trace_state(environ.get(TRACESTATE_ENVIRON)))))
        span = self.tracer().start_span(name, context=parent_context, kind=self._server,
                                        attributes=attributes)
        token = self._context.attach(self._set_span(span))
        ids = span.get_span_context()
        return RequestTrace(trace.format_trace_id(ids.trace_id),
                            trace.format_span_id(ids.span_id), self, span, token)

    def end(self, request_trace: RequestTrace, status: int, attributes: dict) -> None:
        """End the request's span with its status and `attributes`, and make it no longer
        current (idempotent)."""
        span, request_trace.span = request_trace.span, None
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            for key, value in attributes.items():
                if value is not None:
                    span.set_attribute(key, value)
            if status >= 500:
                span.set_status(self._error)
            span.end()
        self.release(request_trace)

    def release(self, request_trace: RequestTrace) -> None:
        """Make the request's span no longer current (idempotent; the request's teardown)."""
        token, request_trace.token = request_trace.token, None
        if token is not None:
            self._context.detach(token)

    def carry(self, iterable):
        """`iterable` (a streamed body, iterated after the request has ended) with the
        request's span current while it runs, so its database round trips are its children."""
        return _Carried(iterable, self._context.get_current(), self._context)

    def cursor_factory(self) -> type:
        """A psycopg2 cursor class whose `execute` is a CLIENT span (the one place every
        round trip to PostgreSQL goes through: SQLAlchemy's and the raw reads' alike)."""
        exporter = self

        class TracedCursor(psycopg2.extensions.cursor):
            def execute(self, query, vars=None):
                # The request's span (ended, for a streamed body's later round trips) is the
                # parent; outside a request, or when its trace is not sampled, no span.
                parent = exporter._trace.get_current_span().get_span_context()
                if not parent.trace_flags.sampled:
                    return super().execute(query, vars)
                span = exporter.tracer().start_span(_span_name(query), kind=exporter._client,
                                                    attributes=_DB_ATTRIBUTES)
                try:
                    return super().execute(query, vars)
                except Exception as exc:  # its class only: a message may quote values
                    span.set_status(exporter._error)
                    span.set_attribute("error.type", type(exc).__name__)
                    raise
                finally:
                    span.end()

        return TracedCursor


_DB_ATTRIBUTES = {"db.system.name": "postgresql"}
_FIRST_WORD = re.compile(r"\s*([A-Za-z]+)")


@lru_cache(maxsize=512)
def _span_name(query) -> str:
    """A database span's name: the statement's `-- name:` (PREPARE: "PREPARE <name>"), else
    the first SQL keyword of the text (BEGIN, COMMIT, …); never anything of its values."""
    text = query if isinstance(query, str) else query.decode(errors="replace")
    name = statement_name(text)
    if name is None:
        word = _FIRST_WORD.match(text)
        return word.group(1).upper() if word else "SQL"
    return f"PREPARE {name}" if "\nPREPARE pieces_" in text else name


def _trace_state(header: str | None):
    """The caller's `tracestate` as OpenTelemetry's TraceState; empty when it is absent,
    too long or malformed (then dropped, as the W3C recommends)."""
    from opentelemetry.trace import TraceState

    if not header or len(header) > _MAX_TRACESTATE:
        return TraceState()
    return TraceState.from_header([header])


class _Carried:
    """An iterable run with an OpenTelemetry context attached for each step (`Exporter.carry`);
    `close()` is passed on."""

    __slots__ = ("_iterator", "_saved", "_context", "close")

    def __init__(self, iterable, saved, context):
        self._iterator = iter(iterable)
        self._saved = saved
        self._context = context
        self.close = getattr(iterable, "close", lambda: None)

    def __iter__(self):
        return self

    def __next__(self):
        token = self._context.attach(self._saved)
        try:
            return next(self._iterator)
        finally:
            self._context.detach(token)


def _tracer_provider():
    """(provider, tracer): spans batched to the OTLP/HTTP endpoint of the `OTEL_*`
    variables, sampled as `OTEL_TRACES_SAMPLER` says (default: parent-based, always on)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: _FALLBACK_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider, provider.get_tracer("pieces_service")
