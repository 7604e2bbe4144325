"""One JSON line per request on stdout, request ids accepted or made, echoed and stamped on
every line of the request; never a token in the logs."""
from __future__ import annotations

import json
import re
import socket

import pytest

from helpers import make_config
from pieces_service import create_app

HEX_ID = re.compile(r"[0-9a-f]{32}")


def request_lines(lines):
    return [line for line in lines if line["logger"] == "pieces_service.access"]


def test_one_line_per_request_with_template_status_and_principal(json_logs, as_tenant, seed,
                                                                 tenant):
    tree = seed.tree(tenant)
    caller = as_tenant(tenant, "ProjectManager", sub="planner-7")
    token = caller.headers["Authorization"].split()[1]
    response = caller.get(f"/api/v1/pieces/{tree.pieces[0]}")
    assert response.status_code == 200
    lines = json_logs()
    line, = request_lines(lines)
    assert line["method"] == "GET"
    assert line["path"] == "/api/v1/pieces/<uuid:piece_guid>"
    assert line["endpoint"] == "pieces.PieceItem"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert HEX_ID.fullmatch(line["request_id"])
    assert line["tenant"] == str(tenant)
    assert line["subject"] == "planner-7"
    assert line["role"] == "ProjectManager"
    assert line["level"] == "INFO" and line["time"].endswith("+00:00")
    logged = json.dumps(lines)
    assert token not in logged
    assert str(tree.pieces[0]) not in logged  # the template, never the raw path
    assert response.get_data(as_text=True) not in logged


def test_unauthenticated_request_is_logged_without_principal(json_logs, client):
    response = client.get("/api/v1/pieces", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401
    line, = request_lines(json_logs())
    assert (line["status"], line["tenant"], line["subject"]) == (401, None, None)
    assert "not-a-jwt" not in json.dumps(line)


@pytest.mark.parametrize("given", ["abc", "req-1.2_3", "A" * 128])
def test_callers_request_id_is_kept(json_logs, client, given):
    response = client.get("/livez", headers={"X-Request-ID": given})
    assert response.headers["X-Request-ID"] == given
    line, = request_lines(json_logs())
    assert line["request_id"] == given


@pytest.mark.parametrize("given", ["", "A" * 129, "has space", "semi;colon", "ünïcode",
                                   "new\\nline"])
def test_malformed_request_id_is_replaced(json_logs, client, given):
    response = client.get("/livez", headers={"X-Request-ID": given})
    assert HEX_ID.fullmatch(response.headers["X-Request-ID"])
    line, = request_lines(json_logs())
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_generated_ids_differ(client):
    ids = {client.get("/livez").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/api/v1/pieces", 401),
    ("GET", "/nothing-here", 404),
    ("PUT", "/api/v1/openapi.json", 405),
])
def test_error_responses_echo_the_request_id(client, method, path, status):
    response = client.open(path, method=method, headers={"X-Request-ID": "err-check"})
    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "err-check"
    assert "detail" in response.json


def test_not_found_piece_echoes_the_request_id(as_tenant, tenant):
    caller = as_tenant(tenant)
    response = caller.client.get("/api/v1/pieces/00000000-0000-4000-8000-000000000000",
                                 headers={**caller.headers, "X-Request-ID": "missing"})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "missing"


def test_validation_error_echoes_the_request_id(as_tenant, tenant):
    caller = as_tenant(tenant)
    response = caller.client.get("/api/v1/pieces", query_string={"limit": 0},
                                 headers={**caller.headers, "X-Request-ID": "bad-limit"})
    assert response.status_code == 422
    assert response.headers["X-Request-ID"] == "bad-limit"


def test_every_line_of_a_request_carries_its_id(json_logs, db_url):
    with socket.socket() as sock:  # no database listens here: readyz logs a warning
        sock.bind(("127.0.0.1", 0))
        url = db_url.set(host="127.0.0.1", port=sock.getsockname()[1])
        response = create_app(make_config(url)).test_client().get(
            "/readyz", headers={"X-Request-ID": "probe-42"})
    assert response.status_code == 503
    lines = json_logs()
    assert len(lines) == 2
    assert {line["request_id"] for line in lines} == {"probe-42"}
    assert {line["level"] for line in lines} == {"WARNING", "INFO"}


def test_unexpected_error_is_one_json_line_with_traceback_and_id(json_logs, db_url):
    app = create_app(make_config(db_url))

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    response = app.test_client().get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json == {"detail": "Internal server error"}
    assert response.headers["X-Request-ID"] == "boom-1"
    error, request = json_logs()
    assert error["request_id"] == request["request_id"] == "boom-1"
    assert error["exc_type"] == "RuntimeError" and "kaboom" in error["exc_info"]
    assert (request["status"], request["path"]) == (500, "/boom")
