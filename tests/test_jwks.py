"""Keys from a JWKS (`PIECES_JWT_JWKS_URL`), served by a real HTTP endpoint the test starts
(tests/receivers.py): keys chosen by `kid` and pinned by their type; unknown kids cost at
most the bounded refresh (counted at the server); a refresh before `max-age` runs out; the
kept keys serve while the endpoint is down; a removed key takes its cached tokens with it;
an unusable JWKS stops the start with one line; and a rotation under load through the real
service under gunicorn refuses no valid token."""
from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import assert_error, claims_for, clean_env, forge_token, raw_url
from receivers import JwksServer, KeyPair
from reliability.reliability_harness import Gunicorn, free_port
from pieces_service import config_from_env_or_exit, jwks
from pieces_service.config import JWKS_ALGORITHMS, Config, ConfigError, JWTSettings

PROJECT_DIR = Path(__file__).resolve().parent.parent
PIECES = "/api/v1/pieces"
UNKNOWN_KEY = "Token signing key is not known"


@pytest.fixture(scope="module")
def rsa_key():
    return KeyPair("rsa-1")


@pytest.fixture(scope="module")
def ec_key():
    return KeyPair("ec-1", "EC")


@pytest.fixture(scope="module")
def next_key():
    return KeyPair("rsa-2")


@pytest.fixture
def server(rsa_key, ec_key):
    with JwksServer([rsa_key.jwk, ec_key.jwk]) as server:
        yield server


@pytest.fixture
def jwks_app(app_factory):
    """`jwks_app(server, min_refresh_s=…, **jwt)` -> (app, its key set), the key set loaded
    as the service's start loads it; its background refresh is stopped after the test."""
    key_sets = []

    def factory(server, min_refresh_s=60, **settings):
        jwt_settings = JWTSettings(None, JWKS_ALGORITHMS, jwks_url=server.url,
                                   jwks_min_refresh_s=min_refresh_s, **settings)
        key_set = jwks.keys_for(jwt_settings)
        key_sets.append(key_set)
        key_set.load()
        return app_factory(jwt=jwt_settings), key_set

    yield factory
    for key_set in key_sets:
        key_set.close()


def get(app, token):
    return app.test_client().get(PIECES, headers={"Authorization": f"Bearer {token}"})


def assert_refused(response, detail=None):
    assert_error(response, 401, detail)
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_each_token_is_verified_with_the_key_its_kid_names(jwks_app, server, rsa_key, ec_key,
                                                            tenant):
    app, _ = jwks_app(server)
    for key in (rsa_key, ec_key):
        response = get(app, key.token(tenant))
        assert response.status_code == 200, response.json
        assert response.json == []
    assert server.fetches == 1  # at start only


def test_the_algorithm_is_the_keys_never_the_tokens(jwks_app, server, rsa_key, ec_key, tenant):
    app, _ = jwks_app(server)
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = claims_for(tenant)
    for token in (
        # HS256 "signed" with the RSA key's public PEM: the classic confusion
        forge_token({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, claims, public_pem),
        forge_token({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, claims, None),
        ec_key.token(tenant, kid="rsa-1"),               # ES256 under an RSA key's kid
        rsa_key.token(tenant, kid="ec-1"),               # RS256 under an EC key's kid
        KeyPair("rsa-1").token(tenant),                  # the right kid, another key
        rsa_key.token(tenant, algorithm="RS512"),        # an RSA key verifies RS256 only
    ):
        assert_refused(get(app, token), "Invalid token")


def test_a_token_without_a_kid_is_refused(jwks_app, server, rsa_key, tenant):
    app, _ = jwks_app(server)
    token = forge_token({"alg": "RS256", "typ": "JWT"}, claims_for(tenant), None)
    assert_refused(get(app, token), "Token header has no 'kid'")
    assert_refused(get(app, "not-a-jwt"), "Invalid token")


def test_the_claim_checks_apply_unchanged(jwks_app, server, rsa_key, tenant):
    app, _ = jwks_app(server, audience="pieces", issuer="https://idp.test")
    good = {"aud": "pieces", "iss": "https://idp.test"}
    assert get(app, rsa_key.token(tenant, **good)).status_code == 200
    assert_refused(get(app, rsa_key.token(tenant)), "Token is missing the 'aud' claim")
    assert_refused(get(app, rsa_key.token(tenant, **{**good, "aud": "other"})),
                   "Token audience is not accepted")
    assert_refused(get(app, rsa_key.token(tenant, **good, exp=int(time.time()) - 5)),
                   "Token has expired")


def test_unknown_kids_cost_at_most_one_fetch_per_min_refresh(jwks_app, server, rsa_key,
                                                             tenant):
    """200 tokens with made-up kids from 8 threads at once: each is a 401, and the server
    sees at most one fetch per PIECES_JWKS_MIN_REFRESH_S (and at least the first)."""
    app, _ = jwks_app(server, min_refresh_s=2)
    time.sleep(2.05)  # the start's fetch is min_refresh_s old: the first unknown kid fetches
    tokens = [rsa_key.token(tenant, kid=uuid.uuid4().hex) for _ in range(200)]
    statuses, details = [], set()

    def send(batch):
        client = app.test_client()
        for token in batch:
            response = client.get(PIECES, headers={"Authorization": f"Bearer {token}"})
            statuses.append(response.status_code)
            details.add(response.json["detail"])

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(tokens[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert statuses == [401] * 200 and details == {UNKNOWN_KEY}
    fetched = server.fetches - 1
    assert 1 <= fetched <= 1 + int(elapsed / 2), (fetched, elapsed)


def test_a_kid_published_later_is_fetched_when_a_token_names_it(jwks_app, server, rsa_key,
                                                                 next_key, tenant):
    app, _ = jwks_app(server, min_refresh_s=1)
    server.publish([rsa_key.jwk, next_key.jwk])
    time.sleep(1.05)
    assert get(app, next_key.token(tenant)).status_code == 200
    assert server.fetches == 2


def test_a_removed_key_takes_its_cached_tokens_with_it(jwks_app, server, rsa_key, ec_key,
                                                       tenant):
    app, key_set = jwks_app(server, min_refresh_s=1)
    token = rsa_key.token(tenant)
    assert get(app, token).status_code == 200  # verified, and kept (VerifiedTokens)
    assert get(app, token).status_code == 200
    server.publish([ec_key.jwk])
    time.sleep(1.05)
    assert_refused(get(app, ec_key.token(tenant, kid="other")), UNKNOWN_KEY)  # a refresh
    assert server.fetches == 2 and key_set.key("rsa-1") is None
    assert_refused(get(app, token), UNKNOWN_KEY)
    assert get(app, ec_key.token(tenant)).status_code == 200


def test_an_unchanged_key_keeps_its_tokens_across_refreshes(jwks_app, server, rsa_key,
                                                             tenant):
    app, key_set = jwks_app(server, min_refresh_s=1)
    before = key_set.key("rsa-1")
    time.sleep(1.05)
    assert_refused(get(app, rsa_key.token(tenant, kid="other")), UNKNOWN_KEY)  # a refresh
    assert server.fetches == 2 and key_set.key("rsa-1") is before


def test_the_jwks_is_refreshed_in_the_background_before_max_age(jwks_app, rsa_key, tenant):
    with JwksServer([rsa_key.jwk], cache_control="public, max-age=4") as server:
        app, _ = jwks_app(server, min_refresh_s=1)
        assert get(app, rsa_key.token(tenant)).status_code == 200  # starts the refresher
        deadline = time.monotonic() + 10
        while server.fetches < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first, second = server.fetch_times[:2]
        assert 1.0 <= second - first < 4.0, second - first


@pytest.mark.parametrize("cache_control, seconds", [
    (None, jwks.DEFAULT_MAX_AGE_S), ("max-age=60", 60), ("public, max-age=\"90\"", 90),
    ("no-store", 0), ("s-maxage=5", jwks.DEFAULT_MAX_AGE_S), ("no-cache, max-age=60", 0),
])
def test_max_age(cache_control, seconds):
    assert jwks.max_age(cache_control) == seconds


def test_while_the_jwks_is_down_the_kept_keys_serve(jwks_app, server, rsa_key, ec_key, tenant,
                                                    caplog):
    app, _ = jwks_app(server, min_refresh_s=1)
    server.stop()
    caplog.set_level(logging.INFO, logger="pieces_service.jwks")
    for _ in range(2):  # two failed refreshes, one outage
        time.sleep(1.05)
        assert_refused(get(app, rsa_key.token(tenant, kid="unknown")), UNKNOWN_KEY)
        for key in (rsa_key, ec_key):
            assert get(app, key.token(tenant, sub=uuid.uuid4().hex)).status_code == 200
    failures = [r for r in caplog.records if r.message.startswith("JWKS refresh failed")]
    assert len(failures) == 1 and "could not be fetched" in failures[0].error
    server.start()
    time.sleep(1.05)
    assert_refused(get(app, rsa_key.token(tenant, kid="unknown")), UNKNOWN_KEY)
    assert server.fetches == 2
    assert [r.message for r in caplog.records][-1] == "JWKS refresh succeeded again"


def test_a_refused_document_later_keeps_the_kept_keys(jwks_app, server, rsa_key, tenant,
                                                      caplog):
    app, _ = jwks_app(server, min_refresh_s=1)
    server.publish([rsa_key.jwk, {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"}])
    time.sleep(1.05)
    assert_refused(get(app, rsa_key.token(tenant, kid="h1", algorithm="RS256")), UNKNOWN_KEY)
    assert server.fetches == 2
    assert get(app, rsa_key.token(tenant)).status_code == 200
    failure, = [r for r in caplog.records if r.message.startswith("JWKS refresh failed")]
    assert "oct" in failure.error


# --- the start -----------------------------------------------------------------------------

def _rsa_jwk(bits=2048, **extra):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    import jwt

    return {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


def _ec_jwk(curve, **extra):
    import jwt

    key = ec.generate_private_key(curve)
    return {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


REFUSED = [
    ({"keys": [{"kty": "oct", "kid": "h1", "k": "c2VjcmV0", "alg": "HS256"}]},
     "key 'h1' is of type oct (an HS256 secret): only RSA (RS256) and EC P-256 (ES256)"),
    ({"keys": [_ec_jwk(ec.SECP384R1(), kid="e384")]}, "key 'e384' is of type EC P-384"),
    ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AAAA"}]},
     "key 'ed' is of type OKP Ed25519"),
    ({"keys": [_rsa_jwk(kid="r1", alg="ES256")]}, "is an RSA key but says alg 'ES256'"),
    ({"keys": [_rsa_jwk(kid="r1", alg="RS512")]}, "is an RSA key but says alg 'RS512'"),
    ({"keys": [_rsa_jwk(bits=1024, kid="small")]}, "key 'small' has 1024 bits"),
    ({"keys": [_rsa_jwk(kid="r1", d="AQAB")]}, "key 'r1' is a private key"),
    ({"keys": [_rsa_jwk()]}, "key 1 has no kid"),
    ({"keys": [_rsa_jwk(kid="r1"), _ec_jwk(ec.SECP256R1(), kid="r1")]}, "kid 'r1' appears twice"),
    ({"keys": [{"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"}]},
     "key 'bad' is not a valid RSA public key"),
    ({"keys": [_rsa_jwk(kid="enc", use="enc")]}, "serves no signing key"),
    ({"keys": []}, "serves no signing key"),
    ({"issuer": "x"}, "did not serve a JWKS"),
    ("not json", "did not serve JSON"),
]


class _Raw(JwksServer):
    """A JWKS endpoint serving `body` as it is."""

    def __init__(self, body: bytes):
        self.body = body
        super().__init__([])

    def _serve(self):
        self.fetch_times.append(time.monotonic())
        return self.body, None


def _serving(document):
    import json

    return _Raw(document.encode() if isinstance(document, str) else json.dumps(document).encode())


def _env(url):
    return {"DATABASE_URL": "postgresql://pieces@db.internal:5432/pieces",
            "PIECES_JWT_JWKS_URL": url}


@pytest.mark.parametrize("document, message", REFUSED, ids=[m for _, m in REFUSED])
def test_an_unusable_jwks_stops_the_start_with_one_line(capsys, document, message):
    with _serving(document) as server:
        with pytest.raises(SystemExit) as stop:
            config_from_env_or_exit(_env(server.url))
    assert stop.value.code == 78
    line, = capsys.readouterr().err.splitlines()
    assert line.startswith("pieces_service: configuration error: PIECES_JWT_JWKS_URL")
    assert message in line


def test_an_unreachable_jwks_stops_the_start_with_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        config_from_env_or_exit(_env(f"http://127.0.0.1:{free_port()}/jwks.json"))
    assert stop.value.code == 78
    line, = capsys.readouterr().err.splitlines()
    assert line.startswith("pieces_service: configuration error: PIECES_JWT_JWKS_URL could "
                           "not be fetched: ")


def test_gunicorn_refuses_to_start_on_an_hs256_jwks(tmp_path):
    document = {"keys": [{"kty": "oct", "kid": "h1", "k": "c2VjcmV0", "alg": "HS256"}]}
    with _serving(document) as server:
        result = subprocess.run(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60,
            env=clean_env(**_env(server.url), PROMETHEUS_MULTIPROC_DIR=str(tmp_path)))
    assert result.returncode == 78
    line, = result.stderr.splitlines()
    assert line == ("pieces_service: configuration error: PIECES_JWT_JWKS_URL: key 'h1' is of "
                    "type oct (an HS256 secret): only RSA (RS256) and EC P-256 (ES256) keys "
                    "are accepted")


@pytest.mark.parametrize("variables, message", [
    ({"PIECES_JWT_SECRET": "s" * 40}, "set only one of"),
    ({"PIECES_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----"}, "set only one of"),
    ({"PIECES_JWT_JWKS_URL": "ftp://idp/jwks.json"}, "PIECES_JWT_JWKS_URL must be an http"),
    ({"PIECES_JWT_JWKS_URL": "idp.internal/jwks.json"}, "PIECES_JWT_JWKS_URL must be an http"),
    ({"PIECES_JWT_JWKS_URL": "https://idp:port/jwks.json"}, "PIECES_JWT_JWKS_URL must be"),
    ({"PIECES_JWKS_MIN_REFRESH_S": "0"}, "PIECES_JWKS_MIN_REFRESH_S"),
])
def test_jwks_settings_are_checked(variables, message):
    env = {**_env("https://idp.internal/.well-known/jwks.json"), **variables}
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_jwks_settings():
    jwt_settings = Config.from_env({**_env("https://idp.internal/jwks.json"),
                                    "PIECES_JWKS_MIN_REFRESH_S": "5"}).jwt
    assert (jwt_settings.key, jwt_settings.algorithms) == (None, ("RS256", "ES256"))
    assert (jwt_settings.jwks_url, jwt_settings.jwks_min_refresh_s) == (
        "https://idp.internal/jwks.json", 5)
    assert Config.from_env(_env("https://idp.internal/jwks.json")).jwt.jwks_min_refresh_s == 30


# --- a rotation under load, through gunicorn ------------------------------------------------

def test_a_rotation_under_load_refuses_no_valid_token(db_url, rsa_key, next_key, tenant):
    """Two workers; callers with tokens of the old key, then the new key is published beside
    it and callers switch to it at once, then the old key is removed. Not one refusal; each
    worker fetched a few times at most; once the removal is seen, the old key's tokens are
    refused."""
    started = time.monotonic()
    with JwksServer([rsa_key.jwk], cache_control="max-age=3") as server:
        service = Gunicorn(raw_url(db_url), "", workers=2, PIECES_JWT_JWKS_URL=server.url,
                           PIECES_JWKS_MIN_REFRESH_S="1")
        try:
            old = [rsa_key.token(tenant, sub=f"old-{i}") for i in range(20)]
            new = [next_key.token(tenant, sub=f"new-{i}") for i in range(20)]
            current = {"tokens": old}
            statuses: list[int] = []
            stop = threading.Event()

            def caller(offset):
                i = offset
                while not stop.is_set():
                    tokens = current["tokens"]
                    status, body, _ = service.request("GET", PIECES,
                                                      token=tokens[i % len(tokens)])
                    statuses.append(status if status == 200 else (status, body))
                    i += 1

            threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            server.publish([rsa_key.jwk, next_key.jwk])
            current["tokens"] = new
            time.sleep(1.5)
            server.publish([next_key.jwk])
            time.sleep(4)  # past a max-age: every worker has seen the removal
            stop.set()
            for thread in threads:
                thread.join()
            refused = [status for status in statuses if status != 200]
            assert len(statuses) > 100 and refused == [], (len(statuses), refused[:5])
            # 1 at start, then per worker: one or two on the new kid (a background fetch
            # may come just before the new key), and one per 0.9 × max-age in the background.
            elapsed = time.monotonic() - started
            assert server.fetches <= 1 + 2 * (2 + elapsed / 2.7 + 1), (server.fetches, elapsed)
            assert [service.request("GET", PIECES, token=old[0])[0]
                    for _ in range(6)] == [401] * 6
        finally:
            service.close()
