"""GET /metrics: request counts and latency by endpoint, pool use, domain counters; and the
same numbers summed over several real gunicorn workers (multiprocess mode)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pieces_service import db
from pieces_service.web import observability

from helpers import TEST_SECRET

PROJECT_DIR = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return samples(response.get_data(as_text=True))


def test_metrics_is_public_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    for name in ("pieces_http_requests_total", "pieces_http_request_duration_seconds",
                 "pieces_db_connections_checked_out", "pieces_sync_rows_total",
                 "pieces_cascade_rows_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def test_requests_are_counted_by_endpoint_and_status_never_by_path(client, as_tenant, seed,
                                                                   tenant):
    tree = seed.tree(tenant, pieces_per_assembly=2)
    caller = as_tenant(tenant)
    before = scrape(client)
    for guid in tree.pieces:
        assert caller.get(f"/api/v1/pieces/{guid}").status_code == 200
    assert client.get("/api/v1/pieces").status_code == 401
    assert client.get("/no/such/path").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    after = samples(text)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    detail = {"endpoint": "pieces.PieceItem", "method": "GET", "status": "200"}
    assert delta("pieces_http_requests_total", **detail) == 2
    assert delta("pieces_http_request_duration_seconds_count", **detail) == 2
    assert delta("pieces_http_request_duration_seconds_bucket", le="+Inf", **detail) == 2
    assert delta("pieces_http_requests_total", endpoint="pieces.PieceList", method="GET",
                 status="401") == 1
    assert delta("pieces_http_requests_total", endpoint="unmatched", method="GET",
                 status="404") == 1
    for guid in tree.pieces:
        assert str(guid) not in text
    assert "/no/such/path" not in text


def test_pool_gauge_counts_checked_out_connections(app, client):
    client.get("/livez")  # the first request instruments this process's engine
    with app.app_context():
        engine = db.get_engine()
        idle = value(scrape(client), "pieces_db_connections_checked_out")
        with engine.connect(), engine.connect():
            assert value(scrape(client), "pieces_db_connections_checked_out") == idle + 2
        assert value(scrape(client), "pieces_db_connections_checked_out") == idle
    assert value(scrape(client), "pieces_db_connections_max") >= 1


def test_sync_and_cascade_row_counters(client):
    before = scrape(client)
    observability.record_sync_rows("pieces", inserted=3, updated=2)
    observability.record_sync_rows("pieces", inserted=0, updated=1)
    observability.record_cascade_rows("project", "delete", 7)
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("pieces_sync_rows_total", entity="pieces", outcome="inserted") == 3
    assert delta("pieces_sync_rows_total", entity="pieces", outcome="updated") == 3
    assert delta("pieces_cascade_rows_total", entity="project", action="delete") == 7


# --- several real gunicorn workers -------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers), response.read()


@pytest.fixture(scope="module")
def gunicorn(db_url, tmp_path_factory):
    """gunicorn with 2 workers on 127.0.0.1 and a private metrics directory; yields
    (base url, path of its stdout). Started with a bounded wait, always stopped."""
    tmp = tmp_path_factory.mktemp("gunicorn")
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "stale_999999.db").write_bytes(b"left by an earlier run")
    port = free_port()
    env = {key: val for key, val in os.environ.items()
           if not key.startswith(("PIECES_", "PROMETHEUS_", "GUNICORN_"))}
    env.update(
        DATABASE_URL=db_url.render_as_string(hide_password=False),
        PIECES_JWT_SECRET=TEST_SECRET,
        PORT=str(port),
        WEB_CONCURRENCY="2",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    log_path = tmp / "stdout.log"
    with open(log_path, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                http_get(base + "/metrics")
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield base, log_path, metrics_dir
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_counts_are_summed_across_gunicorn_workers(gunicorn):
    base, log_path, metrics_dir = gunicorn
    assert not (metrics_dir / "stale_999999.db").exists(), "on_starting empties the directory"
    # Each request on a new connection: the two workers' threads race to accept it, so a
    # few dozen requests reach both (bounded: at most 400).
    sent = 0

    def served_by() -> set:
        lines = [json.loads(line) for line in log_path.read_text().splitlines()]
        return {line["pid"] for line in lines if line.get("endpoint") == "health.livez"}

    while sent < 400 and (sent % 20 or len(served_by()) < 2):
        status, _, _ = http_get(base + "/livez", {"X-Request-ID": f"free-{sent}"})
        assert status == 200
        sent += 1
    assert len(served_by()) == 2, f"{sent} requests never reached the second worker"

    _, _, body = http_get(base + "/metrics")
    metrics = samples(body.decode())
    assert value(metrics, "pieces_http_requests_total", endpoint="health.livez", method="GET",
                 status="200") == sent
    assert value(metrics, "pieces_http_request_duration_seconds_count",
                 endpoint="health.livez", method="GET", status="200") == sent


def test_gunicorn_writes_only_json_lines_with_request_ids(gunicorn):
    base, log_path, _ = gunicorn
    status, headers, _ = http_get(base + "/readyz", {"X-Request-ID": "trace-me.1"})
    assert status == 200 and headers["X-Request-ID"] == "trace-me.1"
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"]
               for line in lines), "gunicorn's own lines are JSON too"
    request_line, = [line for line in lines if line.get("request_id") == "trace-me.1"]
    assert request_line["logger"] == "pieces_service.access"
    assert request_line["path"] == "/readyz" and request_line["status"] == 200
