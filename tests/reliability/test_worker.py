"""The gunicorn worker (pieces_service/web/worker.py) through real gunicorn and raw sockets:
a response's head goes out with its body's first write, and still goes out when there is no
body (a 304, a HEAD); a kept-alive connection's next request is served whether it follows
at once (in the same thread) or after a pause (through the event loop)."""
from __future__ import annotations

import re
import socket
import time

import pytest

from helpers import TEST_SECRET, make_token

from .reliability_harness import Gunicorn


@pytest.fixture(scope="module")
def server(db_url):
    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1)
    yield server
    server.close()


def _read_response(sock: socket.socket, buffer: bytearray, *, head_only: bool = False):
    """One response from `sock` (status, headers, body); bytes after it stay in `buffer`."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = 0 if head_only or status == 304 else int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def _get(path: str, token: str, method: str = "GET", **headers) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"{extra}\r\n").encode()


def test_bodiless_answers_and_the_next_requests_on_one_connection(server, seed, tenant):
    tree = seed.tree(tenant, 1)
    token = make_token(tenant, "Operator", exp_in=600)
    path = f"/api/v1/pieces/{tree.pieces[0]}"
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(_get(path, token))
        status, headers, body = _read_response(sock, buffer)
        assert status == 200 and str(tree.pieces[0]) in body.decode()
        etag = headers["etag"]
        # A 304 has a head and no body: the head is not left waiting for one.
        sock.sendall(_get(path, token, If_None_Match=etag))
        status, headers, body = _read_response(sock, buffer)
        assert (status, body, headers["etag"]) == (304, b"", etag)
        # HEAD: the head of the GET, no body.
        sock.sendall(_get(path, token, method="HEAD"))
        status, headers, body = _read_response(sock, buffer, head_only=True)
        assert status == 200 and int(headers["content-length"]) > 0 and body == b""
        # Back to back (served in the same thread), then after a pause longer than the
        # worker waits for a next request (served through the event loop): all answered.
        for pause in (0, 0, 0.05, 0, 0.2):
            time.sleep(pause)
            sock.sendall(_get(path, token))
            status, _, body = _read_response(sock, buffer)
            assert status == 200 and str(tree.pieces[0]) in body.decode()
        # Two requests in one write (pipelined): both answered, in order.
        sock.sendall(_get(path, token) + _get("/api/v1/pieces/" + "0" * 8 + "-0000-4000-8000-"
                                              + "0" * 12, token))
        assert _read_response(sock, buffer)[0] == 200
        assert _read_response(sock, buffer)[0] == 404
        assert not buffer


class _CountingSocket:
    """A real socket (one end of a socketpair) that counts its send() calls."""

    def __init__(self, sock):
        self.sock, self.sends = sock, []

    def send(self, data):
        self.sends.append(len(data))
        return self.sock.send(data)


@pytest.mark.parametrize("body_bytes, sends", [(0, 1), (300, 1), (70 * 1024, 2)])
def test_a_head_and_a_small_body_leave_in_one_write(body_bytes, sends):
    """gunicorn writes the head, then the body: one send() for both, unless the body's first
    write is large (then it is not copied onto the head); a bodiless head leaves on flush()."""
    from pieces_service.web.worker import _IdleTimeoutSocket

    ours, theirs = socket.socketpair()
    with ours, theirs:
        counting = _CountingSocket(ours)
        wrapped = _IdleTimeoutSocket(counting)
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body_bytes
        wrapped.sendall(head)
        assert counting.sends == []  # held for the body
        if body_bytes:
            wrapped.sendall(b"x" * body_bytes)
        wrapped.flush()
        wrapped.flush()  # idempotent
        received = b""
        theirs.settimeout(5)
        while len(received) < len(head) + body_bytes:
            received += theirs.recv(1 << 20)
        assert received == head + b"x" * body_bytes
        assert len(counting.sends) == sends and wrapped.sent == len(received)


def test_a_file_body_goes_out_after_its_head(server):
    """A static file (the docs page's script) is sent by gunicorn with sendfile(), past the
    socket's own writes: its head must still come first, and the connection stay usable."""
    from pathlib import Path

    from pieces_service.web.swagger_ui import ASSETS_URL, swagger_ui_path

    name = "swagger-ui-bundle.js"
    expected = (Path(swagger_ui_path) / name).read_bytes()
    path = f"/api/v1/{ASSETS_URL}{name}"
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(request)
            status, headers, body = _read_response(sock, buffer)
            assert status == 200 and body == expected
        assert not buffer
