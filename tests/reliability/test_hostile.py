"""Hostile tokens and requests: every one is a clear 4xx JSON error with a `detail`, never a
500, never a leak. (The ordinary auth cases live in tests/api/test_auth.py.)"""
from __future__ import annotations

import hashlib
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from helpers import LEAK_MARKERS, TEST_SECRET, claims_for, forge_token, make_token
from pieces_service.catalogue import PIECE_ATTRIBUTES
from pieces_service.config import JWTSettings

LIST = "/api/v1/pieces"
DIMENSION_ATTRIBUTES = tuple(a.name for a in PIECE_ATTRIBUTES if a.kind == "integer")
TEXT_ATTRIBUTES = tuple(a.name for a in PIECE_ATTRIBUTES if a.kind == "text")
SYNC_KINDS = ("projects", "components", "assemblies", "pieces")








def assert_clear_4xx(response, *statuses):
    """A JSON error in `statuses` (any 4xx when none given) with a detail and no leak."""
    text = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, text[:500])
    if statuses:
        assert response.status_code in statuses, (response.status_code, text[:500])
    assert response.mimetype == "application/json", (response.mimetype, text[:200])
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]
    for marker in LEAK_MARKERS:
        assert marker not in text, (marker, text[:500])
    return body


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rs256_client(app_factory, rsa_key):
    app = app_factory(jwt=JWTSettings(rsa_key.public_key(), ("RS256",),
                                      audience="pieces", issuer="https://idp.test"))
    return app.test_client()


def rs256_claims(company, **overrides):
    return claims_for(company, **{"aud": "pieces", "iss": "https://idp.test", **overrides})


def _public_forms(rsa_key) -> dict[str, bytes]:
    public = rsa_key.public_key()
    return {
        "pem": public.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "pem-pkcs1": public.public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.PKCS1),
        "der": public.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH,
                                       serialization.PublicFormat.OpenSSH),
    }


# --- tokens against an RS256 configuration (audience and issuer required) ------------------

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
def test_unsigned_tokens_in_every_spelling_are_401(rs256_client, tenant, alg):
    token = forge_token({"alg": alg, "typ": "JWT"}, rs256_claims(tenant), None)
    for candidate in (token, token.rstrip("."), token + "AAAA"):
        assert_clear_4xx(rs256_client.get(LIST, headers={"Authorization": "Bearer " + candidate}),
                         401)


@pytest.mark.parametrize("form", ["pem", "pem-pkcs1", "der", "openssh"])
@pytest.mark.parametrize("alg,digest", [("HS256", hashlib.sha256), ("HS384", hashlib.sha384),
                                        ("HS512", hashlib.sha512)])
def test_hmac_signed_with_the_public_key_is_401(rs256_client, rsa_key, tenant, form, alg,
                                                digest):
    """Algorithm confusion: the public key (every encoding of it) used as an HMAC secret."""
    key = _public_forms(rsa_key)[form]
    token = forge_token({"alg": alg, "typ": "JWT"}, rs256_claims(tenant), key, digest)
    assert_clear_4xx(rs256_client.get(LIST, headers={"Authorization": "Bearer " + token}), 401)


def test_embedded_attacker_keys_in_the_header_are_ignored(rs256_client, tenant):
    """jwk / jku / x5u / kid headers naming the attacker's own key change nothing."""
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    for headers in ({"jwk": jwk}, {"jku": "http://127.0.0.1:1/jwks.json"},
                    {"x5u": "http://127.0.0.1:1/cert.pem"},
                    {"kid": "../../../../dev/null"}, {"kid": "' OR 1=1 --"},
                    {"crit": ["exp"], "b64": False}):
        token = jwt.encode(rs256_claims(tenant), attacker, algorithm="RS256", headers=headers)
        assert_clear_4xx(rs256_client.get(LIST, headers={"Authorization": "Bearer " + token}),
                         401)


@pytest.mark.parametrize("overrides,detail_word", [
    ({"exp": int(time.time()) - 1}, "expired"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"iat": int(time.time()) + 3600}, "not yet valid"),
    ({"aud": "someone-else"}, "audience"),
    ({"aud": ["someone-else", "other"]}, "audience"),
    ({"iss": "https://evil.test"}, "issuer"),
    ({"aud": None}, None),
    ({"iss": None}, None),
])
def test_time_audience_issuer_attacks_on_rs256_are_401(rs256_client, rsa_key, tenant,
                                                       overrides, detail_word):
    claims = {k: v for k, v in rs256_claims(tenant, **overrides).items() if v is not None}
    token = jwt.encode(claims, rsa_key, algorithm="RS256")
    body = assert_clear_4xx(rs256_client.get(LIST, headers={"Authorization": "Bearer " + token}),
                            401)
    if detail_word:
        assert detail_word in body["detail"].lower(), body


def test_valid_rs256_token_still_works(rs256_client, rsa_key, tenant):
    """The control case: the attacks above fail for the right reason."""
    token = jwt.encode(rs256_claims(tenant), rsa_key, algorithm="RS256")
    response = rs256_client.get(LIST, headers={"Authorization": "Bearer " + token})
    assert response.status_code == 200, response.get_data(as_text=True)


# --- malformed and hostile token shapes against the HS256 test app -------------------------

HOSTILE_CLAIMS = [
    {"company_guid": ["a", "b"]}, {"company_guid": {"$ne": None}}, {"company_guid": 42},
    {"company_guid": "not-a-uuid"}, {"company_guid": "00000000-0000-0000-0000-00000000000g"},
    {"company_guid": "' OR '1'='1"}, {"company_guid": "\u0000"}, {"company_guid": ""},
    {"role": ["SystemAdmin"]}, {"role": {"name": "SystemAdmin"}}, {"role": None},
    {"role": "systemadmin"}, {"role": "SystemAdmin\u0000"},
    {"sub": {"id": 1}}, {"sub": ["x"]}, {"sub": ""}, {"sub": "x" * 10000},
    {"exp": "tomorrow"}, {"exp": -1}, {"exp": [1]}, {"exp": True},
    {"nbf": "soon"}, {"iat": {"t": 1}},
]


@pytest.mark.parametrize("overrides", HOSTILE_CLAIMS, ids=lambda o: repr(o)[:40])
def test_hostile_claim_values_are_4xx(client, tenant, overrides):
    token = forge_token({"alg": "HS256", "typ": "JWT"}, claims_for(tenant, **overrides),
                  TEST_SECRET.encode())
    assert_clear_4xx(client.get(LIST, headers={"Authorization": "Bearer " + token}), 401, 403)


def test_far_future_exp_signed_by_the_issuer_is_no_500(client, tenant):
    """Validly signed, so accepted; the point is that the float does not break anything."""
    token = forge_token({"alg": "HS256"}, claims_for(tenant, exp=1e308), TEST_SECRET.encode())
    assert client.get(LIST, headers={"Authorization": "Bearer " + token}).status_code == 200


@pytest.mark.parametrize("payload", [b"[]", b'"x"', b"null", b"42", b"{", b"\xff\xfe",
                                     b'{"sub": "a", "sub": "b"}', b"{}" * 1000])
def test_non_object_or_broken_payloads_are_401(client, payload):
    token = forge_token({"alg": "HS256"}, payload, TEST_SECRET.encode())
    assert_clear_4xx(client.get(LIST, headers={"Authorization": "Bearer " + token}), 401)


@pytest.mark.parametrize("token", [
    "a.b", "a.b.c.d", "...", "a..c", "\u00e9.\u00e9.\u00e9", "%00.%00.%00", "eyJ" * 100,
    "Bearer abc",
])
def test_garbage_tokens_are_401(client, token):
    assert_clear_4xx(client.get(LIST, headers={"Authorization": "Bearer " + token}), 401)


def test_token_over_the_length_cap_is_401(client, tenant):
    token = make_token(tenant, "Operator", padding="p" * 9000)
    body = assert_clear_4xx(client.get(LIST, headers={"Authorization": "Bearer " + token}), 401)
    assert "too long" in body["detail"].lower()


def test_20_kib_authorization_header_is_401(client):
    assert_clear_4xx(client.get(LIST, headers={"Authorization": "Bearer " + "A" * 20480}), 401)


def test_many_and_huge_other_headers_are_harmless(as_tenant, tenant):
    caller = as_tenant(tenant)
    headers = {**caller.headers, "X-Filler": "f" * 20480, "Accept": "*/*" * 2000,
               "If-None-Match": '"' + "x" * 8000 + '"', "X-Request-Id": "r" * 5000}
    for i in range(100):
        headers[f"X-Junk-{i}"] = "j" * 100
    response = caller.client.get(LIST, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]


# --- hostile bodies --------------------------------------------------------------------------

def _sync_headers(tenant, role="Integration", content_type="application/json"):
    headers = {"Authorization": "Bearer " + make_token(tenant, role)}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


MALFORMED_BODIES = [
    b"", b"{", b'{"projects": [', b'{"projects": []} trailing', b"[" * 100000 + b"]" * 100000,
    b'{"projects": [' + b"{" * 5000, b'{"projects": NaN}', b'{"projects": Infinity}',
    b'{"projects": [1e999999]}', b"\xff\xfe\x00{", b"\xef\xbb\xbf{\"projects\": []}",
    b'"just a string"', b"null", b"[]", b"42", b'{"projects": null}', b'{"projects": {}}',
    b'{"projects": "x"}', b'{"projects": [null]}', b'{"projects": [[]]}', b'{"projects": [1]}',
    b'{"projects": [], "projects": [{}]}', b'{"projects": [], "extra": 1}',
    b'{"projects": [{"company_guid": "\\ud800", "code": "x"}]}',
    b'{"projects": [{"company_guid": null, "code": "\\ud800"}]}',
]


@pytest.mark.parametrize("body", MALFORMED_BODIES, ids=lambda b: repr(b[:30]))
def test_malformed_json_bodies_are_4xx(client, tenant, body):
    response = client.post("/api/v1/sync/projects", data=body, headers=_sync_headers(tenant))
    assert_clear_4xx(response, 400, 415, 422)


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "application/octet-stream", "application/json-patch+json; x=\u00e9",
    None,
])
def test_wrong_content_types_are_4xx(client, tenant, content_type):
    body = json.dumps({"projects": [{"company_guid": str(tenant), "code": "p"}]}).encode()
    response = client.post("/api/v1/sync/projects", data=body,
                           headers=_sync_headers(tenant, content_type=content_type))
    # A body the parser cannot take must never be written.
    assert response.status_code != 200 or content_type is None or "json" in content_type
    if response.status_code != 200:
        assert_clear_4xx(response, 415, 422)


def test_form_body_is_refused_and_nothing_written(client, tenant, admin_conn):
    response = client.post("/api/v1/sync/projects", data={"projects": "x"},
                           headers=_sync_headers(tenant, content_type=None))
    assert_clear_4xx(response, 415, 422)
    with admin_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM projects WHERE company_guid = %s", (str(tenant),))
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_body_over_the_configured_size_is_413_json(app_factory, tenant, kind):
    small = app_factory(max_body_bytes=2048).test_client()
    body = json.dumps({kind: [{"company_guid": str(tenant), "code": "x" * 5000}]}).encode()
    body_413 = assert_clear_4xx(small.post(f"/api/v1/sync/{kind}", data=body,
                                           headers=_sync_headers(tenant)), 413)
    assert body_413["detail"]


@pytest.mark.parametrize("kind", SYNC_KINDS)
def test_1001_items_is_400(client, tenant, kind):
    item = {"company_guid": str(tenant), "code": "c"}
    body = assert_clear_4xx(client.post(f"/api/v1/sync/{kind}", json={kind: [item] * 1001},
                                        headers=_sync_headers(tenant)), 400)
    assert "1000" in body["detail"]


def _valid_piece(tree, index=0):
    return {"company_guid": str(tree.company), "project_guid": str(tree.project),
            "component_guid": str(tree.component), "assembly_guid": str(tree.assembly),
            "piece_id": f"hostile-{index}"}


TEXT_FIELDS = ("piece_id",) + TEXT_ATTRIBUTES
NASTY_TEXT = {
    "nul": "abc\x00def",
    "only-nul": "\x00",
    "long": "L" * 100_000,
    "lone-surrogate": "a\ud800b",
}


@pytest.mark.parametrize("nasty", sorted(NASTY_TEXT))
def test_nasty_text_in_every_piece_text_field_is_422_naming_it(client, seed, tenant,
                                                               admin_conn, nasty):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    for field in TEXT_FIELDS:
        item = _valid_piece(tree)
        item[field] = NASTY_TEXT[nasty]
        response = client.post("/api/v1/sync/pieces", json={"pieces": [item]},
                               headers=_sync_headers(tenant))
        body = assert_clear_4xx(response, 422)
        assert field in json.dumps(body.get("errors")), (field, body)
    with admin_conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pieces WHERE company_guid = %s", (str(tenant),))
        assert cur.fetchone()[0] == 0


@pytest.mark.parametrize("kind,field", [(k, f) for k in SYNC_KINDS[:3] for f in ("code", "name")])
def test_nasty_text_in_hierarchy_sync_fields_is_422(client, seed, tenant, kind, field):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    item = {"company_guid": str(tenant), "code": "ok", "project_guid": str(tree.project),
            "component_guid": str(tree.component)}
    if kind == "projects":
        del item["project_guid"], item["component_guid"]
    elif kind == "components":
        del item["component_guid"]
    for value in NASTY_TEXT.values():
        response = client.post(f"/api/v1/sync/{kind}", json={kind: [{**item, field: value}]},
                               headers=_sync_headers(tenant))
        assert_clear_4xx(response, 422)


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**63, 10**100, 1.5, "12", True, [], {}])
def test_out_of_range_or_mistyped_dimensions_are_422(client, seed, tenant, value):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    for field in DIMENSION_ATTRIBUTES:
        item = {**_valid_piece(tree), field: value}
        response = client.post("/api/v1/sync/pieces", json={"pieces": [item]},
                               headers=_sync_headers(tenant))
        assert_clear_4xx(response, 422)


@pytest.mark.parametrize("field", ["guid", "company_guid", "project_guid", "component_guid",
                                   "assembly_guid"])
@pytest.mark.parametrize("value", ["\x00", "x" * 10000, "00000000-0000-0000-0000-00000000000\x00",
                                   "' OR 1=1 --", 123, ["a"]])
def test_hostile_guids_in_sync_items_are_4xx(client, seed, tenant, field, value):
    tree = seed.tree(tenant, pieces_per_assembly=0)
    item = {**_valid_piece(tree), field: value}
    response = client.post("/api/v1/sync/pieces", json={"pieces": [item]},
                           headers=_sync_headers(tenant))
    assert_clear_4xx(response, 400, 403, 422)


QUERY_PARAMS = ("project_guid", "component_guid", "assembly_guid", "company_guid",
                "include_inactive", "limit", "offset", "cursor")
NASTY_QUERY_VALUES = ["\x00", "a\x00b", "x" * 20000, "%00", "\ud800".encode(
    "utf-8", "surrogatepass").decode("latin-1"), "9" * 400, "-0", "1e3", "[]", "' OR 1=1 --"]


@pytest.mark.parametrize("param", QUERY_PARAMS)
def test_nasty_query_values_are_422(as_tenant, tenant, param):
    caller = as_tenant(tenant)
    for value in NASTY_QUERY_VALUES:
        response = caller.get(LIST, **{param: value})
        if param == "offset" and value == "-0":
            assert response.status_code == 200  # "-0" is zero
            continue
        assert_clear_4xx(response, 422)


@pytest.mark.parametrize("path,param", [
    (f"{LIST}/{uuid.uuid4()}", "include_inactive"), (f"{LIST}/{uuid.uuid4()}", "junk"),
    ("/api/v1/audit", "entity_guid"), ("/api/v1/audit", "company_guid"),
    ("/api/v1/audit", "limit"),
    ("/api/v1/audit", "offset"),
])
def test_nasty_query_values_on_other_endpoints_are_4xx(as_tenant, tenant, path, param):
    caller = as_tenant(tenant, "CompanyAdmin")
    for value in NASTY_QUERY_VALUES:
        response = caller.get(path, **{param: value})
        if param == "offset" and value == "-0":
            assert response.status_code == 200  # "-0" is zero
            continue
        assert_clear_4xx(response, 404, 422)


@pytest.mark.parametrize("path", [
    "/api/v1/pieces/%00", "/api/v1/pieces/" + "a" * 10000, "/api/v1/pieces/..%2f..%2fetc",
    "/api/v1/projects/%00/restore", "/api/v1/pieces/00000000-0000-0000-0000-00000000000%00",
])
def test_nasty_paths_are_4xx(as_tenant, tenant, path):
    caller = as_tenant(tenant, "CompanyAdmin")
    for method in ("get", "delete", "post"):
        response = getattr(caller.client, method)(path, headers=caller.headers)
        assert_clear_4xx(response, 404, 405, 422)


# --- through the real HTTP server: limits that only gunicorn sees ------------------------

@pytest.fixture(scope="module")
def small_server(db_url):
    from .reliability_harness import Gunicorn

    server = Gunicorn(db_url.render_as_string(hide_password=False), TEST_SECRET, workers=1,
                      PIECES_MAX_BODY_BYTES=2048)
    try:
        yield server
    finally:
        server.close()


def _raw_http(port: int, raw: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """Send bytes as they are; return (status, headers, body)."""
    import http.client
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def test_chunked_body_over_the_limit_is_413_json_under_gunicorn(small_server, tenant):
    """No Content-Length to check up front: the limit must still give a 413."""
    chunk = b'{"projects": [' + b" " * 8000 + b"]}"
    raw = (b"POST /api/v1/sync/projects HTTP/1.1\r\nHost: x\r\n"
           b"Authorization: Bearer " + make_token(tenant, "Integration").encode() + b"\r\n"
           b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           + f"{len(chunk):x}".encode() + b"\r\n" + chunk + b"\r\n0\r\n\r\n")
    status, headers, body = _raw_http(small_server.port, raw)
    assert status == 413, (status, body[:300])
    assert headers.get("Content-Type", "").startswith("application/json")
    assert json.loads(body)["detail"]


def test_declared_body_over_the_limit_is_413_json_under_gunicorn(small_server, tenant):
    status, body, _ = small_server.request(
        "POST", "/api/v1/sync/projects", token=make_token(tenant, "Integration"),
        body={"projects": [{"company_guid": str(tenant), "code": "x" * 5000}]})
    assert status == 413 and body["detail"], (status, body)


def test_20_kib_authorization_header_under_gunicorn_is_refused_without_500(small_server):
    """gunicorn (limit_request_field_size=16384) refuses the header before the app sees it:
    431 in gunicorn's own HTML form (see docs/reliability.md), never a 500."""
    raw = (b"GET /api/v1/pieces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + b"A" * 20480 + b"\r\nConnection: close\r\n\r\n")
    status, _, body = _raw_http(small_server.port, raw)
    assert status in (400, 431), (status, body[:300])
    assert b"Traceback" not in body
    # The server is still fine afterwards.
    assert small_server.request("GET", "/livez")[0] == 200


def test_12_kib_authorization_header_under_gunicorn_is_401_json(small_server):
    status, body, _ = small_server.request("GET", "/api/v1/pieces",
                                           headers={"Authorization": "Bearer " + "A" * 12000})
    assert status == 401 and "too long" in body["detail"].lower(), (status, body)
