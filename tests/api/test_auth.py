"""SPEC §2: bearer tokens, required claims, algorithms, audience/issuer, roles."""
from __future__ import annotations

import hashlib
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import TEST_SECRET, assert_error, b64url, claims_for, forge_token, make_token
from pieces_service.config import Config, JWTSettings

LIST = "/api/v1/pieces"
ROLES = ("SystemAdmin", "CompanyAdmin", "ProjectManager", "Operator", "Integration")








def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def assert_401(response):
    body = assert_error(response, 401)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer"), response.headers
    return body


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_public(private_key) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pem_private(private_key) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


# --- 401: missing or malformed credentials ------------------------------------------------

def test_missing_header_is_401_with_bearer_challenge(client):
    response = client.get(LIST)
    assert_401(response)
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", [
    "Basic dXNlcjpwYXNz",
    "Token abc.def.ghi",
    "Bearer",
    "Bearer ",
    "bearer-token",
    "Bearer not-a-jwt",
    "Bearer a.b.c",
    "Bearer " + "x" * 9000,
])
def test_wrong_scheme_or_malformed_token_is_401(client, header):
    assert_401(client.get(LIST, headers={"Authorization": header}))


def test_every_api_path_requires_auth(client, tenant):
    for path in (LIST, f"{LIST}/export", f"{LIST}/{uuid.uuid4()}"):
        assert_401(client.get(path))
    for kind in ("projects", "components", "assemblies", "pieces"):
        assert_401(client.post(f"/api/v1/sync/{kind}", json={kind: []}))


def test_bad_signature_is_401(client, tenant):
    token = make_token(tenant, "Operator")
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert_401(client.get(LIST, headers=bearer(f"{header}.{payload}.{flipped}")))


def test_tampered_payload_is_401(client, tenant):
    token = make_token(tenant, "Operator")
    header, _, signature = token.split(".")
    forged = b64url(json.dumps(claims_for(tenant, "SystemAdmin")).encode())
    assert_401(client.get(LIST, headers=bearer(f"{header}.{forged}.{signature}")))


def test_expired_token_is_401(client, tenant):
    body = assert_401(client.get(LIST, headers=bearer(make_token(tenant, "Operator",
                                                                 exp_in=-10))))
    assert "expired" in body["detail"].lower()


def test_alg_none_is_401(client, tenant):
    token = forge_token({"alg": "none", "typ": "JWT"}, claims_for(tenant, "SystemAdmin"), None)
    assert_401(client.get(LIST, headers=bearer(token)))


def test_hs256_with_another_secret_is_401(client, tenant):
    token = make_token(tenant, "Operator", secret="another-secret-" + "y" * 40)
    assert_401(client.get(LIST, headers=bearer(token)))


def test_rs256_token_when_hs256_configured_is_401(client, tenant, rsa_key):
    token = jwt.encode(claims_for(tenant), pem_private(rsa_key), algorithm="RS256")
    assert_401(client.get(LIST, headers=bearer(token)))


def test_hs512_with_the_right_secret_is_401(client, tenant):
    """The algorithm is pinned by the configuration, not chosen by the token."""
    token = forge_token({"alg": "HS512", "typ": "JWT"}, claims_for(tenant), TEST_SECRET.encode(),
                      hashlib.sha512)
    assert_401(client.get(LIST, headers=bearer(token)))


@pytest.mark.parametrize("claim", ["sub", "exp", "company_guid", "role"])
def test_missing_required_claim_is_401(client, tenant, claim):
    claims = claims_for(tenant)
    del claims[claim]
    body = assert_401(client.get(LIST, headers=bearer(jwt.encode(claims, TEST_SECRET,
                                                                 algorithm="HS256"))))
    assert claim in body["detail"]


@pytest.mark.parametrize("company", ["not-a-uuid", "", 42, None, ["x"], "12345678-1234"])
def test_non_uuid_company_guid_is_401(client, company):
    claims = claims_for(uuid.uuid4())
    claims["company_guid"] = company
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    assert_401(client.get(LIST, headers=bearer(token)))


@pytest.mark.parametrize("sub", ["", 42, None, "x" * 256])
def test_bad_sub_is_401(client, tenant, sub):
    token = forge_token({"alg": "HS256", "typ": "JWT"}, claims_for(tenant, sub=sub),
                      TEST_SECRET.encode())
    assert_401(client.get(LIST, headers=bearer(token)))


@pytest.mark.parametrize("extra", [
    {"nbf": int(time.time()) + 300},
    {"iat": int(time.time()) + 300},
    {"exp": "tomorrow"},
    {"iat": "yesterday"},
])
def test_not_yet_valid_or_badly_typed_time_claims_are_401(client, tenant, extra):
    token = forge_token({"alg": "HS256", "typ": "JWT"}, claims_for(tenant, **extra),
                      TEST_SECRET.encode())
    assert_401(client.get(LIST, headers=bearer(token)))


def test_token_for_an_audience_is_refused_when_none_is_configured(client, tenant):
    """A token minted for some audience is meant for that service, not for one that was
    told to expect no audience (PyJWT's rule, kept on purpose)."""
    assert_401(client.get(LIST, headers=bearer(make_token(tenant, "Operator", aud="billing"))))


def test_valid_token_reaches_the_endpoint(client, tenant):
    response = client.get(LIST, headers=bearer(make_token(tenant, "Operator")))
    assert response.status_code == 200, response.json
    assert response.json == []


# --- roles --------------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["Superuser", "systemadmin", "", "Admin", 7, ["Operator"]])
def test_unknown_role_is_403(client, tenant, role):
    token = jwt.encode(claims_for(tenant, role), TEST_SECRET, algorithm="HS256")
    assert_error(client.get(LIST, headers=bearer(token)), 403)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_can_read(as_tenant, seed, tenant, role):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    caller = as_tenant(tenant, role)
    listed = caller.get(LIST)
    assert listed.status_code == 200, listed.json
    assert [p["guid"] for p in listed.json] == [str(tree.pieces[0])]
    detail = caller.get(f"{LIST}/{tree.pieces[0]}")
    assert detail.status_code == 200, detail.json
    assert detail.json["guid"] == str(tree.pieces[0])


# --- audience and issuer ------------------------------------------------------------------

@pytest.fixture
def aud_iss_client(app_factory):
    settings = JWTSettings(TEST_SECRET, ("HS256",), audience="pieces-api",
                           issuer="https://auth.example")
    return app_factory(jwt=settings).test_client()


@pytest.mark.parametrize("extra, ok", [
    ({"aud": "pieces-api", "iss": "https://auth.example"}, True),
    ({"aud": ["other", "pieces-api"], "iss": "https://auth.example"}, True),
    ({"aud": "other-api", "iss": "https://auth.example"}, False),
    ({"iss": "https://auth.example"}, False),
    ({"aud": "pieces-api", "iss": "https://evil.example"}, False),
    ({"aud": "pieces-api"}, False),
    ({}, False),
])
def test_audience_and_issuer_checked_when_configured(aud_iss_client, tenant, extra, ok):
    response = aud_iss_client.get(LIST, headers=bearer(make_token(tenant, "Operator", **extra)))
    if ok:
        assert response.status_code == 200, response.json
    else:
        assert_401(response)


# --- public-key (RS256 / ES256) configuration ---------------------------------------------

@pytest.fixture
def rs256_client(app_factory, db_url, rsa_key):
    config = Config.from_env({
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "PIECES_JWT_PUBLIC_KEY": pem_public(rsa_key),
    })
    assert config.jwt.algorithms == ("RS256",)
    return app_factory(config=config).test_client()


def test_rs256_configuration_accepts_rs256_tokens(rs256_client, seed, tenant, rsa_key):
    tree = seed.tree(tenant, pieces_per_assembly=1)
    token = jwt.encode(claims_for(tenant), pem_private(rsa_key), algorithm="RS256")
    response = rs256_client.get(LIST, headers=bearer(token))
    assert response.status_code == 200, response.json
    assert [p["guid"] for p in response.json] == [str(tree.pieces[0])]


def test_rs256_configuration_rejects_other_private_key(rs256_client, tenant):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims_for(tenant), pem_private(stranger), algorithm="RS256")
    assert_401(rs256_client.get(LIST, headers=bearer(token)))


def test_rs256_configuration_rejects_hs256_signed_with_public_pem(rs256_client, tenant, rsa_key):
    """Key confusion: the public key's PEM used as an HMAC secret must not verify."""
    token = forge_token({"alg": "HS256", "typ": "JWT"}, claims_for(tenant, "SystemAdmin"),
                      pem_public(rsa_key).encode())
    assert_401(rs256_client.get(LIST, headers=bearer(token)))


def test_rs256_configuration_rejects_alg_none(rs256_client, tenant):
    token = forge_token({"alg": "none", "typ": "JWT"}, claims_for(tenant, "SystemAdmin"), None)
    assert_401(rs256_client.get(LIST, headers=bearer(token)))


def test_es256_configuration_accepts_es256_tokens(app_factory, db_url, tenant):
    key = ec.generate_private_key(ec.SECP256R1())
    config = Config.from_env({
        "DATABASE_URL": db_url.render_as_string(hide_password=False),
        "PIECES_JWT_PUBLIC_KEY": pem_public(key),
    })
    client = app_factory(config=config).test_client()
    token = jwt.encode(claims_for(tenant), pem_private(key), algorithm="ES256")
    response = client.get(LIST, headers=bearer(token))
    assert response.status_code == 200, response.json
    assert_401(client.get(LIST, headers=bearer(make_token(tenant, "Operator"))))


class CacheClock:
    """`time` as `pieces_service.auth` sees it: the real clock until `now` is set."""

    now: float | None = None

    def time(self) -> float:
        return time.time() if self.now is None else self.now


def test_verified_token_cache_honours_expiry_and_bounds(monkeypatch):
    """The cache serves an entry only before `exp` + leeway, which it reads from its own clock;
    here that clock is set on either side of `exp`, so nothing depends on how fast the test
    runs. Tokens verified in full are a minute or more from their limits in real time."""
    from pieces_service import auth
    from pieces_service.auth import InvalidToken, VerifiedTokens

    verified = []  # the tokens that went through full verification, in order
    real_verify = auth._verify

    def counted_verify(token, settings):
        verified.append(token)
        return real_verify(token, settings)

    monkeypatch.setattr(auth, "_verify", counted_verify)
    clock = CacheClock()
    monkeypatch.setattr(auth, "time", clock)
    settings = JWTSettings(TEST_SECRET, ("HS256",))
    cache = VerifiedTokens(max_entries=2)
    company = uuid.uuid4()
    token = make_token(company, "Operator", exp_in=300)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert cache.principal(token, settings).company_guid == company
    # Until exp, the cached entry is served without verifying the token again ...
    clock.now = exp - 0.001
    assert cache.principal(token, settings).company_guid == company
    assert verified.count(token) == 1
    # ... from exp on it is not: the token goes through full verification again.
    clock.now = exp
    assert cache.principal(token, settings).company_guid == company  # (real time: still valid)
    assert verified.count(token) == 2
    clock.now = None
    # And full verification refuses a token past its exp, with the 401's message.
    expired = make_token(company, "Operator", exp_in=-60)
    with pytest.raises(InvalidToken, match="^Token has expired$"):
        cache.principal(expired, settings)
    assert expired not in cache._entries
    # With a leeway, a token is accepted until exp + leeway, and served until then only.
    lenient = JWTSettings(TEST_SECRET, ("HS256",), leeway_seconds=30)
    late = make_token(company, "Operator", sub="late", exp_in=-10)
    late_exp = jwt.decode(late, options={"verify_signature": False})["exp"]
    assert cache.principal(late, lenient).subject == "late"
    clock.now = late_exp + 29.999
    cache.principal(late, lenient)
    assert verified.count(late) == 1
    clock.now = late_exp + 30
    cache.principal(late, lenient)
    assert verified.count(late) == 2
    clock.now = None
    with pytest.raises(InvalidToken, match="^Token has expired$"):
        cache.principal(expired, lenient)  # 60 s past exp is past a 30 s leeway too
    tokens = [make_token(uuid.uuid4(), "Operator", sub=f"u{i}") for i in range(3)]
    for token in tokens:
        cache.principal(token, settings)
    assert len(cache._entries) == 2 and tokens[0] not in cache._entries
    # A cached token is never served for a tampered copy.
    with pytest.raises(InvalidToken):
        cache.principal(tokens[2][:-2] + ("AA" if tokens[2][-2:] != "AA" else "BB"), settings)
