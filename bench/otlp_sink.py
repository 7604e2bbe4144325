"""An OTLP/HTTP endpoint that takes spans and drops them, on 127.0.0.1:$BENCH_OTLP_PORT
(default 4318), for measuring the service's cost of tracing (`bench.inprocess` with
`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318`). Runs until interrupted; its own CPU is
another process's."""
from __future__ import annotations

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    port = int(os.environ.get("BENCH_OTLP_PORT", "4318"))
    ThreadingHTTPServer(("127.0.0.1", port), _Sink).serve_forever()
