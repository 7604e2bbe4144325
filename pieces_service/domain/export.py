"""The streaming export (SPEC §9): every PieceDetail field of the pieces a caller may list,
with the list's filters, in the list's order (created_at, guid), as NDJSON or CSV.

`start` does everything that can fail with a proper error response before the first byte
is sent: the tenant rule, the parent checks (`domain.pieces.check_parents`, the list's
own), declaring the cursor and reading its first batch. The `ExportStream` it returns then
reads the rest batch by batch from the same read-only transaction (one snapshot), and is
never built in memory: at most one batch is held at a time.

The export has its own time limit (`PIECES_EXPORT_TIMEOUT_S`), counted from `start`: every
FETCH runs under a `statement_timeout` of the time that remains, and the deadline is checked
between batches. A stream that hits it, or loses its database, cannot send an error any
more (the status line is gone): it logs one WARNING and raises `ExportCut`, so that the
server closes the connection without the body's terminating chunk, and the client sees a
truncated body (see the README, "Exporting pieces").
"""
from __future__ import annotations

import errno
import logging
import time
import uuid
from dataclasses import dataclass

from flask import current_app

from .. import access, db
from ..auth import Principal
from ..dao import export as export_dao
from ..errors import DatabaseUnavailable, ReplicaFailed, ServiceError
from ..web import heartbeat
from .pieces import check_parents

log = logging.getLogger(__name__)

FORMATS = export_dao.FORMATS  # "ndjson", "csv"
# Rows per FETCH: one chunk of the response (about 1.5 MB of NDJSON at the bench's rows).
BATCH_ROWS = 1000
_LINE_END = {"ndjson": "\n", "csv": "\r\n"}


@dataclass(frozen=True)
class ExportQuery:
    """The list's filters (SPEC §4) without its window: the whole result is exported."""

    include_inactive: bool = False
    company_guid: uuid.UUID | None = None
    project_guid: uuid.UUID | None = None
    component_guid: uuid.UUID | None = None
    assembly_guid: uuid.UUID | None = None
    fields: tuple[str, ...] | None = None  # the detail's fields to export (None: all)


class ExportCut(ConnectionResetError):
    """Raised from an export's stream to end the response mid-body, without its terminating
    chunk: the only way left to tell the client that the export is incomplete once the
    status line and some rows are sent.

    A connection reset on purpose: WSGI servers close the connection on it without writing
    anything more, and log it as the client's doing (gunicorn's sync worker at DEBUG, with no
    traceback), so the export's own WARNING is the one line about it.
    """

    def __init__(self, reason: str):
        super().__init__(errno.ECONNRESET, reason)


def start(principal: Principal, query: ExportQuery, fmt: str, *,
          log_context: dict | None = None) -> "ExportStream":
    """Open the export of the pieces `principal` may list with `query`'s filters, as `fmt`
    ("ndjson" or "csv"): the SPEC §4 errors of the list (403 company, 404/400 parents), or
    the database's (503), are raised here, before anything is sent. `log_context` (the
    request's id, trace id and span id) goes on the stream's log lines (they are written
    after the request's context has ended)."""
    if fmt not in FORMATS:
        raise ValueError(fmt)
    time_limit_s = current_app.config["PIECES"].export_timeout_s
    tenant = access.list_tenant(principal, query.company_guid)
    started = time.monotonic()
    deadline = started + time_limit_s
    # On a replica when one is healthy; when it fails before anything is sent, once more
    # on the primary.
    for on_primary in (False, True):
        read = None
        try:
            read = db.streaming_read(tenant, time_limit_ms=time_limit_s * 1000,
                                     primary=on_primary)
            found = export_dao.open_cursor(
                read, tenant=tenant, fmt=fmt, project_guid=query.project_guid,
                component_guid=query.component_guid, assembly_guid=query.assembly_guid,
                include_inactive=query.include_inactive, fields=query.fields)
            check_parents(found, query)
            first = export_dao.fetch_lines(read, rows=BATCH_ROWS,
                                           timeout_ms=_remaining_ms(deadline))
            break
        except ReplicaFailed:
            if read is not None:
                read.close()
        except BaseException:
            if read is not None:
                read.close()
            raise
    header = export_dao.csv_header(query.fields) + _LINE_END["csv"] if fmt == "csv" else ""
    return ExportStream(read, first, header, fmt=fmt, started=started, deadline=deadline,
                        time_limit_s=time_limit_s,
                        context={"tenant": str(tenant), "format": fmt,
                                 **(log_context or {})})


def _remaining_ms(deadline: float) -> int:
    return max(1, int((deadline - time.monotonic()) * 1000))


class ExportStream:
    """The export's body: an iterator of byte chunks (one per batch; the CSV header first),
    with `close()` for the server to call when the response ends or the client goes away.

    Whatever ends it — the last row, the time limit, a database error, `close()` (also before
    the first chunk) — ends its transaction at once and returns the connection to the pool.
    """

    def __init__(self, read: db.StreamingRead, first: list[str], header: str, *, fmt: str,
                 started: float, deadline: float, time_limit_s: int, context: dict):
        self._read = read
        self._fmt = fmt
        self._started = started
        self._deadline = deadline
        self._time_limit_s = time_limit_s
        self._context = context
        self.rows_sent = 0
        self._chunks = self._generate(first, header.encode())

    def __iter__(self) -> "ExportStream":
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()  # runs the generator's cleanup if it started
        self._read.close()    # and if it never did (idempotent)

    def _encode(self, lines: list[str]) -> bytes:
        end = _LINE_END[self._fmt]
        return (end.join(lines) + end).encode() if lines else b""

    def _generate(self, lines: list[str], head: bytes):
        try:
            while True:
                chunk = head + self._encode(lines)
                head = b""
                if chunk:
                    yield chunk  # back here once the server has written it
                self.rows_sent += len(lines)
                if len(lines) < BATCH_ROWS:
                    break  # the cursor's end
                heartbeat.beat()
                lines = self._fetch()
            self._log(logging.INFO, "export complete")
        except GeneratorExit:  # the server closed the stream early: the client went away
            self._log(logging.INFO, "export stopped: the client went away")
            raise
        finally:
            self._read.close()

    def _fetch(self) -> list[str]:
        if time.monotonic() >= self._deadline:
            self._cut_at_limit()
        try:
            return export_dao.fetch_lines(self._read, rows=BATCH_ROWS,
                                          timeout_ms=_remaining_ms(self._deadline))
        except DatabaseUnavailable:
            # The FETCH's statement_timeout is the time left, so a timeout ends at the
            # deadline (give or take the clock's and the millisecond's rounding).
            if time.monotonic() >= self._deadline - 0.05:
                self._cut_at_limit()
            self._log(logging.WARNING, "export cut: database unavailable")
            raise ExportCut("export cut: database unavailable") from None
        except ServiceError as exc:
            cause = getattr(exc.__cause__, "orig", exc.__cause__)
            self._log(logging.ERROR, "export cut: database error", cause=type(cause).__name__)
            raise ExportCut("export cut: database error") from None

    def _cut_at_limit(self):
        self._log(logging.WARNING, "export hit its time limit; the response was cut",
                  time_limit_s=self._time_limit_s)
        raise ExportCut("export time limit reached")

    def _log(self, level: int, message: str, **fields) -> None:
        log.log(level, message, extra={
            **self._context, "rows_sent": self.rows_sent,
            "seconds": round(time.monotonic() - self._started, 3), **fields})
