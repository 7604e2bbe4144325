"""Conditional GETs: an ETag on list and detail (the hash of the body bytes for the detail;
the list's comes from its change stamps, tests/api/test_list_revalidation.py), 304 on
If-None-Match."""
from __future__ import annotations

import hashlib

import pytest


def quoted_blake2b(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


@pytest.fixture
def tree(seed, tenant):
    return seed.tree(tenant, pieces_per_assembly=2)


@pytest.fixture
def urls(tree):
    return {"list": "/api/v1/pieces", "detail": f"/api/v1/pieces/{tree.pieces[0]}"}


@pytest.mark.parametrize("kind", ["list", "detail"])
def test_etag_is_the_hash_of_the_body_and_a_match_gives_304(as_tenant, tenant, urls, kind):
    caller = as_tenant(tenant)
    first = caller.client.get(urls[kind], headers=caller.headers)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    if kind == "detail":
        assert etag == quoted_blake2b(first.get_data())
    assert first.headers["Cache-Control"] == "private, no-cache"

    again = caller.client.get(urls[kind], headers={**caller.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert again.headers["X-Request-ID"]


@pytest.mark.parametrize("if_none_match, status", [
    ('"0123456789abcdef"', 200),
    ("*", 304),
    ('"0123", {etag}', 304),
    ("W/{etag}", 304),
])
def test_if_none_match_forms(as_tenant, tenant, urls, if_none_match, status):
    caller = as_tenant(tenant)
    etag = caller.client.get(urls["list"], headers=caller.headers).headers["ETag"]
    response = caller.client.get(urls["list"], headers={
        **caller.headers, "If-None-Match": if_none_match.format(etag=etag)})
    assert response.status_code == status
    assert bool(response.get_data()) == (status == 200)


def test_etag_changes_when_the_data_does(as_tenant, seed, tenant, tree, urls):
    caller = as_tenant(tenant)
    old = caller.client.get(urls["list"], headers=caller.headers).headers["ETag"]
    seed.piece(tenant, tree.project, tree.component, tree.assembly)
    response = caller.client.get(urls["list"], headers={**caller.headers, "If-None-Match": old})
    assert response.status_code == 200
    assert len(response.json) == 3
    assert response.headers["ETag"] not in (old, None)


def test_each_tenant_gets_its_own_etag(as_tenant, seed, tenant, other_tenant, tree, urls):
    seed.tree(other_tenant)
    mine = as_tenant(tenant).get(urls["list"])
    theirs = as_tenant(other_tenant)
    response = theirs.client.get(urls["list"], headers={**theirs.headers,
                                                        "If-None-Match": mine.headers["ETag"]})
    assert response.status_code == 200
    assert response.headers["ETag"] != mine.headers["ETag"]


def test_errors_and_writes_carry_no_etag(as_tenant, client, tenant, urls):
    caller = as_tenant(tenant)
    assert "ETag" not in client.get(urls["list"]).headers  # 401
    assert "ETag" not in caller.get("/api/v1/pieces/00000000-0000-4000-8000-000000000000").headers
    response = as_tenant(tenant, "Integration").post("/api/v1/sync/projects",
                                                     json={"projects": []})
    assert response.status_code == 200
    assert "ETag" not in response.headers
