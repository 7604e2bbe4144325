"""The benchmark's bare reference app (bench/reference_app.py) answers the read scenarios
with the very bodies the service sends: the service's cost over it is the cost of its
features, not of different work."""
from __future__ import annotations

import importlib
import sys

import pytest

from helpers import TEST_SECRET, make_token, ok, raw_url


@pytest.fixture
def reference(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", raw_url(db_url))
    monkeypatch.setenv("PIECES_JWT_SECRET", TEST_SECRET)
    sys.modules.pop("bench.reference_app", None)
    module = importlib.import_module("bench.reference_app")
    yield module.app.test_client()
    if module._pool is not None:
        module._pool.closeall()
    sys.modules.pop("bench.reference_app", None)


def test_the_reference_sends_the_services_bodies(reference, as_tenant, seed, tenant):
    tree = seed.tree(tenant, pieces_per_assembly=5)
    service = as_tenant(tenant)
    headers = {"Authorization": "Bearer " + make_token(tenant, "Operator")}
    for query in ({"project_guid": str(tree.project), "limit": 2},
                  {"assembly_guid": str(tree.assembly)},
                  {"project_guid": str(tree.project), "limit": 2, "offset": 1000}):
        theirs = reference.get("/api/v1/pieces", query_string=query, headers=headers)
        assert theirs.status_code == 200
        assert theirs.get_data() == service.get("/api/v1/pieces", **query).get_data()
    first = service.get("/api/v1/pieces", project_guid=str(tree.project), limit=2)
    cursor = first.headers["Link"].split("cursor=")[1].split(">")[0].split("&")[0]
    query = {"project_guid": str(tree.project), "limit": 2, "cursor": cursor}
    assert reference.get("/api/v1/pieces", query_string=query, headers=headers).get_data() \
        == service.get("/api/v1/pieces", **query).get_data()
    guid = tree.pieces[0]
    assert reference.get(f"/api/v1/pieces/{guid}", headers=headers).get_data() \
        == service.get(f"/api/v1/pieces/{guid}").get_data()
    assert ok(service.get(f"/api/v1/pieces/{guid}"))["guid"] == str(guid)
