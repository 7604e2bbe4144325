"""The HTTP floor: the smallest WSGI app, served by the same gunicorn configuration as the
service, answering every request with a fixed JSON body of `?bytes=N` bytes (default 100).
It reads any request body, as the service must. What pieces_service does beyond this is its
own cost."""
from __future__ import annotations

_bodies: dict[int, bytes] = {}


def _body(size: int) -> bytes:
    body = _bodies.get(size)
    if body is None:
        body = _bodies[size] = b'"' + b"x" * max(0, size - 2) + b'"'
    return body


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    size = 100
    for pair in environ.get("QUERY_STRING", "").split("&"):
        name, _, value = pair.partition("=")
        if name == "bytes" and value.isdigit():
            size = min(int(value), 64 << 20)
    body = _body(size)
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
