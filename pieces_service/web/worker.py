"""The gunicorn worker: gunicorn's own gthread worker (a thread per request in flight, so a
long or slow response holds a thread, not a process), with two additions for admission
control (web/admission.py):

- it stamps each request when it is queued for a thread (a new connection when accepted, a
  kept-alive one when its next request arrives), so the application can tell how long a
  request waited before its work started (`PIECES_QUEUE_TIMEOUT_MS`) when no gateway sent
  `X-Request-Start`;
- it gives every send and receive on a client's socket `PIECES_SEND_TIMEOUT_S`: a client
  that reads nothing for that long (its socket buffer full) loses its connection. The
  response's body is closed on the way out (an export's stream ends: its slot and its
  database connection are free at once) and one log line names the tenant and the bytes
  sent, instead of gunicorn's traceback.

`gunicorn.conf.py` selects it: `worker_class = "pieces_service.web.worker.ThreadWorker"`.
"""
from __future__ import annotations

import time

from gunicorn.workers import gthread

from ..config import Config
from . import admission


class ThreadWorker(gthread.ThreadWorker):
    send_timeout_s: int = Config.send_timeout_s

    def enqueue_req(self, conn):
        conn.pieces_queued_at = time.time()
        super().enqueue_req(conn)

    def handle_request(self, req, conn):
        admission.queued_since(getattr(conn, "pieces_queued_at", None))
        # After gthread's own setblocking(True), which clears any timeout.
        conn.sock.settimeout(self.send_timeout_s)
        try:
            return super().handle_request(req, conn)
        except TimeoutError:
            admission.stalled(self.send_timeout_s)
            return False  # gthread closes the connection
