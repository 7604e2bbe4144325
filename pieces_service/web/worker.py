"""The gunicorn worker: gunicorn's own gthread worker (a thread per request in flight, so a
long or slow response holds a thread, not a process), with two additions for admission
control (web/admission.py):

- it stamps each request when it is queued for a thread (a new connection when accepted, a
  kept-alive one when its next request arrives), so the application can tell how long a
  request waited before its work started (`PIECES_QUEUE_TIMEOUT_MS`) when no gateway sent
  `X-Request-Start`;
- a client that reads (or sends) nothing for `PIECES_SEND_TIMEOUT_S` loses its connection.
  The timeout is of idleness, not of the whole response: each `send()` may wait that long
  for room in the socket's buffer (socket.sendall's own timeout would bound the whole call,
  and cut a slow but steady reader of a large chunk). The response's body is closed on the
  way out (an export's stream ends: its slot and its database connection are free at
  once); one log line names the tenant and the bytes sent, instead of gunicorn's traceback;
  and the connection is reset in the request's thread, so that gunicorn's graceful close
  (which waits up to 2 s for the client's FIN, on the worker's event loop) finds it done
  and no other request of the worker waits behind it;
- every other connection to be closed (a response with `Connection: close`) lingers for
  the client's FIN in the request's thread too, for the same reason.

`gunicorn.conf.py` selects it: `worker_class = "pieces_service.web.worker.ThreadWorker"`.
"""
from __future__ import annotations

import select
import socket
import struct
import threading
import time

from gunicorn.workers import gthread

from ..config import Config
from . import admission

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
SEND_BUFFER_BYTES = 256 * 1024  # Linux doubles it; ample for a gateway on the same network
LINGER_S = 2.0  # as gunicorn's own graceful close
_COALESCE_BYTES = 64 * 1024  # a larger first write goes after the head, not copied onto it


class _IdleTimeoutSocket:
    """A client socket, for the length of one request, whose `sendall` gives up only when
    the client took nothing for the socket's timeout.

    It also sends the response's head with the first piece of its body: gunicorn writes
    them separately, two system calls and two segments for every small response. The head
    waits for the next write, or for `flush()` when none comes (a 304, a HEAD)."""

    __slots__ = ("_sock", "sent", "_head")

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.sent = 0  # bytes of the response written so far (headers included)
        self._head: bytes | None = None

    def sendall(self, data) -> None:
        if self.sent == 0 and self._head is None:
            self._head = bytes(data)  # the head: held for the body's first write
            return
        if self._head is not None:
            head, self._head = self._head, None
            if len(data) <= _COALESCE_BYTES:
                data = head + bytes(data)
            else:
                self._send(head)
        self._send(data)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        """A file body (gunicorn's sendfile path for `wsgi.file_wrapper`): the head first."""
        self.flush()
        sent = self._sock.sendfile(file, offset, count)
        self.sent += sent
        return sent

    def fileno(self) -> int:
        self.flush()  # whoever writes to the descriptor itself writes after the head
        return self._sock.fileno()

    def flush(self) -> None:
        """Send a head still held (a response without a body)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._send(head)

    def _send(self, data) -> None:
        view = memoryview(data).cast("B")
        while view:
            written = self._sock.send(view)  # waits at most the timeout for room
            self.sent += written
            view = view[written:]

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _abort(sock: socket.socket) -> None:
    """Reset the connection now: unsent data is dropped, and the graceful close that
    follows on the event loop returns at once (nothing left to read or wait for)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _linger(sock: socket.socket, timeout_s: float = LINGER_S) -> None:
    """The slow half of gunicorn's graceful close (util.close_graceful), done in the
    request's thread: send FIN, then wait up to `timeout_s` for the client's, draining what
    it still sends. Both directions are shut afterwards, so the close that gthread then
    makes on its event loop finds nothing to wait for."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return
    deadline = time.monotonic() + timeout_s
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(4096):
                break
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


NEXT_REQUEST_WAIT_S = 0.002


def _next_request_within(conn, timeout_s: float) -> bool:
    """Whether the connection's next request (or its end) arrives within `timeout_s`."""
    if conn.parser.unreader.buf.getvalue():
        return True  # read ahead already
    try:
        readable, _, _ = select.select([conn.sock], [], [], timeout_s)
    except (OSError, ValueError):
        return False
    return bool(readable)


class ThreadWorker(gthread.ThreadWorker):
    send_timeout_s: int = Config.send_timeout_s

    def init_process(self):
        self._handling = 0  # threads in handle()
        self._handling_lock = threading.Lock()
        # Serve a kept-alive connection's next request in its thread while at most this
        # many threads are in handle(): the rest stay free for the event loop's work.
        self._max_serving_on = self.cfg.threads // 2
        super().init_process()

    def handle(self, conn):
        with self._handling_lock:
            self._handling += 1
        try:
            result = super().handle(conn)
            # The client's next request on a kept-alive connection usually follows at once:
            # serve it in this thread while threads are plentiful, rather than through the
            # event loop and the pool's queue (two thread switches, each a wait for the
            # interpreter when other requests run).
            while (result is True and self.alive and self._handling <= self._max_serving_on
                   and _next_request_within(conn, NEXT_REQUEST_WAIT_S)):
                conn.pieces_queued_at = time.time()
                result = super().handle(conn)
        finally:
            with self._handling_lock:
                self._handling -= 1
        if result is False:  # to be closed (not kept alive, not deferred to the poller)
            _linger(conn.sock)
        return result

    def enqueue_req(self, conn):
        conn.pieces_queued_at = time.time()
        super().enqueue_req(conn)

    def handle_request(self, req, conn):
        admission.queued_since(getattr(conn, "pieces_queued_at", None))
        raw = conn.sock
        # After gthread's own setblocking(True), which clears any timeout.
        raw.settimeout(self.send_timeout_s)
        if not getattr(conn, "pieces_send_buffer", False):
            # A bounded send buffer: the kernel reports room once half of it has drained,
            # so a reader that takes 200 kB/s shows progress every ~0.6 s rather than after
            # megabytes of an autotuned buffer (and a slow reader pins less memory).
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            conn.pieces_send_buffer = True
        conn.sock = sending = _IdleTimeoutSocket(raw)
        try:
            keep_alive = super().handle_request(req, conn)
            sending.flush()
            return keep_alive
        except TimeoutError:
            admission.stalled(self.send_timeout_s, sending.sent)
            _abort(raw)
            return False  # gthread closes the connection
        finally:
            conn.sock = raw
