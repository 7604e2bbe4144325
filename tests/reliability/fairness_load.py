"""Data and load drivers of the fairness proofs (test_fairness.py, issue 21 point 4).

Everything talks to 127.0.0.1 only, and every loop is bounded in count and in time.

- `seed_project`: a tenant's project of the bench's shape (components × assemblies ×
  pieces, every piece with the bench's attributes, one `created_at` per assembly), written
  by one INSERT … SELECT as the tables' owner.
- `ExportClient`: a raw-socket export consumer that recv()s at a paced rate (bytes/s) or
  not at all (a stalled reader), decodes the chunked body and tells a complete export (the
  terminating chunk) from a cut one; on 429 it may retry after `Retry-After`.
- `server_side_state`: the state of the server's end of a TCP connection, from
  /proc/net/tcp (when the server closed a stalled reader's connection, while the client
  still reads nothing).
- `closed_loop`: N Python threads on keep-alive connections, each sending its next request
  when the last one is answered (the fallback when wrk is missing, and the short tests).
- `Sequential`: one client in a process of its own sending GETs one after the other on a
  keep-alive connection, every request's own latency recorded (tenant B). Not wrk: wrk
  "corrects" its percentiles for coordinated omission (after the run it adds, for every
  response slower than the mean interval, samples as if requests had kept arriving at
  that interval), so one 2 s stall among 20,000 sequential 3 ms requests becomes ~700
  samples and moves its p99; a sequential client's p99 is that of its requests.
- `Wrk`: wrk with bench/lua/bench.lua (get and sync modes), in the background or not.
- `open_loop`: requests sent at a fixed arrival rate (asyncio, a new connection each,
  none waiting for an earlier one), each timed from its start to its last byte.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .reliability_harness import PROJECT_DIR

LUA = PROJECT_DIR / "bench" / "lua" / "bench.lua"


# ------------------------------------------------------------------------------ data

@dataclass
class Project:
    tenant: uuid.UUID
    project: uuid.UUID
    components: list[uuid.UUID]
    assemblies: list[uuid.UUID]
    parents: list[tuple[uuid.UUID, uuid.UUID]]  # (component, assembly), one per assembly
    per_assembly: int
    sample: list[uuid.UUID] = field(default_factory=list)  # some piece guids (details)

    @property
    def pieces(self) -> int:
        return len(self.assemblies) * self.per_assembly


# The bench's piece (bench/data.py): every attribute it fills, derived from the row number.
_PIECES_INSERT = """
INSERT INTO pieces (guid, company_guid, project_guid, component_guid, assembly_guid, piece_id,
    barcode, outer_length, inner_length, angle_left, angle_right, assembly_width,
    assembly_height, bar_length, bar_rest, profile_width, profile_height, welding_tolerance,
    orientation, trolley, cell, trolley_cell, operations, component_code, client, dealer,
    project_description, project_number, material_type, bar_id, profile_code, profile_name,
    profile_color, profile_code_with_color, glass_info, created_at, updated_at)
SELECT gen_random_uuid(), %(tenant)s, %(project)s, a.component, a.assembly,
    format('%%s-%%s', lpad(a.ordinal::text, 4, '0'), lpad(n::text, 5, '0')),
    'BC' || lpad(((a.ordinal * 100003 + n * 7919) %% 4294967296)::text, 10, '0'),
    300 + (a.ordinal * 31 + n * 17) %% 4096, 204 + (a.ordinal * 31 + n * 17) %% 4096,
    CASE WHEN n %% 2 = 0 THEN 45 ELSE 90 END, CASE WHEN n %% 3 = 0 THEN 45 ELSE 90 END,
    600 + n %% 1024, 1000 + n %% 1024, 6500, (n * 13) %% 1024, 70, 82, 3,
    (ARRAY['H', 'V', 'HL', 'VR'])[1 + n %% 4],
    'T' || lpad((n %% 64)::text, 2, '0'), lpad((n %% 32)::text, 2, '0'),
    'T' || lpad((n %% 64)::text, 2, '0') || '-' || lpad((n %% 32)::text, 2, '0'),
    'SAW;DRILL ' || n %% 8, 'C' || lpad((a.ordinal / 10)::text, 2, '0'),
    'Client ' || %(label)s, 'Dealer 1', 'Project of tenant ' || %(label)s, 'PN' || %(label)s,
    'PVC', 'B' || lpad((n %% 4096)::text, 5, '0'),
    'P' || (1101 + a.ordinal %% 12), 'Frame 70', 'WHITE', 'P' || (1101 + a.ordinal %% 12) || '-WHI',
    CASE WHEN a.ordinal %% 3 = 0 THEN NULL ELSE '4/16/4 Ar' END,
    timestamptz '2024-01-01 06:00+00' + a.ordinal * interval '1 minute',
    timestamptz '2024-01-01 06:00+00' + a.ordinal * interval '1 minute'
FROM unnest(%(components)s::uuid[], %(assemblies)s::uuid[], %(ordinals)s::int[])
     AS a(component, assembly, ordinal)
CROSS JOIN generate_series(1, %(per)s) AS n
"""


def seed_project(conn, tenant: uuid.UUID, *, components: int, assemblies_per_component: int,
                 per_assembly: int, label: str = "A", sample: int = 400) -> Project:
    """A project of `components` × `assemblies_per_component` assemblies of `per_assembly`
    pieces each for `tenant` (`conn`: the owner's autocommit connection), analyzed."""
    project = uuid.uuid4()
    comps = [uuid.uuid4() for _ in range(components)]
    pairs = [(c, uuid.uuid4()) for c in comps for _ in range(assemblies_per_component)]
    with conn.cursor() as cur:
        cur.execute("INSERT INTO projects (guid, company_guid, code, name) VALUES (%s, %s, %s, %s)",
                    (str(project), str(tenant), f"FAIR-{label}-{project.hex[:6]}",
                     f"Fairness project {label}"))
        for i, c in enumerate(comps):
            cur.execute("INSERT INTO components (guid, company_guid, project_guid, code)"
                        " VALUES (%s, %s, %s, %s)",
                        (str(c), str(tenant), str(project), f"C{i:02d}"))
        for i, (c, a) in enumerate(pairs):
            cur.execute("INSERT INTO assemblies (guid, company_guid, project_guid, component_guid,"
                        " code) VALUES (%s, %s, %s, %s, %s)",
                        (str(a), str(tenant), str(project), str(c), f"A{i:04d}"))
        cur.execute(_PIECES_INSERT, {
            "tenant": str(tenant), "project": str(project), "label": label,
            "components": [str(c) for c, _ in pairs], "assemblies": [str(a) for _, a in pairs],
            "ordinals": list(range(len(pairs))), "per": per_assembly})
        cur.execute("ANALYZE pieces")
        cur.execute("SELECT guid FROM pieces WHERE company_guid = %s AND project_guid = %s"
                    " ORDER BY random() LIMIT %s", (str(tenant), str(project), sample))
        guids = [uuid.UUID(str(row[0])) for row in cur.fetchall()]
    return Project(tenant, project, comps, [a for _, a in pairs], pairs, per_assembly, guids)


# ------------------------------------------------------------------------------ figures

def percentile(values, pct: float) -> float:
    """The `pct` percentile of `values` (nearest rank); 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(pct / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def metric_total(metrics_text: str, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels` in /metrics text."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


# ------------------------------------------------------------------------------ export client

class _Chunked:
    """An incremental decoder of a chunked body: data bytes, NDJSON lines, and whether the
    terminating chunk (and the empty trailer) arrived."""

    def __init__(self):
        self.buffer = bytearray()
        self.state = "size"
        self.remaining = 0
        self.data_bytes = 0
        self.lines = 0
        self.complete = False
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while not self.complete and self.error is None:
            if self.state == "size":
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    return
                try:
                    size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
                except ValueError:
                    self.error = f"bad chunk size {bytes(self.buffer[:end][:40])!r}"
                    return
                del self.buffer[:end + 2]
                self.remaining = size
                self.state = "data" if size else "trailer"
            elif self.state == "data":
                if not self.buffer:
                    return
                take = min(self.remaining, len(self.buffer))
                self.lines += self.buffer.count(b"\n", 0, take)
                self.data_bytes += take
                del self.buffer[:take]
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buffer) < 2:
                    return
                if self.buffer[:2] != b"\r\n":
                    self.error = "chunk not followed by CRLF"
                    return
                del self.buffer[:2]
                self.state = "size"
            elif self.state == "trailer":
                if len(self.buffer) < 2:
                    return
                if self.buffer[:2] == b"\r\n":
                    del self.buffer[:2]
                    self.complete = True
                    return
                self.error = "trailer fields after the last chunk"
                return


@dataclass
class Attempt:
    """One export request: its status, `Retry-After`, and for a 200 whether it streamed
    completely (the terminating chunk) and how much."""

    started: float
    status: int | None = None
    retry_after: str | None = None
    detail: str | None = None
    complete: bool = False
    rows: int = 0
    data_bytes: int = 0
    ended: float | None = None
    error: str | None = None
    client_port: int | None = None


def _request_bytes(path: str, token: str, headers: dict | None = None, *,
                   close: bool = True) -> bytes:
    """A GET; `close`: with `Connection: close` (else HTTP/1.1's keep-alive, and the client
    closes once it has the whole response, as curl does)."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {token}"]
    if close:
        lines.append("Connection: close")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


class _Response:
    """One response as it arrives: status line and headers, then the body (chunked: through
    `_Chunked`; else kept, for the JSON `detail` of a refusal)."""

    def __init__(self):
        self.head = bytearray()
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunked = False
        self.body = _Chunked()
        self.plain = bytearray()

    def feed(self, data: bytes) -> None:
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            self.status, self.headers = _parse_head(bytes(self.head[:end]))
            self.chunked = "chunked" in self.headers.get("transfer-encoding", "")
            data = bytes(self.head[end + 4:])
        if self.chunked:
            self.body.feed(data)
        else:
            self.plain += data

    @property
    def done(self) -> bool:
        """The whole response arrived (the terminating chunk, or Content-Length bytes)."""
        if self.status is None:
            return False
        if self.chunked:
            return self.body.complete
        length = self.headers.get("content-length")
        return length is not None and len(self.plain) >= int(length)


class ExportClient(threading.Thread):
    """A consumer of `path` that reads at `rate` bytes/s, or (`rate=None`) a stalled reader
    that reads the status line and headers and then nothing more, with a receive buffer of
    `rcvbuf` bytes so that the server feels its pace. On 429 it waits `Retry-After` and asks
    again while `time.monotonic() < retry_until` (None: no retry). `attempts` records every
    request. Requests are HTTP/1.1 keep-alive; the client closes its connection once it has
    the whole response (as curl does).

    (`connection_close`: with `Connection: close`. gunicorn's gthread worker closes such a
    connection with `util.close_graceful` on its event loop, which waits up to 2 s for the
    client's FIN; a slow reader still draining the socket buffers holds every other request
    of that worker that long: test_closing_slow_reader_does_not_freeze_its_worker.)
    """

    def __init__(self, port: int, path: str, token: str, *, rate: float | None,
                 rcvbuf: int = 64 * 1024, retry_until: float | None = None,
                 give_up_at: float | None = None, name: str = "export",
                 connection_close: bool = False):
        super().__init__(name=name, daemon=True)
        self.port, self.path, self.token = port, path, token
        self.connection_close = connection_close
        self.rate, self.rcvbuf, self.retry_until = rate, rcvbuf, retry_until
        # A hard bound on any one attempt's reading (the test's deadline).
        self.give_up_at = give_up_at if give_up_at is not None else time.monotonic() + 900
        self.attempts: list[Attempt] = []
        self.sent_at: float | None = None
        self.stopped_reading_at: float | None = None  # a stalled one: when its head arrived
        self._stalled: tuple[socket.socket, _Response] | None = None

    @property
    def stalled(self) -> bool:
        """Whether it holds an admitted export it no longer reads."""
        return self._stalled is not None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def run(self):
        for _ in range(1000):  # bounded: at most one attempt per Retry-After second anyway
            attempt = Attempt(started=time.monotonic())
            self.attempts.append(attempt)
            try:
                sock = self._connect()
            except OSError as exc:
                attempt.error = f"{type(exc).__name__}: {exc}"
                attempt.ended = time.monotonic()
                return
            attempt.client_port = sock.getsockname()[1]
            response = _Response()
            try:
                sock.sendall(_request_bytes(self.path, self.token,
                                            close=self.connection_close))
                self.sent_at = time.monotonic()
                if self.rate is None:
                    self._read(sock, attempt, response, paced=False, until_head=True)
                    if response.status == 200:
                        self.stopped_reading_at = time.monotonic()
                        self._stalled = (sock, response)  # reads nothing more
                        return
                self._read(sock, attempt, response, paced=self.rate is not None)
            except OSError as exc:
                attempt.error = f"{type(exc).__name__}: {exc}"
            self._finish(sock, attempt, response)
            if (attempt.status == 429 and self.retry_until is not None
                    and attempt.retry_after and attempt.retry_after.isdigit()):
                pause = int(attempt.retry_after)
                if time.monotonic() + pause < self.retry_until:
                    time.sleep(pause)
                    continue
            return

    def _read(self, sock: socket.socket, attempt: Attempt, response: _Response, *,
              paced: bool, until_head: bool = False) -> None:
        """Read `response` on `sock` until EOF (at `rate` when `paced`; only up to its
        headers with `until_head`) or the deadline."""
        got = 0
        first = time.monotonic()
        while True:
            if response.done:  # all of it came with the head (one segment)
                return
            if time.monotonic() > self.give_up_at:
                attempt.error = "gave up: the test's deadline"
                return
            want = 16384
            if paced:
                allowed = self.rate * (time.monotonic() - first) + 16384 - got
                if allowed < 1024:
                    time.sleep(min(0.05, (1024 - allowed) / self.rate))
                    continue
                want = int(min(want, allowed))
            data = sock.recv(want)
            if not data:
                return
            got += len(data)
            response.feed(data)
            if response.status is not None and attempt.status is None:
                attempt.status = response.status
                attempt.retry_after = response.headers.get("retry-after")
            if response.body.error:
                attempt.error = response.body.error
                return
            if until_head and response.status is not None:
                return
            if response.done:
                return

    def _finish(self, sock: socket.socket, attempt: Attempt, response: _Response) -> None:
        sock.close()
        attempt.ended = time.monotonic()
        if response.chunked:
            attempt.complete = response.body.complete
            attempt.rows = response.body.lines
            attempt.data_bytes = response.body.data_bytes
        elif response.plain:
            try:
                attempt.detail = json.loads(bytes(response.plain)).get("detail")
            except (ValueError, AttributeError):
                attempt.detail = bytes(response.plain[:200]).decode(errors="replace")

    def drain(self, deadline: float) -> None:
        """A stalled reader reads what is left (as fast as it comes, until EOF or
        `deadline`), so that the test sees its body was cut (no terminating chunk)."""
        if self._stalled is None:
            return
        (sock, response), self._stalled = self._stalled, None
        attempt = self.attempts[-1]
        self.give_up_at = deadline
        try:
            self._read(sock, attempt, response, paced=False)
        except OSError as exc:  # a reset: the server gave up on the data it had queued
            attempt.error = f"{type(exc).__name__}: {exc}"
        self._finish(sock, attempt, response)


def server_side_state(server_port: int, client_port: int) -> str | None:
    """The TCP state (hex, as /proc/net/tcp writes it: 01 ESTABLISHED, 04 FIN_WAIT1, …) of
    the server's end of the connection 127.0.0.1:client_port -> 127.0.0.1:server_port, or
    None when the kernel no longer has it."""
    local = f"0100007F:{server_port:04X}"
    remote = f"0100007F:{client_port:04X}"
    try:
        text = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) > 3 and parts[1] == local and parts[2] == remote:
            return parts[3]
    return None


# ------------------------------------------------------------------------------ closed loop

@dataclass
class Run:
    """What a load run saw: per-request (status, seconds), transport errors, duration."""

    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)  # time.monotonic() of each start
    errors: list[str] = field(default_factory=list)
    missing_retry_after: int = 0
    inserted: int = 0
    seconds: float = 0.0

    def count(self, status: int) -> int:
        return sum(1 for s in self.statuses if s == status)

    def rate(self, status: int = 200) -> float:
        return self.count(status) / self.seconds if self.seconds else 0.0

    def p(self, pct: float) -> float:
        return percentile(self.latencies, pct)

    def slowest(self, n: int = 3, since: float = 0.0) -> list[tuple[float, float, int]]:
        """The `n` slowest requests: (start - `since`, seconds, status)."""
        rows = sorted(zip(self.latencies, self.started, self.statuses), reverse=True)[:n]
        return [(round(start - since, 3), round(lat, 3), status) for lat, start, status in rows]

    @property
    def non_200(self) -> int:
        return sum(1 for s in self.statuses if s != 200)


def closed_loop(port: int, make_request, *, connections: int, seconds: float,
                max_requests: int = 1_000_000, timeout: float = 30.0,
                seed: int = 1) -> Run:
    """`connections` threads, each on a keep-alive connection, sending
    `make_request(rng) -> (method, path, token, body or None)` back to back for `seconds`
    (at most `max_requests` in all). Latency per request; transport errors counted."""
    run = Run()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    budget = [max_requests]

    def driver(index: int):
        rng = random.Random(seed * 1000 + index)
        conn = None
        while time.monotonic() < stop_at:
            with lock:
                if budget[0] <= 0:
                    return
                budget[0] -= 1
            method, path, token, body = make_request(rng)
            headers = {"Authorization": "Bearer " + token}
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
                conn.request(method, path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                elapsed = time.monotonic() - started
                inserted = 0
                if response.status == 200 and method == "POST":
                    inserted = json.loads(raw).get("inserted", 0)
                with lock:
                    run.statuses.append(response.status)
                    run.latencies.append(elapsed)
                    run.started.append(started)
                    run.inserted += inserted
                    if response.status in (429, 503) and not response.getheader("Retry-After"):
                        run.missing_retry_after += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=driver, args=(i,), daemon=True)
               for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + timeout + 30)
    run.seconds = time.monotonic() - started
    assert not any(t.is_alive() for t in threads), "a load thread hung"
    return run


class Background:
    """`closed_loop` in a thread for as long as a with block runs (its `seconds` is the
    bound); `.run` holds its figures after the block."""

    def __init__(self, port, make_request, *, connections, seconds, **kwargs):
        self._args = (port, make_request)
        self._kwargs = dict(connections=connections, seconds=seconds, **kwargs)
        self.run: Run | None = None
        self._thread = threading.Thread(target=self._go, daemon=True)

    def _go(self):
        self.run = closed_loop(*self._args, **self._kwargs)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._thread.join(self._kwargs["seconds"] + 120)
        assert not self._thread.is_alive(), "the background load did not end"


# ------------------------------------------------------------------------------ sequential

_SEQUENTIAL = r"""
import http.client, json, random, sys, time
port, seconds, max_requests = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
with open(sys.argv[4]) as f:
    targets = [line.split() for line in f.read().splitlines() if line.strip()]
rng = random.Random(11)
out = {"started": [], "latencies": [], "statuses": [], "errors": []}
conn = None
t0 = time.monotonic()
stop_at = t0 + seconds
while time.monotonic() < stop_at and len(out["statuses"]) + len(out["errors"]) < max_requests:
    path, token = rng.choice(targets)
    started = time.monotonic()
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        response = conn.getresponse()
        response.read()
        out["latencies"].append(time.monotonic() - started)
        out["started"].append(started)
        out["statuses"].append(response.status)
    except (OSError, http.client.HTTPException) as exc:
        out["errors"].append(f"{type(exc).__name__}: {exc}")
        conn = None
out["seconds"] = time.monotonic() - t0
print(json.dumps(out))
"""


class Sequential:
    """Tenant B: GETs of `targets` ((path, token) pairs, one at random each time) one after
    the other on one keep-alive connection, from a Python process of its own (so that
    the test's other client threads never delay it), for `seconds`. `start()`, then
    `wait()` -> `Run` (its `started` times are time.monotonic(), comparable with the
    test's: CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, port: int, targets: list[tuple[str, str]], *, seconds: float,
                 max_requests: int = 200_000):
        self._targets = tempfile.NamedTemporaryFile("w", suffix=".targets")
        self._targets.write("".join(f"{p} {t}\n" for p, t in targets))
        self._targets.flush()
        self.command = [sys.executable, "-c", _SEQUENTIAL, str(port), str(seconds),
                        str(max_requests), self._targets.name]
        self.seconds = seconds
        self.process: subprocess.Popen | None = None

    def start(self) -> "Sequential":
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        return self

    def wait(self) -> Run:
        try:
            out, err = self.process.communicate(timeout=self.seconds + 60)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        finally:
            self._targets.close()
        if self.process.returncode != 0:
            raise RuntimeError(f"the sequential client failed: {err[-2000:]}")
        data = json.loads(out)
        return Run(statuses=data["statuses"], latencies=data["latencies"],
                   started=data["started"], errors=data["errors"], seconds=data["seconds"])

    def run(self) -> Run:
        return self.start().wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


# ------------------------------------------------------------------------------ wrk

def have_wrk() -> bool:
    return shutil.which("wrk") is not None


class Wrk:
    """wrk with bench/lua/bench.lua: `get <targets file>` (lines "<path> <token>") or
    `sync <pool file> <run id> <items>` (lines "<tenant> <project> <component> <assembly>
    <token>"), `connections` connections for `seconds`. `start()`/`wait()` to run it in the
    background; `figures` after `wait()` (bench.lua's BENCH_JSON: requests, errors_status
    = answers other than 2xx/3xx, p50/p99 in µs, inserted, duration_us)."""

    def __init__(self, port: int, args: list[str], *, connections: int, seconds: int,
                 threads: int = 1):
        self.command = [shutil.which("wrk") or "wrk", f"-t{min(threads, connections)}",
                        f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "--latency",
                        "-s", str(LUA), f"http://127.0.0.1:{port}", "--", *args]
        self.seconds = seconds
        self.process: subprocess.Popen | None = None
        self.figures: dict = {}

    def start(self) -> "Wrk":
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        return self

    def wait(self) -> dict:
        try:
            out, err = self.process.communicate(timeout=self.seconds + 90)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        match = re.search(r"^BENCH_JSON (.*)$", out, re.MULTILINE)
        if self.process.returncode != 0 or not match:
            raise RuntimeError(f"wrk failed ({self.process.returncode}): {out} {err}")
        figures = json.loads(match.group(1))
        seconds = figures["duration_us"] / 1e6
        figures["seconds"] = seconds
        figures["errors"] = sum(v for k, v in figures.items() if k.startswith("errors_"))
        figures["ok"] = figures["requests"] - figures["errors"]
        figures["ok_per_s"] = figures["ok"] / seconds
        figures["inserted_per_s"] = figures["inserted"] / seconds
        figures["p50_ms"] = figures["p50_us"] / 1000
        figures["p99_ms"] = figures["p99_us"] / 1000
        figures["max_ms"] = figures["max_us"] / 1000
        self.figures = figures
        return figures

    def run(self) -> dict:
        return self.start().wait()

    def stop(self) -> None:
        """Kill it (a test that failed before `wait`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def write_targets(path: Path, targets: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{p} {t}\n" for p, t in targets))
    return path


# ------------------------------------------------------------------------------ open loop

@dataclass
class Answer:
    scheduled: float     # when it was due (loop time)
    lag: float           # how late the generator sent it
    seconds: float = 0.0  # from its connect to its last byte
    status: int | None = None
    retry_after: str | None = None
    gateway_header: bool = False
    error: str | None = None
    body_bytes: int = 0
    request_id: str = ""
    server_ms: float | None = None  # the service's own duration_ms for it (its log line)


async def _one(port: int, request: bytes, answer: Answer, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer.lag = started - answer.scheduled
    writer = None
    try:
        async def exchange():
            nonlocal writer
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head[:-4])
            answer.status = status
            answer.retry_after = headers.get("retry-after")
            length = headers.get("content-length")
            if length is not None:
                body = await reader.readexactly(int(length))
            else:
                body = await reader.read()
            answer.body_bytes = len(body)
        await asyncio.wait_for(exchange(), timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
            IndexError) as exc:
        answer.error = f"{type(exc).__name__}: {exc}"
    finally:
        answer.seconds = loop.time() - started
        if writer is not None:
            writer.close()


async def _open_loop(port: int, requests, rate: float, count: int, timeout: float):
    loop = asyncio.get_running_loop()
    answers: list[Answer] = []
    tasks = []
    start = loop.time() + 0.05
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        raw, gateway = requests(i, due)
        answer = Answer(scheduled=due, lag=0.0, gateway_header=gateway, request_id=f"ol-{i}")
        answers.append(answer)
        tasks.append(asyncio.ensure_future(_one(port, raw, answer, timeout)))
    await asyncio.gather(*tasks)
    sent_over = (answers[-1].scheduled + answers[-1].lag) - (answers[0].scheduled + answers[0].lag)
    return answers, sent_over


def open_loop(port: int, make_request, *, rate: float, seconds: float,
              timeout: float = 30.0) -> tuple[list[Answer], float]:
    """`rate` requests per second for `seconds` (count = rate × seconds), each on its own
    connection at its due time whether or not earlier ones were answered.
    `make_request(i) -> (path, token, extra headers)`; extra headers may carry
    `X-Request-Start: due`, replaced by the request's due time as a gateway would stamp
    it (then `Answer.gateway_header`). Each request carries `X-Request-ID: ol-<i>`, so
    that the service's log line for it can be found (`server_durations`).

    The requests are sent from a process of their own, niced -10 when allowed (root), so
    that on a small machine the generator keeps its schedule and times the answers when
    they come, rather than when a starved event loop gets to them. Returns the answers and
    the seconds over which they were actually sent."""
    count = max(1, int(rate * seconds))
    spec = {"port": port, "rate": rate, "count": count, "timeout": timeout,
            "requests": [list(make_request(i)) for i in range(count)]}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as spec_file:
        json.dump(spec, spec_file)
        spec_file.flush()
        code = (f"import sys; sys.path[:0] = {sys.path!r}; "
                f"import {__name__} as m; m._open_loop_child({spec_file.name!r})")
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=seconds + timeout + 120, preexec_fn=_higher_priority)
    if child.returncode != 0:
        raise RuntimeError(f"the open-loop generator failed: {child.stderr[-3000:]}")
    data = json.loads(child.stdout)
    return [Answer(**a) for a in data["answers"]], data["sent_over"]


def _higher_priority() -> None:
    try:
        os.nice(-10)
    except OSError:
        pass


def _open_loop_child(spec_path: str) -> None:
    """The generator process: runs the spec written by `open_loop`, prints the answers."""
    with open(spec_path) as f:
        spec = json.load(f)
    wall_offset = time.time() - time.monotonic()

    def requests(i, due):
        path, token, headers = spec["requests"][i]
        headers = {**(headers or {}), "X-Request-ID": f"ol-{i}"}
        gateway = False
        if headers.get("X-Request-Start") == "due":
            # The gateway's stamp: when the request was due, in epoch milliseconds (the
            # loop's clock is time.monotonic(), asyncio's default).
            headers = {**headers, "X-Request-Start": f"t={int((due + wall_offset) * 1000)}"}
            gateway = True
        return _request_bytes(path, token, headers), gateway

    answers, sent_over = asyncio.run(_open_loop(spec["port"], requests, spec["rate"],
                                                spec["count"], spec["timeout"]))
    print(json.dumps({"answers": [vars(a) for a in answers], "sent_over": sent_over}))


def server_durations(log_text: str, prefix: str = "ol-") -> dict[str, float]:
    """request_id -> duration_ms from the service's request log lines (PIECES_LOG_LEVEL
    INFO): its own time for the request, from its first before_request hook (the queue
    check, then admission and its wait) to its response."""
    found = {}
    for line in log_text.splitlines():
        if '"message":"request"' not in line or f'"request_id":"{prefix}' not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        found[entry["request_id"]] = float(entry["duration_ms"])
    return found
