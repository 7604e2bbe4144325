"""HTTP servers the tracing and JWKS tests start for themselves on 127.0.0.1: an OTLP/HTTP
trace receiver that decodes what it is sent with `opentelemetry-proto`, and a JWKS endpoint
whose keys a test rotates, that counts its fetches and can be taken down. Also the key pairs
that sign the tokens those keys verify. Each server runs in a thread of the test process
and is stopped by its context manager."""
from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import claims_for


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 in a thread of its own; `stop()` closes the port
    (connections are refused) and `start()` opens the same port again."""

    handler: type

    def __init__(self):
        self.port = 0
        self._httpd = None
        self.start()

    def start(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # no lines on stderr per request
        pass


# --- OTLP/HTTP ------------------------------------------------------------------------------

@dataclass
class Span:
    """One received span, its ids as lowercase hex."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict
    status_code: int
    trace_state: str
    service_name: str


class _OtlpHandler(_QuietHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        self.server.owner._received(self.path, body)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


def _value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class OtlpReceiver(_Server):
    """An OTLP/HTTP endpoint: `endpoint` for OTEL_EXPORTER_OTLP_ENDPOINT; every request's
    raw bytes in `bodies`, its spans decoded in `spans()`."""

    handler = _OtlpHandler

    def __init__(self):
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _received(self, path: str, body: bytes) -> None:
        with self._lock:
            self.paths.append(path)
            self.bodies.append(body)

    def spans(self) -> list[Span]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest)

        with self._lock:
            bodies = list(self.bodies)
        found = []
        for body in bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value)
                            for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(Span(
                            span.name, span.trace_id.hex(), span.span_id.hex(),
                            span.parent_span_id.hex(), span.kind,
                            {a.key: _value(a.value) for a in span.attributes},
                            span.status.code, span.trace_state,
                            resource.get("service.name")))
        return found

    def wait_for(self, predicate, timeout: float = 15.0) -> list[Span]:
        """The spans once `predicate(spans)` holds; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans not received in {timeout}s: "
                                     f"{[(s.name, s.trace_id) for s in spans]}")
            time.sleep(0.05)


# --- JWKS -----------------------------------------------------------------------------------

class KeyPair:
    """A signing key pair of an identity provider: `jwk` is its public JWK (with its kid),
    `token(...)` a token it signs."""

    def __init__(self, kid: str, kind: str = "RSA"):
        self.kid = kid
        if kind == "RSA":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.algorithm = "RS256"
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.algorithm = "ES256"
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": kid, "use": "sig"}

    def token(self, company, role="Operator", *, kid: str | None = None,
              algorithm: str | None = None, **claims) -> str:
        """A token of `company` and `role` signed with this key, its header naming `kid`
        (default: this key's)."""
        return jwt.encode(claims_for(company, role, **claims), self.private,
                          algorithm=algorithm or self.algorithm,
                          headers={"kid": self.kid if kid is None else kid})


class _JwksHandler(_QuietHandler):
    def do_GET(self):
        owner = self.server.owner
        body, cache_control = owner._serve()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if cache_control:
            self.send_header("Cache-Control", cache_control)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class JwksServer(_Server):
    """A JWKS endpoint serving `keys` (JWK dicts) at `url`; `fetches` counts the GETs.
    `cache_control` is sent as the document's Cache-Control (None: no header)."""

    handler = _JwksHandler

    def __init__(self, keys: list[dict], cache_control: str | None = "max-age=3600"):
        self.keys = list(keys)
        self.cache_control = cache_control
        self.fetch_times: list[float] = []  # time.monotonic() of each GET
        self._lock = threading.Lock()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    def publish(self, keys: list[dict]) -> None:
        with self._lock:
            self.keys = list(keys)

    @property
    def fetches(self) -> int:
        return len(self.fetch_times)

    def _serve(self) -> tuple[bytes, str | None]:
        with self._lock:
            self.fetch_times.append(time.monotonic())
            return json.dumps({"keys": self.keys}).encode(), self.cache_control
