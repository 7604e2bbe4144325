"""SPEC §3: every error is JSON with a `detail`, and never leaks a traceback or SQL."""
from __future__ import annotations

import uuid

import pytest

from helpers import assert_error, make_token
from pieces_service.dao import pieces as pieces_dao


@pytest.mark.parametrize("path", ["/", "/nope", "/api", "/api/v2/pieces", "/static/x.js"])
def test_unknown_path_outside_the_api_is_404_json(client, path):
    assert_error(client.get(path), 404)


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/pieces/x/y", "/api/v1/sync",
                                  "/api/v1/sync/widgets"])
def test_unknown_api_path_is_404_json_for_a_caller(as_tenant, tenant, path):
    assert_error(as_tenant(tenant).get(path), 404)


def test_unknown_api_path_without_token_is_401_first(client):
    assert_error(client.get("/api/v1/nope"), 401)


@pytest.mark.parametrize("method, path", [
    ("post", "/api/v1/pieces"),
    ("put", "/api/v1/pieces"),
    ("patch", "/api/v1/pieces/{guid}"),
    ("put", "/api/v1/pieces/{guid}"),
    ("get", "/api/v1/sync/pieces"),
    ("delete", "/api/v1/sync/projects"),
])
def test_wrong_method_is_405_json(as_tenant, tenant, method, path):
    caller = as_tenant(tenant, "SystemAdmin")
    response = getattr(caller.client, method)(path.format(guid=uuid.uuid4()),
                                              headers=caller.headers)
    assert_error(response, 405)
    assert response.headers.get("Allow"), response.headers


def test_database_error_is_a_plain_500(as_tenant, tenant, monkeypatch):
    """A real SQL error from PostgreSQL reaches the client as a bare 500."""

    def broken_list(reads, **kwargs):
        reads.fetch_one(kwargs["tenant"],
                    "SELECT no_such_column FROM pieces WHERE company_guid = %(t)s",
                    {"t": kwargs["tenant"]})

    monkeypatch.setattr(pieces_dao, "list_pieces", broken_list)
    body = assert_error(as_tenant(tenant).get("/api/v1/pieces"), 500)
    assert "no_such_column" not in body["detail"]
    assert set(body) == {"detail"}


def test_database_unreachable_is_503_json(app_factory, db_url, tenant):
    broken = app_factory(database_url=db_url.set(port=1, host="127.0.0.1"),
                         db_connect_timeout_seconds=1)
    response = broken.test_client().get(
        "/api/v1/pieces", headers={"Authorization": "Bearer " + make_token(tenant, "Operator")})
    assert_error(response, 503, "Database unavailable")


def test_body_too_large_is_413_json(app_factory, tenant):
    small = app_factory(max_body_bytes=1024)
    response = small.test_client().post(
        "/api/v1/sync/projects",
        json={"projects": [{"company_guid": str(tenant), "code": "x" * 2000}]},
        headers={"Authorization": "Bearer " + make_token(tenant, "Integration")})
    assert_error(response, 413)


def test_validation_error_shape(as_tenant, tenant):
    body = assert_error(as_tenant(tenant).get("/api/v1/pieces", limit="0", offset="-1",
                                              colour="red"), 422)
    assert set(body) == {"detail", "errors"}
    assert set(body["errors"]) == {"limit", "offset", "colour"}
    assert all(isinstance(messages, list) and messages for messages in body["errors"].values())
